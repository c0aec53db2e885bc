//! Evaluators with MLlib's metrics and defaults.

use std::collections::BTreeMap;

use async_trait::async_trait;
use delta_exec::DataFrame;
use serde_json::Value;

use crate::error::{invalid, Result};
use crate::params::{Kind, ParamSpec, Params};
use crate::stage::Frame;
use crate::vector::{vector_size, VectorColumn};

/// Turns predictions into one number.
#[async_trait]
pub trait Evaluator: Send + Sync + std::fmt::Debug {
    fn params(&self) -> &Params;
    fn params_mut(&mut self) -> &mut Params;
    fn clone_box(&self) -> Box<dyn Evaluator>;
    fn evaluate_frame(&self, frame: &Frame) -> Result<f64>;
    /// Whether a larger value is better (tuning maximises or minimises accordingly).
    fn is_larger_better(&self) -> Result<bool>;

    async fn evaluate(&self, df: &DataFrame) -> Result<f64> {
        self.evaluate_frame(&Frame::collect(df).await?)
    }
}

impl Clone for Box<dyn Evaluator> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

macro_rules! evaluator_basics {
    ($t:ident, $name:literal, $specs:ident) => {
        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }
        impl $t {
            pub fn new() -> Self {
                $t { params: Params::new($name, $specs) }
            }
            pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
                self.params.set(name, value)?;
                Ok(self)
            }
        }
    };
}

/// A scalar score per row: a double column, or element 1 of a vector column (MLlib's
/// `rawPrediction[1]`).
fn scores(frame: &Frame, col: &str) -> Result<Vec<f64>> {
    let field = frame.field(col)?;
    if vector_size(field).is_none() {
        return frame.f64_values(col);
    }
    let mut out = Vec::with_capacity(frame.num_rows());
    for a in frame.arrays(col)? {
        let v = VectorColumn::new(col, a.as_ref())?;
        for i in 0..v.len() {
            let mut s = f64::NAN;
            v.for_each(i, |j, x| {
                if j == 1 {
                    s = x
                }
            });
            if v.size(i) == 1 {
                v.for_each(i, |_, x| s = x);
            }
            out.push(s);
        }
    }
    Ok(out)
}

static BINARY: &[ParamSpec] = &[
    ParamSpec::new("rawPredictionCol", Kind::Str, "\"rawPrediction\""),
    ParamSpec::new("labelCol", Kind::Str, "\"label\""),
    ParamSpec::new("weightCol", Kind::Str, ""),
    ParamSpec::new("metricName", Kind::Str, "\"areaUnderROC\"").choices(&["areaUnderROC", "areaUnderPR"]),
    ParamSpec::new("numBins", Kind::Int, "1000").min(0.0),
];

/// Area under the ROC or PR curve, from distinct scores sorted descending, down-sampled to
/// about `numBins` points as MLlib does (groups of ⌊distinct/numBins⌋ scores when that is ≥ 2).
#[derive(Debug, Clone)]
pub struct BinaryClassificationEvaluator {
    params: Params,
}
evaluator_basics!(BinaryClassificationEvaluator, "BinaryClassificationEvaluator", BINARY);

/// (score, weighted positives, weighted negatives) per distinct score, descending.
fn score_counts(s: &[f64], y: &[f64], w: &[f64]) -> Vec<(f64, f64, f64)> {
    let mut idx: Vec<usize> = (0..s.len()).collect();
    idx.sort_by(|a, b| s[*b].total_cmp(&s[*a]));
    let mut out: Vec<(f64, f64, f64)> = Vec::new();
    for i in idx {
        let (p, n) = if y[i] > 0.5 { (w[i], 0.0) } else { (0.0, w[i]) };
        match out.last_mut() {
            Some(last) if last.0 == s[i] => {
                last.1 += p;
                last.2 += n;
            }
            _ => out.push((s[i], p, n)),
        }
    }
    out
}

fn trapezoid(points: &[(f64, f64)]) -> f64 {
    points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum()
}

/// MLlib's areaUnderROC / areaUnderPR of scores and 0/1 labels.
pub fn binary_metric(s: &[f64], y: &[f64], w: &[f64], num_bins: usize, metric: &str) -> f64 {
    let mut counts = score_counts(s, y, w);
    if let Some(grouping) = counts.len().checked_div(num_bins) {
        if grouping >= 2 {
            counts = counts.chunks(grouping).map(|c| (c[0].0, c.iter().map(|x| x.1).sum(), c.iter().map(|x| x.2).sum())).collect();
        }
    }
    let (tp_total, fp_total): (f64, f64) = counts.iter().fold((0.0, 0.0), |a, c| (a.0 + c.1, a.1 + c.2));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut cum = Vec::with_capacity(counts.len());
    for c in &counts {
        tp += c.1;
        fp += c.2;
        cum.push((tp, fp));
    }
    let rate = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    if metric == "areaUnderPR" {
        let mut pts = vec![(0.0, 1.0)];
        for (tp, fp) in &cum {
            let precision = if tp + fp == 0.0 { 1.0 } else { tp / (tp + fp) };
            pts.push((rate(*tp, tp_total), precision));
        }
        trapezoid(&pts)
    } else {
        let mut pts = vec![(0.0, 0.0)];
        pts.extend(cum.iter().map(|(tp, fp)| (rate(*fp, fp_total), rate(*tp, tp_total))));
        pts.push((1.0, 1.0));
        trapezoid(&pts)
    }
}

#[async_trait]
impl Evaluator for BinaryClassificationEvaluator {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn clone_box(&self) -> Box<dyn Evaluator> {
        Box::new(self.clone())
    }
    fn is_larger_better(&self) -> Result<bool> {
        Ok(true)
    }

    fn evaluate_frame(&self, frame: &Frame) -> Result<f64> {
        let p = &self.params;
        let s = scores(frame, &p.string("rawPredictionCol")?)?;
        let y = frame.f64_values(&p.string("labelCol")?)?;
        let w = frame.weights(p.opt_string("weightCol")?.as_deref())?;
        Ok(binary_metric(&s, &y, &w, p.usize("numBins")?, &p.string("metricName")?))
    }
}

static MULTI: &[ParamSpec] = &[
    ParamSpec::new("predictionCol", Kind::Str, "\"prediction\""),
    ParamSpec::new("labelCol", Kind::Str, "\"label\""),
    ParamSpec::new("weightCol", Kind::Str, ""),
    ParamSpec::new("probabilityCol", Kind::Str, "\"probability\""),
    ParamSpec::new("metricName", Kind::Str, "\"f1\"").choices(&[
        "f1",
        "accuracy",
        "weightedPrecision",
        "weightedRecall",
        "weightedTruePositiveRate",
        "weightedFalsePositiveRate",
        "weightedFMeasure",
        "truePositiveRateByLabel",
        "falsePositiveRateByLabel",
        "precisionByLabel",
        "recallByLabel",
        "fMeasureByLabel",
        "logLoss",
        "hammingLoss",
    ]),
    ParamSpec::new("metricLabel", Kind::Float, "0.0").min(0.0),
    ParamSpec::new("beta", Kind::Float, "1.0").min(0.0),
    ParamSpec::new("eps", Kind::Float, "1e-15").min(0.0),
];

/// MLlib's multiclass metrics; `f1` (the default) is the label-weighted F1.
#[derive(Debug, Clone)]
pub struct MulticlassClassificationEvaluator {
    params: Params,
}
evaluator_basics!(MulticlassClassificationEvaluator, "MulticlassClassificationEvaluator", MULTI);

/// Per label: (weight of rows with it, true positives, false positives), keyed by label bits.
struct Confusion {
    total: f64,
    by_label: BTreeMap<u64, (f64, f64, f64)>,
}

impl Confusion {
    fn new(y: &[f64], p: &[f64], w: &[f64]) -> Self {
        let mut by_label: BTreeMap<u64, (f64, f64, f64)> = BTreeMap::new();
        let mut total = 0.0;
        for i in 0..y.len() {
            total += w[i];
            by_label.entry(y[i].to_bits()).or_default().0 += w[i];
            if y[i] == p[i] {
                by_label.entry(y[i].to_bits()).or_default().1 += w[i];
            } else {
                by_label.entry(p[i].to_bits()).or_default().2 += w[i];
            }
        }
        Confusion { total, by_label }
    }

    fn get(&self, label: f64) -> (f64, f64, f64) {
        self.by_label.get(&label.to_bits()).copied().unwrap_or_default()
    }

    fn precision(&self, l: f64) -> f64 {
        let (_, tp, fp) = self.get(l);
        if tp + fp == 0.0 {
            0.0
        } else {
            tp / (tp + fp)
        }
    }

    fn recall(&self, l: f64) -> f64 {
        let (n, tp, _) = self.get(l);
        if n == 0.0 {
            0.0
        } else {
            tp / n
        }
    }

    fn fpr(&self, l: f64) -> f64 {
        let (n, _, fp) = self.get(l);
        let neg = self.total - n;
        if neg == 0.0 {
            0.0
        } else {
            fp / neg
        }
    }

    fn f(&self, l: f64, beta: f64) -> f64 {
        let (p, r) = (self.precision(l), self.recall(l));
        let b2 = beta * beta;
        if p + r == 0.0 {
            0.0
        } else {
            (1.0 + b2) * p * r / (b2 * p + r)
        }
    }

    /// Σ over labels present in the data of (share of rows) × metric.
    fn weighted(&self, m: impl Fn(f64) -> f64) -> f64 {
        self.by_label.iter().filter(|(_, c)| c.0 > 0.0).map(|(l, c)| c.0 / self.total * m(f64::from_bits(*l))).sum()
    }
}

#[async_trait]
impl Evaluator for MulticlassClassificationEvaluator {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn clone_box(&self) -> Box<dyn Evaluator> {
        Box::new(self.clone())
    }
    fn is_larger_better(&self) -> Result<bool> {
        Ok(!matches!(self.params.string("metricName")?.as_str(), "weightedFalsePositiveRate" | "falsePositiveRateByLabel" | "logLoss" | "hammingLoss"))
    }

    fn evaluate_frame(&self, frame: &Frame) -> Result<f64> {
        let p = &self.params;
        let y = frame.f64_values(&p.string("labelCol")?)?;
        let w = frame.weights(p.opt_string("weightCol")?.as_deref())?;
        let metric = p.string("metricName")?;
        if metric == "logLoss" {
            let col = p.string("probabilityCol")?;
            let eps = p.f64("eps")?;
            let (mut loss, mut total, mut row) = (0.0, 0.0, 0usize);
            for a in frame.arrays(&col)? {
                let v = VectorColumn::new(&col, a.as_ref())?;
                for i in 0..v.len() {
                    let label = y[row] as usize;
                    let mut prob = 0.0;
                    v.for_each(i, |j, x| {
                        if j == label {
                            prob = x
                        }
                    });
                    loss -= w[row] * prob.clamp(eps, 1.0 - eps).ln();
                    total += w[row];
                    row += 1;
                }
            }
            return Ok(if total > 0.0 { loss / total } else { 0.0 });
        }
        let pred = frame.f64_values(&p.string("predictionCol")?)?;
        if y.is_empty() {
            return Err(invalid("MulticlassClassificationEvaluator: no rows"));
        }
        let c = Confusion::new(&y, &pred, &w);
        let beta = p.f64("beta")?;
        let l = p.f64("metricLabel")?;
        Ok(match metric.as_str() {
            "accuracy" => c.by_label.values().map(|v| v.1).sum::<f64>() / c.total,
            "hammingLoss" => 1.0 - c.by_label.values().map(|v| v.1).sum::<f64>() / c.total,
            "weightedPrecision" => c.weighted(|l| c.precision(l)),
            "weightedRecall" | "weightedTruePositiveRate" => c.weighted(|l| c.recall(l)),
            "weightedFalsePositiveRate" => c.weighted(|l| c.fpr(l)),
            "weightedFMeasure" => c.weighted(|l| c.f(l, beta)),
            "truePositiveRateByLabel" | "recallByLabel" => c.recall(l),
            "falsePositiveRateByLabel" => c.fpr(l),
            "precisionByLabel" => c.precision(l),
            "fMeasureByLabel" => c.f(l, beta),
            _ => c.weighted(|l| c.f(l, 1.0)),
        })
    }
}

static REGRESSION: &[ParamSpec] = &[
    ParamSpec::new("predictionCol", Kind::Str, "\"prediction\""),
    ParamSpec::new("labelCol", Kind::Str, "\"label\""),
    ParamSpec::new("weightCol", Kind::Str, ""),
    ParamSpec::new("metricName", Kind::Str, "\"rmse\"").choices(&["rmse", "mse", "r2", "mae", "var"]),
    ParamSpec::new("throughOrigin", Kind::Bool, "false"),
];

/// rmse, mse, r2, mae and explained variance, weighted.
#[derive(Debug, Clone)]
pub struct RegressionEvaluator {
    params: Params,
}
evaluator_basics!(RegressionEvaluator, "RegressionEvaluator", REGRESSION);

#[async_trait]
impl Evaluator for RegressionEvaluator {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn clone_box(&self) -> Box<dyn Evaluator> {
        Box::new(self.clone())
    }
    fn is_larger_better(&self) -> Result<bool> {
        Ok(matches!(self.params.string("metricName")?.as_str(), "r2" | "var"))
    }

    fn evaluate_frame(&self, frame: &Frame) -> Result<f64> {
        let p = &self.params;
        let y = frame.f64_values(&p.string("labelCol")?)?;
        let pred = frame.f64_values(&p.string("predictionCol")?)?;
        let w = frame.weights(p.opt_string("weightCol")?.as_deref())?;
        let total: f64 = w.iter().sum();
        if total == 0.0 {
            return Err(invalid("RegressionEvaluator: no rows"));
        }
        let mean_y = y.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() / total;
        let (mut se, mut ae, mut ss_tot, mut ss_y, mut ss_reg) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..y.len() {
            let r = y[i] - pred[i];
            se += w[i] * r * r;
            ae += w[i] * r.abs();
            ss_tot += w[i] * (y[i] - mean_y).powi(2);
            ss_y += w[i] * y[i] * y[i];
            ss_reg += w[i] * (pred[i] - mean_y).powi(2);
        }
        let mse = se / total;
        Ok(match p.string("metricName")?.as_str() {
            "mse" => mse,
            "mae" => ae / total,
            "var" => ss_reg / total,
            "r2" => {
                if p.bool("throughOrigin")? {
                    1.0 - se / ss_y
                } else {
                    1.0 - se / ss_tot
                }
            }
            _ => mse.sqrt(),
        })
    }
}

static CLUSTERING: &[ParamSpec] = &[
    ParamSpec::new("featuresCol", Kind::Str, "\"features\""),
    ParamSpec::new("predictionCol", Kind::Str, "\"prediction\""),
    ParamSpec::new("weightCol", Kind::Str, ""),
    ParamSpec::new("metricName", Kind::Str, "\"silhouette\"").choices(&["silhouette"]),
    ParamSpec::new("distanceMeasure", Kind::Str, "\"squaredEuclidean\"").choices(&["squaredEuclidean", "cosine"]),
];

/// The mean silhouette, exact, in O(n·k·d) through per-cluster sums (as MLlib computes it):
/// squared Euclidean distance by default, or cosine distance. Singleton clusters score 0.
#[derive(Debug, Clone)]
pub struct ClusteringEvaluator {
    params: Params,
}
evaluator_basics!(ClusteringEvaluator, "ClusteringEvaluator", CLUSTERING);

/// Silhouette of points `x` with cluster labels.
pub fn silhouette(x: &crate::stage::Matrix, labels: &[f64], cosine: bool) -> f64 {
    let (n, d) = (x.rows, x.cols);
    let mut ids: BTreeMap<u64, usize> = BTreeMap::new();
    for l in labels {
        let k = ids.len();
        ids.entry(l.to_bits()).or_insert(k);
    }
    let k = ids.len();
    let cluster: Vec<usize> = labels.iter().map(|l| ids[&l.to_bits()]).collect();
    // Cosine works on unit vectors: 1 − x̂·ŷ.
    let unit = |i: usize| -> Vec<f64> {
        let r = x.row(i);
        if cosine {
            let nrm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(|v| if nrm > 0.0 { v / nrm } else { 0.0 }).collect()
        } else {
            r.to_vec()
        }
    };
    let mut count = vec![0.0; k];
    let mut sum = vec![0.0; k * d];
    let mut sq = vec![0.0; k];
    for i in 0..n {
        let c = cluster[i];
        let u = unit(i);
        count[c] += 1.0;
        sq[c] += u.iter().map(|v| v * v).sum::<f64>();
        for (s, v) in sum[c * d..(c + 1) * d].iter_mut().zip(&u) {
            *s += v;
        }
    }
    let mut total = 0.0;
    for i in 0..n {
        let c = cluster[i];
        if count[c] <= 1.0 {
            continue;
        }
        let u = unit(i);
        let own_sq: f64 = u.iter().map(|v| v * v).sum();
        let mean_dist = |o: usize| -> f64 {
            let dotp: f64 = u.iter().zip(&sum[o * d..(o + 1) * d]).map(|(a, b)| a * b).sum();
            if cosine {
                1.0 - dotp / count[o]
            } else {
                own_sq - 2.0 * dotp / count[o] + sq[o] / count[o]
            }
        };
        let a = mean_dist(c) * count[c] / (count[c] - 1.0);
        let b = (0..k).filter(|o| *o != c).map(mean_dist).fold(f64::INFINITY, f64::min);
        let s = if k < 2 {
            0.0
        } else if a < b {
            1.0 - a / b
        } else if a > b {
            b / a - 1.0
        } else {
            0.0
        };
        total += s;
    }
    total / n as f64
}

#[async_trait]
impl Evaluator for ClusteringEvaluator {
    fn params(&self) -> &Params {
        &self.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }
    fn clone_box(&self) -> Box<dyn Evaluator> {
        Box::new(self.clone())
    }
    fn is_larger_better(&self) -> Result<bool> {
        Ok(true)
    }

    fn evaluate_frame(&self, frame: &Frame) -> Result<f64> {
        let p = &self.params;
        let x = frame.matrix(&p.string("featuresCol")?)?;
        let labels = frame.f64_values(&p.string("predictionCol")?)?;
        if x.rows == 0 {
            return Err(invalid("ClusteringEvaluator: no rows"));
        }
        Ok(silhouette(&x, &labels, p.string("distanceMeasure")? == "cosine"))
    }
}

