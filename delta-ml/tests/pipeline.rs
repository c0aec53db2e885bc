//! Pipelines over real Delta tables: fit on a version, lineage, save → load → identical
//! predictions, specs and their errors.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use delta_exec::{DataFrame, Session};
use delta_ml::evaluation::Evaluator;
use delta_ml::spec::pipeline_from_json;
use delta_ml::stage::Frame;
use delta_ml::vector::VectorColumn;
use delta_ml::*;
use serde_json::json;

use crate::TempDir;

/// `rows` rows of (category, amount, visits, label), the label depending on all three.
fn events(rows: usize, seed: u64) -> RecordBatch {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let cats = ["books", "games", "garden", "music", "tools"];
    let (mut c, mut a, mut v, mut y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rows {
        let k = (next() * cats.len() as f64) as usize % cats.len();
        let amount = next() * 100.0;
        let visits = (next() * 10.0) as i64;
        let z = -2.0 + 0.03 * amount + 0.2 * visits as f64 + if k == 1 { 1.5 } else { 0.0 } + (next() - 0.5) * 2.0;
        c.push(cats[k]);
        a.push(amount);
        v.push(visits);
        y.push(if z > 0.0 { 1.0 } else { 0.0 });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("visits", DataType::Int64, true),
        Field::new("label", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(c)) as ArrayRef,
            Arc::new(Float64Array::from(a)) as ArrayRef,
            Arc::new(Int64Array::from(v)) as ArrayRef,
            Arc::new(Float64Array::from(y)) as ArrayRef,
        ],
    )
    .unwrap()
}

async fn write(session: &Session, path: &str, batch: RecordBatch, mode: &str) {
    let df = DataFrame::from_datafusion(session, session.context().read_batch(batch).unwrap());
    df.write().mode(mode).unwrap().save(path).await.unwrap();
}

fn spec() -> serde_json::Value {
    json!({"stages": [
        {"stage": "StringIndexer", "inputCol": "category", "outputCol": "c_idx", "handleInvalid": "keep"},
        {"stage": "OneHotEncoder", "inputCol": "c_idx", "outputCol": "c_vec"},
        {"stage": "VectorAssembler", "inputCols": ["c_vec", "amount", "visits"], "outputCol": "raw"},
        {"stage": "StandardScaler", "inputCol": "raw", "outputCol": "features"},
        {"stage": "LogisticRegression", "regParam": 0.01}
    ]})
}

fn probabilities(frame: &Frame) -> Vec<u64> {
    let mut out = Vec::new();
    for b in &frame.batches {
        let v = VectorColumn::new("probability", b.column(b.schema().index_of("probability").unwrap()).as_ref()).unwrap();
        for i in 0..v.len() {
            v.for_each(i, |_, x| out.push(x.to_bits()));
        }
    }
    out
}

#[tokio::test]
async fn fit_on_a_delta_version_save_load_and_lineage() {
    let dir = TempDir::new("pipeline");
    let table = dir.join("events");
    let session = Session::new();
    write(&session, &table, events(3000, 1), "errorIfExists").await;
    write(&session, &table, events(1000, 2), "append").await;
    // Train on version 0 while version 1 exists.
    let train = session.read().version_as_of(0).delta(&table).await.unwrap();
    let model = pipeline_from_json(&spec()).unwrap().fit(&train).await.unwrap();
    let lineage = model.lineage().expect("lineage").clone();
    assert_eq!(lineage.tables.len(), 1);
    assert_eq!(lineage.tables[0].version, 0);
    assert!(lineage.tables[0].uri.ends_with("events/") || lineage.tables[0].uri.ends_with("events"), "{}", lineage.tables[0].uri);
    assert_eq!(lineage.rows, 3000);
    // The recorded version reads back the same rows, after the table moved on.
    let again = session.read().version_as_of(lineage.tables[0].version).delta(&table).await.unwrap();
    assert_eq!(again.count().await.unwrap() as u64, lineage.rows);

    let latest = session.read().delta(&table).await.unwrap();
    let scored = model.transform(&latest).await.unwrap();
    let auc = BinaryClassificationEvaluator::new().evaluate(&scored).await.unwrap();
    assert!(auc > 0.85, "auc {auc}");
    let before = Frame::collect(&scored).await.unwrap();

    let saved = dir.join("model");
    model.save(&saved).unwrap();
    assert!(model.save(&saved).is_err(), "saving over a model must fail");
    let loaded = PipelineModel::load(&saved).unwrap();
    assert_eq!(loaded.lineage(), Some(&lineage));
    assert_eq!(loaded.stages.len(), 5);
    let after = Frame::collect(&loaded.transform(&latest).await.unwrap()).await.unwrap();
    // Same rows, maybe in another order (the scan's partitions run concurrently).
    let (mut a, mut b) = (probabilities(&before), probabilities(&after));
    a.sort_unstable();
    b.sort_unstable();
    assert!(a == b, "predictions differ after save/load");
    assert_eq!(before.num_rows(), 4000);

    // A newer format or an unknown class is a clear error.
    let meta_path = dir.path().join("model/metadata.json");
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(&meta_path, meta.replace("\"formatVersion\": 1", "\"formatVersion\": 7")).unwrap();
    let err = PipelineModel::load(&saved).unwrap_err().to_string();
    assert!(err.contains("format 7") && err.contains("newer"), "{err}");
    std::fs::write(&meta_path, &meta).unwrap();
    let stage_meta = dir.path().join("model/stages/04_LogisticRegressionModel/metadata.json");
    let s = std::fs::read_to_string(&stage_meta).unwrap();
    std::fs::write(&stage_meta, s.replace("\"class\": \"LogisticRegressionModel\"", "\"class\": \"FancyModel\"")).unwrap();
    let err = PipelineModel::load(&saved).unwrap_err().to_string();
    assert!(err.contains("FancyModel"), "{err}");
}

#[tokio::test]
async fn sql_transformer_and_filters_in_a_pipeline() {
    let dir = TempDir::new("sqlt");
    let table = dir.join("events");
    let session = Session::new();
    write(&session, &table, events(2000, 3), "errorIfExists").await;
    let df = session.read().delta(&table).await.unwrap().filter("visits >= 2").unwrap();
    let spec = json!({"stages": [
        {"stage": "SQLTransformer", "statement": "SELECT *, amount * visits AS spend FROM __THIS__"},
        {"stage": "VectorAssembler", "inputCols": ["amount", "visits", "spend"], "outputCol": "features"},
        {"stage": "LinearRegression", "labelCol": "amount"}
    ]});
    let model = pipeline_from_json(&spec).unwrap().fit(&df).await.unwrap();
    let lineage = model.lineage().unwrap();
    assert_eq!(lineage.rows as usize, df.count().await.unwrap());
    assert!(lineage.plan.contains("visits"), "{}", lineage.plan);
    let out = Frame::collect(&model.transform(&df).await.unwrap()).await.unwrap();
    // amount is a feature of itself: the fit is exact.
    let rmse = RegressionEvaluator::new().with("labelCol", "amount").unwrap().evaluate_frame(&out).unwrap();
    assert!(rmse < 1e-6, "rmse {rmse}");
}

#[test]
fn bad_specs_are_clean_errors() {
    let unknown_stage = pipeline_from_json(&json!({"stages": [{"stage": "DeepForest"}]})).unwrap_err().to_string();
    assert!(unknown_stage.contains("DeepForest"), "{unknown_stage}");
    let unknown_param = pipeline_from_json(&json!({"stages": [{"stage": "LogisticRegression", "regParm": 0.1}]})).unwrap_err().to_string();
    assert!(unknown_param.contains("regParm") && unknown_param.contains("LogisticRegression"), "{unknown_param}");
    let wrong_type = pipeline_from_json(&json!({"stages": [{"stage": "LogisticRegression", "maxIter": "many"}]})).unwrap_err().to_string();
    assert!(wrong_type.contains("maxIter") && wrong_type.contains("integer"), "{wrong_type}");
    let bad_choice = pipeline_from_json(&json!({"stages": [{"stage": "StringIndexer", "handleInvalid": "ignore"}]})).unwrap_err().to_string();
    assert!(bad_choice.contains("handleInvalid") && bad_choice.contains("ignore"), "{bad_choice}");
    let negative = pipeline_from_json(&json!({"stages": [{"stage": "LinearRegression", "regParam": -1}]})).unwrap_err().to_string();
    assert!(negative.contains("regParam"), "{negative}");
    assert!(pipeline_from_json(&json!({"stage": []})).is_err());
}

#[tokio::test]
async fn fit_errors_name_the_column() {
    let session = Session::new();
    let df = DataFrame::from_datafusion(&session, session.context().read_batch(events(10, 4)).unwrap());
    let spec = json!({"stages": [{"stage": "VectorAssembler", "inputCols": ["amount", "nope"], "outputCol": "features"}, {"stage": "LogisticRegression"}]});
    let err = pipeline_from_json(&spec).unwrap().fit(&df).await.unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    let spec = json!({"stages": [{"stage": "VectorAssembler", "inputCols": ["category"], "outputCol": "features"}, {"stage": "LogisticRegression"}]});
    let err = pipeline_from_json(&spec).unwrap().fit(&df).await.unwrap_err().to_string();
    assert!(err.contains("category"), "{err}");
}

/// A tree pipeline tuned by cross-validation on a Delta table: the grid is searched, the best
/// is refitted on every row with its lineage, saved with `tuning.json`, and bad tuning specs
/// are clean errors before any fit.
#[tokio::test]
async fn cross_validation_and_train_validation_split_over_a_delta_table() {
    let dir = TempDir::new("tuning");
    let table = dir.join("events");
    let session = Session::new();
    write(&session, &table, events(3000, 5), "errorIfExists").await;
    let df = session.read().delta(&table).await.unwrap();
    let spec = json!({
        "stages": [
            {"stage": "StringIndexer", "inputCol": "category", "outputCol": "c_idx"},
            {"stage": "VectorAssembler", "inputCols": ["c_idx", "amount", "visits"], "outputCol": "features"},
            {"stage": "GBTClassifier", "maxIter": 10, "seed": 3}
        ],
        "tuning": {"stage": "CrossValidator", "numFolds": 3, "seed": 11,
                   "grid": {"maxDepth": [1, 4], "GBTClassifier.stepSize": [0.3]},
                   "evaluator": {"stage": "BinaryClassificationEvaluator"}}
    });
    let tuning = spec::tuning_from_json(&spec).unwrap().unwrap();
    let result = tuning.fit(&df).await.unwrap();
    assert_eq!(result.param_maps.len(), 2);
    assert_eq!(result.metrics.len(), 2);
    // Depth 4 separates the interaction (category × amount) better than stumps.
    assert_eq!(result.best_index, 1, "metrics {:?}", result.metrics);
    assert!(result.metrics[1] > 0.85 && result.metrics[1] > result.metrics[0], "{:?}", result.metrics);
    let best = result.best.last().unwrap().params().clone();
    assert_eq!(best.usize("maxDepth").unwrap(), 4);
    assert_eq!(best.f64("stepSize").unwrap(), 0.3);
    assert_eq!(result.best.lineage().unwrap().rows, 3000);
    let saved = dir.path().join("cv");
    result.save(&saved, tuning.stage()).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(saved.join("tuning.json")).unwrap()).unwrap();
    assert_eq!(record["bestParams"]["maxDepth"], json!(4));
    assert_eq!(record["metricName"], json!("areaUnderROC"));
    assert!(PipelineModel::load(&saved).is_ok());

    // The same search as a train/validation split; the same seed gives the same metrics.
    let mut tvs = spec.clone();
    tvs["tuning"] = json!({"stage": "TrainValidationSplit", "trainRatio": 0.7, "seed": 5,
                           "grid": {"maxDepth": [1, 4]}, "evaluator": {"stage": "BinaryClassificationEvaluator"}});
    let t = spec::tuning_from_json(&tvs).unwrap().unwrap();
    let a = t.fit(&df).await.unwrap();
    let b = t.fit(&df).await.unwrap();
    assert_eq!(a.metrics, b.metrics);
    assert_eq!(a.best_index, 1);

    // Errors before fitting: an unknown grid param, a bad value, no evaluator, unknown search.
    for (tuning, needle) in [
        (json!({"stage": "CrossValidator", "grid": {"maxDepht": [1]}, "evaluator": {"stage": "BinaryClassificationEvaluator"}}), "maxDepht"),
        (json!({"stage": "CrossValidator", "grid": {"maxDepth": ["deep"]}, "evaluator": {"stage": "BinaryClassificationEvaluator"}}), "maxDepth"),
        (json!({"stage": "CrossValidator", "grid": {"maxDepth": [2]}}), "evaluator"),
        (json!({"stage": "CrossValidator", "numFolds": 1, "evaluator": {"stage": "BinaryClassificationEvaluator"}}), "numFolds"),
        (json!({"stage": "GridSearch", "evaluator": {"stage": "BinaryClassificationEvaluator"}}), "GridSearch"),
    ] {
        let mut s = spec.clone();
        s["tuning"] = tuning;
        let err = spec::tuning_from_json(&s).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // foldCol: folds from a column; values outside [0, numFolds) are refused.
    let with_fold = df.clone().with_column("fold", "visits % 3").unwrap();
    let mut s = spec.clone();
    s["tuning"] = json!({"stage": "CrossValidator", "foldCol": "fold", "grid": {"maxDepth": [2]}, "evaluator": {"stage": "BinaryClassificationEvaluator"}});
    assert!(spec::tuning_from_json(&s).unwrap().unwrap().fit(&with_fold).await.is_ok());
    s["tuning"]["numFolds"] = json!(2);
    let err = spec::tuning_from_json(&s).unwrap().unwrap().fit(&with_fold).await.unwrap_err().to_string();
    assert!(err.contains("fold") && err.contains("[0, 2)"), "{err}");
}

/// The same table version gives the same model, bit for bit: rows come in file order (not in
/// the order concurrent reads finish), and every random draw is seeded by position.
#[tokio::test]
async fn the_same_version_gives_the_same_model() {
    let dir = TempDir::new("repro");
    let table = dir.join("events");
    let session = Session::new();
    write(&session, &table, events(3000, 7), "errorIfExists").await;
    for seed in 8..12 {
        write(&session, &table, events(3000, seed), "append").await;
    }
    let spec = json!({"stages": [
        {"stage": "StringIndexer", "inputCol": "category", "outputCol": "c_idx"},
        {"stage": "VectorAssembler", "inputCols": ["c_idx", "amount", "visits"], "outputCol": "raw"},
        {"stage": "StandardScaler", "inputCol": "raw", "outputCol": "features"},
        {"stage": "RandomForestClassifier", "numTrees": 5, "maxDepth": 4, "seed": 1, "subsamplingRate": 0.5}
    ]});
    let mut runs = Vec::new();
    for _ in 0..3 {
        let df = session.read().version_as_of(4).delta(&table).await.unwrap();
        let model = pipeline_from_json(&spec).unwrap().fit(&df).await.unwrap();
        let out = Frame::collect(&model.transform(&df).await.unwrap()).await.unwrap();
        runs.push(probabilities(&out));
    }
    assert_eq!(runs[0].len(), 15000 * 2);
    assert!(runs[0] == runs[1] && runs[1] == runs[2], "fits of one version differ (or their row order does)");
}

/// The "prediction" column as text, sorted (a cluster returns partitions in its own order).
fn predictions(frame: &Frame) -> Vec<String> {
    let mut out = Vec::new();
    for b in &frame.batches {
        let c = arrow::compute::cast(b.column(b.schema().index_of("prediction").unwrap()), &DataType::Utf8).unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        out.extend(c.iter().map(|v| v.unwrap_or("null").to_string()));
    }
    out.sort();
    out
}

/// Fitted stages score rows where the rows are: on a cluster they travel in the plan in their
/// saved form and run on the executors. Every stage class gives the local answers there, and a
/// pipeline fits on a cluster's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_score_on_a_standalone_cluster() {
    let dir = TempDir::new("pipeline-cluster");
    let table = dir.join("events");
    let local = Session::new();
    write(&local, &table, events(2000, 3), "errorIfExists").await;
    let cluster = Session::standalone(2).await.unwrap();
    let features = [
        json!({"stage": "SQLTransformer", "statement": "SELECT *, CASE WHEN visits = 3 THEN NULL ELSE amount END AS amount_gaps FROM __THIS__"}),
        json!({"stage": "Imputer", "inputCols": ["amount_gaps"], "outputCols": ["amount_filled"]}),
        json!({"stage": "Bucketizer", "inputCol": "visits", "outputCol": "visits_b", "splits": [0.0, 3.0, 6.0, 10.0]}),
        json!({"stage": "QuantileDiscretizer", "inputCol": "amount", "outputCol": "amount_q", "numBuckets": 4}),
        json!({"stage": "StringIndexer", "inputCol": "category", "outputCol": "c_idx", "handleInvalid": "keep"}),
        json!({"stage": "OneHotEncoder", "inputCol": "c_idx", "outputCol": "c_vec"}),
        json!({"stage": "VectorAssembler", "inputCols": ["c_vec", "amount_filled", "visits_b", "amount_q"], "outputCol": "raw"}),
        json!({"stage": "MinMaxScaler", "inputCol": "raw", "outputCol": "scaled"}),
        json!({"stage": "StandardScaler", "inputCol": "scaled", "outputCol": "features"}),
    ];
    let models = [
        json!({"stage": "LogisticRegression", "regParam": 0.01}),
        json!({"stage": "RandomForestClassifier", "numTrees": 5, "maxDepth": 4, "seed": 1}),
        json!({"stage": "GBTClassifier", "maxIter": 5, "seed": 1}),
        json!({"stage": "KMeans", "k": 3, "seed": 1}),
        json!({"stage": "LinearRegression", "labelCol": "amount"}),
    ];
    let here = local.read().delta(&table).await.unwrap();
    let there = cluster.read().delta(&table).await.unwrap();
    for m in models {
        let mut stages = features.to_vec();
        stages.push(m.clone());
        let model = pipeline_from_json(&json!({ "stages": stages })).unwrap().fit(&here).await.unwrap();
        let a = Frame::collect(&model.transform(&here).await.unwrap()).await.unwrap();
        let remote = model.transform(&there).await.unwrap();
        let plan = datafusion::physical_plan::displayable(remote.physical_plan().await.unwrap().as_ref()).indent(false).to_string();
        assert!(plan.contains("DistributedQueryExec"), "{m}: not sent to the cluster: {plan}");
        let b = Frame::collect(&remote).await.unwrap();
        assert_eq!(a.num_rows(), 2000, "{m}");
        assert_eq!(predictions(&a), predictions(&b), "{m}: the cluster's predictions differ");
    }
    // Fitting on a cluster's rows: the same model as from the same rows here, lineage included.
    let model = pipeline_from_json(&spec()).unwrap().fit(&there).await.unwrap();
    assert_eq!(model.lineage().unwrap().rows, 2000);
    let scored = Frame::collect(&model.transform(&there).await.unwrap()).await.unwrap();
    assert_eq!(scored.num_rows(), 2000);
}
