//! The simulation harness: writers performing scripted operations against a table on a
//! fault-injecting store, and a checker that verifies the log against a model.
//!
//! Each operation carries its id in `commitInfo.userMetadata`, so the checker can tell which
//! operation every version is, replay the model in log order and compare every version's rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::{DeltaError, Expr, Table, TableLocation, TableOptions};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::faulty_store::{FaultPlan, FaultyStore};

/// An operation of a writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Append {
        rows: u8,
    },
    Overwrite {
        rows: u8,
    },
    /// Overwrite partition `part` (rows all in it).
    ReplacePartition {
        part: u8,
        rows: u8,
    },
    SetProperty {
        value: u8,
    },
    Checkpoint,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Acknowledged at this version.
    Committed(i64),
    /// Definitely not visible (conflict, or refused before committing).
    Rejected(String),
    /// May or may not be visible.
    Unknown(String),
    /// Not a commit (checkpoints), or a no-op.
    NoCommit,
}

fn part_of(op_id: u64, i: u64) -> String {
    format!("p{}", (op_id + i) % 3)
}

/// The rows an operation writes: ids unique across the run.
pub fn op_rows(op_id: u64, op: &Op) -> Vec<(i64, String)> {
    match op {
        Op::Append { rows } | Op::Overwrite { rows } => (0..*rows as u64).map(|i| ((op_id * 1000 + i) as i64, part_of(op_id, i))).collect(),
        Op::ReplacePartition { part, rows } => (0..*rows as u64).map(|i| ((op_id * 1000 + i) as i64, format!("p{}", part % 3))).collect(),
        _ => Vec::new(),
    }
}

fn rows_batch(rows: &[(i64, String)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("part", DataType::Utf8, true)]));
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let parts: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(parts))]).expect("batch")
}

/// A simulated table: a clean store, the faulty view writers use, and a clean table for checks.
pub struct SimTable {
    pub inner: Arc<dyn ObjectStore>,
    pub faulty: Arc<FaultyStore>,
    pub table: Table,
    pub clean: Table,
}

fn location(store: Arc<dyn ObjectStore>, url: &url::Url, root: &Path) -> TableLocation {
    let options = TableOptions { io_concurrency: 4, ..Default::default() };
    TableLocation::with_store(store, url.clone(), root.clone(), options)
}

impl SimTable {
    /// A table in a fresh in-memory store.
    pub fn new(plan: FaultPlan) -> Self {
        let url = url::Url::parse("memory:///sim/").expect("url");
        SimTable::on(Arc::new(InMemory::new()), url, Path::from("sim"), plan)
    }

    /// A table at `root` of `inner` (any store: in memory, or a real server's), written
    /// through the fault-injecting view.
    pub fn on(inner: Arc<dyn ObjectStore>, url: url::Url, root: Path, plan: FaultPlan) -> Self {
        let faulty = Arc::new(FaultyStore::new(inner.clone(), plan));
        SimTable {
            table: Table::from_location(location(faulty.clone(), &url, &root)),
            clean: Table::from_location(location(inner.clone(), &url, &root)),
            inner,
            faulty,
        }
    }

    /// Creates the table (no faults) so that writers have one to race on.
    pub async fn create(&self) {
        let schema = delta_core::write::schema_from_arrow(&rows_batch(&[]).schema()).expect("schema");
        let props: HashMap<String, String> = [("delta.checkpointInterval".to_string(), "4".to_string())].into();
        self.clean.create(schema, &["part".to_string()], props).await.expect("create");
    }
}

/// Runs one operation through `table`.
pub async fn run_op(table: &Table, op_id: u64, op: &Op) -> Outcome {
    let mut commit_info = serde_json::Map::new();
    commit_info.insert("userMetadata".into(), serde_json::json!(format!("op-{op_id}")));
    let rows = op_rows(op_id, op);
    let result = match op {
        Op::Append { .. } => {
            table.write(vec![rows_batch(&rows)], WriteOptions { commit_info, ..Default::default() }).await.map(|r| r.version)
        }
        Op::Overwrite { .. } => table
            .write(vec![rows_batch(&rows)], WriteOptions { mode: SaveMode::Overwrite, commit_info, ..Default::default() })
            .await
            .map(|r| r.version),
        Op::ReplacePartition { part, .. } => {
            let pred = Expr::parse(&format!("part = 'p{}'", part % 3)).expect("pred");
            table
                .write(
                    vec![rows_batch(&rows)],
                    WriteOptions { mode: SaveMode::Overwrite, replace_where: Some(pred), commit_info, ..Default::default() },
                )
                .await
                .map(|r| r.version)
        }
        Op::SetProperty { value } => {
            let props: HashMap<String, String> = [("sim.value".to_string(), format!("{value}-{op_id}"))].into();
            // Properties carry the op id in their value; the checker finds them by it.
            table.set_properties(props).await.map(Some)
        }
        Op::Checkpoint => {
            return match table.checkpoint().await {
                Ok(_) => Outcome::NoCommit,
                Err(e) => Outcome::Unknown(e.to_string()),
            }
        }
    };
    match result {
        Ok(Some(v)) => Outcome::Committed(v),
        Ok(None) => Outcome::NoCommit,
        Err(DeltaError::CommitConflict { reason }) => Outcome::Rejected(reason),
        Err(e @ DeltaError::WriteRefused { .. }) => Outcome::Rejected(e.to_string()),
        Err(e) => Outcome::Unknown(e.to_string()),
    }
}

/// Which operation each version is (by `userMetadata` or the property value), with the version
/// it read.
async fn version_ops(clean: &Table, latest: i64) -> Result<BTreeMap<i64, (Option<u64>, i64)>, String> {
    let history = clean.history(None).await.map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for h in history {
        let id = h
            .commit_info
            .get("userMetadata")
            .and_then(|v| v.as_str())
            .and_then(|s| s.strip_prefix("op-"))
            .and_then(|s| s.parse().ok())
            .or_else(|| {
                h.commit_info
                    .get("operationParameters")
                    .and_then(|p| p.get("properties"))
                    .and_then(|p| p.as_str())
                    .and_then(|s| serde_json::from_str::<HashMap<String, String>>(s).ok())
                    .and_then(|m| m.get("sim.value").and_then(|v| v.split('-').nth(1)).and_then(|v| v.parse().ok()))
            });
        let read_version = h.commit_info.get("readVersion").and_then(|v| v.as_i64()).unwrap_or(h.version - 1);
        out.insert(h.version, (id, read_version));
    }
    if out.len() as i64 != latest + 1 {
        return Err(format!("history has {} commits for versions 0..={latest}", out.len()));
    }
    Ok(out)
}

async fn rows_at(clean: &Table, version: i64) -> Result<Vec<(i64, String)>, String> {
    let snap = clean.snapshot_at(version).await.map_err(|e| format!("snapshot v{version}: {e}"))?;
    let batches = snap.scan().build().map_err(|e| e.to_string())?.collect().await.map_err(|e| format!("scan v{version}: {e}"))?;
    let mut out = Vec::new();
    for b in &batches {
        let ids = b.column_by_name("id").ok_or("no id")?.as_primitive::<Int64Type>().clone();
        let parts = b.column_by_name("part").ok_or("no part")?.as_string::<i32>().clone();
        for i in 0..b.num_rows() {
            out.push((ids.value(i), parts.value(i).to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// Checks every invariant of a finished run. `ops` maps op id → (op, outcome).
pub async fn check(sim: &SimTable, ops: &BTreeMap<u64, (Op, Outcome)>) -> Result<i64, String> {
    // The table is readable, and its versions are contiguous (the segment checks this).
    let latest = sim.clean.snapshot().await.map_err(|e| format!("table unreadable: {e}"))?.version();
    let by_version = version_ops(&sim.clean, latest).await?;
    // Every op appears at most once; acknowledged ops appear exactly at their version; rejected
    // ops never appear.
    let mut seen: HashMap<u64, i64> = HashMap::new();
    for (v, (id, _)) in &by_version {
        if let Some(id) = id {
            if let Some(prev) = seen.insert(*id, *v) {
                return Err(format!("op {id} committed twice: versions {prev} and {v}"));
            }
        }
    }
    for (id, (op, outcome)) in ops {
        match outcome {
            Outcome::Committed(v) if seen.get(id) != Some(v) => {
                return Err(format!("op {id} ({op:?}) acknowledged at v{v} but the log has it at {:?}", seen.get(id)));
            }
            Outcome::Rejected(why) => {
                if let Some(v) = seen.get(id) {
                    return Err(format!("op {id} ({op:?}) was rejected ({why}) but is visible at v{v}"));
                }
            }
            _ => {}
        }
    }
    // The model, replayed in log order, equals every version's rows. An overwrite removes the
    // rows it read (at its readVersion): under WriteSerializable, rows that concurrent blind
    // appends added in between survive it, as in delta-spark.
    let mut states: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    let mut model: Vec<(i64, String)> = Vec::new();
    for (v, (id, read_version)) in &by_version {
        if let Some(id) = id {
            let (op, _) = ops.get(id).ok_or_else(|| format!("v{v} names unknown op {id}"))?;
            let rows = op_rows(*id, op);
            let read = states.get(read_version).cloned().unwrap_or_default();
            match op {
                Op::Append { .. } => model.extend(rows),
                Op::Overwrite { .. } => {
                    model.retain(|r| !read.contains(r));
                    model.extend(rows);
                }
                Op::ReplacePartition { part, .. } => {
                    let p = format!("p{}", part % 3);
                    model.retain(|r| !(r.1 == p && read.contains(r)));
                    model.extend(rows);
                }
                _ => {}
            }
        }
        model.sort();
        states.insert(*v, model.clone());
        let actual = rows_at(&sim.clean, *v).await?;
        if actual != model {
            return Err(format!(
                "v{v}: table has {} rows, model {} (first difference near {:?})",
                actual.len(),
                model.len(),
                actual.iter().zip(&model).find(|(a, b)| a != b)
            ));
        }
    }
    // Time travel by timestamp is exact.
    let listing = delta_core::log::LogSegment::full_listing(sim.clean.location()).await.map_err(|e| e.to_string())?;
    for (v, ts) in sim.clean.commit_timestamps(&listing).await.map_err(|e| e.to_string())? {
        let got = sim.clean.version_at_timestamp(ts).await.map_err(|e| e.to_string())?;
        if got != v {
            return Err(format!("timestamp of v{v} resolves to v{got}"));
        }
    }
    Ok(latest)
}

/// Runs writers concurrently (each its own op list) against the faulty table, restarting after
/// crashes, and returns every op's outcome.
pub async fn run_writers(sim: &SimTable, writers: Vec<Vec<Op>>) -> BTreeMap<u64, (Op, Outcome)> {
    let mut handles = Vec::new();
    for (w, ops) in writers.into_iter().enumerate() {
        let table = sim.table.clone();
        let faulty = sim.faulty.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                let id = (w as u64 + 1) * 100 + i as u64;
                let outcome = run_op(&table, id, &op).await;
                if faulty.crashed() {
                    faulty.restart();
                }
                out.push((id, (op, outcome)));
            }
            out
        }));
    }
    let mut all = BTreeMap::new();
    for h in handles {
        if let Ok(results) = h.await {
            all.extend(results);
        }
    }
    all
}
