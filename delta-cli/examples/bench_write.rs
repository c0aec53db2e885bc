//! Write benchmark driver (one operation per process).
//!
//! ```text
//! bench_write one INPUT.parquet TABLE          # all rows in one commit
//! bench_write many INPUT.parquet TABLE N       # N commits of equal slices
//! bench_write checkpoint TABLE                 # checkpoint the latest version
//! ```
//! The input is read into memory before timing starts. Prints one JSON object.

use std::time::Instant;

use arrow::array::RecordBatch;
use delta_core::write::WriteOptions;
use delta_core::Table;

mod common;
use common::{hwm_mb, read};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let op = args.get(1).map(String::as_str).unwrap_or("");
    let (seconds, rows, commits) = match op {
        "one" | "many" => {
            let batches = read(&args[2])?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let table = Table::open(&args[3])?;
            let n: usize = if op == "many" { args.get(4).and_then(|v| v.parse().ok()).unwrap_or(100) } else { 1 };
            let per = rows.div_ceil(n);
            let all = arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
            let t0 = Instant::now();
            for i in 0..n {
                let slice = all.slice(i * per, per.min(rows - i * per));
                let chunks: Vec<RecordBatch> =
                    (0..slice.num_rows()).step_by(65536).map(|o| slice.slice(o, 65536.min(slice.num_rows() - o))).collect();
                table.write(chunks, WriteOptions::default()).await?;
            }
            (t0.elapsed().as_secs_f64(), rows, n)
        }
        "checkpoint" => {
            let table = Table::open(&args[2])?;
            let t0 = Instant::now();
            table.checkpoint().await?;
            (t0.elapsed().as_secs_f64(), 0, 0)
        }
        _ => return Err("usage: bench_write one|many|checkpoint ...".into()),
    };
    println!("{}", serde_json::json!({"op": op, "seconds": seconds, "rows": rows, "commits": commits, "peak_rss_mb": hwm_mb()}));
    Ok(())
}
