//! Reader behaviour on tables built here: time travel, in-commit timestamps, `_last_checkpoint`
//! hints, path confinement, caps, the reader gate, pruning, deletion vectors in files.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use delta_core::dv::{serialize_bitmap_array, z85_encode};
use delta_core::{DeltaError, Table, TableOptions};
use delta_tests::tables::*;
use futures::StreamExt;
use serde_json::json;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("delta-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out: Vec<i64> =
        batches.iter().flat_map(|b| b.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec()).collect();
    out.sort();
    out
}

/// Three appends of one file each.
fn three_commits(name: &str, config: serde_json::Value) -> TestTable {
    let t = TestTable::create(&tmp(name));
    for v in 0..3i64 {
        let rows = [v * 10, v * 10 + 1];
        let size = t.write_parquet(&format!("f{v}.parquet"), &id_batch(&rows));
        let mut actions = vec![commit_info(json!({}))];
        if v == 0 {
            actions.push(protocol(1, 2, None));
            actions.push(metadata(false, config.clone()));
        }
        actions.push(add(&format!("f{v}.parquet"), size, &rows, None));
        t.commit(v, &actions);
    }
    t
}

#[tokio::test]
async fn time_travel_by_version_and_by_monotonic_file_times() {
    let t = three_commits("tt", json!({}));
    // File times out of order: v2 is older than v1 and must be read as v1 + 1 ms.
    t.set_commit_time(0, 1_000);
    t.set_commit_time(1, 3_000);
    t.set_commit_time(2, 2_000);
    let table = Table::open(&t.uri()).unwrap();
    assert_eq!(ids(&table.snapshot_at(0).await.unwrap().scan().build().unwrap().collect().await.unwrap()), vec![0, 1]);
    assert_eq!(ids(&table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap()), vec![0, 1, 10, 11, 20, 21]);
    assert_eq!(table.version_at_timestamp(1_000).await.unwrap(), 0);
    assert_eq!(table.version_at_timestamp(2_999).await.unwrap(), 0);
    assert_eq!(table.version_at_timestamp(3_000).await.unwrap(), 1);
    assert_eq!(table.version_at_timestamp(3_001).await.unwrap(), 2);
    assert!(matches!(table.version_at_timestamp(999).await, Err(DeltaError::TimestampTooEarly { .. })));
    assert!(matches!(table.version_at_timestamp(9_999).await, Err(DeltaError::TimestampAfterLatest { .. })));
    assert!(matches!(table.snapshot_at(3).await, Err(DeltaError::VersionNotFound { requested: 3, .. })));
    let history = table.history(None).await.unwrap();
    assert_eq!(history.iter().map(|h| h.version).collect::<Vec<_>>(), vec![2, 1, 0]);
    assert_eq!(history[0].timestamp_ms, 3_001);
}

#[tokio::test]
async fn in_commit_timestamps_replace_file_times_from_their_enablement_version() {
    let t = TestTable::create(&tmp("ict"));
    let size = t.write_parquet("a.parquet", &id_batch(&[1]));
    t.commit(0, &[commit_info(json!({})), protocol(1, 2, None), metadata(false, json!({})), add("a.parquet", size, &[1], None)]);
    let config = json!({"delta.enableInCommitTimestamps": "true", "delta.inCommitTimestampEnablementVersion": "1", "delta.inCommitTimestampEnablementTimestamp": "50000"});
    t.commit(1, &[commit_info(json!({"inCommitTimestamp": 50_000})), metadata(false, config)]);
    t.commit(2, &[commit_info(json!({"inCommitTimestamp": 60_000}))]);
    t.set_commit_time(0, 1_000);
    // File times of ICT commits are meaningless (copied tables): make them misleading.
    t.set_commit_time(1, 999_000);
    t.set_commit_time(2, 5);
    let table = Table::open(&t.uri()).unwrap();
    assert_eq!(table.version_at_timestamp(1_500).await.unwrap(), 0);
    assert_eq!(table.version_at_timestamp(55_000).await.unwrap(), 1);
    assert_eq!(table.version_at_timestamp(60_000).await.unwrap(), 2);
    assert_eq!(table.snapshot().await.unwrap().timestamp_ms(), Some(60_000));
}

#[tokio::test]
async fn paths_outside_the_table_are_refused_before_reading() {
    let dir = tmp("escape");
    let outside = dir.join("secret");
    std::fs::create_dir_all(&outside).unwrap();
    let t = TestTable::create(&dir.join("table"));
    let size = t.write_parquet("../secret/s.parquet", &id_batch(&[42]));
    t.commit(0, &[protocol(1, 2, None), metadata(false, json!({})), add("../secret/s.parquet", size, &[42], None)]);
    let table = Table::open(&t.uri()).unwrap();
    let err = table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap_err();
    assert!(matches!(err, DeltaError::PathOutsideTable { .. }), "{err}");
    // An explicit allow-list lets it through.
    let opts = TableOptions { allowed_external_prefixes: vec![url::Url::from_directory_path(&outside).unwrap()], ..Default::default() };
    let rows = Table::open_with(&t.uri(), opts).unwrap().snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap();
    assert_eq!(ids(&rows), vec![42]);
}

#[tokio::test]
async fn last_checkpoint_is_only_a_hint() {
    let t = three_commits("hint", json!({}));
    let log = t.root.join("_delta_log");
    // Corrupt hint: ignored.
    std::fs::write(log.join("_last_checkpoint"), b"{not json").unwrap();
    let table = Table::open(&t.uri()).unwrap();
    assert_eq!(table.snapshot().await.unwrap().num_files(), 3);
    // A hint naming a checkpoint that does not exist: the listing proves the log is contiguous
    // from version 0, so the snapshot is still built.
    std::fs::write(log.join("_last_checkpoint"), br#"{"version":2,"size":3}"#).unwrap();
    assert_eq!(table.snapshot().await.unwrap().num_files(), 3);
    // With commit 0 gone as well a new reader has nothing to rebuild from: a typed error. (The
    // handle above keeps the version it already read; only newer commits are listed for it.)
    std::fs::remove_file(log.join(format!("{:020}.json", 0))).unwrap();
    assert_eq!(table.snapshot().await.unwrap().version(), 2);
    let err = Table::open(&t.uri()).unwrap().snapshot().await.unwrap_err();
    assert!(matches!(err, DeltaError::VersionsNotContiguous { .. } | DeltaError::VersionNotFound { .. }), "{err}");
}

#[tokio::test]
async fn unsupported_reader_features_are_refused_by_name_before_data() {
    let t = TestTable::create(&tmp("gate"));
    // The data file does not exist: refusing must happen before any read.
    t.commit(
        0,
        &[protocol(3, 7, Some(&["deletionVectors", "fancyNewThing"])), metadata(false, json!({})), add("missing.parquet", 10, &[1], None)],
    );
    let err = Table::open(&t.uri()).unwrap().snapshot().await.unwrap_err();
    match err {
        DeltaError::UnsupportedReaderFeature { feature } => assert_eq!(feature, "fancyNewThing"),
        other => panic!("expected a refusal naming the feature, got {other}"),
    }
}

#[tokio::test]
async fn oversized_commits_hit_the_cap() {
    let t = three_commits("cap", json!({}));
    let opts = TableOptions { max_commit_bytes: 64, ..Default::default() };
    let err = Table::open_with(&t.uri(), opts).unwrap().snapshot().await.unwrap_err();
    assert!(matches!(err, DeltaError::LimitExceeded { .. }), "{err}");
    let opts = TableOptions { max_actions_per_commit: 1, ..Default::default() };
    let err = Table::open_with(&t.uri(), opts).unwrap().snapshot().await.unwrap_err();
    assert!(matches!(err, DeltaError::LimitExceeded { .. }), "{err}");
}

#[tokio::test]
async fn sorted_files_are_pruned_by_stats_and_partitions_by_value() {
    let t = TestTable::create(&tmp("prune"));
    let mut actions = vec![protocol(1, 2, None), metadata(true, json!({}))];
    for f in 0..64i64 {
        let rows: Vec<i64> = (f * 100..f * 100 + 100).collect();
        let part = format!("p {}:{}", f % 4, if f % 8 == 0 { "x%y" } else { "z" });
        let on_disk = format!("part={part}/f{f}.parquet");
        let size = t.write_parquet(&on_disk, &id_batch(&rows));
        let uri = on_disk.replace('%', "%25").replace(' ', "%20").replace(':', "%3A");
        actions.push(add(&uri, size, &rows, Some(&part)));
    }
    t.commit(0, &actions);
    let snapshot = Table::open(&t.uri()).unwrap().snapshot().await.unwrap();
    let scan = snapshot.scan().with_filter("id >= 6350 AND id < 6360").unwrap().build().unwrap();
    assert_eq!((scan.files().len(), scan.total_files()), (1, 64));
    assert_eq!(ids(&scan.collect().await.unwrap()), (6350..6360).collect::<Vec<_>>());
    let scan = snapshot.scan().with_filter("part = 'p 0:x%y'").unwrap().build().unwrap();
    assert_eq!(scan.files().len(), 8);
    let batches = scan.collect().await.unwrap();
    let parts: Vec<String> = batches
        .iter()
        .flat_map(|b| b.column_by_name("part").unwrap().as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect::<Vec<_>>())
        .collect();
    assert!(parts.iter().all(|p| p == "p 0:x%y") && parts.len() == 800);
    // Projection keeps the requested order.
    let scan = snapshot.scan().with_columns(&["part", "id"]).with_filter("id = 1").unwrap().build().unwrap();
    let out = scan.collect().await.unwrap();
    assert_eq!(out[0].schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), vec!["part", "id"]);
    // Unknown columns are typed errors.
    assert!(matches!(snapshot.scan().with_filter("nope = 1").unwrap().build(), Err(DeltaError::ColumnNotFound { .. })));
}

fn dv_file(bitmap: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&(bitmap.len() as u32).to_be_bytes());
    out.extend_from_slice(bitmap);
    out.extend_from_slice(&crc32(bitmap).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), independent of the implementation under test.
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= *b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test]
async fn deletion_vectors_in_all_three_storage_forms() {
    let t = TestTable::create(&tmp("dv"));
    let rows: Vec<i64> = (0..2000).collect();
    let size = t.write_parquet("data.parquet", &id_batch(&rows));
    let mut deleted = roaring::RoaringTreemap::new();
    for r in [0u64, 5, 1023, 1024, 1999] {
        deleted.insert(r);
    }
    let bitmap = serialize_bitmap_array(&deleted).unwrap();
    // `u`: prefix "ab" + Z85 of the UUID bytes.
    let uuid: [u8; 16] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    let uuid_text = "12345678-9abc-def0-0123-456789abcdef";
    std::fs::create_dir_all(t.root.join("ab")).unwrap();
    std::fs::write(t.root.join(format!("ab/deletion_vector_{uuid_text}.bin")), dv_file(&bitmap)).unwrap();
    let stats = json!({"numRecords": 2000}).to_string();
    let with_dv = |dv: serde_json::Value| json!({"add": {"path": "data.parquet", "partitionValues": {}, "size": size, "modificationTime": 0, "dataChange": true, "stats": stats, "deletionVector": dv}});
    let u = json!({"storageType": "u", "pathOrInlineDv": format!("ab{}", z85_encode(&uuid)), "offset": 1, "sizeInBytes": bitmap.len(), "cardinality": 5});
    t.commit(0, &[protocol(3, 7, Some(&["deletionVectors"])), metadata(false, json!({})), with_dv(u.clone())]);
    let table = Table::open(&t.uri()).unwrap();
    let expected: Vec<i64> = rows.iter().copied().filter(|r| !deleted.contains(*r as u64)).collect();
    assert_eq!(ids(&table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap()), expected);
    // `i`: the same bitmap inline, replacing the file's DV.
    let i = json!({"storageType": "i", "pathOrInlineDv": z85_encode(&bitmap), "sizeInBytes": bitmap.len(), "cardinality": 5});
    t.commit(1, &[remove_dv("data.parquet", u.clone()), with_dv(i)]);
    assert_eq!(ids(&table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap()), expected);
    // `p`: an absolute path inside the table.
    let abs = url::Url::from_file_path(t.root.join(format!("ab/deletion_vector_{uuid_text}.bin"))).unwrap();
    let p = json!({"storageType": "p", "pathOrInlineDv": abs.as_str(), "offset": 1, "sizeInBytes": bitmap.len(), "cardinality": 5});
    t.commit(2, &[with_dv(p)]);
    let snap = table.snapshot().await.unwrap();
    assert_eq!(snap.num_files(), 2, "a file re-added with a different DV is a different entry");
    // A corrupted DV file fails the read (checksum), never silently returns deleted rows.
    let path = t.root.join(format!("ab/deletion_vector_{uuid_text}.bin"));
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = table.snapshot_at(0).await.unwrap().scan().build().unwrap().collect().await.unwrap_err();
    assert!(matches!(err, DeltaError::InvalidDeletionVector { .. }), "{err}");
    // A missing DV file is an error too.
    std::fs::remove_file(&path).unwrap();
    let err = table.snapshot_at(0).await.unwrap().scan().build().unwrap().collect().await.unwrap_err();
    assert!(matches!(err, DeltaError::DeletionVectorNotFound { .. }), "{err}");
}

fn remove_dv(path: &str, dv: serde_json::Value) -> serde_json::Value {
    json!({"remove": {"path": path, "deletionTimestamp": 0, "dataChange": true, "deletionVector": dv}})
}

#[tokio::test]
async fn a_dropped_scan_stream_stops_reading() {
    let t = TestTable::create(&tmp("drop"));
    let mut actions = vec![protocol(1, 2, None), metadata(false, json!({}))];
    for f in 0..40i64 {
        let rows: Vec<i64> = (f * 1000..f * 1000 + 1000).collect();
        let size = t.write_parquet(&format!("f{f}.parquet"), &id_batch(&rows));
        actions.push(add(&format!("f{f}.parquet"), size, &rows, None));
    }
    t.commit(0, &actions);
    let opts = TableOptions { io_concurrency: 2, ..Default::default() };
    let snapshot = Table::open_with(&t.uri(), opts).unwrap().snapshot().await.unwrap();
    let mut stream = snapshot.scan().build().unwrap().execute();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    drop(stream);
    // And a full read still works afterwards.
    let all = snapshot.scan().build().unwrap().collect().await.unwrap();
    assert_eq!(all.iter().map(|b| b.num_rows()).sum::<usize>(), 40_000);
    let _ = Arc::new(());
}

#[tokio::test]
async fn row_groups_that_cannot_match_are_not_read() {
    let t = TestTable::create(&tmp("rowgroups"));
    // One file, 8 row groups of 1024 rows, ids ascending; the log has no stats, so only the
    // parquet row-group statistics can prune.
    let rows: Vec<i64> = (0..8192).collect();
    let size = t.write_parquet("one.parquet", &id_batch(&rows));
    let no_stats = json!({"add": {"path": "one.parquet", "partitionValues": {}, "size": size, "modificationTime": 0, "dataChange": true}});
    t.commit(0, &[protocol(1, 2, None), metadata(false, json!({})), no_stats]);
    let snapshot = Table::open(&t.uri()).unwrap().snapshot().await.unwrap();
    let scan = snapshot.scan().with_filter("id BETWEEN 3000 AND 3010").unwrap().build().unwrap();
    let metrics = scan.metrics();
    assert_eq!(ids(&scan.collect().await.unwrap()), (3000..=3010).collect::<Vec<_>>());
    let (files, groups_read, groups_total, rows_read, _, out) = metrics.snapshot();
    assert_eq!((files, groups_read, groups_total, out), (1, 1, 8, 11));
    assert_eq!(rows_read, 1024);
}

#[tokio::test]
async fn compacted_log_files_stand_in_for_the_commits_they_cover() {
    let t = three_commits("compacted", json!({}));
    // v1 adds f1, v2 adds f2; a compaction of 1..2 that also (as a reconciled file would) removes
    // nothing. Then v3 removes f1. Results must be identical with and without the compaction.
    t.commit(3, &[remove("f1.parquet")]);
    let table = Table::open(&t.uri()).unwrap();
    let before = ids(&table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap());
    let log = t.root.join("_delta_log");
    let c1 = std::fs::read_to_string(log.join(format!("{:020}.json", 1))).unwrap();
    let c2 = std::fs::read_to_string(log.join(format!("{:020}.json", 2))).unwrap();
    std::fs::write(log.join(format!("{:020}.{:020}.compacted.json", 1, 2)), c1 + &c2).unwrap();
    let segment = delta_core::log::LogSegment::build(table.location(), None).await.unwrap();
    assert_eq!(segment.compactions.len(), 1);
    let after = ids(&table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap());
    assert_eq!(before, after);
    assert_eq!(after, vec![0, 1, 20, 21]);
    // Time travel inside the compacted range does not use it.
    assert_eq!(ids(&table.snapshot_at(1).await.unwrap().scan().build().unwrap().collect().await.unwrap()), vec![0, 1, 10, 11]);
}

/// A listing snapshot (no statistics) of a checkpointed table decodes no statistics column of the
/// checkpoint, by the reader's own count of the columns it decoded, and lists the same files
/// (paths, sizes, partition values, deletion vectors) as a full snapshot; commits after the
/// checkpoint (a remove and re-adds) are applied the same way. The full snapshot decodes the
/// statistics and keeps them; a listing snapshot refuses to be checkpointed.
#[tokio::test]
async fn a_listing_reads_no_statistics_column() {
    let t = TestTable::create(&tmp("listing-no-stats"));
    let mut expected_live = Vec::new();
    for v in 0..12i64 {
        let rows = [v * 10, v * 10 + 1, v * 10 + 2];
        let name = format!("f{v}.parquet");
        let size = t.write_parquet(&name, &id_batch(&rows));
        let mut actions = vec![commit_info(json!({}))];
        if v == 0 {
            actions.push(protocol(1, 2, None));
            actions.push(metadata(false, json!({})));
        }
        actions.push(add(&name, size, &rows, None));
        if v == 11 {
            // After the checkpoint: one checkpointed file removed.
            actions.push(remove("f3.parquet"));
        }
        t.commit(v, &actions);
        if v == 9 {
            Table::open(&t.uri()).unwrap().checkpoint().await.unwrap();
        }
        expected_live.push(name);
    }
    expected_live.retain(|n| n != "f3.parquet");
    expected_live.sort();
    let table = Table::open(&t.uri()).unwrap();

    let listing = table.snapshot_with(None, delta_core::ReplayOptions { stats: false }).await.unwrap();
    assert!(!listing.has_stats());
    let columns = listing.replay_metrics().checkpoint_columns();
    assert!(columns.iter().any(|c| c == "add.path"), "{columns:?}");
    assert!(!columns.iter().any(|c| c.starts_with("add.stats")), "a listing decoded statistics: {columns:?}");
    let full = table.snapshot().await.unwrap();
    assert!(full.has_stats());
    let full_columns = full.replay_metrics().checkpoint_columns();
    assert!(full_columns.iter().any(|c| c == "add.stats"), "{full_columns:?}");

    let entries = |s: &delta_core::Snapshot| {
        let mut v: Vec<(String, i64, Option<u64>, bool)> =
            s.files().map(|f| (f.path().to_string(), f.size(), f.num_records(), f.deletion_vector().is_some())).collect();
        v.sort();
        v
    };
    let listed = entries(&listing);
    let fully = entries(&full);
    assert_eq!(listed.iter().map(|e| e.0.clone()).collect::<Vec<_>>(), expected_live);
    assert_eq!(listed.iter().map(|e| (&e.0, e.1, e.3)).collect::<Vec<_>>(), fully.iter().map(|e| (&e.0, e.1, e.3)).collect::<Vec<_>>());
    assert!(listed.iter().all(|e| e.2.is_none()), "a listing has no row counts");
    assert!(fully.iter().all(|e| e.2 == Some(3)), "{fully:?}");
    assert_eq!(full.scan().build().unwrap().files().iter().filter_map(|f| f.num_records).sum::<u64>(), 33);

    assert!(matches!(delta_core::checkpoint::write_checkpoint(&listing).await, Err(DeltaError::WriteRefused { .. })));
    let _ = std::fs::remove_dir_all(tmp("listing-no-stats"));
}

/// `Table::snapshot` brings its kept snapshot up to date by replaying only newer commits: after
/// every kind of change — appends by this handle and by another, deletes with and without
/// deletion vectors, a property, an idempotent write's transaction, OPTIMIZE, a checkpoint (a
/// full load), and the table dropped and created again with as many commits — it equals a fresh
/// handle's snapshot (version, files with their stats and deletion vectors, protocol,
/// configuration, transactions).
#[tokio::test]
async fn a_kept_snapshot_is_brought_up_to_date() {
    use delta_core::write::WriteOptions;
    let dir = tmp("kept-snapshot");
    let uri = dir.to_str().unwrap().to_string();
    let handle = Table::open(&uri).unwrap();
    let other = Table::open(&uri).unwrap();
    let describe = |s: &delta_core::Snapshot| {
        let mut files: Vec<String> = s
            .files()
            .map(|f| format!("{} {} {:?} {:?}", f.path(), f.size(), f.stats(), f.deletion_vector().map(|d| d.unique_id())))
            .collect();
        files.sort();
        let mut txns: Vec<(String, i64)> = s.app_transactions().values().map(|t| (t.app_id.clone(), t.version)).collect();
        txns.sort();
        let mut config: Vec<(String, String)> = s.metadata().configuration.iter().map(|(k, v)| (k.clone(), format!("{v:?}"))).collect();
        config.sort();
        (s.version(), files, s.protocol().clone(), config, s.metadata().schema_string.clone(), txns)
    };
    // A kept snapshot never reads more log files than a fresh load; `incremental` steps count
    // how often it read fewer (automatic checkpoints make some steps full loads).
    let fewer = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let check = |what: &'static str, incremental: bool| {
        let handle = handle.clone();
        let uri = uri.clone();
        let fewer = fewer.clone();
        async move {
            let kept = handle.snapshot().await.unwrap();
            let fresh = Table::open(&uri).unwrap().snapshot().await.unwrap();
            assert_eq!(describe(&kept), describe(&fresh), "after {what}");
            let read = |s: &delta_core::Snapshot| s.replay_metrics().files.load(std::sync::atomic::Ordering::Relaxed);
            assert!(read(&kept) <= read(&fresh), "after {what}: {} log files read, a fresh load reads {}", read(&kept), read(&fresh));
            if incremental && read(&kept) < read(&fresh) {
                fewer.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    handle.write(vec![id_batch(&[1, 2, 3])], WriteOptions::default()).await.unwrap();
    check("create", false).await;
    for i in 0..3i64 {
        handle.write(vec![id_batch(&[10 + i, 20 + i])], WriteOptions::default()).await.unwrap();
        other.write(vec![id_batch(&[30 + i])], WriteOptions::default()).await.unwrap();
        check("appends by two handles", i > 0).await;
    }
    handle.delete(Some("id = 2")).await.unwrap();
    check("a copy-on-write delete", true).await;
    other.set_properties([("delta.enableDeletionVectors".to_string(), "true".to_string())].into()).await.unwrap();
    check("a property set by another handle", true).await;
    handle.delete(Some("id = 11")).await.unwrap();
    check("a delete with a deletion vector", true).await;
    other.delete(Some("id = 10")).await.unwrap();
    check("a second deletion vector on the same file, by another handle", true).await;
    let opts = WriteOptions { app_transaction: Some(("app".into(), 7)), ..Default::default() };
    handle.write(vec![id_batch(&[40])], opts).await.unwrap();
    check("an idempotent write", true).await;
    handle.optimize().execute().await.unwrap();
    check("OPTIMIZE", true).await;
    other.checkpoint().await.unwrap();
    other.write(vec![id_batch(&[50])], WriteOptions::default()).await.unwrap();
    check("a checkpoint and a commit after it", false).await;
    let version = handle.snapshot().await.unwrap().version();
    let incremental_steps = fewer.load(std::sync::atomic::Ordering::Relaxed);
    assert!(incremental_steps >= 5, "only {incremental_steps} steps replayed just the newer commits");

    // Dropped and created again with as many commits: nothing of the kept snapshot survives.
    std::fs::remove_dir_all(&dir).unwrap();
    let fresh = Table::open(&uri).unwrap();
    for i in 0..=version {
        fresh.write(vec![id_batch(&[1000 + i])], WriteOptions::default()).await.unwrap();
    }
    check("the table dropped and written again", false).await;
    let ids: Vec<i64> = {
        let mut v = Vec::new();
        let batches = handle.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap();
        for b in &batches {
            v.extend(b.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().iter());
        }
        v.sort();
        v
    };
    assert_eq!(ids, (1000..=1000 + version).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}
