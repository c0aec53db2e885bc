//! `DecisionTree*`, `RandomForest*` and `GBT*` (classifier and regressor): MLlib's estimators,
//! params and output columns over the histogram learner of [`crate::models::tree`].
//!
//! * **DecisionTree**: one tree on every row and feature. Classifier: `rawPrediction` is the
//!   leaf's class weights, `probability` their normalisation, `prediction` the first largest.
//! * **RandomForest**: `numTrees` trees, each on a bootstrap (Poisson(`subsamplingRate`) copies
//!   of every row when `numTrees > 1 && bootstrap`, else a Bernoulli subsample) with
//!   `featureSubsetStrategy` features per node (`auto` = `sqrt` for classification, `onethird`
//!   for regression, `all` for one tree). Classifier: `rawPrediction` sums each tree's
//!   normalised leaf distribution (it sums to `numTrees`), `probability = rawPrediction /
//!   numTrees`. Regressor: the mean of the trees.
//! * **GBT**: MLlib's gradient boosting. The first tree is fitted to the labels (classifier:
//!   mapped to ±1) with weight 1; tree `m` is fitted to the negative gradient of the loss
//!   (logistic: `4y/(1+e^{2yF})`; squared: `2(y−F)`; absolute: `sign(y−F)`) with weight
//!   `stepSize`; leaves hold the mean of the pseudo-residuals (variance impurity, no Newton
//!   step). Classifier: `rawPrediction = [−F, F]`, `probability = 1/(1+e^{∓2F})`.
//!   `subsamplingRate < 1` draws a Bernoulli subsample per round.
//!
//! Every random draw derives from `seed`, the tree (or round) index and the row chunk, so a
//! model is the same on 1 or 2 threads. Categorical feature metadata (MLlib's nominal
//! attributes) is not read: every feature is continuous, which is what MLlib does after a
//! `OneHotEncoder` or on plain numeric columns.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, ListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};

use crate::error::{column_error, invalid, MlError, Result};
use crate::feature::indexer::rebrand;
use crate::lineage::Lineage;
use crate::models::tree::{feature_importances, grow, rng, uniform, Binned, Impurity, Targets, Tree, TreeConfig, TreeNode};
use crate::models::{doubles, f64_column, for_each_row, num_classes, vectors};
use crate::par::{map_chunks, map_chunks_mut, map_items, threads, CHUNK};
use crate::params::{f64_json, json_f64, Kind, ParamSpec, Params};
use crate::stage::{append_fields, with_columns, Estimator, Frame, Matrix, ModelData, Transformer};
use crate::vector::dense_field;

/// Which of the six tree estimators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    GBTClassifier,
    GBTRegressor,
}

impl TreeKind {
    pub const ALL: [TreeKind; 6] =
        [TreeKind::DecisionTreeClassifier, TreeKind::DecisionTreeRegressor, TreeKind::RandomForestClassifier, TreeKind::RandomForestRegressor, TreeKind::GBTClassifier, TreeKind::GBTRegressor];

    pub fn name(self) -> &'static str {
        match self {
            TreeKind::DecisionTreeClassifier => "DecisionTreeClassifier",
            TreeKind::DecisionTreeRegressor => "DecisionTreeRegressor",
            TreeKind::RandomForestClassifier => "RandomForestClassifier",
            TreeKind::RandomForestRegressor => "RandomForestRegressor",
            TreeKind::GBTClassifier => "GBTClassifier",
            TreeKind::GBTRegressor => "GBTRegressor",
        }
    }

    pub fn model_name(self) -> &'static str {
        match self {
            TreeKind::DecisionTreeClassifier => "DecisionTreeClassificationModel",
            TreeKind::DecisionTreeRegressor => "DecisionTreeRegressionModel",
            TreeKind::RandomForestClassifier => "RandomForestClassificationModel",
            TreeKind::RandomForestRegressor => "RandomForestRegressionModel",
            TreeKind::GBTClassifier => "GBTClassificationModel",
            TreeKind::GBTRegressor => "GBTRegressionModel",
        }
    }

    pub fn from_name(name: &str) -> Option<TreeKind> {
        TreeKind::ALL.into_iter().find(|k| k.name() == name || k.model_name() == name)
    }

    pub fn is_classifier(self) -> bool {
        matches!(self, TreeKind::DecisionTreeClassifier | TreeKind::RandomForestClassifier | TreeKind::GBTClassifier)
    }

    pub fn is_gbt(self) -> bool {
        matches!(self, TreeKind::GBTClassifier | TreeKind::GBTRegressor)
    }

    /// Whether the trees hold class weights (GBT's trees are regression trees).
    pub fn has_class_trees(self) -> bool {
        matches!(self, TreeKind::DecisionTreeClassifier | TreeKind::RandomForestClassifier)
    }

    fn specs(self) -> &'static [ParamSpec] {
        match self {
            TreeKind::DecisionTreeClassifier => DT_CLASSIFIER,
            TreeKind::DecisionTreeRegressor => DT_REGRESSOR,
            TreeKind::RandomForestClassifier => RF_CLASSIFIER,
            TreeKind::RandomForestRegressor => RF_REGRESSOR,
            TreeKind::GBTClassifier => GBT_CLASSIFIER,
            TreeKind::GBTRegressor => GBT_REGRESSOR,
        }
    }
}

macro_rules! tree_params {
    ($($extra:expr),* $(,)?) => {
        &[
            ParamSpec::new("featuresCol", Kind::Str, "\"features\""),
            ParamSpec::new("labelCol", Kind::Str, "\"label\""),
            ParamSpec::new("predictionCol", Kind::Str, "\"prediction\""),
            ParamSpec::new("weightCol", Kind::Str, ""),
            ParamSpec::new("leafCol", Kind::Str, "\"\""),
            ParamSpec::new("maxDepth", Kind::Int, "5").min(0.0),
            ParamSpec::new("maxBins", Kind::Int, "32").min(2.0),
            ParamSpec::new("minInstancesPerNode", Kind::Int, "1").min(1.0),
            ParamSpec::new("minWeightFractionPerNode", Kind::Float, "0.0").min(0.0),
            ParamSpec::new("minInfoGain", Kind::Float, "0.0").min(0.0),
            // Spark's memory and caching knobs; accepted for compatibility (histograms here
            // are per node and small, rows are in memory).
            ParamSpec::new("maxMemoryInMB", Kind::Int, "256").min(0.0),
            ParamSpec::new("cacheNodeIds", Kind::Bool, "false"),
            ParamSpec::new("checkpointInterval", Kind::Int, "10"),
            $($extra),*
        ]
    };
}

static DT_CLASSIFIER: &[ParamSpec] = tree_params![
    ParamSpec::new("probabilityCol", Kind::Str, "\"probability\""),
    ParamSpec::new("rawPredictionCol", Kind::Str, "\"rawPrediction\""),
    ParamSpec::new("impurity", Kind::Str, "\"gini\"").choices(&["gini", "entropy"]),
    ParamSpec::new("seed", Kind::Int, "159147643"),
];
static DT_REGRESSOR: &[ParamSpec] = tree_params![
    ParamSpec::new("impurity", Kind::Str, "\"variance\"").choices(&["variance"]),
    ParamSpec::new("seed", Kind::Int, "926680331"),
];
static RF_CLASSIFIER: &[ParamSpec] = tree_params![
    ParamSpec::new("probabilityCol", Kind::Str, "\"probability\""),
    ParamSpec::new("rawPredictionCol", Kind::Str, "\"rawPrediction\""),
    ParamSpec::new("impurity", Kind::Str, "\"gini\"").choices(&["gini", "entropy"]),
    ParamSpec::new("seed", Kind::Int, "5350193434349176572"),
    ParamSpec::new("numTrees", Kind::Int, "20").min(1.0),
    ParamSpec::new("featureSubsetStrategy", Kind::Str, "\"auto\""),
    ParamSpec::new("subsamplingRate", Kind::Float, "1.0").min(0.0),
    ParamSpec::new("bootstrap", Kind::Bool, "true"),
    ParamSpec::new("pruneTree", Kind::Bool, "true"),
];
static RF_REGRESSOR: &[ParamSpec] = tree_params![
    ParamSpec::new("impurity", Kind::Str, "\"variance\"").choices(&["variance"]),
    ParamSpec::new("seed", Kind::Int, "235498149"),
    ParamSpec::new("numTrees", Kind::Int, "20").min(1.0),
    ParamSpec::new("featureSubsetStrategy", Kind::Str, "\"auto\""),
    ParamSpec::new("subsamplingRate", Kind::Float, "1.0").min(0.0),
    ParamSpec::new("bootstrap", Kind::Bool, "true"),
];
static GBT_CLASSIFIER: &[ParamSpec] = tree_params![
    ParamSpec::new("probabilityCol", Kind::Str, "\"probability\""),
    ParamSpec::new("rawPredictionCol", Kind::Str, "\"rawPrediction\""),
    ParamSpec::new("impurity", Kind::Str, "\"variance\"").choices(&["variance"]),
    ParamSpec::new("seed", Kind::Int, "6006361986816877685"),
    ParamSpec::new("maxIter", Kind::Int, "20").min(0.0),
    ParamSpec::new("stepSize", Kind::Float, "0.1").min(0.0),
    ParamSpec::new("lossType", Kind::Str, "\"logistic\"").choices(&["logistic"]),
    ParamSpec::new("featureSubsetStrategy", Kind::Str, "\"all\""),
    ParamSpec::new("subsamplingRate", Kind::Float, "1.0").min(0.0),
    ParamSpec::new("validationTol", Kind::Float, "0.01").min(0.0),
];
static GBT_REGRESSOR: &[ParamSpec] = tree_params![
    ParamSpec::new("impurity", Kind::Str, "\"variance\"").choices(&["variance"]),
    ParamSpec::new("seed", Kind::Int, "-131597770"),
    ParamSpec::new("maxIter", Kind::Int, "20").min(0.0),
    ParamSpec::new("stepSize", Kind::Float, "0.1").min(0.0),
    ParamSpec::new("lossType", Kind::Str, "\"squared\"").choices(&["squared", "absolute"]),
    ParamSpec::new("featureSubsetStrategy", Kind::Str, "\"all\""),
    ParamSpec::new("subsamplingRate", Kind::Float, "1.0").min(0.0),
    ParamSpec::new("validationTol", Kind::Float, "0.01").min(0.0),
];

/// One of MLlib's tree estimators (see [`TreeKind`]); `DecisionTreeClassifier::new()` and the
/// like build it.
#[derive(Debug, Clone)]
pub struct TreeEstimator {
    kind: TreeKind,
    params: Params,
}

macro_rules! named {
    ($($name:ident),*) => {$(
        #[doc = concat!("MLlib's `", stringify!($name), "`: `", stringify!($name), "::new()` is a [`TreeEstimator`].")]
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl $name {
            #[allow(clippy::new_ret_no_self)]
            pub fn new() -> TreeEstimator {
                TreeEstimator::new(TreeKind::$name)
            }
        }
    )*};
}
named!(DecisionTreeClassifier, DecisionTreeRegressor, RandomForestClassifier, RandomForestRegressor, GBTClassifier, GBTRegressor);

fn bad(kind: TreeKind, param: &str, message: impl Into<String>) -> MlError {
    MlError::InvalidParam { stage: kind.name().into(), param: param.into(), message: message.into() }
}

/// Poisson(λ) by inversion (λ ≤ 1 here: `subsamplingRate`).
fn poisson(r: &mut rand_xoshiro::Xoshiro256PlusPlus, lambda: f64) -> f64 {
    let limit = (-lambda).exp();
    let mut k = 0.0;
    let mut p = uniform(r);
    while p > limit {
        k += 1.0;
        p *= uniform(r);
    }
    k
}

impl TreeEstimator {
    pub fn new(kind: TreeKind) -> Self {
        TreeEstimator { kind, params: Params::new(kind.name(), kind.specs()) }
    }

    pub fn kind(&self) -> TreeKind {
        self.kind
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }

    /// Features a node may split on, for `d` features and `num_trees` trees
    /// (`featureSubsetStrategy`, with `auto` resolved as MLlib does).
    pub fn features_per_node(&self, d: usize, num_trees: usize) -> Result<usize> {
        let p = &self.params;
        let s = match p.opt_string("featureSubsetStrategy") {
            Ok(Some(s)) => s.to_ascii_lowercase(),
            _ => "all".to_string(),
        };
        let s = if s == "auto" {
            if num_trees == 1 {
                "all".into()
            } else if self.kind.is_classifier() {
                "sqrt".into()
            } else {
                "onethird".into()
            }
        } else {
            s
        };
        let k = match s.as_str() {
            "all" => d,
            "sqrt" => (d as f64).sqrt().ceil() as usize,
            "log2" => ((d as f64).log2().ceil() as usize).max(1),
            "onethird" => (d as f64 / 3.0).ceil() as usize,
            other => match (other.parse::<usize>(), other.parse::<f64>()) {
                (Ok(k), _) if k >= 1 => k.min(d),
                (_, Ok(f)) if f > 0.0 && f <= 1.0 && other.contains('.') => (f * d as f64).ceil() as usize,
                _ => return Err(bad(self.kind, "featureSubsetStrategy", format!("`{other}`: expected auto, all, onethird, sqrt, log2, an integer ≥ 1 or a fraction in (0, 1]"))),
            },
        };
        Ok(k.clamp(1, d.max(1)))
    }

    fn config(&self, classes: usize, total_weight: f64, num_trees: usize, d: usize) -> Result<TreeConfig> {
        let p = &self.params;
        let max_depth = p.usize("maxDepth")?;
        if max_depth > 30 {
            return Err(bad(self.kind, "maxDepth", format!("{max_depth}: at most 30")));
        }
        let fraction = p.f64("minWeightFractionPerNode")?;
        if fraction >= 0.5 {
            return Err(bad(self.kind, "minWeightFractionPerNode", "must be in [0, 0.5)"));
        }
        let impurity = Impurity::parse(&p.string("impurity")?)?;
        let prune = match self.kind {
            TreeKind::RandomForestClassifier => p.bool("pruneTree")?,
            TreeKind::GBTClassifier | TreeKind::GBTRegressor => false,
            _ => true,
        };
        Ok(TreeConfig {
            max_depth,
            min_instances: p.usize("minInstancesPerNode")? as f64,
            min_weight: fraction * total_weight,
            min_info_gain: p.f64("minInfoGain")?,
            impurity,
            num_classes: if impurity == Impurity::Variance { 0 } else { classes },
            features_per_node: self.features_per_node(d, num_trees)?,
            prune,
            seed: p.i64("seed")?,
            tree_index: 0,
            threads: threads(),
        })
    }

    /// Fits on a feature matrix, labels and weights.
    pub fn fit_arrays(&self, x: &Matrix, y: &[f64], w: &[f64], classes: usize, lineage: Option<Lineage>) -> Result<TreeEnsembleModel> {
        let (kind, p) = (self.kind, &self.params);
        let (n, d) = (x.rows, x.cols);
        if n == 0 {
            return Err(invalid(format!("{}: no rows to fit", kind.name())));
        }
        if y.len() != n || w.len() != n || x.data.len() != n * d {
            return Err(invalid(format!("{}: {n} feature rows, {} labels, {} weights", kind.name(), y.len(), w.len())));
        }
        if !p.string("leafCol")?.is_empty() {
            return Err(bad(kind, "leafCol", "leaf index output is not supported; leave it unset"));
        }
        if kind.is_classifier() {
            if let Some(bad_label) = y.iter().find(|v| !(**v >= 0.0 && v.fract() == 0.0 && (**v as usize) < classes)) {
                return Err(invalid(format!("{}: label {bad_label} is not one of the {classes} classes 0..{}", kind.name(), classes.saturating_sub(1))));
            }
            if kind == TreeKind::GBTClassifier && classes > 2 {
                return Err(invalid(format!("GBTClassifier: {classes} classes; GBTClassifier is binary (as in MLlib)")));
            }
        } else if let Some(v) = y.iter().find(|v| !v.is_finite()) {
            return Err(invalid(format!("{}: label {v} is not finite", kind.name())));
        }
        let total_weight: f64 = w.iter().sum();
        if total_weight <= 0.0 {
            return Err(invalid(format!("{}: the weights sum to 0", kind.name())));
        }
        let max_bins = p.usize("maxBins")?.min(n).max(2);
        let seed = p.i64("seed")?;
        let started = std::time::Instant::now();
        let binned = Binned::new(x, w, max_bins, seed)?;
        if std::env::var_os("DELTA_ML_TRACE").is_some() {
            eprintln!("delta-ml: {}: thresholds and bins for {n} × {d} in {:.3} s", kind.name(), started.elapsed().as_secs_f64());
        }
        let classes = if kind.is_classifier() { classes.max(2) } else { 0 };
        let (trees, weights) = match kind {
            TreeKind::DecisionTreeClassifier | TreeKind::DecisionTreeRegressor => {
                let cfg = self.config(classes, total_weight, 1, d)?;
                let ones = vec![1.0; n];
                let mut rows: Vec<u32> = (0..n as u32).filter(|i| w[*i as usize] > 0.0).collect();
                let mut leaf_of = vec![0u32; n];
                let t = grow(&binned, &Targets { label: y, weight: w, count: &ones }, &mut rows, &cfg, &mut leaf_of, &mut Vec::new());
                (vec![t], vec![1.0])
            }
            TreeKind::RandomForestClassifier | TreeKind::RandomForestRegressor => {
                let num_trees = p.usize("numTrees")?;
                let rate = p.f64("subsamplingRate")?;
                if !(rate > 0.0 && rate <= 1.0) {
                    return Err(bad(kind, "subsamplingRate", "must be in (0, 1]"));
                }
                let with_replacement = num_trees > 1 && p.bool("bootstrap")?;
                let base = self.config(classes, total_weight, num_trees, d)?;
                let t = threads();
                let inner = if num_trees >= t { 1 } else { t };
                let trees = map_items(num_trees, t.min(num_trees), |ti| {
                    let mut counts = vec![0.0; n];
                    for (c, chunk) in counts.chunks_mut(CHUNK).enumerate() {
                        let mut r = rng(seed, ((ti as u64 + 1) << 32) | c as u64);
                        for v in chunk.iter_mut() {
                            *v = if with_replacement {
                                poisson(&mut r, rate)
                            } else if rate >= 1.0 || uniform(&mut r) < rate {
                                1.0
                            } else {
                                0.0
                            };
                        }
                    }
                    let bw: Vec<f64> = counts.iter().zip(w).map(|(c, w)| c * w).collect();
                    let mut rows: Vec<u32> = (0..n as u32).filter(|i| bw[*i as usize] > 0.0).collect();
                    let mut leaf_of = vec![0u32; n];
                    let cfg = TreeConfig { tree_index: ti as u64, threads: inner, ..base.clone() };
                    grow(&binned, &Targets { label: y, weight: &bw, count: &counts }, &mut rows, &cfg, &mut leaf_of, &mut Vec::new())
                });
                (trees, vec![1.0; num_trees])
            }
            TreeKind::GBTClassifier | TreeKind::GBTRegressor => self.boost(&binned, y, w, total_weight, d)?,
        };
        let importances = feature_importances(&trees, d, kind.has_class_trees(), !kind.is_gbt());
        let params = rebrand(self.params.clone(), kind.model_name(), kind.specs());
        Ok(TreeEnsembleModel { kind, params, trees, tree_weights: weights, num_features: d, num_classes: classes, importances, lineage })
    }

    fn boost(&self, binned: &Binned, y: &[f64], w: &[f64], total_weight: f64, d: usize) -> Result<(Vec<Tree>, Vec<f64>)> {
        let (kind, p) = (self.kind, &self.params);
        let n = y.len();
        let rounds = p.usize("maxIter")?;
        let step = p.f64("stepSize")?;
        if !(step > 0.0 && step <= 1.0) {
            return Err(bad(kind, "stepSize", "must be in (0, 1]"));
        }
        let rate = p.f64("subsamplingRate")?;
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(bad(kind, "subsamplingRate", "must be in (0, 1]"));
        }
        let loss = p.string("lossType")?.to_ascii_lowercase();
        let seed = p.i64("seed")?;
        let base = self.config(0, total_weight, 1, d)?;
        // Labels the trees see: ±1 for classification.
        let labels: Vec<f64> = if kind == TreeKind::GBTClassifier { y.iter().map(|v| 2.0 * v - 1.0).collect() } else { y.to_vec() };
        let mut margin = vec![0.0; n];
        let mut target = labels.clone();
        let ones = vec![1.0; n];
        let mut leaf_of = vec![0u32; n];
        let mut in_bag = vec![true; n];
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        let mut scratch: Vec<u32> = Vec::with_capacity(n);
        let (mut trees, mut weights) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        let trace = std::env::var_os("DELTA_ML_TRACE").is_some();
        let (mut t_target, mut t_grow, mut t_update) = (0.0, 0.0, 0.0);
        for m in 0..rounds {
            let started = std::time::Instant::now();
            if m > 0 {
                let (labels, margin_ref) = (&labels, &margin);
                let loss = loss.as_str();
                map_chunks_mut(n, &mut target, 1, &mut [0u8; 0][..], 0, |rows, t, _| {
                    for (j, i) in rows.enumerate() {
                        let (yy, f) = (labels[i], margin_ref[i]);
                        t[j] = match loss {
                            "logistic" => 4.0 * yy / (1.0 + (2.0 * yy * f).exp()),
                            "absolute" => {
                                if yy - f < 0.0 {
                                    -1.0
                                } else {
                                    1.0
                                }
                            }
                            _ => 2.0 * (yy - f),
                        };
                    }
                });
            }
            rows.clear();
            if rate >= 1.0 {
                rows.extend((0..n as u32).filter(|i| w[*i as usize] > 0.0));
            } else {
                for part in map_chunks(n, |r| {
                    let mut g = rng(seed, ((m as u64 + 1) << 32) | (r.start / CHUNK) as u64);
                    r.filter(|i| uniform(&mut g) < rate && w[*i] > 0.0).map(|i| i as u32).collect::<Vec<u32>>()
                }) {
                    rows.extend_from_slice(&part);
                }
            }
            let all_in = rows.len() == n;
            if !all_in {
                in_bag.iter_mut().for_each(|b| *b = false);
                for r in &rows {
                    in_bag[*r as usize] = true;
                }
            }
            let cfg = TreeConfig { tree_index: m as u64, ..base.clone() };
            let grown = std::time::Instant::now();
            t_target += (grown - started).as_secs_f64();
            let tree = grow(binned, &Targets { label: &target, weight: w, count: &ones }, &mut rows, &cfg, &mut leaf_of, &mut scratch);
            let updated = std::time::Instant::now();
            t_grow += (updated - grown).as_secs_f64();
            let tw = if m == 0 { 1.0 } else { step };
            // Update the margins: in-bag rows know their leaf; the others walk the binned tree.
            let (tree_ref, leaf_ref, bag) = (&tree, &leaf_of, &in_bag);
            map_chunks_mut(n, &mut margin, 1, &mut [0u8; 0][..], 0, |range, f, _| {
                for (j, i) in range.enumerate() {
                    let leaf = if all_in || bag[i] { leaf_ref[i] as usize } else { tree_ref.leaf_binned(binned, i) };
                    f[j] += tw * tree_ref.nodes[leaf].prediction;
                }
            });
            t_update += updated.elapsed().as_secs_f64();
            trees.push(tree);
            weights.push(tw);
        }
        if trace {
            eprintln!("delta-ml: {}: {rounds} rounds: gradients and samples {t_target:.3} s, trees {t_grow:.3} s, margins {t_update:.3} s", kind.name());
        }
        Ok((trees, weights))
    }
}

impl Estimator for TreeEstimator {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn clone_box(&self) -> Box<dyn Estimator> {
        Box::new(self.clone())
    }

    fn fit_frame(&self, frame: &Frame) -> Result<Arc<dyn Transformer>> {
        let p = &self.params;
        let label = p.string("labelCol")?;
        let started = std::time::Instant::now();
        let x = frame.matrix(&p.string("featuresCol")?)?;
        let y = frame.f64_values(&label)?;
        let w = frame.weights(p.opt_string("weightCol")?.as_deref())?;
        let classes = if self.kind.is_classifier() { num_classes(frame, &label, &y)? } else { 0 };
        if std::env::var_os("DELTA_ML_TRACE").is_some() {
            eprintln!("delta-ml: {}: features, labels and weights of {} rows in {:.3} s", self.kind.name(), x.rows, started.elapsed().as_secs_f64());
        }
        Ok(Arc::new(self.fit_arrays(&x, &y, &w, classes, frame.lineage.clone())?))
    }
}

/// A fitted tree model of any of the six kinds.
#[derive(Debug, Clone)]
pub struct TreeEnsembleModel {
    kind: TreeKind,
    params: Params,
    trees: Vec<Tree>,
    tree_weights: Vec<f64>,
    num_features: usize,
    num_classes: usize,
    importances: Vec<f64>,
    lineage: Option<Lineage>,
}

impl TreeEnsembleModel {
    pub fn kind(&self) -> TreeKind {
        self.kind
    }

    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// `treeWeights` (1 for forests; `[1, stepSize, …]` for GBT).
    pub fn tree_weights(&self) -> &[f64] {
        &self.tree_weights
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// MLlib's `featureImportances`.
    pub fn feature_importances(&self) -> &[f64] {
        &self.importances
    }

    /// Raw scores, probabilities (classifiers) and the prediction of one row.
    pub fn predict_row(&self, x: &[f64], raw: &mut [f64], prob: &mut [f64]) -> f64 {
        match self.kind {
            TreeKind::DecisionTreeRegressor => self.trees[0].leaf(x).prediction,
            TreeKind::RandomForestRegressor => self.trees.iter().map(|t| t.leaf(x).prediction).sum::<f64>() / self.trees.len().max(1) as f64,
            TreeKind::GBTRegressor => self.margin(x),
            TreeKind::GBTClassifier => {
                let f = self.margin(x);
                raw[0] = -f;
                raw[1] = f;
                prob[1] = 1.0 / (1.0 + (-2.0 * f).exp());
                prob[0] = 1.0 - prob[1];
                if f > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            TreeKind::DecisionTreeClassifier | TreeKind::RandomForestClassifier => {
                raw.iter_mut().for_each(|v| *v = 0.0);
                let forest = self.kind == TreeKind::RandomForestClassifier;
                for t in &self.trees {
                    let leaf = t.leaf(x);
                    let total: f64 = leaf.stats.iter().sum();
                    for (r, s) in raw.iter_mut().zip(&leaf.stats) {
                        *r += if forest {
                            if total > 0.0 {
                                s / total
                            } else {
                                0.0
                            }
                        } else {
                            *s
                        };
                    }
                }
                let total: f64 = raw.iter().sum();
                for (p, r) in prob.iter_mut().zip(raw.iter()) {
                    *p = if total > 0.0 { r / total } else { 0.0 };
                }
                let mut best = 0;
                for c in 0..raw.len() {
                    if raw[c] > raw[best] {
                        best = c;
                    }
                }
                best as f64
            }
        }
    }

    fn margin(&self, x: &[f64]) -> f64 {
        self.trees.iter().zip(&self.tree_weights).map(|(t, w)| w * t.leaf(x).prediction).sum()
    }

    pub fn load(kind: TreeKind, params: Params, data: &ModelData, lineage: Option<Lineage>) -> Result<Self> {
        let num_features = data.field("numFeatures")?.as_u64().ok_or_else(|| MlError::Format("numFeatures".into()))? as usize;
        let num_classes = data.field("numClasses")?.as_u64().ok_or_else(|| MlError::Format("numClasses".into()))? as usize;
        let tree_weights: Vec<f64> = data.field("treeWeights")?.as_array().ok_or_else(|| MlError::Format("treeWeights".into()))?.iter().map(|v| json_f64(v).ok_or_else(|| MlError::Format("treeWeights".into()))).collect::<Result<_>>()?;
        let t = data.table("nodes")?;
        let ints = |name: &str| -> Result<Vec<i32>> {
            let a = t.column(t.schema().index_of(name)?).clone();
            let a = arrow::compute::cast(&a, &DataType::Int32)?;
            Ok(arrow::array::AsArray::as_primitive::<arrow::datatypes::Int32Type>(&a).values().to_vec())
        };
        let (tree_id, feature, left, right) = (ints("treeID")?, ints("feature")?, ints("leftChild")?, ints("rightChild")?);
        let (threshold, prediction, impurity, gain, raw_count) = (f64_column(t, "threshold")?, f64_column(t, "prediction")?, f64_column(t, "impurity")?, f64_column(t, "gain")?, f64_column(t, "rawCount")?);
        let stats_col = t.column(t.schema().index_of("impurityStats")?);
        let stats = arrow::array::AsArray::as_list_opt::<i32>(stats_col.as_ref()).ok_or_else(|| MlError::Format("impurityStats is not a list".into()))?;
        let mut trees: Vec<Tree> = (0..tree_weights.len()).map(|_| Tree::default()).collect();
        for i in 0..t.num_rows() {
            let tree = trees.get_mut(tree_id[i] as usize).ok_or_else(|| MlError::Format(format!("node {i} names tree {}", tree_id[i])))?;
            let s = stats.value(i);
            let s = arrow::array::AsArray::as_primitive::<arrow::datatypes::Float64Type>(&s).values().to_vec();
            tree.nodes.push(TreeNode {
                feature: feature[i],
                threshold: threshold[i],
                split_bin: 0,
                left: left[i].max(0) as u32,
                right: right[i].max(0) as u32,
                prediction: prediction[i],
                impurity: impurity[i],
                gain: gain[i],
                raw_count: raw_count[i],
                stats: s,
            });
        }
        for (ti, tree) in trees.iter().enumerate() {
            let len = tree.nodes.len();
            if len == 0 {
                return Err(MlError::Format(format!("tree {ti} has no nodes")));
            }
            // Nodes are in pre-order: children come after their parent (no cycles).
            for (i, n) in tree.nodes.iter().enumerate() {
                let (l, r) = (n.left as usize, n.right as usize);
                if !n.is_leaf() && (l >= len || r >= len || l <= i || r <= i || n.feature as usize >= num_features) {
                    return Err(MlError::Format(format!("tree {ti}: node {i} points outside the tree or backwards")));
                }
            }
        }
        let importances = feature_importances(&trees, num_features, kind.has_class_trees(), !kind.is_gbt());
        Ok(TreeEnsembleModel { kind, params: rebrand(params, kind.model_name(), kind.specs()), trees, tree_weights, num_features, num_classes, importances, lineage })
    }
}

impl Transformer for TreeEnsembleModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let f = self.params.string("featuresCol")?;
        schema.field_with_name(&f).map_err(|_| column_error(&f, "not found"))?;
        let pred = Field::new(self.params.string("predictionCol")?, DataType::Float64, true);
        if self.kind.is_classifier() {
            let k = self.num_classes;
            append_fields(schema, vec![dense_field(&self.params.string("rawPredictionCol")?, k), dense_field(&self.params.string("probabilityCol")?, k), pred])
        } else {
            append_fields(schema, vec![pred])
        }
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let n = batch.num_rows();
        let k = if self.kind.is_classifier() { self.num_classes } else { 0 };
        let (mut raw, mut prob, mut pred) = (vec![0.0; n * k], vec![0.0; n * k], vec![0.0; n]);
        for_each_row(batch, &self.params.string("featuresCol")?, self.num_features, |i, x| {
            pred[i] = self.predict_row(x, &mut raw[i * k..(i + 1) * k], &mut prob[i * k..(i + 1) * k]);
        })?;
        let mut cols = Vec::new();
        if k > 0 {
            cols.push((self.params.string("rawPredictionCol")?, vectors(k, raw)?));
            cols.push((self.params.string("probabilityCol")?, vectors(k, prob)?));
        }
        cols.push((self.params.string("predictionCol")?, doubles(pred)));
        with_columns(batch, &schema, cols)
    }

    fn model_data(&self) -> Result<ModelData> {
        let mut tree_id = Vec::new();
        let (mut feature, mut left, mut right) = (Vec::new(), Vec::new(), Vec::new());
        let (mut threshold, mut prediction, mut impurity, mut gain, mut raw_count) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut offsets, mut values) = (vec![0i32], Vec::new());
        for (ti, t) in self.trees.iter().enumerate() {
            for n in &t.nodes {
                tree_id.push(ti as i32);
                feature.push(n.feature);
                left.push(if n.is_leaf() { -1 } else { n.left as i32 });
                right.push(if n.is_leaf() { -1 } else { n.right as i32 });
                threshold.push(n.threshold);
                prediction.push(n.prediction);
                impurity.push(n.impurity);
                gain.push(n.gain);
                raw_count.push(n.raw_count);
                values.extend_from_slice(&n.stats);
                offsets.push(values.len() as i32);
            }
        }
        let item = Arc::new(Field::new("item", DataType::Float64, false));
        let stats = ListArray::try_new(item.clone(), OffsetBuffer::new(offsets.into()), Arc::new(Float64Array::from(values)), None)?;
        let int = |name: &str| Field::new(name, DataType::Int32, false);
        let dbl = |name: &str| Field::new(name, DataType::Float64, false);
        let schema = Arc::new(Schema::new(vec![
            int("treeID"),
            int("feature"),
            dbl("threshold"),
            int("leftChild"),
            int("rightChild"),
            dbl("prediction"),
            dbl("impurity"),
            dbl("gain"),
            dbl("rawCount"),
            Field::new("impurityStats", DataType::List(item), false),
        ]));
        let i32s = |v: Vec<i32>| Arc::new(Int32Array::from(v)) as ArrayRef;
        let table = RecordBatch::try_new(
            schema,
            vec![i32s(tree_id), i32s(feature), doubles(threshold), i32s(left), i32s(right), doubles(prediction), doubles(impurity), doubles(gain), doubles(raw_count), Arc::new(stats)],
        )?;
        Ok(ModelData {
            json: json!({
                "numFeatures": self.num_features,
                "numClasses": self.num_classes,
                "numTrees": self.trees.len(),
                "treeWeights": self.tree_weights.iter().map(|w| f64_json(*w)).collect::<Vec<_>>(),
                "featureImportances": self.importances.iter().map(|w| f64_json(*w)).collect::<Vec<_>>(),
            }),
            tables: vec![("nodes".into(), table)],
        })
    }

    fn lineage(&self) -> Option<&Lineage> {
        self.lineage.as_ref()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
