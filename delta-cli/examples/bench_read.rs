//! Read benchmark driver (one operation per process, so the caller can read its peak RSS).
//!
//! ```text
//! bench_read snapshot TABLE RUNS            # Table::open + snapshot + file count
//! bench_read count TABLE RUNS COLUMN        # scan one column, count rows
//! bench_read sum TABLE RUNS COLUMN          # scan one column, sum it
//! bench_read filter TABLE RUNS PREDICATE    # scan all columns with a predicate, count rows
//! ```
//! Prints one JSON object: median and all run times, rows, files read.
//! `bench/read_bench.py` runs it side by side with the peers.

use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use delta_core::Table;
use futures::TryStreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: bench_read OP TABLE RUNS [ARG]".into());
    }
    let (op, path, runs) = (args[1].as_str(), args[2].as_str(), args[3].parse::<usize>()?);
    let arg = args.get(4).cloned().unwrap_or_default();
    let table = Table::open(path)?;
    let mut times = Vec::new();
    let mut rows = 0u64;
    let mut files = (0usize, 0usize);
    let mut value = 0f64;
    for _ in 0..runs + 1 {
        let t0 = Instant::now();
        match op {
            "snapshot" => {
                let s = table.snapshot().await?;
                rows = s.num_files() as u64;
            }
            "count" => {
                let s = table.snapshot().await?;
                let scan = s.scan().with_columns(&[arg.as_str()]).build()?;
                files = (scan.files().len(), scan.total_files());
                rows = scan.count().await?;
            }
            "sum" => {
                let s = table.snapshot().await?;
                let scan = s.scan().with_columns(&[arg.as_str()]).build()?;
                files = (scan.files().len(), scan.total_files());
                let mut stream = scan.execute();
                rows = 0;
                value = 0.0;
                while let Some(b) = stream.try_next().await? {
                    rows += b.num_rows() as u64;
                    if op == "sum" {
                        let c = b.column(0);
                        value += match c.data_type() {
                            arrow::datatypes::DataType::Float64 => arrow::compute::sum(c.as_primitive::<Float64Type>()).unwrap_or(0.0),
                            arrow::datatypes::DataType::Int64 => arrow::compute::sum(c.as_primitive::<Int64Type>()).unwrap_or(0) as f64,
                            arrow::datatypes::DataType::Decimal128(_, s) => {
                                let s = *s;
                                arrow::compute::sum(c.as_primitive::<arrow::datatypes::Decimal128Type>()).unwrap_or(0) as f64
                                    / 10f64.powi(s as i32)
                            }
                            other => return Err(format!("cannot sum {other}").into()),
                        };
                        let _ = c.null_count();
                    }
                }
            }
            "filter" => {
                let s = table.snapshot().await?;
                // ARG is "COLUMN|PREDICATE": count the rows matching, reading COLUMN.
                let (col, pred) = arg.split_once('|').unwrap_or(("", arg.as_str()));
                let mut b = s.scan().with_filter(pred)?;
                if !col.is_empty() {
                    b = b.with_columns(&[col]);
                }
                let scan = b.build()?;
                files = (scan.files().len(), scan.total_files());
                let mut stream = scan.execute();
                rows = 0;
                while let Some(b) = stream.try_next().await? {
                    rows += b.num_rows() as u64;
                }
            }
            other => return Err(format!("unknown op {other}").into()),
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    let warmup = times.remove(0);
    // Peak RSS of this process (VmHWM is per address space, so it is not inherited from the parent).
    let hwm_kb: u64 = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(warmup);
    println!(
        "{}",
        serde_json::json!({"op": op, "median_s": median, "runs_s": times, "warmup_s": warmup, "rows": rows,
                           "value": value, "files_read": files.0, "files_total": files.1,
                           "peak_rss_mb": hwm_kb as f64 / 1024.0})
    );
    Ok(())
}
