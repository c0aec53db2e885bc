//! Crash safety under injected faults: a property-based run of concurrent writers, an exhaustive
//! sweep of one fault at every store call, and 16 concurrent writers × 250 blind appends.
//!
//! Every failure names its seed. `SIM_CASES` (default 16) sets the number of random cases;
//! `SIM_SEED` replays one.

use std::collections::BTreeMap;

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
    rt.block_on(async {
        // A clean run counts the store calls the script makes.
        let sim = SimTable::new(FaultPlan::None);
        sim.create().await;
        let base = sim.faulty.calls();
        let ops = run_script(&sim).await;
        check(&sim, &ops).await.expect("clean run");
        let calls = sim.faulty.calls() - base;
        let mut explored = 0u64;
        let mut faults_hit = 0u64;
        for index in 0..calls {
            for fault in Fault::ALL_SWEPT {
                let sim = SimTable::new(FaultPlan::None);
                sim.create().await;
                let offset = sim.faulty.calls();
                sim.faulty.set_plan(FaultPlan::At { index: offset + index, fault, seed: index });
                let ops = run_script(&sim).await;
                sim.faulty.restart();
                if let Err(e) = check(&sim, &ops).await {
                    panic!("fault {fault:?} at store call {index} (of {calls}): {e}\nops: {ops:?}");
                }
                explored += 1;
                faults_hit += sim.faulty.log.lock().map(|l| l.len() as u64).unwrap_or(0);
            }
        }
        println!(
            "exhaustive sweep: explored {explored} crash points ({calls} store calls × {} fault kinds), {faults_hit} faults injected",
            Fault::ALL_SWEPT.len()
        );
        assert!(explored >= 4 * calls && calls > 20);
    });
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
