//! Model selection: `ParamGridBuilder`, `CrossValidator` and `TrainValidationSplit` over a
//! [`Pipeline`], as in MLlib.
//!
//! * A grid entry names a param as `"regParam"` (the last estimator stage that has it: the
//!   model, in a feature → model pipeline) or `"LogisticRegression.regParam"` (every stage of
//!   that class). A name no estimator stage has is an error naming it.
//! * The input is read once. `CrossValidator` gives every row a fold: `foldCol` (integers in
//!   `[0, numFolds)`), or uniformly at random from `seed` and the row chunk (MLlib's `kFold`
//!   draws differently; folds are equally random, not the same rows). Each param map is fitted
//!   on the other folds and scored by the evaluator on the held-out one; the average decides.
//!   `TrainValidationSplit` scores each param map once on a `trainRatio` split.
//! * The best param map is refitted on all rows (reading the input again, so the model keeps
//!   its Delta lineage). `avgMetrics` are kept in the model directory (`tuning.json`).
//! * `parallelism` is accepted; fits run one at a time, each already spread over every core.

use arrow::array::{BooleanArray, RecordBatch};
use delta_exec::DataFrame;
use serde_json::{json, Value};

use crate::error::{invalid, MlError, Result};
use crate::evaluation::Evaluator;
use crate::models::tree::{rng, uniform};
use crate::par::CHUNK;
use crate::params::{Kind, ParamSpec, Params};
use crate::pipeline::{frame_to_df, Pipeline, PipelineModel, Stage};
use crate::stage::Frame;

/// One point of a grid: param names (`name` or `Class.name`) and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamMap(pub Vec<(String, Value)>);

impl ParamMap {
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().cloned().collect())
    }
}

/// The cartesian product of param values, first axis outermost (MLlib's order).
#[derive(Debug, Clone, Default)]
pub struct ParamGridBuilder {
    axes: Vec<(String, Vec<Value>)>,
}

impl ParamGridBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_grid(mut self, name: &str, values: Vec<Value>) -> Self {
        self.axes.push((name.to_string(), values));
        self
    }

    pub fn build(&self) -> Vec<ParamMap> {
        let mut maps = vec![ParamMap::default()];
        for (name, values) in &self.axes {
            let mut next = Vec::with_capacity(maps.len() * values.len());
            for m in &maps {
                for v in values {
                    let mut m = m.clone();
                    m.0.push((name.clone(), v.clone()));
                    next.push(m);
                }
            }
            maps = next;
        }
        maps
    }
}

/// The pipeline with a param map applied (type and range checked by each stage's params).
pub fn apply(pipeline: &Pipeline, map: &ParamMap) -> Result<Pipeline> {
    let mut p = pipeline.clone();
    for (key, value) in &map.0 {
        let (class, name) = match key.split_once('.') {
            Some((c, n)) => (Some(c), n),
            None => (None, key.as_str()),
        };
        let has = |s: &Stage| matches!(s, Stage::Estimator(e) if e.params().specs().iter().any(|spec| spec.name == name) && class.is_none_or(|c| e.params().stage() == c));
        let targets: Vec<usize> = match class {
            Some(_) => (0..p.stages.len()).filter(|i| has(&p.stages[*i])).collect(),
            None => (0..p.stages.len()).rev().find(|i| has(&p.stages[*i])).into_iter().collect(),
        };
        if targets.is_empty() {
            return Err(MlError::Format(format!("grid param `{key}`: no estimator stage of the pipeline has it")));
        }
        for i in targets {
            if let Stage::Estimator(e) = &mut p.stages[i] {
                e.params_mut().set(name, value.clone())?;
            }
        }
    }
    Ok(p)
}

/// Rows of `frame` where `keep[row]`.
fn select(frame: &Frame, keep: &[bool]) -> Result<Frame> {
    let mut at = 0;
    let mut batches = Vec::with_capacity(frame.batches.len());
    for b in &frame.batches {
        let mask = BooleanArray::from(keep[at..at + b.num_rows()].to_vec());
        at += b.num_rows();
        batches.push(arrow::compute::filter_record_batch(b, &mask)?);
    }
    Ok(Frame { schema: frame.schema.clone(), batches: batches.into_iter().filter(|b: &RecordBatch| b.num_rows() > 0).collect(), lineage: None })
}

/// A uniform draw in [0, 1) for every row, from `seed` and the row chunk.
fn draws(n: usize, seed: i64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for c in 0..n.div_ceil(CHUNK) {
        let mut r = rng(seed, 0x7E57_0000_0000 + c as u64);
        for _ in c * CHUNK..((c + 1) * CHUNK).min(n) {
            out.push(uniform(&mut r));
        }
    }
    out
}

/// Fits `pipeline` with `map` on `train` and scores it on `valid`.
async fn score(like: &DataFrame, pipeline: &Pipeline, map: &ParamMap, train: &Frame, valid: &Frame, evaluator: &dyn Evaluator) -> Result<f64> {
    let p = apply(pipeline, map)?;
    let model = p.fit(&frame_to_df(like, train)?).await?;
    let out = Frame::collect(&model.transform(&frame_to_df(like, valid)?).await?).await?;
    evaluator.evaluate_frame(&out)
}

/// The result of a search: the best pipeline refitted on every row, and every param map's
/// metric (MLlib's `avgMetrics`; for `TrainValidationSplit`, `validationMetrics`).
#[derive(Debug, Clone)]
pub struct TuningModel {
    pub best: PipelineModel,
    pub best_index: usize,
    pub param_maps: Vec<ParamMap>,
    pub metrics: Vec<f64>,
    pub metric_name: String,
    pub larger_is_better: bool,
}

impl TuningModel {
    /// The search's record, saved as `tuning.json` beside the best model.
    pub fn summary(&self, stage: &str) -> Value {
        json!({
            "class": stage,
            "metricName": self.metric_name,
            "isLargerBetter": self.larger_is_better,
            "bestIndex": self.best_index,
            "bestParams": self.param_maps[self.best_index].to_json(),
            "paramMaps": self.param_maps.iter().map(ParamMap::to_json).collect::<Vec<_>>(),
            "avgMetrics": self.metrics,
        })
    }

    /// Saves the best model under `dir` and the search's record in `dir/tuning.json`.
    pub fn save(&self, dir: impl AsRef<std::path::Path>, stage: &str) -> Result<()> {
        self.best.save(dir.as_ref())?;
        std::fs::write(dir.as_ref().join("tuning.json"), serde_json::to_vec_pretty(&self.summary(stage))?)?;
        Ok(())
    }
}

fn pick(metrics: &[f64], larger: bool) -> usize {
    let mut best = 0;
    for (i, m) in metrics.iter().enumerate() {
        let better = if larger { *m > metrics[best] } else { *m < metrics[best] };
        if better || metrics[best].is_nan() {
            best = i;
        }
    }
    best
}

static CV_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("numFolds", Kind::Int, "3").min(2.0),
    ParamSpec::new("foldCol", Kind::Str, "\"\""),
    ParamSpec::new("seed", Kind::Int, "6814233057444743910"),
    ParamSpec::new("parallelism", Kind::Int, "1").min(1.0),
    ParamSpec::new("collectSubModels", Kind::Bool, "false"),
];

static TVS_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("trainRatio", Kind::Float, "0.75").min(0.0),
    ParamSpec::new("seed", Kind::Int, "-4319697617055646651"),
    ParamSpec::new("parallelism", Kind::Int, "1").min(1.0),
    ParamSpec::new("collectSubModels", Kind::Bool, "false"),
];

/// The shared parts of both searches.
#[derive(Debug, Clone)]
pub struct Search {
    pub params: Params,
    pub pipeline: Pipeline,
    pub grid: Vec<ParamMap>,
    pub evaluator: Box<dyn Evaluator>,
}

/// MLlib's `CrossValidator` over a pipeline.
#[derive(Debug, Clone)]
pub struct CrossValidator(pub Search);

/// MLlib's `TrainValidationSplit` over a pipeline.
#[derive(Debug, Clone)]
pub struct TrainValidationSplit(pub Search);

impl CrossValidator {
    pub fn new(pipeline: Pipeline, grid: Vec<ParamMap>, evaluator: Box<dyn Evaluator>) -> Self {
        CrossValidator(Search { params: Params::new("CrossValidator", CV_PARAMS), pipeline, grid, evaluator })
    }

    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.0.params
    }

    pub async fn fit(&self, df: &DataFrame) -> Result<TuningModel> {
        let s = &self.0;
        let k = s.params.usize("numFolds")?;
        let frame = Frame::collect(df).await?;
        let n = frame.num_rows();
        let fold_col = s.params.string("foldCol")?;
        let folds: Vec<usize> = if fold_col.is_empty() {
            draws(n, s.params.i64("seed")?).into_iter().map(|u| ((u * k as f64) as usize).min(k - 1)).collect()
        } else {
            frame
                .f64_values(&fold_col)?
                .into_iter()
                .map(|v| if v >= 0.0 && v.fract() == 0.0 && (v as usize) < k { Ok(v as usize) } else { Err(invalid(format!("foldCol `{fold_col}` has the value {v}; folds are integers in [0, {k})"))) })
                .collect::<Result<_>>()?
        };
        let grid = if s.grid.is_empty() { vec![ParamMap::default()] } else { s.grid.clone() };
        let mut sums = vec![0.0; grid.len()];
        for f in 0..k {
            let train = select(&frame, &folds.iter().map(|x| *x != f).collect::<Vec<_>>())?;
            let valid = select(&frame, &folds.iter().map(|x| *x == f).collect::<Vec<_>>())?;
            if train.num_rows() == 0 || valid.num_rows() == 0 {
                return Err(invalid(format!("CrossValidator: fold {f} leaves {} training and {} validation rows", train.num_rows(), valid.num_rows())));
            }
            for (i, map) in grid.iter().enumerate() {
                sums[i] += score(df, &s.pipeline, map, &train, &valid, s.evaluator.as_ref()).await?;
            }
        }
        let metrics: Vec<f64> = sums.iter().map(|v| v / k as f64).collect();
        finish(s, df, grid, metrics).await
    }
}

async fn finish(s: &Search, df: &DataFrame, grid: Vec<ParamMap>, metrics: Vec<f64>) -> Result<TuningModel> {
    let larger = s.evaluator.is_larger_better()?;
    let best_index = pick(&metrics, larger);
    let best = apply(&s.pipeline, &grid[best_index])?.fit(df).await?;
    let metric_name = s.evaluator.params().string("metricName").unwrap_or_default();
    Ok(TuningModel { best, best_index, param_maps: grid, metrics, metric_name, larger_is_better: larger })
}

impl TrainValidationSplit {
    pub fn new(pipeline: Pipeline, grid: Vec<ParamMap>, evaluator: Box<dyn Evaluator>) -> Self {
        TrainValidationSplit(Search { params: Params::new("TrainValidationSplit", TVS_PARAMS), pipeline, grid, evaluator })
    }

    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.0.params
    }

    pub async fn fit(&self, df: &DataFrame) -> Result<TuningModel> {
        let s = &self.0;
        let ratio = s.params.f64("trainRatio")?;
        if ratio > 1.0 {
            return Err(MlError::InvalidParam { stage: "TrainValidationSplit".into(), param: "trainRatio".into(), message: "must be in [0, 1]".into() });
        }
        let frame = Frame::collect(df).await?;
        let u = draws(frame.num_rows(), s.params.i64("seed")?);
        let train = select(&frame, &u.iter().map(|x| *x < ratio).collect::<Vec<_>>())?;
        let valid = select(&frame, &u.iter().map(|x| *x >= ratio).collect::<Vec<_>>())?;
        if train.num_rows() == 0 || valid.num_rows() == 0 {
            return Err(invalid(format!("TrainValidationSplit: {} training and {} validation rows", train.num_rows(), valid.num_rows())));
        }
        let grid = if s.grid.is_empty() { vec![ParamMap::default()] } else { s.grid.clone() };
        let mut metrics = Vec::with_capacity(grid.len());
        for map in &grid {
            metrics.push(score(df, &s.pipeline, map, &train, &valid, s.evaluator.as_ref()).await?);
        }
        finish(s, df, grid, metrics).await
    }
}

/// Either search, as a spec names it.
#[derive(Debug, Clone)]
pub enum Tuning {
    CrossValidator(CrossValidator),
    TrainValidationSplit(TrainValidationSplit),
}

impl Tuning {
    pub fn stage(&self) -> &'static str {
        match self {
            Tuning::CrossValidator(_) => "CrossValidator",
            Tuning::TrainValidationSplit(_) => "TrainValidationSplit",
        }
    }

    pub async fn fit(&self, df: &DataFrame) -> Result<TuningModel> {
        match self {
            Tuning::CrossValidator(c) => c.fit(df).await,
            Tuning::TrainValidationSplit(t) => t.fit(df).await,
        }
    }
}
