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
