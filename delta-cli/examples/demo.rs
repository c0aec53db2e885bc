//! End-to-end demo on local disk: creates a partitioned table, appends, overwrites a partition,
//! evolves the schema, upserts with MERGE, deletes and updates rows (deletion vectors), reads the
//! change data feed and an old version, Z-orders, shows pruning, and prints the history.
//! Run: `cargo run --release -p delta-cli --example demo [DIR]`.

use std::sync::Arc;

use arrow::array::{Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::{Expr, Table};

/// `n` sales rows starting at `start` for one country.
fn sales(start: i64, n: i64, country: &str) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("day", DataType::Date32, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("country", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (start..start + n).collect();
    let days: Vec<i32> = ids.iter().map(|i| 19723 + (*i as i32 / 10)).collect();
    let amounts: Vec<f64> = ids.iter().map(|i| (*i * 7919 % 1000) as f64 / 10.0).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Date32Array::from(days)),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(StringArray::from(vec![country; n as usize])),
        ],
    )
}

fn rows(b: &[RecordBatch]) -> usize {
    b.iter().map(|b| b.num_rows()).sum()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| std::env::temp_dir().join("delta-demo").to_string_lossy().into_owned());
    let _ = std::fs::remove_dir_all(&dir);
    let table = Table::open(&dir)?;

    println!("== create + append: 4 countries, partitioned by country ({dir})");
    let first: Vec<RecordBatch> =
        ["UK", "FR", "DE", "US"].iter().enumerate().map(|(i, c)| sales(i as i64 * 1000, 1000, c)).collect::<Result<_, _>>()?;
    let opts = WriteOptions { partition_by: Some(vec!["country".into()]), ..Default::default() };
    let r = table.write(first, opts).await?;
    println!("   version {}: {} rows in {} files", r.version.unwrap_or(-1), r.rows_written, r.files_added);

    println!("== append 500 UK rows");
    let r = table.write(vec![sales(4000, 500, "UK")?], WriteOptions::default()).await?;
    println!("   version {}", r.version.unwrap_or(-1));

    println!("== overwrite the DE partition (replaceWhere country = 'DE')");
    let opts = WriteOptions { mode: SaveMode::Overwrite, replace_where: Some(Expr::parse("country = 'DE'")?), ..Default::default() };
    let r = table.write(vec![sales(9000, 10, "DE")?], opts).await?;
    println!("   version {}: {} files removed, {} added", r.version.unwrap_or(-1), r.files_removed, r.files_added);

    println!("== evolve the schema: add a `channel` column (mergeSchema)");
    let extra = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("country", DataType::Utf8, true),
            Field::new("channel", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![10_000, 10_001])),
            Arc::new(StringArray::from(vec!["FR", "FR"])),
            Arc::new(StringArray::from(vec!["web", "shop"])),
        ],
    )?;
    let r = table.write(vec![extra], WriteOptions { merge_schema: true, ..Default::default() }).await?;
    println!("   version {}", r.version.unwrap_or(-1));

    println!("== enable deletion vectors and the change data feed");
    let props = [("delta.enableDeletionVectors", "true"), ("delta.enableChangeDataFeed", "true")];
    let v = table.set_properties(props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).await?;
    println!("   version {v}");

    println!("== MERGE: upsert 20 rows (10 existing ids with new amounts, 10 new)");
    let mut updates = sales(0, 10, "UK")?;
    updates = RecordBatch::try_new(
        updates.schema(),
        vec![
            updates.column(0).clone(),
            updates.column(1).clone(),
            Arc::new(Float64Array::from(vec![999.0; 10])),
            updates.column(3).clone(),
        ],
    )?;
    let r = table
        .merge(vec![updates, sales(20_000, 10, "US")?], "t.id = s.id")
        .when_matched_update(&[("amount", "s.amount")])
        // INSERT * would need every target column in the source (`channel` is new); name them.
        .when_not_matched_insert(&[("id", "s.id"), ("day", "s.day"), ("amount", "s.amount"), ("country", "s.country")])
        .execute()
        .await?;
    println!(
        "   version {}: {} updated, {} inserted",
        r.version.unwrap_or(-1),
        r.metric("numTargetRowsUpdated"),
        r.metric("numTargetRowsInserted")
    );
    let merged = r.version.unwrap_or(0);

    println!("== DELETE FROM t WHERE amount < 5 (deletion vectors: no file is rewritten)");
    let r = table.delete(Some("amount < 5")).await?;
    println!(
        "   version {}: {} rows deleted, {} deletion vectors written",
        r.version.unwrap_or(-1),
        r.metric("numDeletedRows"),
        r.metric("numDeletionVectorsAdded")
    );

    println!("== UPDATE t SET amount = amount * 1.1 WHERE country = 'FR' AND amount > 99");
    let r = table.update(Some("country = 'FR' AND amount > 99"), &[("amount", "amount * 1.1")]).await?;
    println!("   version {}: {} rows updated", r.version.unwrap_or(-1), r.metric("numUpdatedRows"));

    let changes = table.table_changes(merged, None, None).await?.collect().await?;
    println!("== change data feed since version {merged}: {} change rows (insert / delete / update pre- and post-images)", rows(&changes));

    println!("== OPTIMIZE ZORDER BY (id): compacts each partition's files, purges deletion vectors");
    let before = table.snapshot().await?.num_files();
    let r = table.optimize().z_order(&["id"]).execute().await?;
    println!(
        "   version {}: {before} files -> {} ({} files rewritten); the data is unchanged",
        r.version.unwrap_or(-1),
        table.snapshot().await?.num_files(),
        r.metric("numRemovedFiles")
    );
    let dry = table.vacuum().dry_run(true).execute().await?;
    println!("== VACUUM DRY RUN: {} files would go (none: the default retention is 7 days)", dry.files.len());

    let snapshot = table.snapshot().await?;
    let schema: Vec<String> = snapshot.schema().fields.iter().map(|f| format!("{} {}", f.name, f.data_type)).collect();
    println!("\n== latest: version {}, {} files, schema [{}]", snapshot.version(), snapshot.num_files(), schema.join(", "));
    println!("   rows now: {}", rows(&snapshot.scan().build()?.collect().await?));
    let v1 = table.snapshot_at(1).await?;
    println!("   rows at version 1 (time travel): {}", rows(&v1.scan().build()?.collect().await?));

    let scan = snapshot
        .scan()
        .with_columns(&["id", "day", "amount", "channel"])
        .with_filter("country = 'UK' AND day >= '2024-03-01' AND id < 4300")?
        .build()?;
    println!(
        "\n== filter country = 'UK' AND day >= '2024-03-01' AND id < 4300: reads {} of {} files",
        scan.files().len(),
        scan.total_files()
    );
    let filtered = scan.collect().await?;
    let head: Vec<RecordBatch> = filtered.iter().take(1).map(|b| b.slice(0, b.num_rows().min(3))).collect();
    println!("{}", arrow::util::pretty::pretty_format_batches(&head)?);
    println!("   ({} rows)", rows(&filtered));

    println!("\n== history");
    for c in table.history(None).await? {
        let op = c.commit_info.get("operation").and_then(|o| o.as_str()).unwrap_or("-");
        let params = c.commit_info.get("operationParameters").map(|p| p.to_string()).unwrap_or_default();
        println!("   v{} {op} {params}", c.version);
    }
    println!("\nTry: cargo run -q -p delta-cli -- describe {dir}");
    Ok(())
}
