//! Fitted values against MLlib's on the same data (`tests/data/mllib_refs.json`, made by
//! `tests/data/make_mllib_refs.py` with PySpark 4.3.0, MLlib's default `tol` and `maxIter`).

use delta_ml::evaluation::Evaluator;
use delta_ml::par::with_threads;
use delta_ml::stage::{transform_frame, Estimator, Frame};
use delta_ml::*;
use serde_json::Value;

use crate::{floats, mllib_refs, read_csv, vector_frame};

fn with_params<E: Estimator>(mut e: E, params: &Value) -> E {
    e.params_mut().set_json(params).unwrap();
    e
}

/// Max |ours − MLlib| / max(1, |MLlib|) over paired values.
fn rel_diff(ours: &[f64], spark: &[f64]) -> f64 {
    assert_eq!(ours.len(), spark.len());
    ours.iter().zip(spark).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max)
}

fn auc(model: &std::sync::Arc<dyn Transformer>, f: &Frame) -> f64 {
    BinaryClassificationEvaluator::new().evaluate_frame(&transform_frame(model.as_ref(), f).unwrap()).unwrap()
}

#[test]
fn logistic_regression_binomial_matches_mllib() {
    let refs = mllib_refs();
    let (x, y) = read_csv("breast_cancer_200x5.csv");
    let f = vector_frame(&x, &y);
    for case in ["binomial_l2_std", "binomial_l2_nostd", "binomial_enet", "binomial_l1_nostd", "binomial_noint"] {
        let r = &refs[format!("lr_{case}")];
        let m = with_params(LogisticRegression::new(), &r["params"]).fit_frame(&f).unwrap();
        let lr = m.as_any().downcast_ref::<LogisticRegressionModel>().unwrap();
        let mut ours = lr.coefficients().to_vec();
        ours.push(lr.intercept());
        let mut spark = floats(&r["coefficients"]);
        spark.push(r["intercept"].as_f64().unwrap());
        let d = rel_diff(&ours, &spark);
        // MLlib stopped at maxIter (100) on the L1 case without standardisation, short of the
        // optimum; elsewhere both runs converge under tol = 1e-6.
        let tol = if case == "binomial_l1_nostd" { 5e-2 } else { 1e-4 };
        assert!(d < tol, "{case}: rel diff {d:e}\n ours  {ours:?}\n spark {spark:?}");
        let a = auc(&m, &f);
        let auc_tol = if case == "binomial_l1_nostd" { 1e-3 } else { 1e-4 };
        assert!((a - r["auc"].as_f64().unwrap()).abs() < auc_tol, "{case}: auc {a} vs {}", r["auc"]);
        // L1 zeros are exact zeros, where MLlib's are.
        for (o, s) in ours.iter().zip(&spark) {
            if *s == 0.0 && case != "binomial_l1_nostd" {
                assert_eq!(*o, 0.0, "{case}");
            }
        }
    }
}

#[test]
fn logistic_regression_multinomial_matches_mllib() {
    let refs = mllib_refs();
    let (x, y) = read_csv("iris.csv");
    let f = vector_frame(&x, &y);
    for case in ["multinomial_l2", "multinomial_enet", "multinomial_noreg"] {
        let r = &refs[format!("lr_{case}")];
        let m = with_params(LogisticRegression::new(), &r["params"]).fit_frame(&f).unwrap();
        let lr = m.as_any().downcast_ref::<LogisticRegressionModel>().unwrap();
        let mut ours: Vec<f64> = lr.coefficient_matrix().concat();
        ours.extend_from_slice(lr.intercept_vector());
        let mut spark: Vec<f64> = r["coefficientMatrix"].as_array().unwrap().iter().flat_map(floats).collect();
        spark.extend(floats(&r["interceptVector"]));
        let d = rel_diff(&ours, &spark);
        // Without regularisation iris is separable and MLlib stops at maxIter = 30 on a
        // direction with no optimum; only the predictions are comparable there.
        if case != "multinomial_noreg" {
            assert!(d < 1e-3, "{case}: rel diff {d:e}\n ours  {ours:?}\n spark {spark:?}");
        }
        let out = transform_frame(m.as_ref(), &f).unwrap();
        let acc = MulticlassClassificationEvaluator::new().with("metricName", "accuracy").unwrap().evaluate_frame(&out).unwrap();
        assert!(acc >= r["accuracy"].as_f64().unwrap() - 1e-9, "{case}: accuracy {acc} vs {}", r["accuracy"]);
        if case != "multinomial_noreg" {
            let ll = MulticlassClassificationEvaluator::new().with("metricName", "logLoss").unwrap().evaluate_frame(&out).unwrap();
            assert!((ll - r["logLoss"].as_f64().unwrap()).abs() < 1e-4, "{case}: logLoss {ll} vs {}", r["logLoss"]);
        }
    }
}

#[test]
fn linear_regression_matches_mllib() {
    let refs = mllib_refs();
    let (x, y) = read_csv("diabetes.csv");
    let f = vector_frame(&x, &y);
    for case in ["ols", "l2_normal", "l2_lbfgs", "l2_normal_nostd", "enet_normal", "enet_lbfgs", "noint"] {
        let r = &refs[format!("linreg_{case}")];
        let m = with_params(LinearRegression::new(), &r["params"]).fit_frame(&f).unwrap();
        let lin = m.as_any().downcast_ref::<LinearRegressionModel>().unwrap();
        let mut ours = lin.coefficients().to_vec();
        ours.push(lin.intercept());
        let mut spark = floats(&r["coefficients"]);
        spark.push(r["intercept"].as_f64().unwrap());
        let d = rel_diff(&ours, &spark);
        assert!(d < 1e-4, "{case}: rel diff {d:e}\n ours  {ours:?}\n spark {spark:?}");
        let out = transform_frame(m.as_ref(), &f).unwrap();
        let rmse = RegressionEvaluator::new().evaluate_frame(&out).unwrap();
        let r2 = RegressionEvaluator::new().with("metricName", "r2").unwrap().evaluate_frame(&out).unwrap();
        assert!((rmse - r["rmse"].as_f64().unwrap()).abs() < 1e-4 * rmse, "{case}: rmse {rmse} vs {}", r["rmse"]);
        assert!((r2 - r["r2"].as_f64().unwrap()).abs() < 1e-4, "{case}: r2 {r2} vs {}", r["r2"]);
    }
}

#[test]
fn same_seed_same_model_on_one_and_two_threads() {
    // Enough rows for several chunks, so two threads really split the work.
    let (x, y) = read_csv("breast_cancer_200x5.csv");
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for rep in 0..120 {
        for (r, l) in x.iter().zip(&y) {
            xs.push(r.iter().map(|v| v * (1.0 + rep as f64 * 1e-3)).collect::<Vec<_>>());
            ys.push(*l);
        }
    }
    let f = vector_frame(&xs, &ys);
    let fit = |threads: usize| {
        with_threads(threads, || {
            let m = LogisticRegression::new().with("regParam", 0.01).unwrap().with("elasticNetParam", 0.2).unwrap().fit_frame(&f).unwrap();
            let lr = m.as_any().downcast_ref::<LogisticRegressionModel>().unwrap().clone();
            let lin = LinearRegression::new().with("solver", "l-bfgs").unwrap().fit_frame(&f).unwrap();
            let lin = lin.as_any().downcast_ref::<LinearRegressionModel>().unwrap().clone();
            (lr.coefficients().to_vec(), lr.intercept(), lin.coefficients().to_vec(), lin.intercept())
        })
    };
    let (a, b) = (fit(1), fit(2));
    assert_eq!(a.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!(a.1.to_bits(), b.1.to_bits());
    assert_eq!(a.2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!(a.3.to_bits(), b.3.to_bits());
}

/// 8 Gaussian blobs in 6 dimensions, centres far apart (the bench's `blobs`, small).
fn blobs(n_per: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let centres: Vec<Vec<f64>> = (0..8).map(|_| (0..6).map(|_| next() * 40.0 - 20.0).collect()).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (c, centre) in centres.iter().enumerate() {
        for _ in 0..n_per {
            // Sum of uniforms: roughly normal, sd ~1.
            x.push(centre.iter().map(|m| m + (next() + next() + next() - 1.5) * 2.0).collect());
            y.push(c as f64);
        }
    }
    (x, y)
}

#[test]
fn kmeans_finds_the_blobs_for_every_seed() {
    let (x, y) = blobs(2000, 7);
    let f = vector_frame(&x, &y);
    for seed in [1, 2, 3, 4, 5, 42] {
        let m = KMeans::new().with("k", 8).unwrap().with("seed", seed).unwrap().fit_frame(&f).unwrap();
        let out = transform_frame(m.as_ref(), &f).unwrap();
        let pred = delta_ml::models::f64_column(&out.batches[0], "prediction").unwrap();
        // Every true blob maps to one cluster, and the 8 clusters are distinct.
        let mut map = std::collections::HashMap::new();
        for (t, p) in y.iter().zip(&pred) {
            let e = map.entry(*t as i64).or_insert(*p as i64);
            assert_eq!(*e, *p as i64, "seed {seed}: blob {t} split");
        }
        let distinct: std::collections::HashSet<i64> = map.values().copied().collect();
        assert_eq!(distinct.len(), 8, "seed {seed}");
        let sil = ClusteringEvaluator::new().evaluate_frame(&out).unwrap();
        assert!(sil > 0.8, "seed {seed}: silhouette {sil}");
    }
    let fit = |t: usize| {
        with_threads(t, || {
            let m = KMeans::new().with("k", 8).unwrap().with("seed", 9).unwrap().fit_frame(&f).unwrap();
            m.as_any().downcast_ref::<KMeansModel>().unwrap().cluster_centers().concat().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        })
    };
    assert_eq!(fit(1), fit(2));
}

#[test]
fn kmeans_cosine_reaches_mllibs_cost() {
    let refs = mllib_refs();
    let (x, y) = read_csv("iris.csv");
    let f = vector_frame(&x, &y);
    for case in ["kmeans_cosine_iris", "kmeans_cosine_iris_k5"] {
        let r = &refs[case];
        let m = with_params(KMeans::new(), &r["params"]).fit_frame(&f).unwrap();
        let km = m.as_any().downcast_ref::<KMeansModel>().unwrap();
        let spark = r["trainingCost"].as_f64().unwrap();
        // MLlib's cost is Σ(1 − cos) to normalised centroids; ours is at least as low.
        assert!(km.training_cost <= spark * (1.0 + 1e-9), "{case}: cost {} vs MLlib {spark}", km.training_cost);
        if (km.training_cost - spark).abs() < 1e-9 * spark.max(1.0) {
            // The same optimum: the same cluster sizes.
            let out = transform_frame(m.as_ref(), &f).unwrap();
            let pred = delta_ml::models::f64_column(&out.batches[0], "prediction").unwrap();
            let k = r["params"]["k"].as_u64().unwrap() as usize;
            let mut sizes = vec![0u64; k];
            for p in pred {
                sizes[p as usize] += 1;
            }
            sizes.sort_unstable();
            let spark_sizes: Vec<u64> = r["clusterSizes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(sizes, spark_sizes, "{case}");
        }
        for c in km.cluster_centers() {
            let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-12, "{case}: centre norm {norm}");
        }
    }
    // A zero vector has no cosine distance.
    let zero = vector_frame(&[vec![0.0, 0.0], vec![1.0, 2.0], vec![2.0, 1.0]], &[0.0, 0.0, 0.0]);
    let e = KMeans::new().with("distanceMeasure", "cosine").unwrap().fit_frame(&zero).unwrap_err();
    assert!(e.to_string().contains("cosine"), "{e}");
}
