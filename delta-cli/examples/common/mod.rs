//! Helpers shared by the benchmark drivers (`bench_write`, `bench_dml`).

use arrow::array::RecordBatch;

/// Reads a parquet file into memory (before timing starts).
pub fn read(path: &str) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error>> {
    let file = std::fs::File::open(path)?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.with_batch_size(65536).build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// This process's peak resident memory (`VmHWM`) in MB.
pub fn hwm_mb() -> f64 {
    status_mb("VmHWM:")
}

/// This process's resident memory now (`VmRSS`) in MB.
#[allow(dead_code)]
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(0.0)
        / 1024.0
}
