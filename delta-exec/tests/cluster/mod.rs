//! The same queries on Ballista: an in-process (standalone) cluster gives the answers a local
//! session gives, on TPC-H tables with deletion vectors and on a column-mapped table; and every
//! plan shape we create survives our codecs unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::physical_plan::displayable;
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec, physical_plan_from_bytes_with_extension_codec,
    physical_plan_to_bytes_with_extension_codec,
};
use delta_core::write::WriteOptions;
use delta_core::TableOptions;
use delta_exec::cluster::{DeltaLogicalCodec, DeltaPhysicalCodec};
use delta_exec::{broadcast, Session};

use crate::tpch::{cells, same, write_tables, TABLES};
use crate::{ints, props, table_with, TempDir};

fn equal(a: &[Vec<Option<String>>], b: &[Vec<Option<String>>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)))
}

/// Rows as sorted text (a cluster may return a query without ORDER BY in another order).
fn sorted(batches: &[arrow::array::RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut rows = cells(batches);
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_on_a_standalone_cluster_matches_local() {
    let dir = TempDir::new("cluster-tpch");
    let root = Path::new(dir.path());
    write_tables(root, 3).await;
    let local = Session::with_config(2, None).unwrap();
    // lineitem and orders get deletion vectors: the executors must apply them.
    for (table, predicate) in [("lineitem", "l_orderkey % 13 = 0"), ("orders", "o_orderkey % 17 = 0")] {
        let path = root.join(table);
        let path = path.to_str().unwrap();
        local.execute(&format!("ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")).await.unwrap();
        local.execute(&format!("DELETE FROM delta.`{path}` WHERE {predicate}")).await.unwrap();
        let history = delta_core::Table::open(path).unwrap().history(Some(1)).await.unwrap();
        let metrics = format!("{:?}", history[0]);
        assert!(metrics.contains("numDeletionVectorsAdded"), "{table}: {metrics}");
    }
    let cluster = Session::standalone(2).await.unwrap();
    for t in TABLES {
        let path = root.join(t);
        local.register_delta(t, path.to_str().unwrap()).await.unwrap();
        cluster.register_delta(t, path.to_str().unwrap()).await.unwrap();
    }
    let queries = crate::tpch::queries();
    let mut ours = BTreeMap::new();
    let mut wrong = Vec::new();
    for (name, text) in &queries {
        let a = local.sql(text).await.unwrap().collect().await.unwrap_or_else(|e| panic!("{name} locally: {e}"));
        let b = cluster.sql(text).await.unwrap_or_else(|e| panic!("{name} does not plan for the cluster: {e}"));
        let b = b.collect().await.unwrap_or_else(|e| panic!("{name} on the cluster: {e}"));
        let ordered = text.to_ascii_lowercase().contains("order by");
        let (x, y) = if ordered { (cells(&a), cells(&b)) } else { (sorted(&a), sorted(&b)) };
        if !equal(&x, &y) {
            wrong.push(format!("{name}: local {} rows, cluster {} rows\n  local   first: {:?}\n  cluster first: {:?}", x.len(), y.len(), x.first(), y.first()));
        }
        ours.insert(name.clone(), x.len());
    }
    assert!(wrong.is_empty(), "the cluster's answers differ from local ones:\n{}", wrong.join("\n"));
    assert!(ours.values().filter(|n| **n > 0).count() >= 20, "too few queries returned rows: {ours:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_vectors_and_column_mapping_on_a_standalone_cluster() {
    let dir = TempDir::new("cluster-dv-cm");
    let options = WriteOptions {
        properties: props(&[("delta.enableDeletionVectors", "true"), ("delta.columnMapping.mode", "name")]),
        ..Default::default()
    };
    let table = table_with(&dir, 6000, 6, options).await;
    table.delete(Some("id % 7 = 0 OR id BETWEEN 1000 AND 1499")).await.unwrap();
    table.rename_column("amount", "value").await.unwrap();
    let expected: Vec<i64> = (0..6000).filter(|i| i % 7 != 0 && !(1000..1500).contains(i)).collect();
    let cluster = Session::standalone(2).await.unwrap();
    cluster.register_delta("t", dir.path()).await.unwrap();
    let got = cluster.sql("SELECT id, value FROM t WHERE id >= 990 ORDER BY id").await.unwrap().collect().await.unwrap();
    let want: Vec<i64> = expected.iter().copied().filter(|i| *i >= 990).collect();
    let ids = ints(&got, "id");
    assert!(ids == want, "{} rows from the cluster, {} expected; first {:?}", ids.len(), want.len(), &ids[..ids.len().min(12)]);
    assert!(ints(&got, "value") == want.iter().map(|i| i * 10).collect::<Vec<_>>(), "values");
    let agg = cluster.sql("SELECT grp, count(*) AS n, sum(value) AS s FROM t GROUP BY grp ORDER BY grp").await.unwrap().collect().await.unwrap();
    let by_group: Vec<i64> = (0..5).map(|g| expected.iter().filter(|i| *i % 5 == g).count() as i64).collect();
    assert_eq!(ints(&agg, "n"), by_group);
    let df = cluster.read().delta(dir.path()).await.unwrap();
    assert_eq!(df.count().await.unwrap(), expected.len());
    // Time travel: version 5 is before the delete.
    let old = cluster.read().version_as_of(5).delta(dir.path()).await.unwrap();
    assert_eq!(old.count().await.unwrap(), 6000);
}

/// Every plan shape delta-exec makes, through the codecs and back: the same plan text, the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_survive_the_codecs() {
    let dir = TempDir::new("cluster-codec");
    let options = WriteOptions {
        properties: props(&[("delta.enableDeletionVectors", "true"), ("delta.columnMapping.mode", "name")]),
        partition_by: Some(vec!["grp".into()]),
        ..Default::default()
    };
    let table = table_with(&dir, 3000, 3, options).await;
    table.delete(Some("id % 11 = 0")).await.unwrap();
    let small = TempDir::new("cluster-codec-small");
    table_with(&small, 50, 1, WriteOptions::default()).await;
    let session = Session::with_config(3, None).unwrap();
    let df = session.read().delta(dir.path()).await.unwrap();
    let other = session.read().delta(small.path()).await.unwrap();
    let frames = vec![
        ("everything", df.clone()),
        ("projection", df.select(&["id", "amount"]).unwrap()),
        ("filter on data and partition", df.filter("id > 100 AND grp = 'g2' AND amount < 20000").unwrap()),
        ("limit", df.limit(7).unwrap()),
        ("count", df.group_by(&[]).unwrap().agg(&["count(*) AS n"]).unwrap()),
        ("aggregate", df.group_by(&["grp"]).unwrap().agg(&["sum(amount) AS s", "count(*) AS n"]).unwrap()),
        ("broadcast join", df.join(&broadcast(&other), &["id"], "inner").unwrap()),
        ("anti join", df.join(&other, &["id"], "left_anti").unwrap()),
        ("old version", session.read().version_as_of(1).delta(dir.path()).await.unwrap().filter("id < 1500").unwrap()),
    ];
    let logical_codec = DeltaLogicalCodec::new(TableOptions::default());
    let physical_codec = DeltaPhysicalCodec::new(TableOptions::default());
    let ctx = session.context();
    let task = ctx.task_ctx();
    for (shape, frame) in frames {
        // A limit without an order keeps whichever rows come first: compare how many.
        let rows = |b: &[arrow::array::RecordBatch]| match shape {
            "limit" => vec![vec![Some(b.iter().map(|b| b.num_rows()).sum::<usize>().to_string())]],
            _ => sorted(b),
        };
        let want = rows(&frame.collect().await.unwrap());
        // Physical: what the scheduler sends to executors.
        let plan = frame.physical_plan().await.unwrap();
        let bytes = physical_plan_to_bytes_with_extension_codec(plan.clone(), &physical_codec).unwrap_or_else(|e| panic!("{shape}: encode: {e}"));
        let back = physical_plan_from_bytes_with_extension_codec(&bytes, &task, &physical_codec).unwrap_or_else(|e| panic!("{shape}: decode: {e}"));
        assert_eq!(displayable(back.as_ref()).indent(true).to_string(), displayable(plan.as_ref()).indent(true).to_string(), "{shape}");
        let got = rows(&datafusion::physical_plan::collect(back, task.clone()).await.unwrap());
        assert_eq!(got, want, "{shape}: rows of the decoded physical plan");
        // Logical: what a client sends to the scheduler (tables by URL and version).
        let logical = frame.inner().logical_plan().clone();
        let bytes = logical_plan_to_bytes_with_extension_codec(&logical, &logical_codec).unwrap_or_else(|e| panic!("{shape}: encode: {e}"));
        let back = logical_plan_from_bytes_with_extension_codec(&bytes, &task, &logical_codec).unwrap_or_else(|e| panic!("{shape}: decode: {e}"));
        assert_eq!(format!("{}", back.display_indent()), format!("{}", logical.display_indent()), "{shape}");
        let got = rows(&ctx.execute_logical_plan(back.clone()).await.unwrap().collect().await.unwrap());
        assert_eq!(got, want, "{shape}: rows of the decoded logical plan");
        // The scheduler's form of the scan (a file scan over the Delta file source), through the
        // physical codec as a task carries it.
        let plan = ctx.state().create_physical_plan(&back).await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        // count(*) is answered from the log's statistics there too: no scan at all.
        assert_eq!(text.contains("file_type=delta"), shape != "count", "{shape}: {text}");
        let bytes = physical_plan_to_bytes_with_extension_codec(plan.clone(), &physical_codec).unwrap_or_else(|e| panic!("{shape}: encode: {e}"));
        let again = physical_plan_from_bytes_with_extension_codec(&bytes, &task, &physical_codec).unwrap_or_else(|e| panic!("{shape}: decode: {e}"));
        assert_eq!(displayable(again.as_ref()).indent(true).to_string(), text, "{shape}: file scan");
        let got = rows(&datafusion::physical_plan::collect(again, task.clone()).await.unwrap());
        assert_eq!(got, want, "{shape}: rows of the decoded file scan");
    }
    // A damaged scan is an error naming what failed, not a panic.
    use datafusion_proto::physical_plan::{DefaultPhysicalProtoConverter, PhysicalExtensionCodec};
    let err = physical_codec.try_decode(b"DELTA-SCAN\x01{not json", &[], &task, &DefaultPhysicalProtoConverter {}).unwrap_err();
    assert!(err.to_string().contains("cannot decode a Delta scan"), "{err}");
}

/// Row ids of the Delta table at `path` (read by delta-core, not by the cluster), sorted.
async fn ids_at(path: &str) -> Vec<i64> {
    let snapshot = delta_core::Table::open(path).unwrap().snapshot().await.unwrap();
    let batches = snapshot.scan().build().unwrap().collect().await.unwrap();
    let mut ids = ints(&batches, "id");
    ids.sort();
    ids
}

/// Writes on the cluster: `df.write().save`, INSERT and CTAS have the executors write the files
/// and commit once; checks run on the executors and a refused write commits nothing; writes the
/// cluster cannot split (replaceWhere) still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_writes_on_a_standalone_cluster() {
    let src = TempDir::new("cluster-write-src");
    table_with(&src, 6000, 6, WriteOptions::default()).await;
    let out = TempDir::new("cluster-write-out");
    let cluster = Session::standalone(2).await.unwrap();
    // A new, partitioned table: version 0 holds everything, files in partition folders.
    let df = cluster.read().delta(src.path()).await.unwrap().filter("id % 3 = 0").unwrap();
    let result = df.write().partition_by(&["grp"]).save(out.path()).await.unwrap();
    assert_eq!(result.version, Some(0));
    assert_eq!(result.rows_written, 2000);
    assert_eq!(ids_at(out.path()).await, (0..6000).filter(|i| i % 3 == 0).collect::<Vec<_>>());
    let table = delta_core::Table::open(out.path()).unwrap();
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.partition_columns(), ["grp".to_string()]);
    let files = snapshot.add_files().unwrap();
    assert!(files.len() >= 5 && files.iter().all(|f| f.path.starts_with("grp=g")), "{:?}", files.iter().map(|f| &f.path).collect::<Vec<_>>());
    assert_eq!(files.iter().map(|f| f.num_records().unwrap()).sum::<u64>(), 2000);
    // INSERT … SELECT: one more commit.
    let path = out.path();
    let src_path = src.path();
    cluster.execute(&format!("INSERT INTO delta.`{path}` SELECT id, grp, amount FROM delta.`{src_path}` WHERE id % 3 = 1")).await.unwrap();
    assert_eq!(table.snapshot().await.unwrap().version(), 1);
    assert_eq!(ids_at(path).await, (0..6000).filter(|i| i % 3 != 2).collect::<Vec<_>>());
    // CTAS of an aggregate: the same rows as local.
    let ctas = TempDir::new("cluster-write-ctas");
    let ctas_path = ctas.path();
    let query = format!("SELECT grp, sum(amount) AS s, count(*) AS n FROM delta.`{src_path}` GROUP BY grp");
    cluster.execute(&format!("CREATE TABLE delta.`{ctas_path}` AS {query}")).await.unwrap();
    let local = Session::with_config(2, None).unwrap();
    let want = sorted(&local.sql(&query).await.unwrap().collect().await.unwrap());
    let got = sorted(&local.sql(&format!("SELECT grp, s, n FROM delta.`{ctas_path}`")).await.unwrap().collect().await.unwrap());
    assert_eq!(got, want);
    assert_eq!(delta_core::Table::open(ctas_path).unwrap().snapshot().await.unwrap().version(), 0);
    // An unaliased expression over a path-named table: the cluster renames the table inside the
    // column's name on the way; the written table keeps the name the query gave (as locally).
    let unaliased = format!("SELECT grp, sum(amount) FROM delta.`{src_path}` GROUP BY grp");
    let (here, there) = (TempDir::new("cluster-write-local-names"), TempDir::new("cluster-write-names"));
    local.execute(&format!("CREATE TABLE delta.`{}` AS {unaliased}", here.path())).await.unwrap();
    cluster.execute(&format!("CREATE TABLE delta.`{}` AS {unaliased}", there.path())).await.unwrap();
    let names = |p: &str| {
        let p = p.to_string();
        async move { delta_core::Table::open(&p).unwrap().snapshot().await.unwrap().schema().fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>() }
    };
    assert_eq!(names(there.path()).await, names(here.path()).await);
    let read = |p: &str| format!("SELECT * FROM delta.`{p}`");
    assert_eq!(sorted(&local.sql(&read(there.path())).await.unwrap().collect().await.unwrap()), sorted(&local.sql(&read(here.path())).await.unwrap().collect().await.unwrap()));
    // A CHECK constraint is checked on the executors: the write is refused, nothing is committed.
    table.add_constraint("positive", "amount >= 0").await.unwrap();
    let before = table.snapshot().await.unwrap().version();
    let bad = cluster.read().delta(src_path).await.unwrap().with_column("amount", "0 - amount").unwrap();
    let err = bad.write().save(path).await.unwrap_err().to_string();
    assert!(err.contains("positive"), "{err}");
    assert_eq!(table.snapshot().await.unwrap().version(), before);
    assert_eq!(ids_at(path).await.len(), 4000);
    // Overwrite with replaceWhere: not split across executors, still one commit.
    let g1 = cluster.read().delta(src_path).await.unwrap().filter("grp = 'g1'").unwrap();
    g1.write().mode("overwrite").unwrap().option("replaceWhere", "grp = 'g1'").unwrap().save(path).await.unwrap();
    assert_eq!(table.snapshot().await.unwrap().version(), before + 1);
    let expect: Vec<i64> = (0..6000).filter(|i| i % 5 == 1 || i % 3 != 2).collect();
    assert_eq!(ids_at(path).await, expect);
    // Overwrite of the whole table on the executors.
    let all = cluster.read().delta(src_path).await.unwrap();
    all.write().mode("overwrite").unwrap().save(path).await.unwrap();
    assert_eq!(ids_at(path).await, (0..6000).collect::<Vec<_>>());
}

/// A write's plan through the codecs (client → scheduler → executor) and run: the files it
/// returns commit as one version, and bad input to the codecs or the commit is a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_plan_survives_the_codecs() {
    use delta_core::write::PlannedWrite;
    use delta_exec::write::{adds_of, DeltaWrite};
    let src = TempDir::new("cluster-codec-write-src");
    table_with(&src, 3000, 3, WriteOptions::default()).await;
    let out = TempDir::new("cluster-codec-write-out");
    let session = Session::with_config(3, None).unwrap();
    let df = session.read().delta(src.path()).await.unwrap().filter("id >= 100").unwrap();
    let table = delta_core::Table::open(out.path()).unwrap();
    let schema = std::sync::Arc::new(df.inner().schema().as_arrow().clone());
    let options = WriteOptions { partition_by: Some(vec!["grp".into()]), ..Default::default() };
    let PlannedWrite::Files(write) = table.begin_write(schema, options).await.unwrap() else { panic!("a new table has files to write") };
    let task = write.task().expect("a plain write splits across executors");
    let plan = DeltaWrite::try_new(df.inner().logical_plan().clone(), task, table.location().clone()).unwrap().plan();
    let logical_codec = DeltaLogicalCodec::new(TableOptions::default());
    let physical_codec = DeltaPhysicalCodec::new(TableOptions::default());
    let ctx = session.context();
    let task_ctx = ctx.task_ctx();
    let bytes = logical_plan_to_bytes_with_extension_codec(&plan, &logical_codec).unwrap();
    let back = logical_plan_from_bytes_with_extension_codec(&bytes, &task_ctx, &logical_codec).unwrap();
    assert_eq!(format!("{}", back.display_indent()), format!("{}", plan.display_indent()));
    let physical = ctx.state().create_physical_plan(&back).await.unwrap();
    let text = displayable(physical.as_ref()).indent(true).to_string();
    assert!(text.contains("DeltaWriteExec"), "{text}");
    let bytes = physical_plan_to_bytes_with_extension_codec(physical.clone(), &physical_codec).unwrap();
    let again = physical_plan_from_bytes_with_extension_codec(&bytes, &task_ctx, &physical_codec).unwrap();
    assert_eq!(displayable(again.as_ref()).indent(true).to_string(), text);
    // Nothing is visible before the commit.
    let batches = datafusion::physical_plan::collect(again, task_ctx.clone()).await.unwrap();
    assert!(table.snapshot().await.is_err(), "no table before the commit");
    let adds = adds_of(&batches).unwrap();
    assert!(adds.len() >= 5, "{} files", adds.len());
    // A forged add (a path outside the table) is refused, and nothing is committed.
    let mut forged = adds.clone();
    forged[0].path = "../elsewhere/part-0.parquet".into();
    let PlannedWrite::Files(again_write) =
        table.begin_write(std::sync::Arc::new(df.inner().schema().as_arrow().clone()), WriteOptions { partition_by: Some(vec!["grp".into()]), ..Default::default() }).await.unwrap()
    else {
        panic!("a new table has files to write")
    };
    let err = again_write.commit_files(forged).await.unwrap_err().to_string();
    assert!(err.contains("not a new data file"), "{err}");
    assert!(table.snapshot().await.is_err(), "a refused commit leaves no table");
    let result = write.commit_files(adds).await.unwrap();
    assert_eq!((result.version, result.rows_written), (Some(0), 2900));
    assert_eq!(ids_at(out.path()).await, (100..3000).collect::<Vec<_>>());
    // A damaged write task is an error naming what failed.
    use datafusion_proto::physical_plan::{DefaultPhysicalProtoConverter, PhysicalExtensionCodec};
    let err = physical_codec.try_decode(b"DELTA-WRITE\x01{not json", std::slice::from_ref(&physical), &task_ctx, &DefaultPhysicalProtoConverter {}).unwrap_err();
    assert!(err.to_string().contains("cannot decode a write task"), "{err}");
}

/// A broadcast join on the cluster: the hinted plan reaches the executors (the hint's marker
/// used to stay in plans Ballista's adaptive planner made, which no codec can carry) and the
/// stages Ballista ran (EXPLAIN ANALYZE on the cluster) build the join from the whole small side
/// in every task, under the adaptive and the static planner alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_joins_on_a_standalone_cluster() {
    let big = TempDir::new("cluster-bcast-big");
    table_with(&big, 6000, 6, WriteOptions::default()).await;
    let small = TempDir::new("cluster-bcast-small");
    table_with(&small, 50, 1, WriteOptions::default()).await;
    let cluster = Session::standalone(2).await.unwrap();
    let local = Session::with_config(2, None).unwrap();
    for adaptive in ["true", "false"] {
        cluster.set_conf("ballista.planner.adaptive.enabled", adaptive).unwrap();
        let frame = |s: &Session| {
            let s = s.clone();
            let (big, small) = (big.path().to_string(), small.path().to_string());
            async move {
                let df = s.read().delta(&big).await.unwrap();
                let other = s.read().delta(&small).await.unwrap().select(&["id", "amount AS small_amount"]).unwrap();
                df.join(&broadcast(&other), &["id"], "inner").unwrap()
            }
        };
        let hinted = frame(&cluster).await;
        let want = sorted(&frame(&local).await.collect().await.unwrap());
        assert_eq!(want.len(), 50);
        assert_eq!(sorted(&hinted.collect().await.unwrap()), want, "adaptive planner: {adaptive}");
        let text = hinted.explain(true).await.unwrap();
        assert!(text.contains("mode=CollectLeft") && !text.contains("mode=Partitioned"), "adaptive planner {adaptive}:\n{text}");
    }
}

/// Frames of rows in the client's memory (`read_batch`) travel with the plan to the cluster's
/// processes (as Arrow IPC in the logical codec) and join Delta scans there; a change feed travels
/// as the files to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_frames_on_a_standalone_cluster() {
    let dir = TempDir::new("cluster-memory");
    let options = WriteOptions { properties: props(&[("delta.enableChangeDataFeed", "true")]), ..Default::default() };
    let table = table_with(&dir, 1000, 2, options).await;
    table.delete(Some("id < 100")).await.unwrap();
    let cluster = Session::standalone(2).await.unwrap();
    let wanted = crate::rows([5, 150, 999, 5000].into_iter());
    let wanted = delta_exec::DataFrame::from_datafusion(&cluster, cluster.context().read_batch(wanted).unwrap()).select(&["id"]).unwrap();
    let t = cluster.read().delta(dir.path()).await.unwrap();
    let got = t.join(&wanted, &["id"], "semi").unwrap().select(&["id"]).unwrap().collect().await.unwrap();
    let mut ids = ints(&got, "id");
    ids.sort_unstable();
    assert_eq!(ids, vec![150, 999]);
    let feed = cluster.read().option("readChangeFeed", "true").unwrap().option("startingVersion", "2").unwrap().delta(dir.path()).await.unwrap();
    let deleted = feed.filter("_change_type = 'delete'").unwrap().join(&t, &["grp"], "semi").unwrap();
    assert_eq!(deleted.count().await.unwrap(), 100);
    // A change feed travels as the files to read, never as its rows: an executor reads them.
    let has = |bytes: &[u8], tag: &[u8]| bytes.windows(tag.len()).any(|w| w == tag);
    let codec = DeltaLogicalCodec::new(TableOptions::default());
    let bytes = logical_plan_to_bytes_with_extension_codec(feed.inner().logical_plan(), &codec).unwrap();
    assert!(has(&bytes, b"DELTA-CHANGES\x01") && !has(&bytes, b"DELTA-MEMORY\x01"));
    let local = Session::new();
    let here = local.read().option("readChangeFeed", "true").unwrap().option("startingVersion", "0").unwrap().delta(dir.path()).await.unwrap();
    let plan = here.physical_plan().await.unwrap();
    let physical_codec = DeltaPhysicalCodec::new(TableOptions::default());
    let bytes = physical_plan_to_bytes_with_extension_codec(plan.clone(), &physical_codec).unwrap();
    assert!(has(&bytes, b"DELTA-CHANGES\x01"));
    let task = local.context().task_ctx();
    let back = physical_plan_from_bytes_with_extension_codec(&bytes, &task, &physical_codec).unwrap();
    let rows = |b: &[arrow::array::RecordBatch]| sorted(b);
    let want = rows(&here.collect().await.unwrap());
    assert_eq!(want.len(), 1100);
    assert_eq!(rows(&datafusion::physical_plan::collect(back, task).await.unwrap()), want);
    assert_eq!(rows(&cluster.read().option("readChangeFeed", "true").unwrap().option("startingVersion", "0").unwrap().delta(dir.path()).await.unwrap().collect().await.unwrap()), want);
}

/// A function the test sends to the cluster: `twice = amount * 2` beside the input's columns.
#[derive(Debug)]
struct Twice {
    schema: arrow::datatypes::SchemaRef,
    kind: &'static str,
}

impl Twice {
    fn over(input: &arrow::datatypes::Schema, kind: &'static str) -> std::sync::Arc<dyn delta_exec::map::BatchMap> {
        let mut fields: Vec<arrow::datatypes::FieldRef> = input.fields().iter().cloned().collect();
        fields.push(std::sync::Arc::new(arrow::datatypes::Field::new("twice", arrow::datatypes::DataType::Int64, true)));
        std::sync::Arc::new(Twice { schema: std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), kind })
    }
}

impl delta_exec::map::BatchMap for Twice {
    fn name(&self) -> String {
        "twice".into()
    }

    fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema.clone()
    }

    fn map(&self, batch: &arrow::array::RecordBatch) -> datafusion::common::Result<arrow::array::RecordBatch> {
        let amount = batch.column_by_name("amount").unwrap();
        let twice = arrow::compute::kernels::numeric::mul(amount, &arrow::array::Int64Array::new_scalar(2))?;
        let mut columns = batch.columns().to_vec();
        columns.push(twice);
        Ok(arrow::array::RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    fn encode(&self) -> datafusion::common::Result<(String, Vec<u8>)> {
        Ok((self.kind.to_string(), b"x2".to_vec()))
    }
}

fn decode_twice(bytes: &[u8], schema: arrow::datatypes::SchemaRef) -> datafusion::common::Result<std::sync::Arc<dyn delta_exec::map::BatchMap>> {
    assert_eq!(bytes, b"x2");
    Ok(std::sync::Arc::new(Twice { schema, kind: "test-twice" }))
}

/// Window functions keep IGNORE NULLS on the executors (DataFusion 55's physical codec writes the
/// flag as false; the answers would differ silently), FILTER in a window is refused there, an
/// as-of join gives the local rows, and batch functions (ML stages) run on the executors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_settings_asof_and_batch_functions_on_a_standalone_cluster() {
    let dir = TempDir::new("cluster-windows");
    table_with(&dir, 600, 3, WriteOptions::default()).await;
    let local = Session::new();
    let cluster = Session::standalone(2).await.unwrap();
    let t = dir.path().to_string();
    let sql = format!(
        "SELECT id, \
           last_value(CASE WHEN id % 3 = 0 THEN id END) IGNORE NULLS OVER (PARTITION BY grp ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS lv, \
           last_value(CASE WHEN id % 3 = 0 THEN id END) OVER (PARTITION BY grp ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS lv_nulls, \
           first_value(CASE WHEN id % 7 = 0 THEN id END) IGNORE NULLS OVER (PARTITION BY grp ORDER BY id ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS fv, \
           lag(CASE WHEN id % 4 = 0 THEN id END, 1) IGNORE NULLS OVER (PARTITION BY grp ORDER BY id) AS lg \
         FROM delta.`{t}`"
    );
    let here = sorted(&local.sql(&sql).await.unwrap().collect().await.unwrap());
    let there = sorted(&cluster.sql(&sql).await.unwrap().collect().await.unwrap());
    assert_eq!(here.len(), 600);
    // The test can fail: ignoring nulls changes the answer on these rows.
    assert!(here.iter().any(|r| r[1] != r[2]), "IGNORE NULLS made no difference");
    assert!(equal(&here, &there), "IGNORE NULLS on the cluster: first differences {:?}", here.iter().zip(&there).find(|(a, b)| a != b));

    let filtered = format!("SELECT id, sum(amount) FILTER (WHERE id > 10) OVER (PARTITION BY grp) AS s FROM delta.`{t}`");
    let err = match cluster.sql(&filtered).await {
        Ok(df) => df.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("FILTER"), "{err}");

    // An as-of join: the same rows here and there.
    let asof = |s: &Session| {
        let s = s.clone();
        let t = t.clone();
        async move {
            let left = s.read().delta(&t).await.unwrap();
            let right = s.read().delta(&t).await.unwrap().filter("id % 10 < 5").unwrap().select(&["grp", "id AS rid", "amount AS ramount"]).unwrap();
            sorted(&left.join_asof(&right, "id", "rid", &["grp"]).unwrap().collect().await.unwrap())
        }
    };
    let (here, there) = (asof(&local).await, asof(&cluster).await);
    assert!(here.iter().filter(|r| r[3].is_some()).count() > 500);
    assert!(equal(&here, &there), "as-of join on the cluster");

    // A batch function runs where the rows are, decoded by the registered kind.
    delta_exec::map::register_batch_map("test-twice", decode_twice);
    let mapped = |s: &Session, kind: &'static str| {
        let s = s.clone();
        let t = t.clone();
        async move {
            let df = s.read().delta(&t).await.unwrap().filter("id < 100").unwrap();
            let f = Twice::over(df.inner().schema().as_arrow(), kind);
            df.map_batches(f).unwrap().filter("twice % 3 = 0").unwrap().collect().await.map(|b| sorted(&b))
        }
    };
    let here = mapped(&local, "test-twice").await.unwrap();
    let there = mapped(&cluster, "test-twice").await.unwrap();
    assert_eq!(here.len(), 34);
    assert!(equal(&here, &there), "a batch function on the cluster");
    let err = mapped(&cluster, "test-unregistered").await.unwrap_err().to_string();
    assert!(err.contains("no decoder"), "{err}");
}
