//! Pipelines from JSON specs (`delta ml fit --pipeline SPEC.json`).
//!
//! ```json
//! {"stages": [{"stage": "StringIndexer", "inputCol": "category", "outputCol": "c_idx", "handleInvalid": "keep"},
//!             {"stage": "GBTClassifier", "maxIter": 50, "seed": 42}],
//!  "tuning": {"stage": "CrossValidator", "grid": {"regParam": [0.01, 0.1]}, "evaluator": {"stage": "BinaryClassificationEvaluator"}, "numFolds": 3}}
//! ```
//! Every key but `stage` is an MLlib param of that stage; an unknown stage or param, or a value
//! of the wrong type, is an error naming it.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{MlError, Result};
use crate::evaluation::{BinaryClassificationEvaluator, ClusteringEvaluator, Evaluator, MulticlassClassificationEvaluator, RegressionEvaluator};
use crate::feature::{Bucketizer, Imputer, MinMaxScaler, OneHotEncoder, QuantileDiscretizer, SQLTransformer, StandardScaler, StringIndexer, VectorAssembler};
use crate::models::{LinearRegression, LogisticRegression};
use crate::params::Params;
use crate::pipeline::{Pipeline, Stage};
use crate::stage::Estimator;
use crate::tuning::{CrossValidator, ParamGridBuilder, TrainValidationSplit, Tuning};

/// The stage classes a spec may name.
pub const STAGES: &[&str] = &[
    "StringIndexer",
    "OneHotEncoder",
    "VectorAssembler",
    "StandardScaler",
    "MinMaxScaler",
    "Imputer",
    "Bucketizer",
    "QuantileDiscretizer",
    "SQLTransformer",
    "LogisticRegression",
    "LinearRegression",
    "KMeans",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "GBTClassifier",
    "GBTRegressor",
];

fn split(obj: &Value) -> Result<(String, Value)> {
    let map = obj.as_object().ok_or_else(|| MlError::Format(format!("a stage must be a JSON object, got {obj}")))?;
    let name = map.get("stage").and_then(Value::as_str).ok_or_else(|| MlError::Format(format!("a stage has no \"stage\" name: {obj}")))?.to_string();
    let mut rest = map.clone();
    rest.remove("stage");
    Ok((name, Value::Object(rest)))
}

fn set(params: &mut Params, values: &Value) -> Result<()> {
    params.set_json(values)
}

/// One stage from its spec object.
pub fn stage_from_json(obj: &Value) -> Result<Stage> {
    let (name, values) = split(obj)?;
    let est = |mut e: Box<dyn Estimator>| -> Result<Stage> {
        set(e.params_mut(), &values)?;
        Ok(Stage::Estimator(e))
    };
    match name.as_str() {
        "StringIndexer" => est(Box::<StringIndexer>::default()),
        "OneHotEncoder" => est(Box::<OneHotEncoder>::default()),
        "StandardScaler" => est(Box::<StandardScaler>::default()),
        "MinMaxScaler" => est(Box::<MinMaxScaler>::default()),
        "Imputer" => est(Box::<Imputer>::default()),
        "QuantileDiscretizer" => est(Box::<QuantileDiscretizer>::default()),
        "LogisticRegression" => est(Box::<LogisticRegression>::default()),
        "KMeans" => est(Box::<crate::models::KMeans>::default()),
        "LinearRegression" => est(Box::<LinearRegression>::default()),
        "VectorAssembler" => {
            let mut t = VectorAssembler::new();
            set(t.params_mut(), &values)?;
            Ok(Stage::Transformer(Arc::new(t)))
        }
        "Bucketizer" => {
            let mut t = Bucketizer::new();
            set(t.params_mut(), &values)?;
            Ok(Stage::Transformer(Arc::new(t)))
        }
        "SQLTransformer" => {
            let mut t = SQLTransformer::new();
            set(t.params_mut(), &values)?;
            Ok(Stage::Transformer(Arc::new(t)))
        }
        other if crate::models::TreeKind::from_name(other).is_some_and(|k| k.name() == other) => match crate::models::TreeKind::from_name(other) {
            Some(kind) => est(Box::new(crate::models::TreeEstimator::new(kind))),
            None => Err(MlError::UnknownStage(other.to_string())),
        },
        other => Err(MlError::UnknownStage(format!("{other} (known: {})", STAGES.join(", ")))),
    }
}

/// An evaluator from its spec object.
pub fn evaluator_from_json(obj: &Value) -> Result<Box<dyn Evaluator>> {
    let (name, values) = split(obj)?;
    let mut e: Box<dyn Evaluator> = match name.as_str() {
        "BinaryClassificationEvaluator" => Box::new(BinaryClassificationEvaluator::new()),
        "MulticlassClassificationEvaluator" => Box::new(MulticlassClassificationEvaluator::new()),
        "RegressionEvaluator" => Box::new(RegressionEvaluator::new()),
        "ClusteringEvaluator" => Box::new(ClusteringEvaluator::new()),
        other => return Err(MlError::UnknownStage(format!("{other} (evaluators: BinaryClassificationEvaluator, MulticlassClassificationEvaluator, RegressionEvaluator, ClusteringEvaluator)"))),
    };
    set(e.params_mut(), &values)?;
    Ok(e)
}

/// A pipeline from a spec document.
pub fn pipeline_from_json(spec: &Value) -> Result<Pipeline> {
    let stages = spec.get("stages").and_then(Value::as_array).ok_or_else(|| MlError::Format("the spec has no \"stages\" list".into()))?;
    if let Some(obj) = spec.as_object() {
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "stages" | "tuning")) {
            return Err(MlError::Format(format!("unknown key `{k}` in the spec (stages, tuning)")));
        }
    }
    Ok(Pipeline::new(stages.iter().map(stage_from_json).collect::<Result<_>>()?))
}

/// The spec's `"tuning"` search over its pipeline, when it has one:
/// `{"stage": "CrossValidator" | "TrainValidationSplit", "grid": {"regParam": [..],
/// "GBTClassifier.maxDepth": [..]}, "evaluator": {"stage": ..}, "numFolds": 3, ...}`.
pub fn tuning_from_json(spec: &Value) -> Result<Option<Tuning>> {
    let Some(t) = spec.get("tuning") else { return Ok(None) };
    let pipeline = pipeline_from_json(spec)?;
    let (name, rest) = split(t)?;
    let mut rest = rest.as_object().cloned().unwrap_or_default();
    let evaluator = evaluator_from_json(&rest.remove("evaluator").ok_or_else(|| MlError::Format(format!("tuning {name}: no \"evaluator\" (e.g. {{\"stage\": \"BinaryClassificationEvaluator\"}})")))?)?;
    let mut grid = ParamGridBuilder::new();
    match rest.remove("grid") {
        None => {}
        Some(Value::Object(axes)) => {
            for (param, values) in axes {
                let values = values.as_array().cloned().ok_or_else(|| MlError::Format(format!("tuning grid `{param}`: expected a list of values")))?;
                grid = grid.add_grid(&param, values);
            }
        }
        Some(other) => return Err(MlError::Format(format!("tuning grid: expected an object of param lists, got {other}"))),
    }
    let grid = grid.build();
    // Check every grid point against the pipeline now, not after minutes of fitting.
    for map in &grid {
        crate::tuning::apply(&pipeline, map)?;
    }
    let rest = Value::Object(rest);
    match name.as_str() {
        "CrossValidator" => {
            let mut cv = CrossValidator::new(pipeline, grid, evaluator);
            set(cv.params_mut(), &rest)?;
            Ok(Some(Tuning::CrossValidator(cv)))
        }
        "TrainValidationSplit" => {
            let mut tvs = TrainValidationSplit::new(pipeline, grid, evaluator);
            set(tvs.params_mut(), &rest)?;
            Ok(Some(Tuning::TrainValidationSplit(tvs)))
        }
        other => Err(MlError::UnknownStage(format!("{other} (tuning: CrossValidator, TrainValidationSplit)"))),
    }
}
