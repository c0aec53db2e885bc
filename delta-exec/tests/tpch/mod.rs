//! All 22 TPC-H queries on Delta tables generated here (`tpchgen`, SF 0.01, lineitem and orders in
//! several commits), run through delta-exec and compared with DuckDB's answers on the same tables
//! (its delta extension reads what delta-core wrote).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use delta_core::write::WriteOptions;
use delta_core::Table;
use delta_exec::Session;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator, RegionGenerator,
    SupplierGenerator,
};
use tpchgen_arrow::{CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow, SupplierArrow};

use crate::TempDir;

const SF: f64 = 0.01;

/// The `-- qN` queries of `tpch/queries.sql`, in order.
pub fn queries() -> Vec<(String, String)> {
    let text = include_str!("queries.sql");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- q") {
            out.push((format!("q{}", name.trim()), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    for (_, body) in &mut out {
        *body = body.trim().trim_end_matches(';').to_string();
    }
    out
}

/// Writes the eight tables under `root`, each its own Delta table; the two large ones in
/// `commits` appends (so scans have several files to spread over partitions).
pub async fn write_tables(root: &Path, commits: i32) {
    async fn write(root: &Path, name: &str, parts: Vec<Vec<RecordBatch>>) {
        let table = Table::open(root.join(name).to_str().unwrap()).unwrap();
        for batches in parts {
            table.write(batches, WriteOptions::default()).await.unwrap();
        }
    }
    let split = |n: i32, f: &dyn Fn(i32, i32) -> Vec<RecordBatch>| (1..=n).map(|p| f(p, n)).collect::<Vec<_>>();
    let collect = |it: &mut dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>| it.collect::<Result<Vec<_>, _>>().unwrap();
    write(root, "region", vec![collect(&mut RegionArrow::new(RegionGenerator::new(SF, 1, 1)))]).await;
    write(root, "nation", vec![collect(&mut NationArrow::new(NationGenerator::new(SF, 1, 1)))]).await;
    write(root, "supplier", vec![collect(&mut SupplierArrow::new(SupplierGenerator::new(SF, 1, 1)))]).await;
    write(root, "customer", vec![collect(&mut CustomerArrow::new(CustomerGenerator::new(SF, 1, 1)))]).await;
    write(root, "part", vec![collect(&mut PartArrow::new(PartGenerator::new(SF, 1, 1)))]).await;
    write(root, "partsupp", vec![collect(&mut PartSuppArrow::new(PartSuppGenerator::new(SF, 1, 1)))]).await;
    write(root, "orders", split(commits, &|p, n| collect(&mut OrderArrow::new(OrderGenerator::new(SF, p, n))))).await;
    write(root, "lineitem", split(commits, &|p, n| collect(&mut LineItemArrow::new(LineItemGenerator::new(SF, p, n))))).await;
}

pub const TABLES: [&str; 8] = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"];

/// Rows as text cells (dates ISO, decimals and floats as their digits), NULL as `None`.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let formatters: Vec<ArrayFormatter> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| if c.is_null(r) { None } else { Some(f.value(r).to_string()) })
                    .collect(),
            );
        }
    }
    rows
}

/// Equal as text, or as numbers within a relative 1e-9 or one unit in the last decimal place we
/// print: DuckDB averages decimals in doubles, we in decimals of Spark's type (`avg` of
/// decimal(15,2) is decimal(19,6)).
pub fn same(ours: &Option<String>, theirs: &Option<String>) -> bool {
    match (ours, theirs) {
        (Some(a), Some(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => {
                let scale = a.split_once('.').map(|(_, f)| f.len() as i32).unwrap_or(0);
                let ulp = if scale > 0 { 10f64.powi(-scale) } else { 0.0 };
                (x - y).abs() <= (1e-9 * x.abs().max(y.abs()).max(1.0)).max(ulp)
            }
            _ => a == b,
        },
        (a, b) => a == b,
    }
}

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DELTA_INTEROP_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci-venv/bin/python");
    venv.exists().then_some(venv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_all_22_queries_match_duckdb() {
    let dir = TempDir::new("tpch");
    let root = Path::new(dir.path());
    write_tables(root, 3).await;
    let session = Session::with_config(2, None).unwrap();
    for t in TABLES {
        session.register_delta(t, root.join(t).to_str().unwrap()).await.unwrap();
    }
    let queries = queries();
    assert_eq!(queries.len(), 22);
    let mut ours = BTreeMap::new();
    for (name, text) in &queries {
        let df = session.sql(text).await.unwrap_or_else(|e| panic!("{name} does not plan: {e}"));
        let batches = df.collect().await.unwrap_or_else(|e| panic!("{name} fails: {e}"));
        ours.insert(name.clone(), cells(&batches));
    }
    // Q1 covers most of lineitem: a cheap check that the data is there without DuckDB.
    assert_eq!(ours["q1"].len(), 4, "Q1 has four (returnflag, linestatus) groups");

    let Some(py) = python() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no Python with duckdb (set DELTA_INTEROP_PYTHON or run .ci/run)");
        }
        eprintln!("tpch: no Python with duckdb (.ci/run installs one); compared nothing");
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tpch/duckdb_answers.py");
    let queries_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tpch/queries.sql");
    let out = Command::new(py).arg(script).arg(root).arg(queries_file).output().unwrap();
    assert!(out.status.success(), "duckdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: BTreeMap<String, Vec<Vec<Option<String>>>> = serde_json::from_slice(&out.stdout).unwrap();
    let mut wrong = Vec::new();
    let mut nonempty = 0;
    for (name, _) in &queries {
        let (a, b) = (&ours[name], &theirs[name]);
        nonempty += usize::from(!a.is_empty());
        let equal = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)));
        if !equal {
            wrong.push(format!(
                "{name}: ours {} rows, DuckDB {} rows\n  ours   first: {:?}\n  DuckDB first: {:?}",
                a.len(),
                b.len(),
                a.first(),
                b.first()
            ));
        }
    }
    assert!(wrong.is_empty(), "answers differ from DuckDB's:\n{}", wrong.join("\n"));
    assert!(nonempty >= 20, "only {nonempty} of 22 queries returned rows; the data is too thin to compare");
}
