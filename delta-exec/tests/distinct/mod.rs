//! The split of aggregates that mix DISTINCT with plain ones (`delta_exec::distinct`).

use arrow::array::Int64Array;
use arrow::datatypes::DataType;
use delta_exec::Session;

use crate::asof::Rng;
use crate::ints;

/// Aggregates mixing DISTINCT with plain ones are split in two and joined back (delta-exec's
/// `MixedDistinctToJoin`): the same answers as the unsplit plan — null keys and values, every
/// supported function — and no split over a window, whose input would be computed twice.
#[tokio::test]
async fn mixed_distinct_aggregates_keep_their_answers() {
    let session = Session::new();
    let mut rng = Rng(7);
    let mut rows = Vec::new();
    for _ in 0..3000 {
        let k = if rng.below(20) == 0 { "NULL".to_string() } else { rng.below(40).to_string() };
        let x = if rng.below(10) == 0 { "NULL".to_string() } else { format!("'v{}'", rng.below(15)) };
        let n = if rng.below(10) == 0 { "NULL".to_string() } else { rng.below(9).to_string() };
        rows.push(format!("({k}, {x}, {n}, {})", rng.below(1000)));
    }
    let t = format!("(VALUES {}) AS t(k, x, n, y)", rows.join(", "));
    let query = format!(
        "SELECT k, count(*) AS c, count(DISTINCT x) AS dx, avg(y) AS ay, stddev(y) AS sy, max(y) AS my FROM {t} GROUP BY k ORDER BY k"
    );
    let split = session.sql(&query).await.unwrap();
    let plan = split.explain(false).await.unwrap();
    assert!(plan.contains("__mixed_distinct"), "the rule did not fire:\n{plan}");
    let got = split.collect().await.unwrap();
    // The same aggregate with the rule out of reach: per key, from one pass in the test.
    let base = session.sql(&format!("SELECT k, x, n, y FROM {t}")).await.unwrap().collect().await.unwrap();
    let mut by_key: std::collections::BTreeMap<Option<i64>, (i64, std::collections::BTreeSet<String>, Vec<f64>)> = Default::default();
    for b in &base {
        let k = arrow::compute::cast(b.column(0), &DataType::Int64).unwrap();
        let k = k.as_any().downcast_ref::<Int64Array>().unwrap();
        let x = arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
        let x = x.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        let y = arrow::compute::cast(b.column(3), &DataType::Int64).unwrap();
        let y = y.as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            let e = by_key.entry(if arrow::array::Array::is_null(k, i) { None } else { Some(k.value(i)) }).or_default();
            e.0 += 1;
            if arrow::array::Array::is_valid(x, i) {
                e.1.insert(x.value(i).to_string());
            }
            e.2.push(y.value(i) as f64);
        }
    }
    let keys = ints(&got, "k");
    let (c, dx, my) = (ints(&got, "c"), ints(&got, "dx"), ints(&got, "my"));
    let ay: Vec<f64> = got.iter().flat_map(|b| b.column_by_name("ay").unwrap().as_any().downcast_ref::<arrow::array::Float64Array>().unwrap().values().to_vec()).collect();
    assert_eq!(keys.len(), by_key.len());
    for (i, (k, (n, xs, ys))) in by_key.iter().enumerate() {
        assert_eq!(keys[i], k.unwrap_or(i64::MIN), "key order (nulls first)");
        assert_eq!(c[i], *n, "count(*) of {k:?}");
        assert_eq!(dx[i], xs.len() as i64, "count(DISTINCT x) of {k:?}");
        assert_eq!(my[i], ys.iter().cloned().fold(f64::MIN, f64::max) as i64);
        assert!((ay[i] - ys.iter().sum::<f64>() / ys.len() as f64).abs() < 1e-9);
    }
    // sum/avg/min/max DISTINCT of a number, and count(DISTINCT) beside them.
    let q2 = format!("SELECT k, sum(DISTINCT n) AS s, avg(DISTINCT n) AS a, min(DISTINCT n) AS lo, count(DISTINCT n) AS cn, count(n) AS c FROM {t} GROUP BY k ORDER BY k");
    let got = session.sql(&q2).await.unwrap().collect().await.unwrap();
    let plain = format!(
        "WITH d AS (SELECT DISTINCT k, n FROM {t}), c AS (SELECT k, count(n) AS c FROM {t} GROUP BY k) \
         SELECT d.k, sum(n) AS s, avg(n) AS a, min(n) AS lo, count(n) AS cn, max(c.c) AS c FROM d JOIN c ON d.k IS NOT DISTINCT FROM c.k GROUP BY d.k ORDER BY d.k"
    );
    let want = session.sql(&plain).await.unwrap().collect().await.unwrap();
    for col in ["s", "lo", "cn", "c"] {
        assert_eq!(ints(&got, col), ints(&want, col), "{col}");
    }
    assert_eq!(ints(&got, "k"), ints(&want, "k"));
    // Over a window the input would be computed twice: no split.
    let windowed = format!("SELECT k, sum(p), count(DISTINCT x) FROM (SELECT k, x, lag(y) OVER (PARTITION BY k ORDER BY y) AS p FROM {t}) GROUP BY k");
    let plan = session.sql(&windowed).await.unwrap().explain(false).await.unwrap();
    assert!(!plan.contains("__mixed_distinct"), "{plan}");
}

/// Two distinct arguments, with and without plain aggregates beside them: one half each.
#[tokio::test]
async fn several_distinct_arguments_are_split_too() {
    let session = Session::new();
    let t = "(VALUES (1, 'a', 'x', 5), (1, 'a', 'y', 6), (1, 'b', 'y', NULL), (2, NULL, 'x', 1), (NULL, 'c', 'z', 2), (NULL, 'c', NULL, 3)) AS t(k, a, b, v)";
    for (q, fires) in [
        (format!("SELECT k, count(DISTINCT a) AS da, count(DISTINCT b) AS db FROM {t} GROUP BY k ORDER BY k"), true),
        (format!("SELECT k, count(DISTINCT a) AS da, count(DISTINCT b) AS db, sum(v) AS sv FROM {t} GROUP BY k ORDER BY k"), true),
        (format!("SELECT k, count(DISTINCT a) AS da FROM {t} GROUP BY k ORDER BY k"), false),
    ] {
        let df = session.sql(&q).await.unwrap();
        let plan = df.explain(false).await.unwrap();
        assert_eq!(plan.contains("__mixed_distinct"), fires, "{q}\n{plan}");
        let out = df.collect().await.unwrap();
        assert_eq!(ints(&out, "k"), vec![i64::MIN, 1, 2]);
        assert_eq!(ints(&out, "da"), vec![1, 2, 0]);
        if fires {
            assert_eq!(ints(&out, "db"), vec![1, 2, 1]);
        }
        if q.contains("sv") {
            assert_eq!(ints(&out, "sv"), vec![5, 11, 1]);
        }
    }
}

/// The DataFrame verbs reach the rule too, through a broadcast-hinted join.
#[tokio::test]
async fn dataframe_aggregates_over_a_broadcast_join_are_split() {
    let session = Session::new();
    let events = session.sql("SELECT * FROM (VALUES (1, 'a', 2.0), (1, 'b', 3.0), (2, 'a', 4.0)) AS e(user_id, category, amount)").await.unwrap();
    let cats = session.sql("SELECT * FROM (VALUES ('a', 'g1'), ('b', 'g2')) AS c(category, grp)").await.unwrap();
    let df = events
        .join(&delta_exec::broadcast(&cats), &["category"], "left")
        .unwrap()
        .group_by(&["user_id"])
        .unwrap()
        .agg(&["count(*) AS n", "avg(amount) AS a", "count(DISTINCT category) AS dc", "count(DISTINCT grp) AS dg"])
        .unwrap()
        .order_by(&["user_id"])
        .unwrap();
    let plan = df.explain(false).await.unwrap();
    assert!(plan.contains("__mixed_distinct"), "{plan}");
    let out = df.collect().await.unwrap();
    assert_eq!(ints(&out, "n"), vec![2, 1]);
    assert_eq!(ints(&out, "dc"), vec![2, 1]);
    assert_eq!(ints(&out, "dg"), vec![2, 1]);
}
