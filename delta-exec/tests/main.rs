//! delta-exec's integration tests: real Delta tables written by delta-core on local disk, queried
//! through DataFusion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod asof;
mod cluster;
mod distinct;
mod tpch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::Table;
use delta_exec::{DeltaScanExec, Session};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!("delta-exec-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rows `ids` with `grp = id % 5` as text and `amount = id * 10`.
fn rows(ids: impl Iterator<Item = i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("grp", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(ids.iter().map(|i| format!("g{}", i % 5)).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(ids.iter().map(|i| i * 10).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A table of ids 0..n written in `files` appends.
async fn table_with(dir: &TempDir, n: i64, files: i64, options: WriteOptions) -> Table {
    let table = Table::open(dir.path()).unwrap();
    let per = n / files;
    for f in 0..files {
        let opts = WriteOptions { mode: SaveMode::Append, ..options.clone() };
        table.write(vec![rows(f * per..(f + 1) * per)], opts).await.unwrap();
    }
    table
}

fn ints(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for b in batches {
        let c = b.column_by_name(column).unwrap_or_else(|| panic!("no column {column} in {:?}", b.schema()));
        let c = arrow::compute::cast(c, &DataType::Int64).unwrap();
        let c = c.as_primitive::<Int64Type>();
        out.extend((0..c.len()).map(|i| if c.is_null(i) { i64::MIN } else { c.value(i) }));
    }
    out
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let c = arrow::compute::cast(b.column_by_name(column).unwrap(), &DataType::Utf8).unwrap();
        let c = c.as_string::<i32>();
        out.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_string())));
    }
    out
}

/// The Delta scans of a physical plan.
fn delta_scans(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    if let Some(s) = plan.downcast_ref::<DeltaScanExec>() {
        out.push((s.files_total(), s.files_scanned(), s.partition_files().len()));
    }
    for c in plan.children() {
        out.extend(delta_scans(c));
    }
    out
}

/// Deletion vectors are applied whatever the number of partitions: the same rows with 1, 2 and 8.
#[tokio::test]
async fn deletion_vectors_hold_under_any_partitioning() {
    let dir = TempDir::new("dv");
    let options = WriteOptions { properties: props(&[("delta.enableDeletionVectors", "true")]), ..Default::default() };
    let table = table_with(&dir, 6000, 6, options).await;
    let deleted = table.delete(Some("id % 7 = 0 OR id BETWEEN 1000 AND 1499")).await.unwrap();
    assert!(deleted.metric("numDeletionVectorsAdded") > 0, "{deleted:?}");
    let expected: Vec<i64> = (0..6000).filter(|i| i % 7 != 0 && !(1000..1500).contains(i)).collect();
    for partitions in [1, 2, 8] {
        let session = Session::with_config(partitions, None).unwrap();
        let df = session.read().delta(dir.path()).await.unwrap();
        let mut got = ints(&df.select(&["id"]).unwrap().collect().await.unwrap(), "id");
        got.sort_unstable();
        assert_eq!(got, expected, "target_partitions={partitions}");
        assert_eq!(df.count().await.unwrap(), expected.len(), "count with {partitions} partitions");
        let sum = df.group_by(&[]).unwrap().agg(&["sum(amount) AS s"]).unwrap().collect().await.unwrap();
        assert_eq!(ints(&sum, "s"), vec![expected.iter().map(|i| i * 10).sum::<i64>()]);
        // A filtered read that lands in files with deletion vectors.
        let some = df.filter("id >= 990 AND id < 1510").unwrap().collect().await.unwrap();
        let mut got = ints(&some, "id");
        got.sort_unstable();
        assert_eq!(got, expected.iter().copied().filter(|i| (990..1510).contains(i)).collect::<Vec<_>>());
        let plan = df.physical_plan().await.unwrap();
        let scans = delta_scans(&plan);
        assert_eq!(scans.len(), 1);
        assert_eq!(scans[0].2, partitions.min(6), "partitions of the scan");
    }
}

/// A large file is split across partitions by row groups, and its deletion vector still removes
/// exactly its deleted rows in every split: one file of 40 row groups, rows deleted in many of
/// them, read with 1, 2 and 8 partitions.
#[tokio::test]
async fn deletion_vectors_hold_when_files_are_split() {
    let dir = TempDir::new("dvsplit");
    let table = Table::open(dir.path()).unwrap();
    let options = WriteOptions {
        properties: props(&[("delta.enableDeletionVectors", "true")]),
        row_group_rows: Some(1000),
        ..Default::default()
    };
    table.write(vec![rows(0..40_000)], options).await.unwrap();
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.num_files(), 1);
    table.delete(Some("id % 13 = 0 OR id BETWEEN 15500 AND 17250")).await.unwrap();
    assert!(table.snapshot().await.unwrap().has_deletion_vectors());
    let expected: Vec<i64> = (0..40_000).filter(|i| i % 13 != 0 && !(15_500..=17_250).contains(i)).collect();
    for partitions in [1, 2, 8] {
        let session = Session::with_config(partitions, None).unwrap();
        session.set_conf("datafusion.optimizer.repartition_file_min_size", "0").unwrap();
        let df = session.read().delta(dir.path()).await.unwrap();
        let plan = df.physical_plan().await.unwrap();
        let scans = delta_scans(&plan);
        assert_eq!((scans[0].1, scans[0].2), (1, partitions), "one file, read by {partitions} partitions");
        let mut got = ints(&df.select(&["id"]).unwrap().collect().await.unwrap(), "id");
        got.sort_unstable();
        assert_eq!(got, expected, "target_partitions={partitions}");
        assert_eq!(df.count().await.unwrap(), expected.len());
        let some = df.filter("id >= 15000 AND id < 18000").unwrap().collect().await.unwrap();
        let mut got = ints(&some, "id");
        got.sort_unstable();
        assert_eq!(got, expected.iter().copied().filter(|i| (15_000..18_000).contains(i)).collect::<Vec<_>>());
    }
}

/// Partition and statistics pruning happen in the scan, and EXPLAIN ANALYZE shows it.
#[tokio::test]
async fn partition_and_statistics_pruning_show_in_the_plan() {
    let dir = TempDir::new("prune");
    let table = Table::open(dir.path()).unwrap();
    // Partitioned by grp: five partitions per append, two appends.
    for f in 0..2 {
        let opts = WriteOptions { partition_by: Some(vec!["grp".into()]), ..Default::default() };
        table.write(vec![rows(f * 1000..(f + 1) * 1000)], opts).await.unwrap();
    }
    let session = Session::new();
    let df = session.read().delta(dir.path()).await.unwrap();
    let by_partition = df.filter("grp = 'g3'").unwrap();
    let scans = delta_scans(&by_partition.inner().clone().create_physical_plan().await.unwrap());
    assert_eq!(scans, vec![(10, 2, 2.min(session.context().state().config().target_partitions()))]);
    let got = by_partition.collect().await.unwrap();
    assert_eq!(strings(&got, "grp").iter().filter(|g| g.as_deref() == Some("g3")).count(), 400);
    assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 400);
    // Statistics: ids 1000.. live only in the second append's files.
    let by_stats = df.filter("id >= 1500").unwrap();
    let scans = delta_scans(&by_stats.inner().clone().create_physical_plan().await.unwrap());
    assert_eq!((scans[0].0, scans[0].1), (10, 5));
    assert_eq!(by_stats.count().await.unwrap(), 500);
    let text = by_stats.explain(true).await.unwrap();
    assert!(text.contains("files_total=10") && text.contains("files_scanned=5"), "{text}");
    assert!(text.contains("row_groups_total=5") && text.contains("row_groups_pruned=0"), "{text}");
    // A filter every file's statistics rule out reads no file at all.
    let none = df.filter("id >= 1000 AND amount < 0").unwrap().explain(true).await.unwrap();
    assert!(none.contains("files_scanned=0"), "{none}");
    // A filter delta-core cannot express is not pushed, and still applies.
    let other = df.filter("length(grp) = 2 AND id < 10").unwrap();
    assert_eq!(other.count().await.unwrap(), 10);
}

/// `count(*)` on a table without deletion vectors is answered from the log: it succeeds with
/// the data files gone, where reading a column fails.
#[tokio::test]
async fn count_star_reads_no_data_file() {
    let dir = TempDir::new("count");
    table_with(&dir, 3000, 3, WriteOptions::default()).await;
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let session = Session::new();
    let df = session.read().delta(dir.path()).await.unwrap();
    assert_eq!(df.count().await.unwrap(), 3000);
    // Unfiltered min/max of integer columns come from the statistics too.
    session.register_delta("t", dir.path()).await.unwrap();
    let out = session.sql("SELECT min(id) AS lo, max(amount) AS hi, count(*) AS n FROM t").await.unwrap().collect().await.unwrap();
    assert_eq!((ints(&out, "lo"), ints(&out, "hi"), ints(&out, "n")), (vec![0], vec![29990], vec![3000]));
    // A filtered one must read data, and fails without it.
    assert!(session.sql("SELECT max(id) FROM t WHERE amount > 5").await.unwrap().collect().await.is_err());
    let sql = session
        .context()
        .read_table(Arc::new(delta_exec::DeltaTableProvider::try_new(Table::open(dir.path()).unwrap().snapshot().await.unwrap()).unwrap()))
        .unwrap();
    assert!(sql
        .aggregate(vec![], vec![datafusion::functions_aggregate::expr_fn::sum(datafusion::prelude::col("amount"))])
        .unwrap()
        .collect()
        .await
        .is_err());
}

/// Under deletion vectors the statistics are bounds only: min/max read the data and see the
/// deletes, while the row count still comes from the log.
#[tokio::test]
async fn statistics_under_deletion_vectors_are_bounds() {
    let dir = TempDir::new("dvstats");
    let table = table_with(&dir, 100, 2, WriteOptions { properties: props(&[("delta.enableDeletionVectors", "true")]), ..Default::default() }).await;
    table.delete(Some("id = 0 OR id = 99")).await.unwrap();
    let session = Session::new();
    session.register_delta("t", dir.path()).await.unwrap();
    let out = session.sql("SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM t").await.unwrap().collect().await.unwrap();
    assert_eq!((ints(&out, "lo"), ints(&out, "hi"), ints(&out, "n")), (vec![1], vec![98], vec![98]));
}

/// Time travel by version and by timestamp.
#[tokio::test]
async fn time_travel_by_version_and_timestamp() {
    let dir = TempDir::new("tt");
    let table = table_with(&dir, 300, 3, WriteOptions::default()).await;
    let session = Session::new();
    for (v, n) in [(0, 100), (1, 200), (2, 300)] {
        assert_eq!(session.read().version_as_of(v).delta(dir.path()).await.unwrap().count().await.unwrap(), n);
    }
    let ts = table.snapshot_at(1).await.unwrap().timestamp_ms().unwrap();
    assert_eq!(session.read().timestamp_as_of(ts).delta(dir.path()).await.unwrap().count().await.unwrap(), 200);
    assert!(session.read().version_as_of(9).delta(dir.path()).await.is_err());
    assert!(session.read().version_as_of(1).timestamp_as_of(ts).delta(dir.path()).await.is_err());
}

/// The DataFrame verbs, checked against answers computed here.
#[tokio::test]
async fn dataframe_verbs() {
    let dir = TempDir::new("verbs");
    table_with(&dir, 100, 2, WriteOptions::default()).await;
    let session = Session::with_config(4, None).unwrap();
    let df = session.read().delta(dir.path()).await.unwrap();

    let out = df.filter("id < 10").unwrap().with_column("double", "amount * 2").unwrap().order_by(&["id DESC"]).unwrap();
    let b = out.collect().await.unwrap();
    assert_eq!(ints(&b, "id"), (0..10).rev().collect::<Vec<_>>());
    assert_eq!(ints(&b, "double"), (0..10).rev().map(|i| i * 20).collect::<Vec<_>>());

    let renamed = df.with_column_renamed("amount", "amt").unwrap().drop(&["grp"]).unwrap();
    let names: Vec<String> = renamed.inner().schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, vec!["id", "amt"]);

    let agg = df.group_by(&["grp"]).unwrap().agg(&["count(*) AS n", "sum(amount) AS total"]).unwrap().order_by(&["grp"]).unwrap();
    let b = agg.collect().await.unwrap();
    assert_eq!(strings(&b, "grp"), (0..5).map(|g| Some(format!("g{g}"))).collect::<Vec<_>>());
    assert_eq!(ints(&b, "n"), vec![20; 5]);
    assert_eq!(ints(&b, "total"), (0..5).map(|g| (0..100).filter(|i| i % 5 == g).map(|i| i * 10).sum::<i64>()).collect::<Vec<_>>());

    assert_eq!(df.select(&["grp"]).unwrap().distinct().unwrap().count().await.unwrap(), 5);
    assert_eq!(df.union(&df).unwrap().count().await.unwrap(), 200);
    assert_eq!(df.limit(7).unwrap().count().await.unwrap(), 7);
    let shown = df.order_by(&["id"]).unwrap().show_string(3).await.unwrap();
    assert!(shown.contains("| 2  |") && !shown.contains("| 3  |"), "{shown}");
}

/// Joins by Spark's names, keys kept once.
#[tokio::test]
async fn joins_of_every_kind() {
    let left_dir = TempDir::new("jl");
    let right_dir = TempDir::new("jr");
    Table::open(left_dir.path()).unwrap().write(vec![rows(0..6)], WriteOptions::default()).await.unwrap();
    Table::open(right_dir.path()).unwrap().write(vec![rows(4..10)], WriteOptions::default()).await.unwrap();
    let session = Session::new();
    let l = session.read().delta(left_dir.path()).await.unwrap();
    let r = session.read().delta(right_dir.path()).await.unwrap().select(&["id", "amount AS r_amount"]).unwrap();
    let ids = |how: &'static str| {
        let (l, r) = (l.clone(), r.clone());
        async move {
            let b = l.join(&r, &["id"], how).unwrap().order_by(&["id"]).unwrap().collect().await.unwrap();
            ints(&b, "id")
        }
    };
    assert_eq!(ids("inner").await, vec![4, 5]);
    assert_eq!(ids("left").await, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(ids("right").await, vec![4, 5, 6, 7, 8, 9]);
    assert_eq!(ids("full").await, (0..10).collect::<Vec<_>>());
    assert_eq!(ids("left_semi").await, vec![4, 5]);
    assert_eq!(ids("anti").await, vec![0, 1, 2, 3]);
    let full = l.join(&r, &["id"], "full_outer").unwrap();
    let names: Vec<String> = full.inner().schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, vec!["id", "grp", "amount", "r_amount"]);
    assert!(l.join(&r, &["id"], "sideways").is_err());
    // A non-key name on both sides appears twice; naming it is ambiguous, as in Spark.
    let both = l.join(&l.select(&["id", "amount"]).unwrap(), &["id"], "inner").unwrap();
    let names: Vec<String> = both.inner().schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, vec!["id", "grp", "amount", "amount"]);
    assert_eq!(both.count().await.unwrap(), 6);
    assert!(both.select(&["amount"]).is_err());
}

/// SQL over registered tables, and writes in each mode (a new table is one commit).
#[tokio::test]
async fn sql_and_writes() {
    let src = TempDir::new("src");
    table_with(&src, 50, 1, WriteOptions::default()).await;
    let session = Session::new();
    session.register_delta("events", src.path()).await.unwrap();
    let df = session.sql("SELECT grp, sum(amount) AS total FROM events WHERE id >= 10 GROUP BY grp").await.unwrap();

    let out = TempDir::new("out");
    let r = df.write().mode("errorIfExists").unwrap().partition_by(&["grp"]).save(out.path()).await.unwrap();
    assert_eq!(r.version, Some(0));
    let t = Table::open(out.path()).unwrap();
    assert_eq!(t.history(None).await.unwrap().len(), 1, "a new table is one commit");
    assert_eq!(t.snapshot().await.unwrap().partition_columns(), ["grp".to_string()]);
    assert!(df.write().mode("errorIfExists").unwrap().save(out.path()).await.is_err());
    df.write().save(out.path()).await.unwrap();
    let back = session.read().delta(out.path()).await.unwrap();
    assert_eq!(back.count().await.unwrap(), 10);
    let r = df.write().mode("overwrite").unwrap().save(out.path()).await.unwrap();
    assert_eq!(r.version, Some(2));
    assert_eq!(session.read().delta(out.path()).await.unwrap().count().await.unwrap(), 5);
    assert!(df.write().mode("sometimes").is_err());
    assert!(df.write().option("noSuchOption", "1").is_err());
}

/// SQL names tables by path as ``delta.`/path` ``, as Spark does.
#[tokio::test]
async fn sql_names_tables_by_path() {
    let dir = TempDir::new("sqlpath");
    table_with(&dir, 40, 2, WriteOptions::default()).await;
    let session = Session::new();
    let q = format!("SELECT grp, count(*) AS n FROM delta.`{}` WHERE id < 20 GROUP BY grp ORDER BY grp", dir.path());
    let b = session.sql(&q).await.unwrap().collect().await.unwrap();
    assert_eq!(ints(&b, "n"), vec![4; 5]);
    let missing = format!("SELECT * FROM delta.`{}/nope`", dir.path());
    let err = session.sql(&missing).await.err().expect("no table there");
    assert!(err.to_string().contains("nope"), "{err}");
}

/// Windows through Spark SQL expressions: `lag` and a running sum per partition.
#[tokio::test]
async fn window_functions_in_expressions() {
    let dir = TempDir::new("window");
    table_with(&dir, 30, 1, WriteOptions::default()).await;
    let session = Session::new();
    let df = session.read().delta(dir.path()).await.unwrap();
    let out = df
        .with_column("prev", "lag(amount) OVER (PARTITION BY grp ORDER BY id)")
        .unwrap()
        .with_column("running", "sum(amount) OVER (PARTITION BY grp ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
        .unwrap()
        .filter("grp = 'g2'")
        .unwrap()
        .order_by(&["id"])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let ids: Vec<i64> = (0..30).filter(|i| i % 5 == 2).collect();
    assert_eq!(ints(&out, "id"), ids);
    let prev: Vec<i64> = ids.iter().enumerate().map(|(k, _)| if k == 0 { i64::MIN } else { ids[k - 1] * 10 }).collect();
    assert_eq!(ints(&out, "prev"), prev);
    let running: Vec<i64> = ids
        .iter()
        .scan(0, |acc, i| {
            *acc += i * 10;
            Some(*acc)
        })
        .collect();
    assert_eq!(ints(&out, "running"), running);
}

/// A sort and an aggregate far larger than the session's memory limit spill and finish with the
/// right answer; with spilling impossible (no memory at all for a hash join build) the query
/// fails with a resources error rather than taking the process down.
#[tokio::test]
async fn sorts_and_aggregates_spill_under_a_small_memory_limit() {
    let dir = TempDir::new("spill");
    let n = 600_000i64;
    table_with(&dir, n, 4, WriteOptions::default()).await;
    let session = Session::with_config(1, Some(32 << 20)).unwrap();
    let df = session.read().delta(dir.path()).await.unwrap();
    let sorted = df
        .with_column("pad", "concat(grp, '-', CAST(id AS VARCHAR), '-padding-to-make-rows-wider')")
        .unwrap()
        .order_by(&["amount DESC"])
        .unwrap();
    let mut stream = sorted.execute_stream().await.unwrap();
    let mut expected = n - 1;
    let mut seen = 0i64;
    use futures::StreamExt;
    while let Some(b) = stream.next().await {
        let b = b.unwrap();
        for id in ints(&[b], "id") {
            assert_eq!(id, expected);
            expected -= 1;
            seen += 1;
        }
    }
    assert_eq!(seen, n);
    let analyzed = sorted.explain(true).await.unwrap();
    let spills: u64 = analyzed
        .match_indices("spill_count=")
        .filter_map(|(i, m)| analyzed[i + m.len()..].split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .sum();
    assert!(spills > 0, "the sort did not spill:\n{analyzed}");
    let grouped = df.group_by(&["id"]).unwrap().agg(&["sum(amount) AS s"]).unwrap();
    let total: i64 = ints(&grouped.collect().await.unwrap(), "s").iter().sum();
    assert_eq!(total, (0..n).map(|i| i * 10).sum::<i64>());
    // A hash join's build side cannot spill: past the limit it is a resources error.
    let tiny = Session::with_config(1, Some(64 << 10)).unwrap();
    let t = tiny.read().delta(dir.path()).await.unwrap();
    let err = t.join(&t.select(&["id", "amount AS a2"]).unwrap(), &["id"], "inner").unwrap().count().await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("resources exhausted"), "{err}");
}

/// `Window` specifications: ranking, offsets, running aggregates and row frames, per partition.
#[tokio::test]
async fn window_specifications() {
    use delta_exec::{Window, CURRENT_ROW, UNBOUNDED_PRECEDING};
    let dir = TempDir::new("windowspec");
    // Ties in `amount / 100` inside each group exercise rank vs dense_rank.
    table_with(&dir, 40, 2, WriteOptions::default()).await;
    let session = Session::new();
    let df = session.read().delta(dir.path()).await.unwrap().with_column("bucket", "amount / 100").unwrap();
    let w = Window::partition_by(&["grp"]).order_by(&["id"]);
    let by_bucket = Window::partition_by(&["grp"]).order_by(&["bucket"]);
    let out = df
        .with_column_over("prev", "lag(amount, 1)", &w)
        .unwrap()
        .with_column_over("next", "lead(amount, 2, -1)", &w)
        .unwrap()
        .with_column_over("rn", "row_number()", &w)
        .unwrap()
        .with_column_over("rk", "rank()", &by_bucket)
        .unwrap()
        .with_column_over("drk", "dense_rank()", &by_bucket)
        .unwrap()
        .with_column_over("running", "sum(amount)", &w)
        .unwrap()
        .with_column_over("n_so_far", "count(*)", &w.clone().rows_between(UNBOUNDED_PRECEDING, CURRENT_ROW))
        .unwrap()
        .with_column_over("moving", "sum(amount)", &w.clone().rows_between(-1, 1))
        .unwrap()
        .with_column_over("avg2", "avg(amount)", &w.clone().rows_between(-1, CURRENT_ROW))
        .unwrap()
        .filter("grp = 'g1'")
        .unwrap()
        .order_by(&["id"])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let ids: Vec<i64> = (0..40).filter(|i| i % 5 == 1).collect();
    let amount = |k: usize| ids[k] * 10;
    let n = ids.len();
    assert_eq!(ints(&out, "id"), ids);
    assert_eq!(ints(&out, "prev"), (0..n).map(|k| if k == 0 { i64::MIN } else { amount(k - 1) }).collect::<Vec<_>>());
    assert_eq!(ints(&out, "next"), (0..n).map(|k| if k + 2 < n { amount(k + 2) } else { -1 }).collect::<Vec<_>>());
    assert_eq!(ints(&out, "rn"), (1..=n as i64).collect::<Vec<_>>());
    // bucket = amount / 100 = id / 10: ids 1,6 → 0; 11,16 → 1; ...
    let buckets: Vec<i64> = ids.iter().map(|i| i * 10 / 100).collect();
    let rank: Vec<i64> = buckets.iter().map(|b| buckets.iter().filter(|x| *x < b).count() as i64 + 1).collect();
    let mut distinct = buckets.clone();
    distinct.dedup();
    let dense: Vec<i64> = buckets.iter().map(|b| distinct.iter().position(|x| x == b).unwrap() as i64 + 1).collect();
    assert_eq!(ints(&out, "rk"), rank);
    assert_eq!(ints(&out, "drk"), dense);
    assert_eq!(ints(&out, "running"), (0..n).map(|k| (0..=k).map(amount).sum::<i64>()).collect::<Vec<_>>());
    assert_eq!(ints(&out, "n_so_far"), (1..=n as i64).collect::<Vec<_>>());
    let moving: Vec<i64> = (0..n).map(|k| (k.saturating_sub(1)..=(k + 1).min(n - 1)).map(amount).sum()).collect();
    assert_eq!(ints(&out, "moving"), moving);
    let avg2: Vec<i64> = (0..n).map(|k| if k == 0 { amount(0) } else { (amount(k - 1) + amount(k)) / 2 }).collect();
    assert_eq!(ints(&out, "avg2"), avg2);
}

/// The physical hash joins of a plan: (mode, left input's first column).
fn hash_joins(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(j) = plan.downcast_ref::<datafusion::physical_plan::joins::HashJoinExec>() {
        out.push(format!("{:?}:{}", j.partition_mode(), j.left().schema().field(0).name()));
    }
    for c in plan.children() {
        out.extend(hash_joins(c));
    }
    out
}

/// `broadcast(df)` makes the hinted side the build side of a collect-left join, whichever side
/// it is on; without a hint, the automatic threshold decides, and -1 turns it off.
#[tokio::test]
async fn broadcast_hint_and_threshold() {
    let big = TempDir::new("bbig");
    let small = TempDir::new("bsmall");
    table_with(&big, 4000, 4, WriteOptions::default()).await;
    Table::open(small.path()).unwrap().write(vec![rows(0..50)], WriteOptions::default()).await.unwrap();
    let session = Session::with_config(4, None).unwrap();
    let b = session.read().delta(big.path()).await.unwrap();
    let s = session.read().delta(small.path()).await.unwrap().select(&["id AS sid", "grp AS sgrp"]).unwrap();
    let plan_of = |df: delta_exec::DataFrame| async move {
        let plan = df.physical_plan().await.unwrap();
        (hash_joins(&plan), ints(&df.collect().await.unwrap(), "id").len())
    };
    // Automatic: the 50-row side is under 10 MiB, so it is collected (either input order).
    let auto = b.join(&s.with_column_renamed("sid", "id").unwrap(), &["id"], "inner").unwrap();
    let (joins, n) = plan_of(auto).await;
    assert_eq!(n, 50);
    assert_eq!(joins.len(), 1);
    assert!(joins[0].starts_with("CollectLeft"), "{joins:?}");

    // Off: a partitioned hash join.
    session.set_conf("spark.sql.autoBroadcastJoinThreshold", "-1").unwrap();
    let s_id = s.with_column_renamed("sid", "id").unwrap();
    let (joins, n) = plan_of(b.join(&s_id, &["id"], "inner").unwrap()).await;
    assert_eq!(n, 50);
    assert!(joins[0].starts_with("Partitioned"), "{joins:?}");

    // Hinted on the right: swapped to build from it.
    let (joins, n) = plan_of(b.join(&delta_exec::broadcast(&s_id), &["id"], "inner").unwrap()).await;
    assert_eq!(n, 50);
    assert!(joins[0].starts_with("CollectLeft"), "{joins:?}");
    // Hinted big side on the left, with a filter between hint and join: built from it.
    let hinted_big = delta_exec::broadcast(&b).filter("amount >= 0").unwrap();
    let (joins, n) = plan_of(hinted_big.join(&s_id, &["id"], "left").unwrap()).await;
    assert_eq!(n, 4000);
    assert!(joins[0].starts_with("CollectLeft"), "{joins:?}");
    let explain = hinted_big.join(&s_id, &["id"], "left").unwrap().explain(false).await.unwrap();
    assert!(explain.contains("BroadcastHint") && !explain.contains("BroadcastHintExec"), "{explain}");
    assert!(session.set_conf("spark.sql.autoBroadcastJoinThreshold", "ten").is_err());
    assert!(session.set_conf("no.such.key", "1").is_err());
}

/// As-of join: each left row gets the latest right row at or before its time, per key.
#[tokio::test]
async fn as_of_join_takes_the_latest_earlier_row() {
    let session = Session::new();
    let events = session
        .sql("SELECT * FROM (VALUES (1, 10, 'a'), (1, 25, 'b'), (2, 5, 'c'), (2, 30, 'd'), (3, 7, 'e'), (1, NULL, 'f')) AS t(user_id, ts, label)")
        .await
        .unwrap();
    let features = session
        .sql("SELECT * FROM (VALUES (1, 5, 100), (1, 20, 200), (1, 25, 250), (2, 6, 600), (2, 30, 300), (4, 1, 999)) AS f(user_id, fts, value)")
        .await
        .unwrap();
    let out = events.join_asof(&features, "ts", "fts", &["user_id"]).unwrap().order_by(&["label"]).unwrap().collect().await.unwrap();
    let names: Vec<String> = out[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, vec!["user_id", "ts", "label", "fts", "value"]);
    assert_eq!(strings(&out, "label"), ["a", "b", "c", "d", "e", "f"].map(|s| Some(s.to_string())).to_vec());
    // a: 10 → fts 5 (100); b: 25 → equal time 25 (250); c: 5 → none before; d: 30 → 30 (300);
    // e: user 3 has no features; f: no time.
    assert_eq!(ints(&out, "value"), vec![100, 250, i64::MIN, 300, i64::MIN, i64::MIN]);
    assert_eq!(ints(&out, "fts"), vec![5, 25, i64::MIN, 30, i64::MIN, i64::MIN]);
}

/// Spark's null ordering: ascending puts nulls first, descending last, in SQL and in order_by.
#[tokio::test]
async fn nulls_order_as_in_spark() {
    let session = Session::new();
    let df = session.sql("SELECT * FROM (VALUES (2), (NULL), (1)) AS t(x)").await.unwrap();
    assert_eq!(ints(&df.order_by(&["x"]).unwrap().collect().await.unwrap(), "x"), vec![i64::MIN, 1, 2]);
    assert_eq!(ints(&df.order_by(&["x DESC"]).unwrap().collect().await.unwrap(), "x"), vec![2, 1, i64::MIN]);
    let sql = session.sql("SELECT x FROM (VALUES (2), (NULL), (1)) AS t(x) ORDER BY x").await.unwrap();
    assert_eq!(ints(&sql.collect().await.unwrap(), "x"), vec![i64::MIN, 1, 2]);
}

fn committed(o: delta_exec::Outcome) -> (Option<i64>, Vec<(String, String)>) {
    match o {
        delta_exec::Outcome::Committed { version, metrics } => (version, metrics),
        delta_exec::Outcome::Rows(_) => panic!("expected a commit"),
    }
}

async fn rows_of(session: &Session, sql: &str) -> Vec<RecordBatch> {
    match session.execute(sql).await.unwrap() {
        delta_exec::Outcome::Rows(df) => df.collect().await.unwrap(),
        delta_exec::Outcome::Committed { .. } => panic!("expected rows"),
    }
}

/// CTAS (one commit: version 0 holds protocol, metadata and data), INSERT INTO / OVERWRITE by
/// position, INSERT VALUES, and time travel in SQL by version and timestamp.
#[tokio::test]
async fn sql_statements_write_and_travel() {
    let src = TempDir::new("ctas-src");
    let dst = TempDir::new("ctas-dst");
    table_with(&src, 20, 1, WriteOptions::default()).await;
    let session = Session::new();
    session.register_delta("src", src.path()).await.unwrap();
    let ctas = format!(
        "CREATE TABLE delta.`{}` PARTITIONED BY (grp) TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true') AS SELECT id, amount, grp FROM src WHERE id < 10",
        dst.path()
    );
    let (version, _) = committed(session.execute(&ctas).await.unwrap());
    assert_eq!(version, Some(0));
    let snap = Table::open(dst.path()).unwrap().snapshot().await.unwrap();
    assert_eq!(snap.partition_columns(), &["grp".to_string()]);
    assert_eq!(snap.metadata().property("delta.enableChangeDataFeed"), Some("true"));
    assert_eq!(snap.num_files(), 5);
    // Again: the table exists.
    assert!(session.execute(&ctas).await.is_err());
    let (v, _) = committed(session.execute(&ctas.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS")).await.unwrap());
    assert_eq!(v, None);

    session.register_delta("dst", dst.path()).await.unwrap();
    // By position: the query's names do not matter.
    let (v, _) = committed(session.execute("INSERT INTO dst SELECT id + 100 AS x, amount AS y, grp AS z FROM src WHERE id < 3").await.unwrap());
    assert_eq!(v, Some(1));
    let (v, _) = committed(session.execute("INSERT INTO dst (id, amount, grp) VALUES (500, 5000, 'g9')").await.unwrap());
    assert_eq!(v, Some(2));
    let count = |sql: &'static str| {
        let session = session.clone();
        async move { ints(&rows_of(&session, sql).await, "n")[0] }
    };
    assert_eq!(count("SELECT count(*) AS n FROM dst").await, 14);
    assert_eq!(count("SELECT count(*) AS n FROM dst VERSION AS OF 0").await, 10);
    assert_eq!(count("SELECT count(*) AS n FROM dst VERSION AS OF 1").await, 13);
    let path_v1 = format!("SELECT count(*) AS n FROM delta.`{}` VERSION AS OF 1 WHERE grp = 'g9'", dst.path());
    assert_eq!(ints(&rows_of(&session, &path_v1).await, "n")[0], 0);
    // A join of two versions of one table.
    let diff = "SELECT count(*) AS n FROM dst d LEFT ANTI JOIN dst VERSION AS OF 0 AS old ON d.id = old.id";
    assert_eq!(count(diff).await, 4);
    // After the latest commit is an error, as in delta-spark; at a commit's time, that version.
    assert!(session.execute("SELECT count(*) AS n FROM dst TIMESTAMP AS OF '2999-01-01 00:00:00'").await.is_err());
    let history = Table::open(dst.path()).unwrap().history(None).await.unwrap();
    let v1 = history.iter().find(|c| c.version == 1).unwrap();
    let at = chrono::DateTime::from_timestamp_millis(v1.timestamp_ms).unwrap().format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    let by_time = format!("SELECT count(*) AS n FROM dst TIMESTAMP AS OF '{at}'");
    assert_eq!(ints(&rows_of(&session, &by_time).await, "n")[0], 13);
    assert!(session.execute("SELECT count(*) FROM dst TIMESTAMP AS OF '1999-01-01'").await.is_err());
    assert!(session.execute("SELECT count(*) FROM dst VERSION AS OF 99").await.is_err());
    assert!(session.execute("INSERT INTO dst SELECT id FROM src").await.is_err(), "one column for three");

    let (v, _) = committed(session.execute("INSERT OVERWRITE TABLE dst SELECT id, amount, grp FROM src WHERE id = 7").await.unwrap());
    assert_eq!(v, Some(3));
    assert_eq!(count("SELECT count(*) AS n FROM dst").await, 1);
    // spark.sql runs a write at once; its frame is the commit.
    let out = session.sql("DELETE FROM dst WHERE id = 7").await.unwrap().collect().await.unwrap();
    assert_eq!((ints(&out, "version"), ints(&out, "numDeletedRows")), (vec![4], vec![1]));
    assert_eq!(count("SELECT count(*) AS n FROM dst").await, 0);
    // A filter on a column the query does not select (pushed exactly, read by the scan).
    let out = rows_of(&session, "SELECT id FROM src WHERE amount > 150 AND grp <> 'g0' ORDER BY id").await;
    assert_eq!(ints(&out, "id"), vec![16, 17, 18, 19]);
}

/// Delta's own statements through the session: DDL by path and by registered name, INSERT …
/// REPLACE WHERE with a query, DESCRIBE as a frame, and `table_changes(…)` by version and by
/// timestamp.
#[tokio::test]
async fn delta_statements_by_name_and_table_changes() {
    let src = TempDir::new("ddl-src");
    let dst = TempDir::new("ddl-dst");
    table_with(&src, 20, 1, WriteOptions::default()).await;
    let session = Session::new();
    session.register_delta("src", src.path()).await.unwrap();
    let create = format!(
        "CREATE TABLE delta.`{}` (id BIGINT, amount BIGINT, grp STRING) USING delta TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')",
        dst.path()
    );
    assert_eq!(committed(session.execute(&create).await.unwrap()).0, Some(0));
    let insert = format!("INSERT INTO delta.`{}` SELECT id, amount, grp FROM src WHERE id < 5", dst.path());
    assert_eq!(committed(session.execute(&insert).await.unwrap()).0, Some(1));
    session.register_delta("dst", dst.path()).await.unwrap();
    assert_eq!(committed(session.execute("ALTER TABLE dst ADD COLUMNS (note STRING)").await.unwrap()).0, Some(2));
    let replace = "INSERT INTO dst REPLACE WHERE id < 2 SELECT id, amount * 10, grp, 'replaced' FROM src WHERE id < 2";
    assert_eq!(committed(session.execute(replace).await.unwrap()).0, Some(3));
    let out = rows_of(&session, "SELECT id, amount, note FROM dst ORDER BY id").await;
    assert_eq!(ints(&out, "id"), vec![0, 1, 2, 3, 4]);
    assert_eq!(ints(&out, "amount"), vec![0, 100, 20, 30, 40]);
    assert_eq!(strings(&out, "note"), vec![Some("replaced".into()), Some("replaced".into()), None, None, None]);
    // A replacement that writes rows outside its predicate is refused and commits nothing.
    assert!(session.execute("INSERT INTO dst REPLACE WHERE id < 2 SELECT id, amount, grp, 'x' FROM src WHERE id = 9").await.is_err());

    let detail = rows_of(&session, "DESCRIBE DETAIL dst").await;
    assert_eq!(ints(&detail, "numFiles").len(), 1);
    let history = rows_of(&session, "DESCRIBE HISTORY dst").await;
    assert_eq!(ints(&history, "version"), vec![3, 2, 1, 0]);

    let feed = rows_of(&session, "SELECT id, _change_type FROM table_changes('dst', 1, 1) ORDER BY id").await;
    assert_eq!(ints(&feed, "id"), vec![0, 1, 2, 3, 4]);
    assert_eq!(strings(&feed, "_change_type"), vec![Some("insert".into()); 5]);
    let by_path = format!("SELECT count(*) AS n FROM table_changes('{}', 3) WHERE _change_type = 'insert'", dst.path());
    assert_eq!(ints(&rows_of(&session, &by_path).await, "n"), vec![2]);
    let v1 = Table::open(dst.path()).unwrap().history(None).await.unwrap().into_iter().find(|c| c.version == 1).unwrap();
    let at = chrono::DateTime::from_timestamp_millis(v1.timestamp_ms).unwrap().format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    let by_time = format!("SELECT count(*) AS n FROM table_changes('dst', '{at}', '{at}')");
    assert_eq!(ints(&rows_of(&session, &by_time).await, "n"), vec![5]);
    assert!(session.execute("SELECT * FROM table_changes('dst')").await.is_err());
    assert!(session.execute("SELECT * FROM table_changes('nope', 0)").await.is_err());
}

/// MERGE with a query as its source, in SQL and from a DataFrame.
#[tokio::test]
async fn merge_from_queries_and_dataframes() {
    let dir = TempDir::new("mergedf");
    let src = TempDir::new("mergedf-src");
    table_with(&dir, 10, 1, WriteOptions::default()).await;
    table_with(&src, 20, 1, WriteOptions::default()).await;
    let session = Session::new();
    session.register_delta("updates", src.path()).await.unwrap();
    let merge = format!(
        "MERGE INTO delta.`{}` t USING (SELECT id, amount * 2 AS amount, grp FROM updates WHERE id >= 8 AND id < 12) s ON t.id = s.id \
         WHEN MATCHED THEN UPDATE SET amount = s.amount WHEN NOT MATCHED THEN INSERT *",
        dir.path()
    );
    let (v, metrics) = committed(session.execute(&merge).await.unwrap());
    assert_eq!(v, Some(1));
    assert!(metrics.contains(&("numTargetRowsUpdated".to_string(), "2".to_string())), "{metrics:?}");
    assert!(metrics.contains(&("numTargetRowsInserted".to_string(), "2".to_string())), "{metrics:?}");
    let df = session.read().delta(dir.path()).await.unwrap().order_by(&["id"]).unwrap().collect().await.unwrap();
    assert_eq!(ints(&df, "id"), (0..12).collect::<Vec<_>>());
    assert_eq!(ints(&df, "amount"), (0..12).map(|i| if i >= 8 { i * 20 } else { i * 10 }).collect::<Vec<_>>());

    // A registered table by name as the source.
    let by_name = format!("MERGE INTO delta.`{}` AS t USING updates AS s ON t.id = s.id WHEN NOT MATCHED THEN INSERT *", dir.path());
    let (_, metrics) = committed(session.execute(&by_name).await.unwrap());
    assert!(metrics.contains(&("numTargetRowsInserted".to_string(), "8".to_string())), "{metrics:?}");

    // From a DataFrame: delete the rows the frame names.
    let doomed = session.read().delta(src.path()).await.unwrap().filter("id % 2 = 1").unwrap();
    let table = delta_exec::DeltaTable::for_path(&session, dir.path()).unwrap();
    let result = table.merge(&doomed, "t.id = s.id").await.unwrap().when_matched_delete().execute().await.unwrap();
    assert_eq!(result.metric("numTargetRowsDeleted"), 10);
    assert_eq!(table.to_df().await.unwrap().count().await.unwrap(), 10);
    // A source query that fails fails the MERGE, and commits nothing.
    let before = table.table().snapshot().await.unwrap().version();
    let bad = session.sql("SELECT id, CAST(grp AS INT) AS amount FROM updates").await.unwrap();
    assert!(table.merge(&bad, "t.id = s.id").await.unwrap().when_matched_update(&[("amount", "s.amount")]).execute().await.is_err());
    assert_eq!(table.table().snapshot().await.unwrap().version(), before);
}

/// Tables named ``parquet.`path` `` in SQL: one file or a folder of files, joinable with Delta.
#[tokio::test]
async fn parquet_paths_in_queries() {
    let dir = TempDir::new("pq");
    let files = dir.0.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (i, range) in [(0, 0..50), (1, 50..80)] {
        let batch = rows(range);
        let f = std::fs::File::create(files.join(format!("part-{i}.parquet"))).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let delta = dir.0.join("delta");
    Table::open(delta.to_str().unwrap()).unwrap().write(vec![rows(0..10)], WriteOptions::default()).await.unwrap();
    let session = Session::new();
    let q = format!("SELECT count(*) AS n, sum(id) AS s FROM parquet.`{}`", files.display());
    let out = session.sql(&q).await.unwrap().collect().await.unwrap();
    assert_eq!((ints(&out, "n"), ints(&out, "s")), (vec![80], vec![(0..80).sum::<i64>()]));
    let one = format!("SELECT count(*) AS n FROM parquet.`{}`", files.join("part-1.parquet").display());
    assert_eq!(ints(&session.sql(&one).await.unwrap().collect().await.unwrap(), "n"), vec![30]);
    let join = format!(
        "SELECT count(*) AS n FROM parquet.`{}` p JOIN delta.`{}` d ON p.id = d.id WHERE p.grp = 'g1'",
        files.display(),
        delta.display()
    );
    assert_eq!(ints(&session.sql(&join).await.unwrap().collect().await.unwrap(), "n"), vec![2]);
    let missing = format!("SELECT * FROM parquet.`{}`", dir.0.join("nope").display());
    let err = session.sql(&missing).await.err().expect("a missing path is an error").to_string();
    assert!(err.contains("no such file or folder"), "{err}");
}

/// INSERT takes the table's column types, as Spark's store assignment does: a decimal literal
/// (a float to DataFusion) into DECIMAL, a date string into DATE, an integer into a narrower
/// INT; a value that does not fit the type is an error and commits nothing.
#[tokio::test]
async fn insert_casts_to_the_table_types() {
    let dir = TempDir::new("insert-types");
    let session = Session::new();
    let t = format!("delta.`{}`", dir.path());
    session.execute(&format!("CREATE TABLE {t} (price DECIMAL(15,2), day DATE, n INT, name STRING) USING delta")).await.unwrap();
    let (v, _) = committed(session.execute(&format!("INSERT INTO {t} VALUES (1.10, '2024-03-05', 7, 'a'), (2.25, '2024-12-31', 8, 'b')")).await.unwrap());
    assert_eq!(v, Some(1));
    let (v, _) = committed(session.execute(&format!("INSERT INTO {t} (name, price) SELECT 'c', 3.5")).await.unwrap());
    assert_eq!(v, Some(2));
    let out = rows_of(&session, &format!("SELECT CAST(sum(price) AS VARCHAR) AS s, CAST(max(day) AS VARCHAR) AS d, sum(n) AS n FROM {t}")).await;
    let text = arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string();
    assert!(text.contains("6.85") && text.contains("2024-12-31") && text.contains("15"), "{text}");
    let schema = Table::open(dir.path()).unwrap().snapshot().await.unwrap().arrow_schema();
    assert_eq!(schema.field(0).data_type(), &arrow::datatypes::DataType::Decimal128(15, 2));
    // Too large for DECIMAL(15,2), and not a date: errors, nothing committed.
    assert!(session.execute(&format!("INSERT INTO {t} (price) VALUES (1e20)")).await.is_err());
    assert!(session.execute(&format!("INSERT INTO {t} (day) VALUES ('not a date')")).await.is_err());
    assert_eq!(Table::open(dir.path()).unwrap().snapshot().await.unwrap().version(), 2);
}
