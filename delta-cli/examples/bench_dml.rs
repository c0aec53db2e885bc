//! DML benchmark driver (one operation per process, so peak RSS is the operation's own).
//!
//! ```text
//! bench_dml setup INPUT.parquet TABLE dv|cow     # create the target (not timed)
//! bench_dml merge TABLE SOURCE.parquet [BUDGET]  # upsert: matched update *, not matched insert *;
//!                                                # BUDGET: source bytes held before spilling
//! bench_dml delete TABLE PREDICATE               # DELETE WHERE PREDICATE
//! bench_dml setup-small INPUT.parquet TABLE N    # N appends of equal slices: N small files
//! bench_dml optimize TABLE                       # OPTIMIZE (bin-packing compaction)
//! bench_dml zorder TABLE COL,COL                 # OPTIMIZE ZORDER BY (cols)
//! ```
//! Prints one JSON object: seconds, peak RSS (VmHWM) in MB, and the operation's metrics.

use std::collections::HashMap;
use std::time::Instant;

use delta_core::write::WriteOptions;
use delta_core::Table;

mod common;
use common::{hwm_mb, read, rss_mb};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().ok_or("usage: bench_dml setup|setup-small|merge|delete|optimize|zorder ...");
    let op = arg(1)?;
    let t0 = Instant::now();
    let metrics = match op.as_str() {
        "setup" => {
            let batches = read(&arg(2)?)?;
            let dv = arg(4)? == "dv";
            let properties: HashMap<String, String> = [("delta.enableDeletionVectors".to_string(), dv.to_string())].into();
            // Files of about 1M rows, as a table grown by appends would have.
            let opts = WriteOptions { properties, target_file_size: Some(16 * 1024 * 1024), ..Default::default() };
            Table::open(&arg(3)?)?.write(batches, opts).await?;
            Default::default()
        }
        "merge" => {
            let table = Table::open(&arg(2)?)?;
            let source = read(&arg(3)?)?;
            let before = rss_mb();
            let t0 = Instant::now();
            let mut m = table.merge(source, "t.id = s.id").when_matched_update_all().when_not_matched_insert_all();
            if let Some(budget) = args.get(4) {
                m = m.with_memory_budget(budget.parse()?);
            }
            let r = m.execute().await?;
            let secs = t0.elapsed().as_secs_f64();
            println!("{}", serde_json::json!({"seconds": secs, "peak_rss_mb": hwm_mb(), "rss_before_mb": before, "metrics": r.metrics}));
            return Ok(());
        }
        "delete" => Table::open(&arg(2)?)?.delete(Some(&arg(3)?)).await?.metrics,
        "setup-small" => {
            let batches = read(&arg(2)?)?;
            let all = arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
            let n: usize = arg(4)?.parse()?;
            let table = Table::open(&arg(3)?)?;
            let per = all.num_rows().div_ceil(n);
            for i in 0..n {
                let start = i * per;
                if start >= all.num_rows() {
                    break;
                }
                table.write(vec![all.slice(start, per.min(all.num_rows() - start))], WriteOptions::default()).await?;
            }
            Default::default()
        }
        "optimize" => Table::open(&arg(2)?)?.optimize().execute().await?.metrics,
        "zorder" => {
            let cols: Vec<String> = arg(3)?.split(',').map(str::to_string).collect();
            Table::open(&arg(2)?)?.optimize().z_order(&cols).execute().await?.metrics
        }
        _ => return Err("usage: bench_dml setup|setup-small|merge|delete|optimize|zorder ...".into()),
    };
    let secs = t0.elapsed().as_secs_f64();
    println!("{}", serde_json::json!({"seconds": secs, "peak_rss_mb": hwm_mb(), "metrics": metrics}));
    Ok(())
}
