//! OPTIMIZE (compaction, Z-order), deletion-vector purge, VACUUM, shallow CLONE and ALTER on
//! local disk.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::write::WriteOptions;
use delta_core::{DeltaError, Expr, Table};

use crate::dml::{batch, make, sample, table_rows, tmp, Row};

/// The actions of commit `version` as JSON objects.
fn commit_actions(table: &Table, version: i64) -> Vec<serde_json::Value> {
    let root = table.location().root_url().to_file_path().unwrap();
    let text = std::fs::read_to_string(root.join(format!("_delta_log/{version:020}.json"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn appends(name: &str, commits: usize, partitioned: bool, dv: bool) -> Table {
    let rows = sample();
    let table = make(name, &rows[..2], partitioned, dv, false).await;
    for c in 0..commits {
        let chunk: Vec<Row> = rows.iter().skip(2).enumerate().filter(|(i, _)| i % commits == c).map(|(_, r)| r.clone()).collect();
        let opts = WriteOptions::default();
        table.write(vec![batch(&chunk)], opts).await.unwrap();
    }
    table
}

#[tokio::test]
async fn optimize_compacts_small_files_once_and_changes_no_data() {
    for partitioned in [false, true] {
        let table = appends(&format!("opt-{partitioned}"), 6, partitioned, false).await;
        let before = table_rows(&table).await;
        let files_before = table.snapshot().await.unwrap().num_files();
        let r = table.optimize().execute().await.unwrap();
        let v = r.version.expect("something to compact");
        let s = table.snapshot().await.unwrap();
        let expected_files = if partitioned { 3 } else { 1 };
        assert_eq!(s.num_files(), expected_files, "partitioned={partitioned}");
        assert_eq!(r.metric("numRemovedFiles") as usize, files_before);
        assert_eq!(r.metric("numAddedFiles") as usize, expected_files);
        assert_eq!(table_rows(&table).await, before);
        // Every file action says no data changed; the commit is delta-spark's OPTIMIZE.
        for a in commit_actions(&table, v) {
            if let Some(f) = a.get("add").or_else(|| a.get("remove")) {
                assert_eq!(f["dataChange"], false, "{a}");
            }
            if let Some(ci) = a.get("commitInfo") {
                assert_eq!(ci["operation"], "OPTIMIZE");
                assert_eq!(ci["isolationLevel"], "SnapshotIsolation");
            }
        }
        // Idempotent: a second run finds nothing to do.
        let again = table.optimize().execute().await.unwrap();
        assert_eq!(again.version, None, "partitioned={partitioned}: {:?}", again.metrics);
        // The change feed has nothing to say about it (dataChange=false): history still reads.
        assert_eq!(table.history(None).await.unwrap()[0].commit_info.get("operation").and_then(|o| o.as_str()), Some("OPTIMIZE"));
    }
}

#[tokio::test]
async fn optimize_with_a_partition_filter_touches_only_that_partition() {
    let table = appends("opt-filter", 4, true, false).await;
    let count = |s: &delta_core::Snapshot, p: &str| {
        s.add_files().unwrap().iter().filter(|a| a.partition_values.get("part") == Some(&Some(p.to_string()))).count()
    };
    let s0 = table.snapshot().await.unwrap();
    let (a0, b0) = (count(&s0, "a"), count(&s0, "b"));
    assert!(a0 > 1 && b0 > 1);
    let r = table.optimize().with_filter("part = 'a'").unwrap().execute().await.unwrap();
    assert!(r.version.is_some());
    let s1 = table.snapshot().await.unwrap();
    assert_eq!((count(&s1, "a"), count(&s1, "b")), (1, b0));
    // Filters on data columns are refused with a typed error, before anything is written.
    let err = table.optimize().with_filter("v > 3").unwrap().execute().await.unwrap_err();
    assert!(matches!(err, DeltaError::InvalidExpression { .. }), "{err}");
    // Files at least the minimum size are left alone.
    let t2 = appends("opt-min", 4, false, false).await;
    let r = t2.optimize().min_file_size(1).execute().await.unwrap();
    assert_eq!(r.version, None);
}

/// `(x, y)` on a 100×100 grid in a scrambled order, written as `files` files.
async fn grid(name: &str, files: usize) -> Table {
    let table = Table::open(&tmp(name)).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true), Field::new("y", DataType::Int64, true)]));
    let mut cells: Vec<(i64, i64)> = (0..100).flat_map(|x| (0..100).map(move |y| (x, y))).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..cells.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        cells.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for chunk in cells.chunks(cells.len() / files) {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(chunk.iter().map(|c| c.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(chunk.iter().map(|c| c.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        table.write(vec![b], WriteOptions::default()).await.unwrap();
    }
    table
}

async fn files_for(table: &Table, predicate: &str) -> usize {
    table.snapshot().await.unwrap().scan().with_predicate(Expr::parse(predicate).unwrap()).build().unwrap().files().len()
}

#[tokio::test]
async fn z_order_clusters_rows_so_point_lookups_skip_files() {
    let table = grid("zorder", 16).await;
    let q = "x = 17 AND y = 83";
    assert_eq!(files_for(&table, q).await, 16, "scrambled data: every file's range covers everything");
    let size = table.snapshot().await.unwrap().total_size_bytes() as u64;
    let r = table.optimize().z_order(&["x", "y"]).target_size(size / 16).execute().await.unwrap();
    assert!(r.version.is_some());
    let s = table.snapshot().await.unwrap();
    assert!(s.num_files() >= 8, "{} files", s.num_files());
    let hit = files_for(&table, q).await;
    assert!(hit <= 3, "after Z-order a point lookup reads {hit} of {} files", s.num_files());
    // A range on either column alone also skips.
    assert!(files_for(&table, "x < 10").await < s.num_files());
    assert!(files_for(&table, "y < 10").await < s.num_files());
    let rows = s.scan().build().unwrap().count().await.unwrap();
    assert_eq!(rows, 10_000);
    // Errors: unknown column, partition column.
    assert!(matches!(table.optimize().z_order(&["nope"]).execute().await, Err(DeltaError::ColumnNotFound { .. })));
    let parted = make("zorder-part", &sample(), true, false, false).await;
    assert!(matches!(parted.optimize().z_order(&["part"]).execute().await, Err(DeltaError::InvalidExpression { .. })));
    assert!(parted.optimize().z_order(&["v", "id"]).execute().await.unwrap().version.is_some());
    assert_eq!(table_rows(&parted).await, {
        let mut s = sample();
        s.sort();
        s
    });
}

#[tokio::test]
async fn purge_rewrites_files_with_deletion_vectors() {
    let table = make("purge", &sample(), true, true, false).await;
    table.delete(Some("v > 200")).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert!(s.has_deletion_vectors());
    let before = table_rows(&table).await;
    let r = table.purge_deletion_vectors(None).await.unwrap();
    assert!(r.version.is_some());
    assert!(r.metric("numDeletionVectorsRemoved") > 0);
    let s = table.snapshot().await.unwrap();
    assert!(s.add_files().unwrap().iter().all(|a| a.deletion_vector.is_none()));
    assert_eq!(table_rows(&table).await, before);
    assert_eq!(table.purge_deletion_vectors(None).await.unwrap().version, None);
    // Compaction also picks up files with many deleted rows, even a single one.
    let t2 = make("purge-compact", &sample(), false, true, false).await;
    t2.optimize().execute().await.unwrap();
    assert_eq!(t2.snapshot().await.unwrap().num_files(), 1);
    t2.delete(Some("id < 10")).await.unwrap();
    assert!(t2.snapshot().await.unwrap().has_deletion_vectors());
    let r = t2.optimize().execute().await.unwrap();
    assert!(r.version.is_some(), "{:?}", r.metrics);
    assert!(!t2.snapshot().await.unwrap().has_deletion_vectors());
    assert_eq!(table_rows(&t2).await.len(), 30);
}

#[allow(dead_code)]
fn props(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
