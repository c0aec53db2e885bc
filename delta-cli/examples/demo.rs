//! End-to-end demo on local disk: builds a small partitioned Delta table (parquet files plus
//! commit JSON, as a writer would lay them out), then reads it back with delta-core: describe,
//! history, a full scan, time travel, and a filtered scan that shows partition pruning and data
//! skipping. Run: `cargo run --release -p delta-cli --example demo [DIR]`.

use std::sync::Arc;

use arrow::array::{Date32Array, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::Table;
use serde_json::json;

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) -> std::io::Result<i64> {
    std::fs::create_dir_all(path.parent().unwrap_or(path))?;
    let file = std::fs::File::create(path)?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).map_err(std::io::Error::other)?;
    w.write(batch).map_err(std::io::Error::other)?;
    w.close().map_err(std::io::Error::other)?;
    Ok(std::fs::metadata(path)?.len() as i64)
}

/// Rows `start..start+n` of the demo data set for one country.
fn batch(start: i64, n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("day", DataType::Date32, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let ids: Vec<i64> = (start..start + n).collect();
    let days: Vec<i32> = ids.iter().map(|i| 19723 + (*i as i32 / 10)).collect();
    let amounts: Vec<f64> = ids.iter().map(|i| (*i * 7919 % 1000) as f64 / 10.0).collect();
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(ids)), Arc::new(Date32Array::from(days)), Arc::new(Float64Array::from(amounts))],
    )
    .unwrap_or_else(|e| panic!("demo batch: {e}"))
}

fn add_action(rel: &str, size: i64, b: &RecordBatch, country: &str) -> serde_json::Value {
    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().map(|a| a.values().to_vec()).unwrap_or_default();
    let (lo, hi) = (ids.iter().min().copied().unwrap_or(0), ids.iter().max().copied().unwrap_or(0));
    let day = |i: i64| chrono::NaiveDate::from_num_days_from_ce_opt(719163 + 19723 + (i as i32 / 10)).map(|d| d.to_string());
    let stats = json!({"numRecords": ids.len(), "minValues": {"id": lo, "day": day(lo)}, "maxValues": {"id": hi, "day": day(hi)}, "nullCount": {"id": 0, "day": 0, "amount": 0}});
    json!({"add": {"path": rel, "partitionValues": {"country": country}, "size": size, "modificationTime": 0, "dataChange": true, "stats": stats.to_string()}})
}

fn commit(dir: &std::path::Path, version: i64, actions: &[serde_json::Value]) -> std::io::Result<()> {
    let lines: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
    std::fs::write(dir.join(format!("_delta_log/{version:020}.json")), lines.join("\n") + "\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| std::env::temp_dir().join("delta-demo").to_string_lossy().into_owned()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("_delta_log"))?;
    println!("== writing a demo table at {}", dir.display());
    let schema = json!({"type": "struct", "fields": [
        {"name": "id", "type": "long", "nullable": true, "metadata": {}},
        {"name": "day", "type": "date", "nullable": true, "metadata": {}},
        {"name": "amount", "type": "double", "nullable": true, "metadata": {}},
        {"name": "country", "type": "string", "nullable": true, "metadata": {}}]});
    let mut v0 = vec![
        json!({"commitInfo": {"timestamp": 0, "operation": "CREATE TABLE AS SELECT", "operationParameters": {"partitionBy": "[\"country\"]"}}}),
        json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
        json!({"metaData": {"id": "demo", "format": {"provider": "parquet", "options": {}}, "schemaString": schema.to_string(), "partitionColumns": ["country"], "configuration": {}, "createdTime": 0}}),
    ];
    let mut start = 0;
    for country in ["UK", "FR", "DE", "US"] {
        for _ in 0..4 {
            let b = batch(start, 250);
            let rel = format!("country={country}/part-{start:05}.parquet");
            let size = write_parquet(&dir.join(&rel), &b)?;
            v0.push(add_action(&rel, size, &b, country));
            start += 250;
        }
    }
    commit(&dir, 0, &v0)?;
    let b = batch(start, 500);
    let rel = format!("country=UK/part-{start:05}.parquet");
    let size = write_parquet(&dir.join(&rel), &b)?;
    commit(&dir, 1, &[json!({"commitInfo": {"timestamp": 0, "operation": "WRITE", "operationParameters": {"mode": "Append"}}}), add_action(&rel, size, &b, "UK")])?;
    commit(&dir, 2, &[
        json!({"commitInfo": {"timestamp": 0, "operation": "DELETE", "operationParameters": {"predicate": "[\"country = 'DE'\"]"}}}),
        json!({"remove": {"path": "country=DE/part-02000.parquet", "deletionTimestamp": 0, "dataChange": true}}),
    ])?;

    let table = Table::open(dir.to_str().unwrap_or("."))?;
    let snapshot = table.snapshot().await?;
    println!("\n== describe: version {}, {} files, {} bytes, partitioned by {:?}", snapshot.version(), snapshot.num_files(), snapshot.total_size_bytes(), snapshot.partition_columns());
    println!("\n== history");
    for c in table.history(None).await? {
        println!("  v{} {}", c.version, c.commit_info.get("operation").and_then(|o| o.as_str()).unwrap_or("-"));
    }
    let rows = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
    let all = snapshot.scan().build()?.collect().await?;
    println!("\n== full scan at v{}: {} rows", snapshot.version(), rows(&all));
    let v0 = table.snapshot_at(0).await?.scan().build()?.collect().await?;
    println!("== time travel to v0: {} rows", rows(&v0));
    let scan = snapshot.scan().with_columns(&["id", "day", "amount"]).with_filter("country = 'UK' AND day >= '2024-03-01' AND id < 4300")?.build()?;
    println!("\n== filter country = 'UK' AND day >= '2024-03-01' AND id < 4300: reads {} of {} files", scan.files().len(), scan.total_files());
    let filtered = scan.collect().await?;
    println!("{}", arrow::util::pretty::pretty_format_batches(&filtered.iter().map(|b| b.slice(0, b.num_rows().min(5))).take(1).collect::<Vec<_>>())?);
    println!("({} rows in all)", rows(&filtered));
    println!("\nTry: cargo run -q -p delta-cli -- describe {}", dir.display());
    Ok(())
}
