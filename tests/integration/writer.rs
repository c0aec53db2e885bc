//! The write path on local disk: create, append, overwrite, replaceWhere, dynamic partition
//! overwrite, schema enforcement and evolution, table rules, idempotent writes, checkpoints, CRC.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::{DeltaError, Table};

fn tmp(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("delta-wt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_str().unwrap().to_string()
}

fn batch(ids: &[i64], parts: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("part", DataType::Utf8, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(parts.to_vec()))]).unwrap()
}

async fn ids(table: &Table) -> Vec<i64> {
    let batches = table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap();
    let mut out: Vec<i64> =
        batches.iter().flat_map(|b| b.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec()).collect();
    out.sort();
    out
}

fn partitioned() -> WriteOptions {
    WriteOptions { partition_by: Some(vec!["part".into()]), ..Default::default() }
}

#[tokio::test]
async fn create_append_overwrite_and_time_travel() {
    let table = Table::open(&tmp("basic")).unwrap();
    let r = table.write(vec![batch(&[1, 2, 3], &["a", "b", "a"])], partitioned()).await.unwrap();
    assert_eq!(r.version, Some(0), "a write to a new path is one commit: version 0 holds protocol, metadata and data");
    assert_eq!(r.files_added, 2);
    table.write(vec![batch(&[4], &["c"])], WriteOptions::default()).await.unwrap();
    assert_eq!(ids(&table).await, vec![1, 2, 3, 4]);
    let over = WriteOptions { mode: SaveMode::Overwrite, ..Default::default() };
    table.write(vec![batch(&[9], &["z"])], over).await.unwrap();
    assert_eq!(ids(&table).await, vec![9]);
    let v1 = table.snapshot_at(1).await.unwrap().scan().build().unwrap().collect().await.unwrap();
    assert_eq!(v1.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    let snapshot = table.snapshot().await.unwrap();
    assert!(snapshot.checksum_mismatch().is_none(), "the .crc file written after each commit agrees with replay");
    assert_eq!(snapshot.partition_columns(), ["part"]);
    let history = table.history(None).await.unwrap();
    assert_eq!(history[0].commit_info["operation"], "WRITE");
    assert!(history[0].commit_info.contains_key("txnId"));
    assert_eq!(history.len(), 3);
}

/// A first write whose input fails part-way leaves no table behind (nothing was committed),
/// and the next write creates it.
#[tokio::test]
async fn a_failed_first_write_leaves_no_table() {
    let table = Table::open(&tmp("failed-first")).unwrap();
    let input = futures::stream::iter(vec![Ok(batch(&[1, 2], &["a", "b"])), Err(DeltaError::Internal("the source went away".into()))]);
    let err = table.write_stream(input, partitioned()).await.unwrap_err();
    assert!(err.to_string().contains("the source went away"), "{err}");
    assert!(matches!(table.snapshot().await, Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. })));
    let r = table.write(vec![batch(&[3], &["c"])], partitioned()).await.unwrap();
    assert_eq!(r.version, Some(0));
    assert_eq!(ids(&table).await, vec![3]);
}

#[tokio::test]
async fn replace_where_on_partitions_and_on_data_columns() {
    let table = Table::open(&tmp("rw")).unwrap();
    table.write(vec![batch(&[1, 2, 3, 4], &["a", "a", "b", "b"])], partitioned()).await.unwrap();
    let pred = delta_core::Expr::parse("part = 'a'").unwrap();
    let opts = WriteOptions { mode: SaveMode::Overwrite, replace_where: Some(pred.clone()), ..Default::default() };
    table.write(vec![batch(&[10], &["a"])], opts.clone()).await.unwrap();
    assert_eq!(ids(&table).await, vec![3, 4, 10]);
    // Rows outside the predicate are refused, and nothing changes.
    let err = table.write(vec![batch(&[11], &["b"])], opts).await.unwrap_err();
    assert!(matches!(err, DeltaError::WriteRefused { .. }), "{err}");
    assert_eq!(ids(&table).await, vec![3, 4, 10]);
    // A data-column predicate rewrites the files it partly covers.
    let opts =
        WriteOptions { mode: SaveMode::Overwrite, replace_where: Some(delta_core::Expr::parse("id >= 4").unwrap()), ..Default::default() };
    table.write(vec![batch(&[40, 50], &["b", "c"])], opts).await.unwrap();
    assert_eq!(ids(&table).await, vec![3, 40, 50]);
}

#[tokio::test]
async fn dynamic_partition_overwrite_replaces_only_written_partitions() {
    let table = Table::open(&tmp("dyn")).unwrap();
    table.write(vec![batch(&[1, 2, 3], &["a", "b", "c"])], partitioned()).await.unwrap();
    let opts = WriteOptions { mode: SaveMode::Overwrite, dynamic_partition_overwrite: true, ..Default::default() };
    table.write(vec![batch(&[20, 21], &["b", "d"])], opts).await.unwrap();
    assert_eq!(ids(&table).await, vec![1, 3, 20, 21]);
}

#[tokio::test]
async fn schema_is_enforced_and_evolves_on_request() {
    let table = Table::open(&tmp("schema")).unwrap();
    table.write(vec![batch(&[1], &["a"])], WriteOptions::default()).await.unwrap();
    // Wrong type: refused, naming the column and both types.
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let err = table.write(vec![bad], WriteOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("`id`") && err.contains("Utf8") && err.contains("long"), "{err}");
    // A narrower integer is a safe write into a long column.
    let narrow = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)])),
        vec![Arc::new(Int32Array::from(vec![7]))],
    )
    .unwrap();
    table.write(vec![narrow], WriteOptions::default()).await.unwrap();
    // A new column: refused without mergeSchema, added with it.
    let wide = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("extra", DataType::Utf8, true)])),
        vec![Arc::new(Int64Array::from(vec![8])), Arc::new(StringArray::from(vec!["e"]))],
    )
    .unwrap();
    assert!(table.write(vec![wide.clone()], WriteOptions::default()).await.is_err());
    table.write(vec![wide], WriteOptions { merge_schema: true, ..Default::default() }).await.unwrap();
    let snap = table.snapshot().await.unwrap();
    assert_eq!(snap.schema().fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["id", "part", "extra"]);
    assert_eq!(ids(&table).await, vec![1, 7, 8]);
    // overwriteSchema replaces it.
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["only"]))],
    )
    .unwrap();
    table.write(vec![other], WriteOptions { mode: SaveMode::Overwrite, overwrite_schema: true, ..Default::default() }).await.unwrap();
    let snap = table.snapshot().await.unwrap();
    assert_eq!(snap.schema().fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["k"]);
}

#[tokio::test]
async fn table_rules_refuse_bad_rows() {
    let table = Table::open(&tmp("rules")).unwrap();
    let props: HashMap<String, String> =
        [("delta.constraints.positive".to_string(), "id > 0".to_string()), ("delta.appendOnly".to_string(), "true".to_string())].into();
    table.write(vec![batch(&[1], &["a"])], WriteOptions { properties: props, ..Default::default() }).await.unwrap();
    let err = table.write(vec![batch(&[-5], &["a"])], WriteOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("positive"), "{err}");
    let err = table
        .write(vec![batch(&[5], &["a"])], WriteOptions { mode: SaveMode::Overwrite, ..Default::default() })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("append-only"), "{err}");
    assert_eq!(ids(&table).await, vec![1]);
    let p = table.snapshot().await.unwrap().protocol().clone();
    assert!(p.min_writer_version >= 3, "CHECK constraints need writer version 3, got {p:?}");
}

#[tokio::test]
async fn idempotent_writes_skip_replayed_versions() {
    let table = Table::open(&tmp("idem")).unwrap();
    let opts = |v| WriteOptions { app_transaction: Some(("stream-1".into(), v)), ..Default::default() };
    assert!(table.write(vec![batch(&[1], &["a"])], opts(0)).await.unwrap().version.is_some());
    assert!(table.write(vec![batch(&[1], &["a"])], opts(0)).await.unwrap().version.is_none(), "a replayed batch is skipped");
    assert!(table.write(vec![batch(&[2], &["a"])], opts(1)).await.unwrap().version.is_some());
    assert_eq!(ids(&table).await, vec![1, 2]);
    assert_eq!(table.snapshot().await.unwrap().app_transactions()["stream-1"].version, 1);
}

#[tokio::test]
async fn checkpoints_every_interval_and_reads_from_them() {
    let dir = tmp("ckpt");
    let table = Table::open(&dir).unwrap();
    for i in 0..12 {
        table.write(vec![batch(&[i], &["a"])], WriteOptions::default()).await.unwrap();
    }
    let log = std::path::Path::new(&dir).join("_delta_log");
    assert!(log.join(format!("{:020}.checkpoint.parquet", 10)).exists());
    assert!(log.join("_last_checkpoint").exists());
    let snap = table.snapshot().await.unwrap();
    assert_eq!(snap.log_segment().checkpoint.as_ref().map(|c| c.version), Some(10));
    assert_eq!(ids(&table).await, (0..12).collect::<Vec<_>>());
    // A torn checkpoint is never used: rebuild from the commits.
    std::fs::write(log.join(format!("{:020}.checkpoint.parquet", 10)), b"PAR1 torn").unwrap();
    assert_eq!(ids(&table).await, (0..12).collect::<Vec<_>>());
}

#[tokio::test]
async fn expired_logs_are_cleaned_up_behind_a_checkpoint() {
    let dir = tmp("cleanup");
    let table = Table::open(&dir).unwrap();
    let props: HashMap<String, String> = [("delta.logRetentionDuration".to_string(), "interval 0 seconds".to_string())].into();
    table.write(vec![batch(&[0], &["a"])], WriteOptions { properties: props, ..Default::default() }).await.unwrap();
    for i in 1..12 {
        table.write(vec![batch(&[i], &["a"])], WriteOptions::default()).await.unwrap();
    }
    let log = std::path::Path::new(&dir).join("_delta_log");
    // The checkpoint at 10 was written and everything before it expired at once.
    assert!(!log.join(format!("{:020}.json", 5)).exists());
    assert!(log.join(format!("{:020}.json", 11)).exists());
    assert_eq!(ids(&table).await, (0..12).collect::<Vec<_>>());
    assert!(matches!(table.snapshot_at(5).await, Err(DeltaError::VersionNotFound { .. } | DeltaError::VersionsNotContiguous { .. })));
    let history = table.history(None).await.unwrap();
    assert_eq!(history.last().map(|h| h.version), Some(10));
    assert_eq!(delta_core::checkpoint::parse_interval_ms("interval 30 days"), Some(30 * 86_400_000));
    assert_eq!(delta_core::checkpoint::parse_interval_ms("2 hours"), Some(7_200_000));
    assert_eq!(delta_core::checkpoint::parse_interval_ms("soon"), None);
}

#[tokio::test]
async fn checkpoints_can_carry_statistics_as_structs_only() {
    let dir = tmp("structstats");
    let table = Table::open(&dir).unwrap();
    let props: HashMap<String, String> = [
        ("delta.checkpoint.writeStatsAsStruct".to_string(), "true".to_string()),
        ("delta.checkpoint.writeStatsAsJson".to_string(), "false".to_string()),
    ]
    .into();
    table.write(vec![batch(&[0], &["a"])], WriteOptions { properties: props, ..Default::default() }).await.unwrap();
    for i in 1..11 {
        table.write(vec![batch(&[i * 100], &["a"])], WriteOptions::default()).await.unwrap();
    }
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.log_segment().checkpoint.as_ref().map(|c| c.version), Some(10));
    // Skipping works from the struct statistics alone (the checkpoint has no JSON stats).
    let scan = snapshot.scan().with_filter("id >= 950").unwrap().build().unwrap();
    assert_eq!((scan.files().len(), scan.total_files()), (1, 11));
    assert_eq!(scan.count().await.unwrap(), 1);
}

#[tokio::test]
async fn generated_columns_are_computed_when_missing_and_checked_when_given() {
    let dir = tmp("generated");
    let table = Table::open(&dir).unwrap();
    let schema = delta_core::schema::StructType::parse(
        r#"{"type":"struct","fields":[
            {"name":"id","type":"long","nullable":true,"metadata":{}},
            {"name":"ts","type":"timestamp","nullable":true,"metadata":{}},
            {"name":"year","type":"integer","nullable":true,"metadata":{"delta.generationExpression":"year(ts)"}},
            {"name":"label","type":"string","nullable":true,"metadata":{"delta.generationExpression":"concat('id-', CAST(id AS string))"}}]}"#,
    )
    .unwrap();
    table.create(schema, &["year".to_string()], HashMap::new()).await.unwrap();
    let p = table.snapshot().await.unwrap().protocol().clone();
    assert!(p.min_writer_version >= 4, "generated columns need writer version 4: {p:?}");
    let ts = arrow::array::TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None]).with_timezone("UTC");
    let b = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
        ])),
        vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(ts)],
    )
    .unwrap();
    table.write(vec![b.clone()], WriteOptions::default()).await.unwrap();
    let out = table.snapshot().await.unwrap().scan().with_filter("year = 2023").unwrap().build().unwrap().collect().await.unwrap();
    let labels: Vec<String> = out
        .iter()
        .flat_map(|b| b.column_by_name("label").unwrap().as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>())
        .collect();
    assert_eq!(labels, vec!["id-1"]);
    // A given value that disagrees with the expression is refused.
    let wrong = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("year", DataType::Int32, true)])),
        vec![Arc::new(Int64Array::from(vec![3])), Arc::new(Int32Array::from(vec![1999]))],
    )
    .unwrap();
    let err = table.write(vec![wrong], WriteOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("generated column `year`"), "{err}");
}

#[tokio::test]
async fn v2_checkpoint_tables_get_uuid_named_v2_checkpoints() {
    let dir = tmp("v2ckpt");
    let table = Table::open(&dir).unwrap();
    let props: HashMap<String, String> = [("delta.checkpointPolicy".to_string(), "v2".to_string())].into();
    table.write(vec![batch(&[0], &["a"])], WriteOptions { properties: props, ..Default::default() }).await.unwrap();
    for i in 1..11 {
        table.write(vec![batch(&[i], &["a"])], WriteOptions::default()).await.unwrap();
    }
    let snapshot = table.snapshot().await.unwrap();
    assert!(snapshot.protocol().reader_features.as_ref().is_some_and(|f| f.iter().any(|f| f == "v2Checkpoint")));
    let cp = snapshot.log_segment().checkpoint.clone().expect("a checkpoint at 10");
    assert_eq!(cp.version, 10);
    assert!(matches!(cp.parts[0].name.kind, delta_core::log::LogFileKind::V2Checkpoint { parquet: true }));
    assert_eq!(ids(&table).await, (0..11).collect::<Vec<_>>());
}

#[tokio::test]
async fn identity_columns_assign_values_above_the_high_water_mark() {
    let dir = tmp("identity");
    let table = Table::open(&dir).unwrap();
    let schema = delta_core::schema::StructType::parse(
        r#"{"type":"struct","fields":[
            {"name":"id","type":"long","nullable":false,"metadata":{"delta.identity.start":100,"delta.identity.step":-2,"delta.identity.allowExplicitInsert":false}},
            {"name":"name","type":"string","nullable":true,"metadata":{}}]}"#,
    )
    .unwrap();
    table.create(schema, &[], HashMap::new()).await.unwrap();
    assert!(table.snapshot().await.unwrap().protocol().min_writer_version >= 6);
    let names = |n: &[&str]| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(n.to_vec()))],
        )
        .unwrap()
    };
    table.write(vec![names(&["a", "b"]), names(&["c"])], WriteOptions::default()).await.unwrap();
    table.write(vec![names(&["d"])], WriteOptions::default()).await.unwrap();
    assert_eq!(ids(&table).await, vec![94, 96, 98, 100]);
    let hwm = table.snapshot().await.unwrap().schema().fields[0].metadata.get("delta.identity.highWaterMark").cloned();
    assert_eq!(hwm, Some(serde_json::json!(94)));
    // Explicit values are refused for GENERATED ALWAYS identity columns.
    let explicit = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)])),
        vec![Arc::new(Int64Array::from(vec![5])), Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let err = table.write(vec![explicit], WriteOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("identity column `id`"), "{err}");
}

#[tokio::test]
async fn column_defaults_fill_missing_columns() {
    let dir = tmp("defaults");
    let table = Table::open(&dir).unwrap();
    let schema = delta_core::schema::StructType::parse(
        r#"{"type":"struct","fields":[
            {"name":"id","type":"long","nullable":true,"metadata":{}},
            {"name":"status","type":"string","nullable":false,"metadata":{"CURRENT_DEFAULT":"'new'"}},
            {"name":"part","type":"string","nullable":true,"metadata":{}}]}"#,
    )
    .unwrap();
    table.create(schema, &[], HashMap::new()).await.unwrap();
    let p = table.snapshot().await.unwrap().protocol().clone();
    assert!(p.writer_features.as_ref().is_some_and(|f| f.iter().any(|f| f == "allowColumnDefaults")), "{p:?}");
    table.write(vec![batch(&[1], &["a"])], WriteOptions::default()).await.unwrap();
    let given = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("status", DataType::Utf8, true)])),
        vec![Arc::new(Int64Array::from(vec![2])), Arc::new(StringArray::from(vec!["done"]))],
    )
    .unwrap();
    table.write(vec![given], WriteOptions::default()).await.unwrap();
    let out = table.snapshot().await.unwrap().scan().with_columns(&["id", "status"]).build().unwrap().collect().await.unwrap();
    let mut rows: Vec<(i64, String)> = out
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_primitive::<Int64Type>().clone();
            let st = b.column(1).as_string::<i32>().clone();
            (0..b.num_rows()).map(move |i| (ids.value(i), st.value(i).to_string())).collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(1, "new".to_string()), (2, "done".to_string())]);
}

#[tokio::test]
async fn row_tracking_assigns_fresh_row_ids_even_across_rebases() {
    use delta_core::actions::Action;
    use delta_core::txn::Transaction;
    let dir = tmp("rowtracking");
    let table = Table::open(&dir).unwrap();
    let props: HashMap<String, String> = [("delta.enableRowTracking".to_string(), "true".to_string())].into();
    table.write(vec![batch(&[1, 2, 3], &["a", "a", "a"])], WriteOptions { properties: props, ..Default::default() }).await.unwrap();
    table.write(vec![batch(&[4, 5], &["a", "a"])], WriteOptions::default()).await.unwrap();
    // Two blind appends from the same snapshot: the loser rebases and takes ids above the winner's.
    let s = table.snapshot().await.unwrap();
    let file = |n: i64| {
        let mut a = s.add_files().unwrap()[0].clone();
        a.path = format!("copy-{n}.parquet");
        a.base_row_id = None;
        a.default_row_commit_version = None;
        a.stats = Some(serde_json::json!({"numRecords": n}).to_string());
        Action::Add(a)
    };
    let mut w = Transaction::new(s.clone());
    w.add_action(file(10));
    let mut l = Transaction::new(s.clone());
    l.add_action(file(7));
    assert!(matches!(w.commit().await.unwrap(), delta_core::txn::CommitOutcome::Committed { .. }));
    assert!(matches!(l.commit().await.unwrap(), delta_core::txn::CommitOutcome::Committed { .. }));
    let snap = table.snapshot().await.unwrap();
    let mut ranges: Vec<(i64, i64, i64)> = snap
        .add_files()
        .unwrap()
        .iter()
        .map(|a| {
            let n = serde_json::from_str::<serde_json::Value>(a.stats.as_deref().unwrap()).unwrap()["numRecords"].as_i64().unwrap();
            (a.base_row_id.expect("baseRowId"), n, a.default_row_commit_version.expect("defaultRowCommitVersion"))
        })
        .collect();
    ranges.sort();
    // Row id ranges are disjoint and contiguous from 0, and commit versions are the adding commits'.
    let mut next = 0;
    for (base, n, _) in &ranges {
        assert_eq!(*base, next, "row ids are fresh and disjoint: {ranges:?}");
        next += n;
    }
    assert_eq!(next, 3 + 2 + 10 + 7);
    let hwm = snap.domain_metadata().find(|d| d.domain == "delta.rowTracking").map(|d| d.configuration.clone()).unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&hwm).unwrap()["rowIdHighWaterMark"], 21);
    // Versions 0 and 1 are the two writes (the first creates the table), 2 and 3 the racers.
    assert!(ranges.iter().all(|(_, _, v)| (0..=3).contains(v)), "{ranges:?}");
}

#[tokio::test]
async fn binary_partition_columns_hold_utf8_text_and_refuse_other_bytes() {
    use arrow::array::BinaryArray;
    let table = Table::open(&tmp("binary-partitions")).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("key", DataType::Binary, true)]));
    let rows = |ids: Vec<i64>, keys: Vec<Option<&[u8]>>| {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(BinaryArray::from(keys))]).unwrap()
    };
    let opts = WriteOptions { partition_by: Some(vec!["key".into()]), ..Default::default() };
    let b = rows(vec![1, 2, 3, 4], vec![Some(b"ab".as_slice()), Some("ü/x".as_bytes()), None, Some(b"ab".as_slice())]);
    table.write(vec![b], opts).await.unwrap();
    let s = table.snapshot().await.unwrap();
    assert_eq!(s.num_files(), 3);
    // The values read back as the bytes written (from the log's partition values).
    let got = s.scan().build().unwrap().collect().await.unwrap();
    let got = arrow::compute::concat_batches(&got[0].schema(), &got).unwrap();
    let ids_col = got.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    let keys = got.column_by_name("key").unwrap().as_binary::<i32>();
    let mut pairs: Vec<(i64, Option<Vec<u8>>)> =
        (0..got.num_rows()).map(|i| (ids_col.value(i), keys.is_valid(i).then(|| keys.value(i).to_vec()))).collect();
    pairs.sort();
    assert_eq!(pairs, vec![(1, Some(b"ab".to_vec())), (2, Some("ü/x".as_bytes().to_vec())), (3, None), (4, Some(b"ab".to_vec()))]);
    assert_eq!(ids(&table).await, vec![1, 2, 3, 4]);
    // Bytes that are not UTF-8 have no partition string: refused, nothing committed.
    let e = table.write(vec![rows(vec![5], vec![Some(&[0xff, 0x00])])], WriteOptions::default()).await.unwrap_err();
    assert!(matches!(e, DeltaError::WriteRefused { .. }), "{e}");
    assert_eq!(table.snapshot().await.unwrap().version(), s.version());
}
