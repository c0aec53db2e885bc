//! DELETE / UPDATE / MERGE on local disk, with and without deletion vectors, with the change
//! data feed; a proptest model checks random operations against a naive row-by-row model.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::write::WriteOptions;
use delta_core::Table;

fn tmp(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("delta-dml-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_str().unwrap().to_string()
}

/// Rows `(id, part, v)`; `None` is NULL.
type Row = (i64, Option<String>, Option<i64>);

fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("part", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let part = b.column_by_name("part").unwrap().as_string::<i32>();
        let v = b.column_by_name("v").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((id.value(i), part.is_valid(i).then(|| part.value(i).to_string()), v.is_valid(i).then(|| v.value(i))));
        }
    }
    out.sort();
    out
}

async fn table_rows(table: &Table) -> Vec<Row> {
    rows_of(&table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap())
}

async fn make(name: &str, rows: &[Row], partitioned: bool, dv: bool, cdf: bool) -> Table {
    let table = Table::open(&tmp(name)).unwrap();
    let mut properties = HashMap::new();
    if dv {
        properties.insert("delta.enableDeletionVectors".to_string(), "true".to_string());
    }
    if cdf {
        properties.insert("delta.enableChangeDataFeed".to_string(), "true".to_string());
    }
    let opts = WriteOptions { partition_by: partitioned.then(|| vec!["part".to_string()]), properties, ..Default::default() };
    // Two commits so that there are several files per partition.
    let half = rows.len() / 2;
    table.write(vec![batch(&rows[..half])], opts.clone()).await.unwrap();
    table.write(vec![batch(&rows[half..])], opts).await.unwrap();
    table
}

fn sample() -> Vec<Row> {
    (0..40).map(|i| (i, Some(["a", "b", "c"][(i % 3) as usize].to_string()), if i % 7 == 0 { None } else { Some(i * 10) })).collect()
}

#[tokio::test]
async fn delete_with_and_without_deletion_vectors() {
    for (dv, partitioned) in [(false, false), (true, false), (false, true), (true, true)] {
        let table = make(&format!("del-{dv}-{partitioned}"), &sample(), partitioned, dv, false).await;
        let r = table.delete(Some("v > 200 OR id = 3")).await.unwrap();
        let expected: Vec<Row> = sample().into_iter().filter(|r| !(r.2.is_some_and(|v| v > 200) || r.0 == 3)).collect();
        assert_eq!(table_rows(&table).await, expected, "dv={dv} partitioned={partitioned}");
        assert_eq!(r.metric("numDeletedRows"), 17, "ids 21..39 less the NULL v of 21, 28, 35, and id 3");
        if dv {
            assert!(r.metric("numDeletionVectorsAdded") > 0);
            assert_eq!(r.metric("numCopiedRows"), 0);
            assert!(table.snapshot().await.unwrap().has_deletion_vectors());
        } else {
            assert!(r.metric("numCopiedRows") > 0);
        }
        // A second delete on top of the vectors.
        table.delete(Some("id < 10")).await.unwrap();
        let expected: Vec<Row> = expected.into_iter().filter(|r| r.0 >= 10).collect();
        assert_eq!(table_rows(&table).await, expected);
        // Nothing matches: no commit.
        let before = table.snapshot().await.unwrap().version();
        assert_eq!(table.delete(Some("id > 1000")).await.unwrap().version, None);
        assert_eq!(table.snapshot().await.unwrap().version(), before);
        // Time travel still sees the old rows.
        assert_eq!(rows_of(&table.snapshot_at(2).await.unwrap().scan().build().unwrap().collect().await.unwrap()), sample());
    }
}

#[tokio::test]
async fn partition_delete_removes_files_without_reading_them() {
    let table = make("del-part", &sample(), true, false, false).await;
    let r = table.delete(Some("part = 'b'")).await.unwrap();
    assert_eq!(r.metric("numDeletedRows"), 13);
    assert_eq!(r.metric("numCopiedRows"), 0);
    assert_eq!(r.metric("numAddedFiles"), 0);
    assert!(table_rows(&table).await.iter().all(|r| r.1.as_deref() != Some("b")));
    let all = table.delete(None).await.unwrap();
    assert_eq!(all.metric("numDeletedRows"), 27);
    assert!(table_rows(&table).await.is_empty());
    let history = table.history(Some(1)).await.unwrap();
    assert_eq!(history[0].commit_info["operation"], "DELETE");
}

#[tokio::test]
async fn update_with_and_without_deletion_vectors() {
    for dv in [false, true] {
        let table = make(&format!("upd-{dv}"), &sample(), true, dv, false).await;
        let r = table.update(Some("id % 5 = 0"), &[("v", "coalesce(v, 0) + 1"), ("part", "'z'")]).await.unwrap();
        assert_eq!(r.metric("numUpdatedRows"), 8);
        let expected: Vec<Row> = {
            let mut e: Vec<Row> = sample()
                .into_iter()
                .map(|r| if r.0 % 5 == 0 { (r.0, Some("z".to_string()), Some(r.2.unwrap_or(0) + 1)) } else { r })
                .collect();
            e.sort();
            e
        };
        assert_eq!(table_rows(&table).await, expected, "dv={dv}");
        let err = table.update(None, &[("nope", "1")]).await.unwrap_err();
        assert!(matches!(err, delta_core::DeltaError::ColumnNotFound { .. }), "{err}");
    }
}
