//! As-of joins against Polars' own answers, and point-in-time feature lookups against a naive
//! model over random histories of a real Delta table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::Table;
use delta_exec::{AsOf, AsOfDirection, DataFrame, DeltaTable, FeatureTime, Session};

use crate::{ints, props, TempDir};

fn data(name: &str) -> String {
    format!("{}/tests/data/asof/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Every strategy, with and without `by` and a tolerance, on integer and timestamp times: the
/// rows Polars 2.1 matched (`tests/data/asof/make_expected.py` wrote inputs and answers).
#[tokio::test]
async fn join_asof_answers_as_polars() {
    let session = Session::new();
    let read = |name: &str| format!("SELECT * FROM parquet.`{}`", data(name));
    let left = session.sql(&read("left.parquet")).await.unwrap();
    let right = session.sql(&read("right.parquet")).await.unwrap();
    for direction in ["backward", "forward", "nearest"] {
        for tol in [false, true] {
            for by in [false, true] {
                let name = format!("expected_{direction}_{}_{}.parquet", if tol { "tol" } else { "notol" }, if by { "by" } else { "noby" });
                let expected = session.sql(&read(&name)).await.unwrap().order_by(&["id"]).unwrap().collect().await.unwrap();
                for (on, tolerance) in [("t", "3"), ("ts", "INTERVAL 3 SECONDS")] {
                    let mut spec = AsOf::new(on, on).direction(AsOfDirection::parse(direction).unwrap());
                    if by {
                        spec = spec.by(&["g"]);
                    }
                    if tol {
                        spec = spec.tolerance(tolerance);
                    }
                    let out = left.join_asof_with(&right, &spec).unwrap();
                    let out = out.select(&["id", "rid"]).unwrap().order_by(&["id"]).unwrap().collect().await.unwrap();
                    assert_eq!(ints(&out, "id"), ints(&expected, "id"), "{name} on {on}");
                    assert_eq!(ints(&out, "rid"), ints(&expected, "rid"), "{name} on {on}");
                }
            }
        }
    }
    // Names both sides have get `_right` on the right's, by keys appear once.
    let out = left.join_asof_with(&right, &AsOf::new("t", "t").by(&["g"])).unwrap();
    let names: Vec<String> = out.inner().schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "g", "t", "ts", "rid", "t_right", "ts_right"]);
    assert!(AsOfDirection::parse("sideways").is_err());
}

/// splitmix64: the seeds of the random histories.
pub(crate) struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// One change of one key in the naive model: its value (None: deleted), effective time, version.
#[derive(Debug, Clone, Copy)]
struct Change {
    user: i64,
    value: Option<i64>,
    ft: i64,
    version: i64,
}

fn features(users: &[i64], values: &[i64], fts: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, true),
        Field::new("f", DataType::Int64, true),
        Field::new("ft", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(users.to_vec())), Arc::new(Int64Array::from(values.to_vec())), Arc::new(Int64Array::from(fts.to_vec()))],
    )
    .unwrap()
}

fn frame(session: &Session, batch: RecordBatch) -> DataFrame {
    DataFrame::from_datafusion(session, session.context().read_batch(batch).unwrap())
}

/// A random history of upserts and deletes on a feature table with the change feed on; labels
/// at random times get exactly the values a naive scan of the history says were current, under
/// both feature times — never a value written after the label's time.
#[tokio::test]
async fn features_as_of_match_a_naive_model_of_the_history() {
    for seed in 0..8u64 {
        features_as_of_case(seed).await;
    }
}

async fn features_as_of_case(seed: u64) {
    let dir = TempDir::new("pit");
    let session = Session::new();
    let mut rng = Rng(seed);
    let n_users = 2 + rng.below(6);
    let mut model: Vec<Change> = Vec::new();
    let table = Table::open(dir.path()).unwrap();
    let first: Vec<i64> = (0..n_users).filter(|_| rng.below(2) == 0).chain([0]).collect();
    let fts: Vec<i64> = first.iter().map(|_| rng.below(40)).collect();
    let values: Vec<i64> = first.iter().map(|u| u * 1000).collect();
    let opts = WriteOptions { mode: SaveMode::Append, properties: props(&[("delta.enableChangeDataFeed", "true")]), ..Default::default() };
    table.write(vec![features(&first, &values, &fts)], opts).await.unwrap();
    model.extend(first.iter().zip(&fts).zip(&values).map(|((&user, &ft), &v)| Change { user, value: Some(v), ft, version: 0 }));
    let handle = DeltaTable::for_path(&session, dir.path()).unwrap();
    let commits = 2 + rng.below(6);
    for version in 1..=commits {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let extra = rng.below(n_users as u64);
        let users: Vec<i64> = (0..n_users).filter(|_| rng.below(3) == 0).chain([extra]).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        if rng.below(4) == 0 {
            let list = users.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(", ");
            let result = table.delete(Some(&format!("user_id IN ({list})"))).await.unwrap();
            // A delete that matched nothing commits nothing.
            let live = |u: &i64| model.iter().rev().find(|c| c.user == *u).is_some_and(|c| c.value.is_some());
            let hit: Vec<i64> = users.iter().copied().filter(live).collect();
            if result.version.is_none() {
                assert!(hit.is_empty(), "seed {seed}: the delete of {users:?} committed nothing");
                continue;
            }
            assert!(!hit.is_empty(), "seed {seed}: the delete of {users:?} committed with no live row");
            model.extend(hit.iter().map(|&user| Change { user, value: None, ft: i64::MIN, version }));
        } else {
            let fts: Vec<i64> = users.iter().map(|_| rng.below(100)).collect();
            let values: Vec<i64> = users.iter().map(|u| version * 1000 + u).collect();
            let source = frame(&session, features(&users, &values, &fts));
            let result = handle.merge(&source, "t.user_id = s.user_id").await.unwrap().when_matched_update_all().when_not_matched_insert_all().execute().await.unwrap();
            assert!(result.version.is_some(), "seed {seed}");
            model.extend(users.iter().zip(&fts).zip(&values).map(|((&user, &ft), &v)| Change { user, value: Some(v), ft, version }));
        }
    }
    let snapshot = table.snapshot().await.unwrap();
    let latest = snapshot.version();
    // Versions are dense here: a delete that matched nothing did not commit and did not count.
    let mut committed: Vec<i64> = model.iter().map(|c| c.version).collect();
    committed.dedup();
    let renumber: HashMap<i64, i64> = committed.iter().enumerate().map(|(i, v)| (*v, i as i64)).collect();
    for c in &mut model {
        c.version = renumber[&c.version];
    }
    assert_eq!(*renumber.values().max().unwrap(), latest, "seed {seed}");
    let commit_ms: HashMap<i64, i64> = table.history(None).await.unwrap().into_iter().map(|r| (r.version, r.timestamp_ms)).collect();

    // Labels: every user and one unknown, at random effective times and commit-clock times.
    let (lo, hi) = (commit_ms[&0] - 2, commit_ms[&latest] + 2);
    let mut lids = Vec::new();
    let mut users = Vec::new();
    let mut ts = Vec::new();
    let mut clock = Vec::new();
    for user in 0..=n_users {
        for _ in 0..6 {
            lids.push(lids.len() as i64);
            users.push(user);
            ts.push(rng.below(110) - 5);
            clock.push((lo + rng.below((hi - lo + 1) as u64)) * 1000 + 500 * rng.below(2));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("lid", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]));
    let labels = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(lids.clone())),
            Arc::new(Int64Array::from(users.clone())),
            Arc::new(Int64Array::from(ts.clone())),
            Arc::new(TimestampMicrosecondArray::from(clock.clone()).with_timezone("UTC")),
        ],
    )
    .unwrap();
    let labels = frame(&session, labels);

    // Effective time: the latest (ft, version) at or before t among values; deletes end nothing.
    let out = labels.join_features_as_of(dir.path(), &["user_id"], "t", FeatureTime::Column("ft".into())).await.unwrap();
    let out = out.order_by(&["lid"]).unwrap().collect().await.unwrap();
    let (got_f, got_v) = (ints(&out, "f"), ints(&out, "_feature_version"));
    for i in 0..lids.len() {
        let best = model.iter().filter(|c| c.user == users[i] && c.value.is_some() && c.ft <= ts[i]).max_by_key(|c| (c.ft, c.version));
        let want = best.map_or((i64::MIN, i64::MIN), |c| (c.value.unwrap_or(i64::MIN), c.version));
        assert_eq!((got_f[i], got_v[i]), want, "seed {seed}: label {i} (user {}, t {}) by effective time; history {model:?}", users[i], ts[i]);
    }

    // Commit time: the latest change committed at or before the label's time; a delete is null.
    let out = labels.join_features_as_of(dir.path(), &["user_id"], "at", FeatureTime::Commit).await.unwrap();
    let out = out.order_by(&["lid"]).unwrap().collect().await.unwrap();
    let (got_f, got_v) = (ints(&out, "f"), ints(&out, "_feature_version"));
    for i in 0..lids.len() {
        let best = model.iter().filter(|c| c.user == users[i] && commit_ms[&c.version] * 1000 <= clock[i]).max_by_key(|c| (commit_ms[&c.version], c.version));
        let want = best.map_or((i64::MIN, i64::MIN), |c| (c.value.unwrap_or(i64::MIN), c.version));
        assert_eq!((got_f[i], got_v[i]), want, "seed {seed}: label {i} (user {}, at {} µs) by commit time; commits {commit_ms:?}; history {model:?}", users[i], clock[i]);
    }
}

/// Spark's change feed reader options, and their errors.
#[tokio::test]
async fn read_change_feed_options() {
    let dir = TempDir::new("cdfread");
    let table = Table::open(dir.path()).unwrap();
    let opts = WriteOptions { mode: SaveMode::Append, properties: props(&[("delta.enableChangeDataFeed", "true")]), ..Default::default() };
    table.write(vec![features(&[1, 2], &[10, 20], &[0, 0])], opts).await.unwrap();
    table.write(vec![features(&[3], &[30], &[0])], WriteOptions::default()).await.unwrap();
    table.delete(Some("user_id = 1")).await.unwrap();
    let session = Session::new();
    let read = |start: &str| session.read().option("readChangeFeed", "true").unwrap().option("startingVersion", start).unwrap();
    let all = read("0").delta(dir.path()).await.unwrap().order_by(&["_commit_version", "user_id"]).unwrap().collect().await.unwrap();
    assert_eq!(ints(&all, "_commit_version"), vec![0, 0, 1, 2]);
    assert_eq!(ints(&all, "user_id"), vec![1, 2, 3, 1]);
    let one = read("1").option("endingVersion", "1").unwrap().delta(dir.path()).await.unwrap().collect().await.unwrap();
    assert_eq!(ints(&one, "user_id"), vec![3]);
    assert!(session.read().option("readChangeFeed", "true").unwrap().delta(dir.path()).await.is_err(), "no startingVersion");
    assert!(read("9").delta(dir.path()).await.is_err(), "a version past the latest");
    assert!(session.read().option("startingVersion", "x").is_err());
    assert!(session.read().option("nonsense", "1").is_err());
}
