//! A writer process for the multi-process commit tests: `append-writer URL WORKER COUNT` makes
//! COUNT blind appends of one row each (`id = WORKER * 1_000_000 + i`) to the table at URL, each
//! its own commit. Storage options come from `DELTA_TEST_STORAGE_OPTIONS` (`K=V` lines). Exits
//! non-zero, naming the append, if any commit fails. With `DELTA_TEST_LATENCIES=1` it prints
//! each commit's latency in milliseconds, one per line (`bench/store_bench.py` reads them).

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::write::WriteOptions;
use delta_core::{Table, TableOptions};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, worker, count] = args.as_slice() else {
        eprintln!("usage: append-writer URL WORKER COUNT");
        return std::process::ExitCode::from(2);
    };
    let (Ok(worker), Ok(count)) = (worker.parse::<i64>(), count.parse::<i64>()) else {
        eprintln!("WORKER and COUNT are integers");
        return std::process::ExitCode::from(2);
    };
    let mut options = TableOptions::default();
    for line in std::env::var("DELTA_TEST_STORAGE_OPTIONS").unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once('=') {
            options.storage_options.push((k.to_string(), v.to_string()));
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let table = Table::open_with(url, options).map_err(|e| e.to_string())?;
        let report = std::env::var("DELTA_TEST_LATENCIES").is_ok_and(|v| v == "1");
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("worker", DataType::Int64, true)]));
        for i in 0..count {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(vec![worker * 1_000_000 + i])), Arc::new(Int64Array::from(vec![worker]))],
            )
            .map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            table.write(vec![batch], WriteOptions::default()).await.map_err(|e| format!("append {i}: {e}"))?;
            if report {
                println!("{:.3}", started.elapsed().as_secs_f64() * 1e3);
            }
        }
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker {worker}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
