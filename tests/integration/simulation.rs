//! Crash safety under injected faults: a property-based run of concurrent writers, an exhaustive
//! sweep of one fault at every store call, and 16 concurrent writers × 250 blind appends.
//!
//! Every failure names its seed. `SIM_CASES` (default 16) sets the number of random cases;
//! `SIM_SEED` replays one.

use std::collections::BTreeMap;

use futures::StreamExt;
use delta_tests::faulty_store::{Fault, FaultPlan};
use delta_tests::sim::{check, run_op, run_writers, Op, Outcome, SimTable};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..5).prop_map(|rows| Op::Append { rows }),
        1 => (1u8..4).prop_map(|rows| Op::Overwrite { rows }),
        2 => (0u8..3, 1u8..4).prop_map(|(part, rows)| Op::ReplacePartition { part, rows }),
        1 => any::<u8>().prop_map(|value| Op::SetProperty { value }),
        1 => Just(Op::Checkpoint),
    ]
}

fn run_case(seed: u64, per_mille: u64, writers: Vec<Vec<Op>>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let sim = SimTable::new(FaultPlan::None);
        sim.create().await;
        sim.faulty.set_plan(FaultPlan::Random { seed, per_mille });
        let ops = run_writers(&sim, writers).await;
        sim.faulty.restart();
        check(&sim, &ops).await.map(|_| ()).map_err(|e| {
            let faults = sim.faulty.log.lock().map(|l| l.clone()).unwrap_or_default();
            format!("seed {seed} (rate {per_mille}‰): {e}\nfaults: {faults:?}\nops: {ops:?}")
        })
    })
}

#[test]
fn concurrent_writers_under_random_faults_match_the_model() {
    let cases: u32 = std::env::var("SIM_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|v| v.parse().ok()) {
        let writers =
            vec![vec![Op::Append { rows: 2 }, Op::ReplacePartition { part: 1, rows: 2 }, Op::Checkpoint, Op::Overwrite { rows: 1 }]; 3];
        run_case(seed, 150, writers).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (any::<u64>(), 0u64..250, proptest::collection::vec(proptest::collection::vec(op_strategy(), 1..7), 1..4));
    let result = runner.run(&strategy, |(seed, per_mille, writers)| run_case(seed, per_mille, writers).map_err(TestCaseError::fail));
    if let Err(e) = result {
        panic!("simulation failed (replay with SIM_SEED=<seed> for the seed below): {e}");
    }
}

/// The script every sweep run executes, one writer.
fn script() -> Vec<Op> {
    vec![
        Op::Append { rows: 3 },
        Op::Append { rows: 2 },
        Op::ReplacePartition { part: 1, rows: 2 },
        Op::SetProperty { value: 7 },
        Op::Overwrite { rows: 2 },
        Op::Append { rows: 1 },
        Op::Checkpoint,
        Op::Append { rows: 2 },
    ]
}

async fn run_script(sim: &SimTable) -> BTreeMap<u64, (Op, Outcome)> {
    let mut ops = BTreeMap::new();
    for (i, op) in script().into_iter().enumerate() {
        let id = 1000 + i as u64;
        let outcome = run_op(&sim.table, id, &op).await;
        if sim.faulty.crashed() {
            sim.faulty.restart();
        }
        ops.insert(id, (op, outcome));
    }
    ops
}

#[test]
fn every_fault_at_every_store_call_keeps_the_table_consistent() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(crash_sweep(&|_| SimTable::new(FaultPlan::None), "memory"));
}

/// One fault of every kind at every store call of [`script`], each on a fresh table from `fresh`
/// (its argument numbers the run); after each, the table must be the model's.
pub(crate) async fn crash_sweep(fresh: &dyn Fn(u64) -> SimTable, store: &str) {
    {
        // A clean run counts the store calls the script makes.
        let sim = fresh(0);
        sim.create().await;
        let base = sim.faulty.calls();
        let ops = run_script(&sim).await;
        check(&sim, &ops).await.expect("clean run");
        let calls = sim.faulty.calls() - base;
        // The crash points are independent tables: four run at a time (on a network store each
        // spends most of its time waiting for replies).
        let points: Vec<(u64, Fault)> = (0..calls).flat_map(|i| Fault::ALL_SWEPT.into_iter().map(move |f| (i, f))).collect();
        let outcomes: Vec<Result<u64, String>> = futures::stream::iter(points.into_iter().enumerate())
            .map(|(n, (index, fault))| async move {
                let sim = fresh(n as u64 + 1);
                sim.create().await;
                let offset = sim.faulty.calls();
                sim.faulty.set_plan(FaultPlan::At { index: offset + index, fault, seed: index });
                let ops = run_script(&sim).await;
                sim.faulty.restart();
                check(&sim, &ops).await.map_err(|e| format!("{store}: fault {fault:?} at store call {index} (of {calls}), seed {index}: {e}\nops: {ops:?}"))?;
                Ok(sim.faulty.log.lock().map(|l| l.len() as u64).unwrap_or(0))
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let mut explored = 0u64;
        let mut faults_hit = 0u64;
        for outcome in outcomes {
            match outcome {
                Ok(hit) => faults_hit += hit,
                Err(e) => panic!("{e}"),
            }
            explored += 1;
        }
        println!(
            "{store}: exhaustive sweep: explored {explored} crash points ({calls} store calls × {} fault kinds), {faults_hit} faults injected",
            Fault::ALL_SWEPT.len()
        );
        assert!(explored >= 4 * calls && calls > 20);
    }
}

#[test]
fn sixteen_writers_with_250_blind_appends_each_commit_exactly_once() {
    let dir = std::env::temp_dir().join(format!("delta-16x250-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let table = delta_core::Table::open(dir.to_str().expect("path")).expect("open");
        let schema = delta_core::write::schema_from_arrow(&arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
            arrow::datatypes::Field::new("part", arrow::datatypes::DataType::Utf8, true),
        ]))
        .expect("schema");
        table.create(schema, &[], Default::default()).await.expect("create");
        let mut handles = Vec::new();
        for w in 0..16u64 {
            let table = table.clone();
            handles.push(tokio::spawn(async move {
                let mut versions = Vec::new();
                for i in 0..250u64 {
                    let id = (w + 1) * 1000 + i;
                    match run_op(&table, id, &Op::Append { rows: 1 }).await {
                        Outcome::Committed(v) => versions.push((id, v)),
                        other => panic!("writer {w} append {i}: {other:?}"),
                    }
                }
                versions
            }));
        }
        let mut acked = BTreeMap::new();
        for h in handles {
            for (id, v) in h.await.expect("writer") {
                acked.insert(id, v);
            }
        }
        assert_eq!(acked.len(), 4000);
        let snapshot = table.snapshot().await.expect("snapshot");
        assert_eq!(snapshot.version(), 4000, "versions 0..=4000, contiguous");
        let history = table.history(None).await.expect("history");
        let mut seen = BTreeMap::new();
        for h in &history {
            if let Some(id) = h
                .commit_info
                .get("userMetadata")
                .and_then(|v| v.as_str())
                .and_then(|s| s.strip_prefix("op-"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                assert!(seen.insert(id, h.version).is_none(), "op {id} committed twice");
            }
        }
        assert_eq!(seen, acked, "every acknowledged append is in the log exactly once, at its version");
        let rows = snapshot.scan().build().expect("scan").count().await.expect("count");
        assert_eq!(rows, 4000);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- DML under faults -----------------------------------------------------------------------

/// Rows `(id, part)` of the clean view, sorted.
async fn clean_rows(table: &delta_core::Table) -> Result<Vec<(i64, String)>, String> {
    use arrow::array::AsArray;
    let snapshot = table.snapshot().await.map_err(|e| format!("unreadable: {e}"))?;
    let batches = snapshot.scan().build().map_err(|e| e.to_string())?.collect().await.map_err(|e| format!("unreadable rows: {e}"))?;
    let mut out = Vec::new();
    for b in &batches {
        let id = b.column_by_name("id").ok_or("no id")?.as_primitive::<arrow::datatypes::Int64Type>();
        let part = b.column_by_name("part").ok_or("no part")?.as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((id.value(i), part.value(i).to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// A table with deletion vectors and the change data feed, 12 rows in 3 partitions × 2 commits.
async fn dml_sim(dv: bool) -> SimTable {
    let sim = SimTable::new(FaultPlan::None);
    let schema = delta_core::write::schema_from_arrow(&arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("part", arrow::datatypes::DataType::Utf8, true),
    ]))
    .expect("schema");
    let props: std::collections::HashMap<String, String> =
        [("delta.enableDeletionVectors".to_string(), dv.to_string()), ("delta.enableChangeDataFeed".to_string(), "true".to_string())]
            .into();
    sim.clean.create(schema, &["part".to_string()], props).await.expect("create");
    for commit in 0..2i64 {
        let ids: Vec<i64> = (0..6).map(|i| commit * 6 + i).collect();
        let parts: Vec<String> = ids.iter().map(|i| format!("p{}", i % 3)).collect();
        let batch = arrow::array::RecordBatch::try_new(
            std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
                arrow::datatypes::Field::new("part", arrow::datatypes::DataType::Utf8, true),
            ])),
            vec![std::sync::Arc::new(arrow::array::Int64Array::from(ids)), std::sync::Arc::new(arrow::array::StringArray::from(parts))],
        )
        .expect("batch");
        sim.clean.write(vec![batch], Default::default()).await.expect("seed rows");
    }
    sim
}

async fn run_dml(table: &delta_core::Table, which: usize) -> delta_core::DeltaResult<Option<i64>> {
    let src = {
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
            arrow::datatypes::Field::new("part", arrow::datatypes::DataType::Utf8, true),
        ]));
        arrow::array::RecordBatch::try_new(
            schema,
            vec![
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 4, 100])),
                std::sync::Arc::new(arrow::array::StringArray::from(vec!["p9", "p9", "p0"])),
            ],
        )
        .expect("source")
    };
    Ok(match which {
        0 => table.delete(Some("id % 4 = 1")).await?.version,
        1 => table.update(Some("id > 7"), &[("id", "id + 100")]).await?.version,
        _ => table.merge(vec![src], "t.id = s.id").when_matched_update_all().when_not_matched_insert_all().execute().await?.version,
    })
}

#[test]
fn every_fault_during_dml_leaves_the_before_or_the_after_state() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut explored = 0u64;
        for dv in [true, false] {
            for which in 0..3 {
                // A clean run: the after state and the number of store calls.
                let sim = dml_sim(dv).await;
                let before = clean_rows(&sim.clean).await.expect("before");
                let base = sim.faulty.calls();
                run_dml(&sim.table, which).await.expect("clean DML");
                let calls = sim.faulty.calls() - base;
                let after = clean_rows(&sim.clean).await.expect("after");
                assert_ne!(before, after);
                for index in 0..calls {
                    for fault in Fault::ALL_SWEPT {
                        let sim = dml_sim(dv).await;
                        let offset = sim.faulty.calls();
                        sim.faulty.set_plan(FaultPlan::At { index: offset + index, fault, seed: index });
                        let result = run_dml(&sim.table, which).await;
                        sim.faulty.restart();
                        let ctx = format!("dml {which} (dv={dv}), fault {fault:?} at store call {index} of {calls}");
                        let now = clean_rows(&sim.clean).await.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        match &result {
                            Ok(Some(v)) => {
                                assert_eq!(now, after, "{ctx}: acknowledged commit {v} must be visible");
                                // The change feed of an acknowledged commit is readable.
                                let feed = sim.clean.table_changes(*v, Some(*v), None).await.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                                feed.collect().await.unwrap_or_else(|e| panic!("{ctx}: change feed: {e}"));
                            }
                            _ => assert!(now == before || now == after, "{ctx}: rows are neither before nor after: {now:?} ({result:?})"),
                        }
                        explored += 1;
                    }
                }
            }
        }
        println!("DML fault sweep: explored {explored} fault points");
        assert!(explored > 100);
    });
}
