//! Every row of `../shared/bench/ml/results/semantics-2026-11-25.json` (MLlib 4.3.0 on tiny
//! inputs), reproduced. The expected values are written here; `every_row_is_covered` checks
//! the file has no row this module does not reproduce.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use delta_ml::evaluation::{binary_metric, silhouette};
use delta_ml::models::f64_column;
use delta_ml::stage::{transform_frame, Estimator, Frame, Matrix, Transformer};
use delta_ml::vector::VectorColumn;
use delta_ml::*;
use serde_json::json;

use crate::{read_csv, shared_dir, string_frame, vector_frame};

/// Rows of the semantics file each test below reproduces.
const COVERED: &[&str] = &[
    "spark_version",
    "StringIndexer.defaults",
    "StringIndexer.labels_by_order(input b,b,a,a,c,d,e,e,e,null)",
    "StringIndexer.handleInvalid on transform(['a','zzz',null]) after fit",
    "StringIndexer.null_with_default_error",
    "StringIndexer.numeric_input_labels(10,9,9,10,2,100) (cast to string, ties alphabetical)",
    "OneHotEncoder.defaults",
    "OneHotEncoder.dropLast=True on indices 0,1,2 -> (idx,size,nonzero,type)",
    "OneHotEncoder after StringIndexer(handleInvalid=keep), 5 labels: (value,size,nonzero)",
    "VectorAssembler.defaults",
    "VectorAssembler.handleInvalid with NaN/null rows",
    "StandardScaler.defaults",
    "StandardScaler.std (ddof=1) of cols [0,2,4],[5,5,5],[1,3,8]",
    "StandardScaler.transform (withMean=False; zero-variance column -> 0.0)",
    "StandardScaler.transform withMean=True",
    "LogisticRegression.defaults",
    "LogisticRegression objective check: mean logloss + regParam/2*sum((beta_j*sigma_j)^2) (standardization=true, sigma = sample std) | + regParam/2*sum(beta_j^2) (false); max |coef diff| vs scipy",
    "LogisticRegression regParam=0: standardization true/false give same coefficients (max diff)",
    "LogisticRegression multinomial (family=auto, 3 classes): coefficientMatrix shape, sum(intercepts)",
    "LogisticRegression multinomial probability == softmax(rawPrediction)",
    "LogisticRegression binomial rawPrediction == [-margin, margin], probability == sigmoid(margin)",
    "LinearRegression.defaults",
    "LinearRegression regParam=0 (solver auto->normal) == OLS, max |coef diff|",
    "LinearRegression L2 objective (glmnet-style, label standardised): 1/(2n)*sum(r^2) + (regParam/sigma_y)/2*sum((sigma_j*beta_j)^2). max |coef diff| vs closed form (max |coef| ~700): solver=normal (what 'auto' picks for <=4096 features without L1) uses POPULATION std (ddof=0); solver=l-bfgs uses SAMPLE std (ddof=1)",
    "BinaryClassificationEvaluator.defaults",
    "MulticlassClassificationEvaluator.defaults",
    "RegressionEvaluator.defaults",
    "ClusteringEvaluator.defaults",
    "BinaryClassificationEvaluator AUC, 200k distinct scores: numBins=0 (exact) vs default 1000 (down-sampled) vs sklearn",
    "ClusteringEvaluator silhouette (squaredEuclidean) == numpy reference",
    "MulticlassClassificationEvaluator default 'f1' == weighted F1",
    "KMeans summary.trainingCost = sum of squared distances to nearest centre (2 pts at distance^2 0.5 each side)",
    "KMeans.defaults",
    "RandomForestClassifier.defaults",
    "GBTClassifier.defaults",
    "GBTClassifier: treeWeights, rawPrediction=[-F,F] with F=sum(w_t*tree_t(x)), prob=1/(1+exp(-2F)), first tree fit to labels mapped to {-1,+1} (its leaf values)",
    "RandomForestClassifier: rawPrediction sums to numTrees (sum of per-tree normalised class distributions); probability = rawPrediction / numTrees",
    "RandomForestClassifier featureSubsetStrategy='auto' resolves to sqrt for classification (numTrees>1), onethird for regression, all for a single tree",
    "CrossValidator.defaults",
    "TrainValidationSplit.defaults",
];

#[test]
fn every_row_is_covered() {
    let Some(shared) = shared_dir() else { return };
    let text = std::fs::read_to_string(shared.join("bench/ml/results/semantics-2026-11-25.json")).unwrap();
    let rows: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let missing: Vec<&String> = rows.keys().filter(|k| !COVERED.contains(&k.as_str())).collect();
    assert!(missing.is_empty(), "semantics rows not reproduced: {missing:?}");
    // The defaults rows: our defaults equal MLlib's for every param both have.
    for (key, defaults) in [
        ("StringIndexer.defaults", StringIndexer::new().params().defaults_json()),
        ("OneHotEncoder.defaults", OneHotEncoder::new().params().defaults_json()),
        ("VectorAssembler.defaults", VectorAssembler::new().params().defaults_json()),
        ("StandardScaler.defaults", StandardScaler::new().params().defaults_json()),
        ("LogisticRegression.defaults", LogisticRegression::new().params().defaults_json()),
        ("LinearRegression.defaults", LinearRegression::new().params().defaults_json()),
        ("KMeans.defaults", KMeans::new().params().defaults_json()),
        ("BinaryClassificationEvaluator.defaults", BinaryClassificationEvaluator::new().params().defaults_json()),
        ("MulticlassClassificationEvaluator.defaults", MulticlassClassificationEvaluator::new().params().defaults_json()),
        ("RegressionEvaluator.defaults", RegressionEvaluator::new().params().defaults_json()),
        ("ClusteringEvaluator.defaults", ClusteringEvaluator::new().params().defaults_json()),
        ("RandomForestClassifier.defaults", RandomForestClassifier::new().params().defaults_json()),
        ("GBTClassifier.defaults", GBTClassifier::new().params().defaults_json()),
        ("CrossValidator.defaults", CrossValidator::new(Pipeline::default(), vec![], Box::new(BinaryClassificationEvaluator::new())).0.params.defaults_json()),
        ("TrainValidationSplit.defaults", TrainValidationSplit::new(Pipeline::default(), vec![], Box::new(BinaryClassificationEvaluator::new())).0.params.defaults_json()),
    ] {
        let spark = rows[key].as_object().unwrap();
        let ours = defaults.as_object().unwrap();
        for (name, value) in spark {
            if name == "outputCol" {
                continue; // uid-based names
            }
            let ours = ours.get(name).unwrap_or_else(|| panic!("{key}: no default for `{name}`"));
            assert_eq!(ours.as_f64().map_or(ours.clone(), |f| json!(f)), value.as_f64().map_or(value.clone(), |f| json!(f)), "{key}: {name}");
        }
    }
}

fn fit(e: &dyn Estimator, f: &Frame) -> Arc<dyn Transformer> {
    e.fit_frame(f).unwrap()
}

fn labels_of(model: &Arc<dyn Transformer>) -> Vec<String> {
    model.as_any().downcast_ref::<delta_ml::feature::StringIndexerModel>().unwrap().labels_array()[0].clone()
}

#[test]
fn string_indexer_orders_and_ties() {
    let f = string_frame("c", &[Some("b"), Some("b"), Some("a"), Some("a"), Some("c"), Some("d"), Some("e"), Some("e"), Some("e"), None]);
    for (order, want) in [
        ("frequencyDesc", ["e", "a", "b", "c", "d"]),
        ("frequencyAsc", ["c", "d", "a", "b", "e"]),
        ("alphabetDesc", ["e", "d", "c", "b", "a"]),
        ("alphabetAsc", ["a", "b", "c", "d", "e"]),
    ] {
        let m = fit(&StringIndexer::new().with("inputCol", "c").unwrap().with("outputCol", "i").unwrap().with("stringOrderType", order).unwrap(), &f);
        assert_eq!(labels_of(&m), want, "{order}");
    }
    // Numbers are indexed by their string form: 10.0 and 9.0 tie at 2, alphabetical breaks it.
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Float64, false)]));
    let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(vec![10.0, 9.0, 9.0, 10.0, 2.0, 100.0])) as ArrayRef]).unwrap();
    let m = fit(&StringIndexer::new().with("inputCol", "n").unwrap(), &Frame::new(schema, vec![b]));
    assert_eq!(labels_of(&m), ["10.0", "9.0", "100.0", "2.0"]);
}

#[test]
fn string_indexer_handle_invalid() {
    let train = string_frame("c", &[Some("b"), Some("b"), Some("a"), Some("a"), Some("c"), Some("d"), Some("e"), Some("e"), Some("e"), None]);
    let test = string_frame("c", &[Some("a"), Some("zzz"), None]);
    let run = |h: &str| {
        let m = fit(&StringIndexer::new().with("inputCol", "c").unwrap().with("outputCol", "i").unwrap().with("handleInvalid", h).unwrap(), &train);
        transform_frame(m.as_ref(), &test)
    };
    let keep = run("keep").unwrap();
    assert_eq!(f64_column(&keep.batches[0], "i").unwrap(), vec![1.0, 5.0, 5.0]);
    let skip = run("skip").unwrap();
    assert_eq!(f64_column(&skip.batches[0], "i").unwrap(), vec![1.0]);
    let err = run("error").unwrap_err().to_string();
    assert!(err.contains("zzz") && err.contains("handleInvalid"), "{err}");
    // A null under the default (error) fails too, naming the column.
    let only_null = string_frame("c", &[Some("a"), None]);
    let m = fit(&StringIndexer::new().with("inputCol", "c").unwrap(), &train);
    let err = transform_frame(m.as_ref(), &only_null).unwrap_err().to_string();
    assert!(err.contains("null") && err.contains("`c`"), "{err}");
}

/// (size, nonzero indices) of each row of a sparse or dense vector column.
fn nonzeros(batch: &RecordBatch, col: &str) -> Vec<(usize, Vec<usize>)> {
    let a = batch.column(batch.schema().index_of(col).unwrap()).clone();
    let v = VectorColumn::new(col, a.as_ref()).unwrap();
    (0..v.len())
        .map(|i| {
            let mut nz = Vec::new();
            v.for_each(i, |j, x| {
                if x != 0.0 {
                    nz.push(j)
                }
            });
            (v.size(i), nz)
        })
        .collect()
}

#[test]
fn one_hot_encoder_sizes() {
    let schema = Arc::new(Schema::new(vec![Field::new("idx", DataType::Float64, false)]));
    let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(vec![0.0, 1.0, 2.0])) as ArrayRef]).unwrap();
    let f = Frame::new(schema, vec![b]);
    let m = fit(&OneHotEncoder::new().with("inputCol", "idx").unwrap().with("outputCol", "v").unwrap(), &f);
    let out = transform_frame(m.as_ref(), &f).unwrap();
    assert_eq!(nonzeros(&out.batches[0], "v"), vec![(2, vec![0]), (2, vec![1]), (2, vec![])]);
    // After a StringIndexer with keep (5 labels + unknown): dropLast true → 5, false → 6.
    let train = string_frame("c", &[Some("b"), Some("b"), Some("a"), Some("a"), Some("c"), Some("d"), Some("e"), Some("e"), Some("e"), None]);
    let test = string_frame("c", &[Some("e"), Some("d"), Some("zzz"), None]);
    let si = fit(&StringIndexer::new().with("inputCol", "c").unwrap().with("outputCol", "i").unwrap().with("handleInvalid", "keep").unwrap(), &train);
    let indexed_train = transform_frame(si.as_ref(), &train).unwrap();
    let indexed_test = transform_frame(si.as_ref(), &test).unwrap();
    for (drop, want) in [(true, vec![(5, vec![0]), (5, vec![4]), (5, vec![]), (5, vec![])]), (false, vec![(6, vec![0]), (6, vec![4]), (6, vec![5]), (6, vec![5])])] {
        let ohe = fit(&OneHotEncoder::new().with("inputCol", "i").unwrap().with("outputCol", "v").unwrap().with("dropLast", drop).unwrap(), &indexed_train);
        let out = transform_frame(ohe.as_ref(), &indexed_test).unwrap();
        assert_eq!(nonzeros(&out.batches[0], "v"), want, "dropLast={drop}");
    }
}

#[test]
fn vector_assembler_handle_invalid() {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Float64, true), Field::new("b", DataType::Float64, true)]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), None])) as ArrayRef, Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(3.0), Some(1.0)])) as ArrayRef],
    )
    .unwrap();
    let f = Frame::new(schema, vec![b]);
    let va = |h: &str| VectorAssembler::new().with("inputCols", json!(["a", "b"])).unwrap().with("outputCol", "v").unwrap().with("handleInvalid", h).unwrap();
    assert!(transform_frame(&va("error"), &f).is_err());
    let rows = |fr: Frame| {
        let b = &fr.batches[0];
        let col = b.column(b.schema().index_of("v").unwrap()).clone();
        let v = VectorColumn::new("v", col.as_ref()).unwrap();
        (0..v.len())
            .map(|i| {
                let mut r = vec![0.0; 2];
                v.write_dense(i, &mut r);
                format!("{r:?}")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(transform_frame(&va("skip"), &f).unwrap()), vec!["[2.0, 3.0]"]);
    assert_eq!(rows(transform_frame(&va("keep"), &f).unwrap()), vec!["[1.0, NaN]", "[2.0, 3.0]", "[NaN, 1.0]"]);
}

#[test]
fn standard_scaler() {
    let f = vector_frame(&[vec![0.0, 5.0, 1.0], vec![2.0, 5.0, 3.0], vec![4.0, 5.0, 8.0]], &[0.0, 0.0, 0.0]);
    let m = StandardScaler::new().with("inputCol", "features").unwrap().with("outputCol", "s").unwrap().fit_frame(&f).unwrap();
    let sm = m.as_any().downcast_ref::<delta_ml::feature::StandardScalerModel>().unwrap();
    assert!((sm.std[0] - 2.0).abs() < 1e-12 && sm.std[1] == 0.0 && (sm.std[2] - 3.605551275463989).abs() < 1e-12);
    let out = |m: &Arc<dyn Transformer>| {
        let fr = transform_frame(m.as_ref(), &f).unwrap();
        let b = &fr.batches[0];
        let col = b.column(b.schema().index_of("s").unwrap()).clone();
        let v = VectorColumn::new("s", col.as_ref()).unwrap();
        (0..3)
            .map(|i| {
                let mut r = vec![0.0; 3];
                v.write_dense(i, &mut r);
                r
            })
            .collect::<Vec<_>>()
    };
    let want = [[0.0, 0.0, 0.2773500981126146], [1.0, 0.0, 0.8320502943378437], [2.0, 0.0, 2.2188007849009166]];
    for (r, w) in out(&m).iter().zip(want) {
        for (a, b) in r.iter().zip(w) {
            assert!((a - b).abs() < 1e-12, "{r:?}");
        }
    }
    let m2 = StandardScaler::new().with("inputCol", "features").unwrap().with("outputCol", "s").unwrap().with("withMean", true).unwrap().fit_frame(&f).unwrap();
    let want = [[-1.0, 0.0, -0.8320502943378437], [0.0, 0.0, -0.2773500981126146], [1.0, 0.0, 1.1094003924504583]];
    for (r, w) in out(&m2).iter().zip(want) {
        for (a, b) in r.iter().zip(w) {
            assert!((a - b).abs() < 1e-12, "{r:?}");
        }
    }
}

fn breast() -> Frame {
    let (x, y) = read_csv("breast_cancer_200x5.csv");
    vector_frame(&x, &y)
}

#[test]
fn logistic_regression_objective_and_outputs() {
    // regParam 0.1 with standardization: MLlib's coefficients (the semantics file, tol 1e-10).
    let spark = [-0.16483958111280525, -0.16945237750282494, -0.025371794461541523, -0.0015793657851678137, -37.02129224692713];
    let f = breast();
    let m = LogisticRegression::new().with("regParam", 0.1).unwrap().with("tol", 1e-10).unwrap().with("maxIter", 1000).unwrap().fit_frame(&f).unwrap();
    let lr = m.as_any().downcast_ref::<LogisticRegressionModel>().unwrap();
    for (a, b) in lr.coefficients().iter().zip(spark) {
        assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "{:?} vs {spark:?}", lr.coefficients());
    }
    assert!((lr.intercept() - 12.421057395190608).abs() < 1e-3, "{}", lr.intercept());
    // rawPrediction = [-m, m], probability = sigmoid(m).
    let out = transform_frame(m.as_ref(), &f).unwrap();
    let b = &out.batches[0];
    let raw = VectorColumn::new("rawPrediction", b.column(b.schema().index_of("rawPrediction").unwrap()).as_ref()).unwrap();
    let prob = VectorColumn::new("probability", b.column(b.schema().index_of("probability").unwrap()).as_ref()).unwrap();
    let (x, _) = read_csv("breast_cancer_200x5.csv");
    let margin = lr.intercept() + x[0].iter().zip(lr.coefficients()).map(|(a, c)| a * c).sum::<f64>();
    let (mut r, mut p) = ([0.0; 2], [0.0; 2]);
    raw.write_dense(0, &mut r);
    prob.write_dense(0, &mut p);
    assert!((r[1] - margin).abs() < 1e-9 && (r[0] + margin).abs() < 1e-9);
    assert!((p[1] - 1.0 / (1.0 + (-margin).exp())).abs() < 1e-12);
    // regParam 0: standardization does not change the answer.
    let c = |std: bool| {
        let m = LogisticRegression::new().with("standardization", std).unwrap().with("tol", 1e-12).unwrap().with("maxIter", 2000).unwrap().fit_frame(&f).unwrap();
        m.as_any().downcast_ref::<LogisticRegressionModel>().unwrap().coefficients().to_vec()
    };
    let (a, b) = (c(true), c(false));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4 * x.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

#[test]
fn logistic_regression_multinomial_shape() {
    let (x, y) = read_csv("iris.csv");
    let f = vector_frame(&x, &y);
    let m = LogisticRegression::new().with("regParam", 0.01).unwrap().fit_frame(&f).unwrap();
    let lr = m.as_any().downcast_ref::<LogisticRegressionModel>().unwrap();
    assert!(lr.is_multinomial());
    assert_eq!((lr.coefficient_matrix().len(), lr.coefficient_matrix()[0].len()), (3, 4));
    assert!(lr.intercept_vector().iter().sum::<f64>().abs() < 1e-9);
    let spark = [5.466103780497142, 2.5913327903614025, -8.057436570858545];
    for (a, b) in lr.intercept_vector().iter().zip(spark) {
        assert!((a - b).abs() < 2e-3 * b.abs().max(1.0), "{:?} vs {spark:?}", lr.intercept_vector());
    }
    // probability = softmax(rawPrediction).
    let out = transform_frame(m.as_ref(), &f).unwrap();
    let b = &out.batches[0];
    let raw = VectorColumn::new("r", b.column(b.schema().index_of("rawPrediction").unwrap()).as_ref()).unwrap();
    let prob = VectorColumn::new("p", b.column(b.schema().index_of("probability").unwrap()).as_ref()).unwrap();
    let (mut r, mut p) = ([0.0; 3], [0.0; 3]);
    raw.write_dense(0, &mut r);
    prob.write_dense(0, &mut p);
    let z: f64 = r.iter().map(|v| v.exp()).sum();
    for k in 0..3 {
        assert!((r[k].exp() / z - p[k]).abs() < 1e-12);
    }
}

#[test]
fn linear_regression_closed_forms() {
    let (x, y) = read_csv("diabetes.csv");
    let f = vector_frame(&x, &y);
    let refs = crate::mllib_refs();
    let ols = crate::floats(&refs["linreg_ols"]["coefficients"]);
    let m = LinearRegression::new().fit_frame(&f).unwrap();
    let lin = m.as_any().downcast_ref::<LinearRegressionModel>().unwrap();
    for (a, b) in lin.coefficients().iter().zip(&ols) {
        assert!((a - b).abs() < 1e-6, "{:?}", lin.coefficients());
    }
    // L2, normal solver: the closed form with population std; l-bfgs: sample std.
    let n = x.len() as f64;
    let d = x[0].len();
    let closed = |ddof: f64| {
        let mx: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let my = y.iter().sum::<f64>() / n;
        let sx: Vec<f64> = (0..d).map(|j| (x.iter().map(|r| (r[j] - mx[j]).powi(2)).sum::<f64>() / (n - ddof)).sqrt()).collect();
        let sy = (y.iter().map(|v| (v - my).powi(2)).sum::<f64>() / (n - ddof)).sqrt();
        let mut a = faer::Mat::<f64>::zeros(d, d);
        let mut rhs = faer::Mat::<f64>::zeros(d, 1);
        for (r, t) in x.iter().zip(&y) {
            for i in 0..d {
                rhs[(i, 0)] += (r[i] - mx[i]) * (t - my) / n;
                for j in 0..d {
                    a[(i, j)] += (r[i] - mx[i]) * (r[j] - mx[j]) / n;
                }
            }
        }
        for i in 0..d {
            a[(i, i)] += 0.1 / sy * sx[i] * sx[i];
        }
        use faer::linalg::solvers::Solve;
        let s = a.llt(faer::Side::Lower).unwrap().solve(&rhs);
        (0..d).map(|i| s[(i, 0)]).collect::<Vec<f64>>()
    };
    for (solver, ddof, tol) in [("normal", 0.0, 1e-6), ("l-bfgs", 1.0, 1e-3)] {
        let m = LinearRegression::new().with("regParam", 0.1).unwrap().with("solver", solver).unwrap().with("tol", 1e-12).unwrap().with("maxIter", 10000).unwrap().fit_frame(&f).unwrap();
        let lin = m.as_any().downcast_ref::<LinearRegressionModel>().unwrap();
        let want = closed(ddof);
        for (a, b) in lin.coefficients().iter().zip(&want) {
            assert!((a - b).abs() < tol, "{solver}: {:?} vs {want:?}", lin.coefficients());
        }
    }
}

#[test]
fn evaluators() {
    // AUC: exact (numBins 0) equals the rank statistic; 1000 bins stays within 1e-5 of it.
    let mut state = 42u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = 20_000;
    let (mut s, mut y) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let l = if next() < 0.3 { 1.0 } else { 0.0 };
        y.push(l);
        s.push(l * 0.8 + next() + next() - 1.0);
    }
    let w = vec![1.0; n];
    let exact = binary_metric(&s, &y, &w, 0, "areaUnderROC");
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|a, b| s[*a].total_cmp(&s[*b]));
    let (mut rank_sum, npos) = (0.0, y.iter().sum::<f64>());
    for (r, i) in idx.iter().enumerate() {
        if y[*i] == 1.0 {
            rank_sum += (r + 1) as f64;
        }
    }
    let mann_whitney = (rank_sum - npos * (npos + 1.0) / 2.0) / (npos * (n as f64 - npos));
    assert!((exact - mann_whitney).abs() < 1e-9, "{exact} vs {mann_whitney}");
    assert!((binary_metric(&s, &y, &w, 1000, "areaUnderROC") - exact).abs() < 1e-4);
    // Multiclass default f1 is the weighted F1 (semantics row: 0.6555…).
    let schema = Arc::new(Schema::new(vec![Field::new("label", DataType::Float64, false), Field::new("prediction", DataType::Float64, false)]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Float64Array::from(vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0])) as ArrayRef, Arc::new(Float64Array::from(vec![0.0, 1.0, 1.0, 1.0, 2.0, 0.0])) as ArrayRef],
    )
    .unwrap();
    let f1 = MulticlassClassificationEvaluator::new().evaluate_frame(&Frame::new(schema, vec![b])).unwrap();
    assert!((f1 - 0.6555555555555556).abs() < 1e-12, "{f1}");
    // Silhouette: two tight pairs far apart.
    let x = Matrix { rows: 4, cols: 2, data: vec![0.0, 0.0, 1.0, 1.0, 9.0, 8.0, 8.0, 9.0] };
    let s = silhouette(&x, &[0.0, 0.0, 1.0, 1.0], false);
    // a = 2 for every point; b = mean of squared distances to the other pair.
    // p0: 145 to both of the other pair; p1: 113; p2 and p3: (145 + 113) / 2.
    let want = ((1.0 - 2.0 / 145.0) + (1.0 - 2.0 / 113.0) + 2.0 * (1.0 - 2.0 / 129.0)) / 4.0;
    assert!((s - want).abs() < 1e-12, "{s} vs {want}");
}

#[test]
fn auc_and_silhouette_rows() {
    // Inputs drawn by semantics_probe.py (numpy's default_rng(0)), checked in by
    // tests/data/make_semantics_inputs.py; MLlib's values from the semantics file.
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/auc_200k.parquet");
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let (mut s, mut y) = (Vec::new(), Vec::new());
    for b in reader {
        let b = b.unwrap();
        s.extend(f64_column(&b, "score").unwrap());
        y.extend(f64_column(&b, "label").unwrap());
    }
    let w = vec![1.0; s.len()];
    let exact = binary_metric(&s, &y, &w, 0, "areaUnderROC");
    let binned = binary_metric(&s, &y, &w, 1000, "areaUnderROC");
    assert!((exact - 0.7126110263748329).abs() < 1e-12, "{exact}");
    // MLlib groups the sorted scores per partition of its range-partitioned sort, so where a
    // group starts depends on its sampled partition bounds; we group the whole sorted list.
    // The down-sampled areas agree to 1e-6 (the exact ones to the last bit).
    assert!((binned - 0.7126108164673862).abs() < 1e-6, "{binned}");
    let (x, labels) = read_csv("silhouette_3000.csv");
    let m = Matrix { rows: x.len(), cols: 3, data: x.into_iter().flatten().collect() };
    let sil = silhouette(&m, &labels, false);
    assert!((sil - 0.7737793550460452).abs() < 1e-9, "{sil}");
}

#[test]
fn kmeans_training_cost() {
    let f = vector_frame(&[vec![0.0, 0.0], vec![1.0, 1.0], vec![9.0, 8.0], vec![8.0, 9.0]], &[0.0; 4]);
    let m = KMeans::new().with("k", 2).unwrap().with("seed", 1).unwrap().fit_frame(&f).unwrap();
    let km = m.as_any().downcast_ref::<KMeansModel>().unwrap();
    assert!((km.training_cost - 2.0).abs() < 1e-9, "{}", km.training_cost);
}

#[test]
fn gbt_classifier_margins_and_first_tree() {
    // GBTClassifier(maxIter=5, maxDepth=2, seed=1) on the 200×5 breast-cancer rows.
    let (x, y) = read_csv("breast_cancer_200x5.csv");
    let f = vector_frame(&x, &y);
    let m = fit(&GBTClassifier::new().with("maxIter", 5).unwrap().with("maxDepth", 2).unwrap().with("seed", 1).unwrap(), &f);
    let g = m.as_any().downcast_ref::<TreeEnsembleModel>().unwrap();
    assert_eq!(g.tree_weights(), &[1.0, 0.1, 0.1, 0.1, 0.1]);
    // The first tree is fitted to the labels mapped to ±1: its leaves are means of ±1.
    let mut leaves: Vec<f64> = g.trees()[0].nodes.iter().filter(|n| n.is_leaf()).map(|n| (n.prediction * 1e6).round() / 1e6).collect();
    leaves.sort_by(f64::total_cmp);
    leaves.dedup();
    assert_eq!(leaves, vec![-0.782178, -0.6, 0.666667, 0.795455]);
    let out = transform_frame(m.as_ref(), &f).unwrap();
    let raw = f.matrix("features").unwrap();
    let raw_pred = out.matrix("rawPrediction").unwrap();
    let prob = out.matrix("probability").unwrap();
    // MLlib's first two rows: (rawPrediction[1], margin, probability[1], 1/(1+e^{-2F})).
    for (i, expected) in [[-0.9661552983924467, 0.12649505250417692], [-1.0246368137156394, 0.11412579776451445]].iter().enumerate() {
        assert!((raw_pred.row(i)[1] - expected[0]).abs() < 1e-12, "row {i}: F {}", raw_pred.row(i)[1]);
        assert_eq!(raw_pred.row(i)[0], -raw_pred.row(i)[1]);
        assert!((prob.row(i)[1] - expected[1]).abs() < 1e-12, "row {i}: p {}", prob.row(i)[1]);
        let margin: f64 = g.trees().iter().zip(g.tree_weights()).map(|(t, w)| w * t.leaf(raw.row(i)).prediction).sum();
        assert!((prob.row(i)[1] - 1.0 / (1.0 + (-2.0 * margin).exp())).abs() < 1e-15);
    }
}

#[test]
fn random_forest_raw_prediction_sums_to_num_trees() {
    let (x, y) = read_csv("breast_cancer_200x5.csv");
    let f = vector_frame(&x, &y);
    let m = fit(&RandomForestClassifier::new().with("numTrees", 7).unwrap().with("maxDepth", 3).unwrap().with("seed", 1).unwrap(), &f);
    let out = transform_frame(m.as_ref(), &f).unwrap();
    let raw = out.matrix("rawPrediction").unwrap();
    let prob = out.matrix("probability").unwrap();
    for i in 0..2 {
        assert!((raw.row(i).iter().sum::<f64>() - 7.0).abs() < 1e-9);
        assert!((raw.row(i)[1] / 7.0 - prob.row(i)[1]).abs() < 1e-12);
    }
}

#[test]
fn feature_subset_auto_resolves_like_mllib() {
    // sqrt for classification forests, onethird for regression forests, all for one tree.
    assert_eq!(RandomForestClassifier::new().features_per_node(30, 20).unwrap(), 6);
    assert_eq!(RandomForestRegressor::new().features_per_node(30, 20).unwrap(), 10);
    assert_eq!(RandomForestClassifier::new().features_per_node(30, 1).unwrap(), 30);
    assert_eq!(RandomForestClassifier::new().with("featureSubsetStrategy", "log2").unwrap().features_per_node(30, 20).unwrap(), 5);
    assert_eq!(RandomForestClassifier::new().with("featureSubsetStrategy", "0.5").unwrap().features_per_node(30, 20).unwrap(), 15);
    assert_eq!(RandomForestClassifier::new().with("featureSubsetStrategy", "4").unwrap().features_per_node(30, 20).unwrap(), 4);
}
