//! `LogisticRegression`: binomial and multinomial, elastic net, MLlib's objective.
//!
//! The objective is MLlib's: the weighted mean log-loss plus
//! `regParam·((1−α)/2·Σ(w_j)² + α·Σ|w_j|)` over coefficients `w` in the *standardised* space
//! (`w_j = β_j·σ_j`, σ the weighted sample standard deviation), the intercept unpenalised. With
//! `standardization = false` the penalty is on β itself (`w_j/σ_j` in that space). Features are
//! scaled (and, with an intercept, centred, as MLlib does to help convergence) virtually: the
//! kernel reads the raw rows and folds mean and scale into the coefficients, so no scaled copy
//! of the data exists. L-BFGS (L2) or OWL-QN (L1) with m = 10 and Breeze's stopping rule, the
//! intercept starting at the log-odds (binomial) or the centred log of smoothed class counts
//! (multinomial). Multinomial intercepts are centred to sum to 0, and without regularisation
//! the coefficients are centred across classes, as MLlib reports them.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};

use crate::error::{column_error, invalid, MlError, Result};
use crate::feature::indexer::rebrand;
use crate::lineage::Lineage;
use crate::models::{doubles, for_each_row, num_classes, vectors, weighted_moments};
use crate::optim::{Convergence, Lbfgs};
use crate::par::sum_chunks;
use crate::params::{Kind, ParamSpec, Params};
use crate::stage::{append_fields, with_columns, Estimator, Frame, Matrix, ModelData, Transformer};
use crate::vector::{dense_array, dense_field, VectorColumn};

pub(crate) static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("featuresCol", Kind::Str, "\"features\""),
    ParamSpec::new("labelCol", Kind::Str, "\"label\""),
    ParamSpec::new("weightCol", Kind::Str, ""),
    ParamSpec::new("predictionCol", Kind::Str, "\"prediction\""),
    ParamSpec::new("probabilityCol", Kind::Str, "\"probability\""),
    ParamSpec::new("rawPredictionCol", Kind::Str, "\"rawPrediction\""),
    ParamSpec::new("maxIter", Kind::Int, "100").min(0.0),
    ParamSpec::new("regParam", Kind::Float, "0.0").min(0.0),
    ParamSpec::new("elasticNetParam", Kind::Float, "0.0").min(0.0),
    ParamSpec::new("tol", Kind::Float, "1e-06").min(0.0),
    ParamSpec::new("fitIntercept", Kind::Bool, "true"),
    ParamSpec::new("standardization", Kind::Bool, "true"),
    ParamSpec::new("threshold", Kind::Float, "0.5").min(0.0),
    ParamSpec::new("family", Kind::Str, "\"auto\"").choices(&["auto", "binomial", "multinomial"]),
    ParamSpec::new("aggregationDepth", Kind::Int, "2").min(2.0),
    ParamSpec::new("maxBlockSizeInMB", Kind::Float, "0.0").min(0.0),
];

/// MLlib's `LogisticRegression`.
#[derive(Debug, Clone)]
pub struct LogisticRegression {
    params: Params,
}

impl Default for LogisticRegression {
    fn default() -> Self {
        Self::new()
    }
}

impl LogisticRegression {
    pub fn new() -> Self {
        LogisticRegression { params: Params::new("LogisticRegression", PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }

    /// Fits on a feature matrix, labels and weights.
    pub fn fit_arrays(&self, x: &Matrix, y: &[f64], w: &[f64], classes: usize, lineage: Option<Lineage>) -> Result<LogisticRegressionModel> {
        let p = &self.params;
        if p.f64("elasticNetParam")? > 1.0 {
            return Err(MlError::InvalidParam { stage: "LogisticRegression".into(), param: "elasticNetParam".into(), message: "must be in [0, 1]".into() });
        }
        let t = p.f64("threshold")?;
        if t > 1.0 {
            return Err(MlError::InvalidParam { stage: "LogisticRegression".into(), param: "threshold".into(), message: "must be in [0, 1]".into() });
        }
        let family = p.string("family")?;
        let multinomial = match family.as_str() {
            "binomial" if classes > 2 => return Err(MlError::InvalidParam { stage: "LogisticRegression".into(), param: "family".into(), message: format!("binomial with {classes} classes; use multinomial") }),
            "binomial" => false,
            "multinomial" => true,
            _ => classes > 2,
        };
        let (n, d) = (x.rows, x.cols);
        if n == 0 {
            return Err(invalid("LogisticRegression: no rows to fit"));
        }
        if y.len() != n || w.len() != n || x.data.len() != n * d {
            return Err(invalid(format!("LogisticRegression: {n} feature rows, {} labels, {} weights", y.len(), w.len())));
        }
        let k = if multinomial { classes.max(1) } else { 1 };
        let fit_intercept = p.bool("fitIntercept")?;
        let standardization = p.bool("standardization")?;
        let reg = p.f64("regParam")?;
        let alpha = p.f64("elasticNetParam")?;
        let (l1, l2) = (reg * alpha, reg * (1.0 - alpha));
        let (mean, std, _) = weighted_moments(x, w);
        let weight_sum: f64 = w.iter().sum();
        if weight_sum <= 0.0 {
            return Err(invalid("LogisticRegression: the weights sum to 0"));
        }
        let mut hist = vec![0.0; classes.max(2)];
        for (yi, wi) in y.iter().zip(w) {
            if !(*yi >= 0.0 && yi.fract() == 0.0 && (*yi as usize) < hist.len()) {
                return Err(invalid(format!("LogisticRegression: label {yi} is not one of the {} classes 0..{}", hist.len(), hist.len() - 1)));
            }
            hist[*yi as usize] += wi;
        }
        // One class only (binomial): MLlib returns ±∞ intercept and zero coefficients.
        if !multinomial && fit_intercept && (hist[0] == 0.0 || hist[1] == 0.0) {
            let intercept = if hist[1] == 0.0 { f64::NEG_INFINITY } else { f64::INFINITY };
            return Ok(LogisticRegressionModel::new(rebrand(self.params.clone(), "LogisticRegressionModel", PARAMS), vec![0.0; d], vec![intercept], classes.max(2), false, Vec::new(), lineage));
        }
        let centre: Vec<f64> = if fit_intercept { mean.clone() } else { vec![0.0; d] };
        let inv_std: Vec<f64> = std.iter().map(|s| if *s != 0.0 { 1.0 / s } else { 0.0 }).collect();
        let nb = if fit_intercept { k } else { 0 };
        let dim = k * d + nb;
        // Penalty weights in the scaled space.
        let pen: Vec<f64> = std.iter().map(|s| if standardization { 1.0 } else if *s != 0.0 { 1.0 / (s * s) } else { 0.0 }).collect();
        let mut x0 = vec![0.0; dim];
        if fit_intercept {
            if multinomial {
                let raw: Vec<f64> = hist.iter().take(k).map(|c| (c + 1.0).ln()).collect();
                let m = raw.iter().sum::<f64>() / k as f64;
                for c in 0..k {
                    x0[k * d + c] = raw[c] - m;
                }
            } else {
                x0[d] = (hist[1] / hist[0]).ln();
            }
        }
        let mut objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
            // Coefficients on the raw features and the matching intercepts.
            let mut beta = vec![0.0; k * d];
            let mut b = vec![0.0; k];
            for c in 0..k {
                let mut shift = 0.0;
                for j in 0..d {
                    let bj = theta[c * d + j] * inv_std[j];
                    beta[c * d + j] = bj;
                    shift += bj * centre[j];
                }
                b[c] = if fit_intercept { theta[k * d + c] } else { 0.0 } - shift;
            }
            let (loss, g) = sum_chunks(n, k * d + k, |rows, g| {
                let mut loss = 0.0;
                let mut margins = vec![0.0; k];
                for i in rows {
                    let wi = w[i];
                    if wi == 0.0 {
                        continue;
                    }
                    let xi = x.row(i);
                    let yi = y[i];
                    if k == 1 {
                        let m = b[0] + xi.iter().zip(&beta).map(|(a, c)| a * c).sum::<f64>();
                        loss += wi * ((-m.abs()).exp().ln_1p() + m.max(0.0) - yi * m);
                        let mult = wi * (1.0 / (1.0 + (-m).exp()) - yi);
                        for (gj, xj) in g[..d].iter_mut().zip(xi) {
                            *gj += mult * xj;
                        }
                        g[d] += mult;
                    } else {
                        let mut max = f64::NEG_INFINITY;
                        for c in 0..k {
                            let m = b[c] + xi.iter().zip(&beta[c * d..(c + 1) * d]).map(|(a, cc)| a * cc).sum::<f64>();
                            margins[c] = m;
                            max = max.max(m);
                        }
                        let sum: f64 = margins.iter().map(|m| (m - max).exp()).sum();
                        let lse = max + sum.ln();
                        loss += wi * (lse - margins[yi as usize]);
                        for c in 0..k {
                            let pc = (margins[c] - lse).exp();
                            let mult = wi * (pc - if c == yi as usize { 1.0 } else { 0.0 });
                            for (gj, xj) in g[c * d..(c + 1) * d].iter_mut().zip(xi) {
                                *gj += mult * xj;
                            }
                            g[k * d + c] += mult;
                        }
                    }
                }
                loss
            });
            let mut value = loss / weight_sum;
            for c in 0..k {
                let gsum = g[k * d + c];
                for j in 0..d {
                    let idx = c * d + j;
                    grad[idx] = (g[idx] - centre[j] * gsum) * inv_std[j] / weight_sum;
                    if l2 != 0.0 {
                        let wj = theta[idx];
                        value += 0.5 * l2 * pen[j] * wj * wj;
                        grad[idx] += l2 * pen[j] * wj;
                    }
                }
                if fit_intercept {
                    grad[k * d + c] = gsum / weight_sum;
                }
            }
            value
        };
        let mut l1w = vec![0.0; dim];
        if l1 != 0.0 {
            for c in 0..k {
                for j in 0..d {
                    l1w[c * d + j] = if standardization { l1 } else if std[j] != 0.0 { l1 / std[j] } else { 0.0 };
                }
            }
        }
        let solver = Lbfgs::new(p.usize("maxIter")?, p.f64("tol")?).with_l1(l1w);
        let sol = solver.minimize(&mut objective, x0);
        // Back to the raw features.
        let mut coef = vec![0.0; k * d];
        let mut intercepts = vec![0.0; k];
        for c in 0..k {
            let mut shift = 0.0;
            for j in 0..d {
                coef[c * d + j] = sol.x[c * d + j] * inv_std[j];
                shift += coef[c * d + j] * centre[j];
            }
            intercepts[c] = if fit_intercept { sol.x[k * d + c] - shift } else { 0.0 };
        }
        if multinomial {
            if reg == 0.0 {
                for j in 0..d {
                    let m = (0..k).map(|c| coef[c * d + j]).sum::<f64>() / k as f64;
                    for c in 0..k {
                        coef[c * d + j] -= m;
                    }
                }
            }
            if fit_intercept {
                let m = intercepts.iter().sum::<f64>() / k as f64;
                for b in intercepts.iter_mut() {
                    *b -= m;
                }
            }
        }
        let mut model = LogisticRegressionModel::new(rebrand(self.params.clone(), "LogisticRegressionModel", PARAMS), coef, intercepts, classes.max(2), multinomial, sol.history, lineage);
        model.converged = sol.reason;
        Ok(model)
    }
}

impl Estimator for LogisticRegression {
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
        let x = frame.matrix(&p.string("featuresCol")?)?;
        let y = frame.f64_values(&label)?;
        let w = frame.weights(p.opt_string("weightCol")?.as_deref())?;
        let classes = num_classes(frame, &label, &y)?;
        Ok(Arc::new(self.fit_arrays(&x, &y, &w, classes, frame.lineage.clone())?))
    }
}

/// A fitted logistic regression. Binomial: `rawPrediction = [−m, m]`, `probability =
/// [1 − σ(m), σ(m)]`, prediction 1 when `σ(m) > threshold`. Multinomial: `rawPrediction` the
/// class margins, `probability` their softmax, prediction the most probable class.
#[derive(Debug, Clone)]
pub struct LogisticRegressionModel {
    params: Params,
    /// `numCoefficientSets × numFeatures`, row-major.
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    num_classes: usize,
    multinomial: bool,
    /// The objective per iteration (MLlib's `summary.objectiveHistory`).
    pub objective_history: Vec<f64>,
    pub converged: Convergence,
    lineage: Option<Lineage>,
}

impl LogisticRegressionModel {
    fn new(params: Params, coefficients: Vec<f64>, intercepts: Vec<f64>, num_classes: usize, multinomial: bool, objective_history: Vec<f64>, lineage: Option<Lineage>) -> Self {
        LogisticRegressionModel { params, coefficients, intercepts, num_classes, multinomial, objective_history, converged: Convergence::MaxIterations, lineage }
    }

    pub fn num_features(&self) -> usize {
        self.coefficients.len() / self.intercepts.len().max(1)
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    pub fn is_multinomial(&self) -> bool {
        self.multinomial
    }

    /// Binomial coefficients (`coefficients`); for multinomial use [`Self::coefficient_matrix`].
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    /// `coefficientMatrix`, one row per coefficient set.
    pub fn coefficient_matrix(&self) -> Vec<Vec<f64>> {
        let d = self.num_features();
        self.coefficients.chunks(d.max(1)).map(<[f64]>::to_vec).collect()
    }

    pub fn intercept(&self) -> f64 {
        self.intercepts.first().copied().unwrap_or(0.0)
    }

    /// `interceptVector`.
    pub fn intercept_vector(&self) -> &[f64] {
        &self.intercepts
    }

    pub fn load(params: Params, data: &ModelData, lineage: Option<Lineage>) -> Result<Self> {
        let t = data.table("coefficients")?;
        let intercepts = crate::models::f64_column(t, "intercept")?;
        let v = VectorColumn::new("coefficients", t.column(1).as_ref())?;
        let d = if v.is_empty() { 0 } else { v.size(0) };
        let mut coefficients = vec![0.0; intercepts.len() * d];
        for i in 0..v.len() {
            v.write_dense(i, &mut coefficients[i * d..(i + 1) * d]);
        }
        let num_classes = data.field("numClasses")?.as_u64().ok_or_else(|| MlError::Format("numClasses".into()))? as usize;
        let multinomial = data.field("isMultinomial")?.as_bool().ok_or_else(|| MlError::Format("isMultinomial".into()))?;
        Ok(LogisticRegressionModel::new(rebrand(params, "LogisticRegressionModel", PARAMS), coefficients, intercepts, num_classes, multinomial, Vec::new(), lineage))
    }

    /// Raw margins, probabilities and the prediction of one row.
    pub fn predict_row(&self, x: &[f64], raw: &mut [f64], prob: &mut [f64]) -> Result<f64> {
        let d = self.num_features();
        if !self.multinomial {
            let m = self.intercepts[0] + x.iter().zip(&self.coefficients).map(|(a, b)| a * b).sum::<f64>();
            raw[0] = -m;
            raw[1] = m;
            let p1 = 1.0 / (1.0 + (-m).exp());
            prob[0] = 1.0 - p1;
            prob[1] = p1;
            let t = self.params.f64("threshold")?;
            let raw_threshold = if t == 0.0 { f64::NEG_INFINITY } else if t == 1.0 { f64::INFINITY } else { (t / (1.0 - t)).ln() };
            return Ok(if m > raw_threshold { 1.0 } else { 0.0 });
        }
        let k = self.intercepts.len();
        let mut max = f64::NEG_INFINITY;
        for c in 0..k {
            let m = self.intercepts[c] + x.iter().zip(&self.coefficients[c * d..(c + 1) * d]).map(|(a, b)| a * b).sum::<f64>();
            raw[c] = m;
            max = max.max(m);
        }
        let sum: f64 = raw[..k].iter().map(|m| (m - max).exp()).sum();
        let mut best = 0;
        for c in 0..k {
            prob[c] = (raw[c] - max).exp() / sum;
            if prob[c] > prob[best] {
                best = c;
            }
        }
        Ok(best as f64)
    }

    fn out_cols(&self) -> Result<(String, String, String)> {
        Ok((self.params.string("rawPredictionCol")?, self.params.string("probabilityCol")?, self.params.string("predictionCol")?))
    }

    fn width(&self) -> usize {
        if self.multinomial {
            self.intercepts.len()
        } else {
            2
        }
    }
}

impl Transformer for LogisticRegressionModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let f = self.params.string("featuresCol")?;
        schema.field_with_name(&f).map_err(|_| column_error(&f, "not found"))?;
        let (raw, prob, pred) = self.out_cols()?;
        let k = self.width();
        append_fields(schema, vec![dense_field(&raw, k), dense_field(&prob, k), Field::new(pred, DataType::Float64, true)])
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let k = self.width();
        let n = batch.num_rows();
        let (mut raw, mut prob, mut pred) = (vec![0.0; n * k], vec![0.0; n * k], vec![0.0; n]);
        let mut err = None;
        for_each_row(batch, &self.params.string("featuresCol")?, self.num_features(), |i, x| match self.predict_row(x, &mut raw[i * k..(i + 1) * k], &mut prob[i * k..(i + 1) * k]) {
            Ok(p) => pred[i] = p,
            Err(e) => err = Some(e),
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let (rc, pc, yc) = self.out_cols()?;
        with_columns(batch, &schema, vec![(rc, vectors(k, raw)?), (pc, vectors(k, prob)?), (yc, doubles(pred))])
    }

    fn model_data(&self) -> Result<ModelData> {
        let d = self.num_features();
        let rows = self.intercepts.len();
        let schema = Arc::new(Schema::new(vec![Field::new("intercept", DataType::Float64, false), dense_field("coefficients", d)]));
        let table = RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(self.intercepts.clone())) as ArrayRef, dense_array(d, self.coefficients.clone(), None)?])?;
        let _ = rows;
        Ok(ModelData { json: json!({ "numClasses": self.num_classes, "numFeatures": d, "isMultinomial": self.multinomial }), tables: vec![("coefficients".into(), table)] })
    }

    fn lineage(&self) -> Option<&Lineage> {
        self.lineage.as_ref()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
