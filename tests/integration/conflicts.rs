//! The conflict matrix: one test per delta-spark rule and isolation level, with the cases that
//! must conflict and those that must not. Two transactions start from the same snapshot; the first
//! commits, then the second either rebases (and commits at the next version) or conflicts.

use std::collections::HashMap;

use delta_core::actions::{Action, AddFile};
use delta_core::protocol::{AppTransaction, DomainMetadata};
use delta_core::txn::{CommitOutcome, ConflictReason, IsolationLevel, Transaction};
use delta_core::write::WriteOptions;
use delta_core::{Expr, Snapshot, Table};
use serde_json::json;

async fn table(name: &str) -> Table {
    let dir = std::env::temp_dir().join(format!("delta-conflict-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t = Table::open(dir.to_str().unwrap()).unwrap();
    let schema = delta_core::schema::StructType::parse(
        r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"part","type":"string","nullable":true,"metadata":{}}]}"#,
    )
    .unwrap();
    let props: HashMap<String, String> = [("delta.checkpointInterval".to_string(), "1000".to_string())].into();
    t.create(schema, &["part".to_string()], props).await.unwrap();
    // Two files: part=a and part=b.
    for (id, part) in [(1, "a"), (2, "b")] {
        let b = arrow::array::RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
                arrow::datatypes::Field::new("part", arrow::datatypes::DataType::Utf8, true),
            ])),
            vec![
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![id])),
                std::sync::Arc::new(arrow::array::StringArray::from(vec![part])),
            ],
        )
        .unwrap();
        t.write(vec![b], WriteOptions::default()).await.unwrap();
    }
    t
}

fn add(path: &str, part: &str) -> Action {
    Action::Add(AddFile {
        path: path.into(),
        partition_values: [("part".to_string(), Some(part.to_string()))].into(),
        size: 1,
        modification_time: 0,
        data_change: true,
        stats: Some(json!({"numRecords": 1}).to_string()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

fn file_in(snapshot: &Snapshot, part: &str) -> AddFile {
    snapshot.add_files().unwrap().into_iter().find(|a| a.partition_values.get("part") == Some(&Some(part.to_string()))).unwrap()
}

/// Commits `winner`, then `loser`; returns the loser's outcome.
async fn race(winner: Transaction, loser: Transaction) -> CommitOutcome {
    let v = winner.commit().await.unwrap();
    assert!(matches!(v, CommitOutcome::Committed { .. }), "winner: {v:?}");
    loser.commit().await.unwrap()
}

fn committed(o: &CommitOutcome) -> bool {
    matches!(o, CommitOutcome::Committed { .. })
}

#[tokio::test]
async fn blind_appends_never_conflict_at_either_level() {
    for level in [IsolationLevel::Serializable, IsolationLevel::WriteSerializable] {
        let t = table("blind").await;
        let s = t.snapshot().await.unwrap();
        let mut w = Transaction::new(s.clone());
        w.add_action(add("w.parquet", "a"));
        let mut l = Transaction::new(s.clone()).with_isolation(level);
        l.add_action(add("l.parquet", "a"));
        let o = race(w, l).await;
        assert!(matches!(o, CommitOutcome::Committed { version } if version == s.version() + 2), "{o:?}");
    }
}

#[tokio::test]
async fn protocol_and_metadata_changes_conflict_with_everything() {
    let t = table("meta").await;
    let s = t.snapshot().await.unwrap();
    let mut w = Transaction::new(s.clone());
    let mut m = s.metadata().clone();
    m.configuration.insert("x".into(), Some("1".into()));
    w.add_action(Action::Metadata(m));
    let mut l = Transaction::new(s.clone());
    l.add_action(add("l.parquet", "a"));
    assert!(matches!(race(w, l).await, CommitOutcome::Conflict(ConflictReason::MetadataChanged { .. })));

    let s = t.snapshot().await.unwrap();
    let mut w = Transaction::new(s.clone());
    let mut p = s.protocol().clone();
    p.min_writer_version = 3;
    w.add_action(Action::Protocol(p));
    let mut l = Transaction::new(s.clone());
    l.add_action(add("l2.parquet", "a"));
    assert!(matches!(race(w, l).await, CommitOutcome::Conflict(ConflictReason::ProtocolChanged { .. })));
}

#[tokio::test]
async fn domain_metadata_touched_by_both_conflicts() {
    let t = table("domain").await;
    let s = t.snapshot().await.unwrap();
    let dm = |c: &str| Action::DomainMetadata(DomainMetadata { domain: "app.settings".into(), configuration: c.into(), removed: false });
    let mut w = Transaction::new(s.clone());
    w.add_action(dm("{\"a\":1}"));
    let mut l = Transaction::new(s.clone());
    l.add_action(dm("{\"a\":2}"));
    assert!(matches!(race(w, l).await, CommitOutcome::Conflict(ConflictReason::ConcurrentDomainMetadata { .. })));
    // Different domains do not.
    let s = t.snapshot().await.unwrap();
    let mut w = Transaction::new(s.clone());
    w.add_action(Action::DomainMetadata(DomainMetadata { domain: "one".into(), configuration: "{}".into(), removed: false }));
    let mut l = Transaction::new(s.clone());
    l.add_action(Action::DomainMetadata(DomainMetadata { domain: "two".into(), configuration: "{}".into(), removed: false }));
    assert!(committed(&race(w, l).await));
}

#[tokio::test]
async fn application_transactions_conflict_on_the_same_app() {
    let t = table("apptxn").await;
    let s = t.snapshot().await.unwrap();
    let txn = |v| Action::Txn(AppTransaction { app_id: "stream".into(), version: v, last_updated: None });
    let mut w = Transaction::new(s.clone());
    w.add_action(txn(1));
    let mut l = Transaction::new(s.clone());
    l.add_action(txn(1));
    assert!(matches!(race(w, l).await, CommitOutcome::Conflict(ConflictReason::ConcurrentTransaction { .. })));
    let s = t.snapshot().await.unwrap();
    let mut w = Transaction::new(s.clone());
    w.add_action(Action::Txn(AppTransaction { app_id: "other".into(), version: 1, last_updated: None }));
    let mut l = Transaction::new(s.clone());
    l.add_action(txn(2));
    assert!(committed(&race(w, l).await));
}

/// A winner that is not a blind append (it read something) adding a file in `part`.
fn non_blind_add(s: &Snapshot, part: &str, name: &str) -> Transaction {
    let mut w = Transaction::new(s.clone());
    w.read_predicate(Expr::parse("part = 'zzz'").unwrap());
    w.add_action(add(name, part));
    w
}

#[tokio::test]
async fn concurrent_appends_matching_the_read_predicate() {
    for (level, winner_blind, winner_part, expect_conflict) in [
        (IsolationLevel::Serializable, true, "a", true),
        (IsolationLevel::Serializable, false, "a", true),
        (IsolationLevel::Serializable, true, "b", false),
        (IsolationLevel::WriteSerializable, true, "a", false),
        (IsolationLevel::WriteSerializable, false, "a", true),
        (IsolationLevel::WriteSerializable, false, "b", false),
    ] {
        let t = table("append").await;
        let s = t.snapshot().await.unwrap();
        let w = if winner_blind {
            let mut w = Transaction::new(s.clone());
            w.add_action(add("w.parquet", winner_part));
            w
        } else {
            non_blind_add(&s, winner_part, "w.parquet")
        };
        let mut l = Transaction::new(s.clone()).with_isolation(level);
        l.read_predicate(Expr::parse("part = 'a'").unwrap());
        l.add_action(add("l.parquet", "a"));
        let o = race(w, l).await;
        let conflicted = matches!(o, CommitOutcome::Conflict(ConflictReason::ConcurrentAppend { .. }));
        assert_eq!(conflicted, expect_conflict, "{level:?} blind winner={winner_blind} in part {winner_part}: {o:?}");
    }
}

#[tokio::test]
async fn reading_the_whole_table_conflicts_with_non_blind_adds() {
    let t = table("whole").await;
    let s = t.snapshot().await.unwrap();
    let mut l = Transaction::new(s.clone());
    l.read_whole_table();
    l.add_action(add("l.parquet", "a"));
    assert!(matches!(race(non_blind_add(&s, "b", "w.parquet"), l).await, CommitOutcome::Conflict(ConflictReason::ConcurrentAppend { .. })));
}

#[tokio::test]
async fn concurrent_delete_of_a_file_read() {
    let t = table("delread").await;
    let s = t.snapshot().await.unwrap();
    let a = file_in(&s, "a");
    let mut w = Transaction::new(s.clone());
    w.add_action(Action::Remove(a.to_remove(0, true)));
    let mut l = Transaction::new(s.clone());
    l.read_file(&a.path);
    l.add_action(add("l.parquet", "a"));
    assert!(matches!(race(w, l).await, CommitOutcome::Conflict(ConflictReason::ConcurrentDeleteRead { .. })));
    // Deleting a file the loser did not read is fine.
    let s = t.snapshot().await.unwrap();
    let b = file_in(&s, "b");
    let mut w = Transaction::new(s.clone());
    w.add_action(Action::Remove(b.to_remove(0, true)));
    let mut l = Transaction::new(s.clone());
    l.read_predicate(Expr::parse("part = 'a'").unwrap());
    l.add_action(add("l2.parquet", "a"));
    assert!(committed(&race(w, l).await));
}

#[tokio::test]
async fn concurrent_delete_of_the_same_file() {
    let t = table("deldel").await;
    let s = t.snapshot().await.unwrap();
    let a = file_in(&s, "a");
    let mut w = Transaction::new(s.clone());
    w.add_action(Action::Remove(a.to_remove(0, true)));
    let mut l = Transaction::new(s.clone());
    l.add_action(Action::Remove(a.to_remove(0, true)));
    assert!(matches!(race(w, l).await, CommitOutcome::Conflict(ConflictReason::ConcurrentDeleteDelete { .. })));
}

#[tokio::test]
async fn in_commit_timestamps_are_rebased_past_the_winner() {
    let dir = std::env::temp_dir().join(format!("delta-conflict-{}-ict", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t = Table::open(dir.to_str().unwrap()).unwrap();
    let schema =
        delta_core::schema::StructType::parse(r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#)
            .unwrap();
    t.create(schema, &[], [("delta.enableInCommitTimestamps".to_string(), "true".to_string())].into()).await.unwrap();
    let s = t.snapshot().await.unwrap();
    let mut w = Transaction::new(s.clone());
    w.add_action(add("w.parquet", "a"));
    let mut l = Transaction::new(s.clone());
    l.add_action(add("l.parquet", "a"));
    assert!(committed(&race(w, l).await));
    let h = t.history(None).await.unwrap();
    let ict =
        |v: i64| h.iter().find(|c| c.version == v).and_then(|c| c.commit_info.get("inCommitTimestamp")).and_then(|t| t.as_i64()).unwrap();
    assert!(ict(2) > ict(1) && ict(1) > ict(0), "in-commit timestamps strictly increase: {} {} {}", ict(0), ict(1), ict(2));
}

#[tokio::test]
async fn a_lost_acknowledgement_is_recognised_as_our_own_commit() {
    // Commit once, then replay the same transaction id at the same version: the writer must see
    // its own commit rather than a conflict. Simulated by the fault store in the simulation
    // tests; here with the public resolver.
    let t = table("ack").await;
    let s = t.snapshot().await.unwrap();
    let mut w = Transaction::new(s.clone());
    w.add_action(add("w.parquet", "a"));
    let id = w.txn_id().to_string();
    let v = w.commit().await.unwrap().version().unwrap();
    assert_eq!(delta_core::txn::resolve_txn(t.location(), &id, 0).await.unwrap(), Some(v));
    assert_eq!(delta_core::txn::resolve_txn(t.location(), "no-such-txn", 0).await.unwrap(), None);
}

/// OPTIMIZE's commit: the file rewritten, `dataChange = false`, snapshot isolation.
fn compaction(s: &Snapshot, file: &AddFile) -> Transaction {
    let mut t = Transaction::new(s.clone()).with_isolation(IsolationLevel::SnapshotIsolation);
    t.read_file(&file.path);
    t.add_action(Action::Remove(file.to_remove(0, false)));
    let Action::Add(mut new) = add("compacted.parquet", "a") else { unreachable!() };
    new.data_change = false;
    t.add_action(Action::Add(new));
    t
}

#[tokio::test]
async fn compaction_never_conflicts_with_appends_but_does_with_readers_of_its_files() {
    // A concurrent append (blind or not, in the compacted partition) does not fail OPTIMIZE.
    for blind in [true, false] {
        let t = table(&format!("opt-append-{blind}")).await;
        let s = t.snapshot().await.unwrap();
        let w = if blind {
            let mut w = Transaction::new(s.clone());
            w.add_action(add("w.parquet", "a"));
            w
        } else {
            non_blind_add(&s, "a", "w.parquet")
        };
        let o = race(w, compaction(&s, &file_in(&s, "a"))).await;
        assert!(committed(&o), "blind={blind}: {o:?}");
    }
    // A transaction that read the file OPTIMIZE compacted away conflicts (delta-spark counts
    // removes with dataChange=false): its deletion vector or rewrite would resurrect the rows.
    let t = table("opt-read").await;
    let s = t.snapshot().await.unwrap();
    let a = file_in(&s, "a");
    let mut l = Transaction::new(s.clone());
    l.read_file(&a.path);
    l.add_action(add("l.parquet", "a"));
    assert!(matches!(race(compaction(&s, &a), l).await, CommitOutcome::Conflict(ConflictReason::ConcurrentDeleteRead { .. })));
    // And OPTIMIZE loses to a concurrent delete of a file it rewrote.
    let t = table("opt-loses").await;
    let s = t.snapshot().await.unwrap();
    let a = file_in(&s, "a");
    let mut w = Transaction::new(s.clone());
    w.add_action(Action::Remove(a.to_remove(0, true)));
    assert!(matches!(race(w, compaction(&s, &a)).await, CommitOutcome::Conflict(ConflictReason::ConcurrentDeleteRead { .. })));
}

#[tokio::test]
async fn write_serializable_counts_blind_appends_when_the_metadata_changes() {
    let t = table("ws-meta").await;
    let s = t.snapshot().await.unwrap();
    let mut w = Transaction::new(s.clone());
    w.add_action(add("w.parquet", "a"));
    let mut l = Transaction::new(s.clone()).with_isolation(IsolationLevel::WriteSerializable);
    l.read_predicate(Expr::parse("part = 'a'").unwrap());
    let mut m = s.metadata().clone();
    m.configuration.insert("k".into(), Some("v".into()));
    l.add_action(Action::Metadata(m));
    assert!(matches!(race(w, l).await, CommitOutcome::Conflict(ConflictReason::ConcurrentAppend { .. })));
}
