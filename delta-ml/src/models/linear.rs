//! `LinearRegression`: MLlib's normal-equation (WLS) and L-BFGS/OWL-QN solvers.
//!
//! The objective is glmnet's, as MLlib states it:
//! `1/(2W)·Σ wᵢ rᵢ² + (regParam/σ_y)·(1−α)/2·Σ(σ_jβ_j)² + regParam·α·Σ|σ_jβ_j|` (σ_j replaced by 1
//! when `standardization = false`). `solver = auto` picks `normal` (≤ 4096 features): σ are
//! population standard deviations, solved by Cholesky (faer) on the weighted covariance, or by
//! OWL-QN on the same quadratic when α·regParam > 0. `solver = l-bfgs` uses sample standard
//! deviations, as MLlib's does, on the same quadratic form (the Gram matrix is computed once, in
//! one pass over the rows, so an iteration costs d², not n·d). The intercept is
//! `ȳ − Σ β_j x̄_j`, unpenalised.

use std::any::Any;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use faer::linalg::solvers::Solve;
use serde_json::{json, Value};

use crate::error::{column_error, invalid, MlError, Result};
use crate::feature::indexer::rebrand;
use crate::lineage::Lineage;
use crate::models::{doubles, for_each_row};
use crate::optim::Lbfgs;
use crate::par::map_chunks;
use crate::params::{f64_json, json_f64, Kind, ParamSpec, Params};
use crate::stage::{append_fields, with_columns, Estimator, Frame, Matrix, ModelData, Transformer};

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("featuresCol", Kind::Str, "\"features\""),
    ParamSpec::new("labelCol", Kind::Str, "\"label\""),
    ParamSpec::new("weightCol", Kind::Str, ""),
    ParamSpec::new("predictionCol", Kind::Str, "\"prediction\""),
    ParamSpec::new("maxIter", Kind::Int, "100").min(0.0),
    ParamSpec::new("regParam", Kind::Float, "0.0").min(0.0),
    ParamSpec::new("elasticNetParam", Kind::Float, "0.0").min(0.0),
    ParamSpec::new("tol", Kind::Float, "1e-06").min(0.0),
    ParamSpec::new("fitIntercept", Kind::Bool, "true"),
    ParamSpec::new("standardization", Kind::Bool, "true"),
    ParamSpec::new("solver", Kind::Str, "\"auto\"").choices(&["auto", "normal", "l-bfgs"]),
    ParamSpec::new("loss", Kind::Str, "\"squaredError\"").choices(&["squaredError", "huber"]),
    ParamSpec::new("epsilon", Kind::Float, "1.35").min(1.0),
    ParamSpec::new("aggregationDepth", Kind::Int, "2").min(2.0),
    ParamSpec::new("maxBlockSizeInMB", Kind::Float, "0.0").min(0.0),
];

/// MLlib's `LinearRegression` (squared error).
#[derive(Debug, Clone)]
pub struct LinearRegression {
    params: Params,
}

impl Default for LinearRegression {
    fn default() -> Self {
        Self::new()
    }
}

/// Weighted first and second moments of features and label, in one pass.
struct Moments {
    w: f64,
    w2: f64,
    sx: Vec<f64>,
    sy: f64,
    syy: f64,
    /// Σ w x xᵀ, d × d row-major.
    sxx: Vec<f64>,
    sxy: Vec<f64>,
}

fn moments(x: &Matrix, y: &[f64], w: &[f64]) -> Moments {
    let d = x.cols;
    let parts = map_chunks(x.rows, |rows| {
        let r = rows.len();
        let mut weighted = Vec::with_capacity(r * d);
        let mut m = Moments { w: 0.0, w2: 0.0, sx: vec![0.0; d], sy: 0.0, syy: 0.0, sxx: vec![0.0; d * d], sxy: vec![0.0; d] };
        for i in rows.clone() {
            let (wi, yi, xi) = (w[i], y[i], x.row(i));
            m.w += wi;
            m.w2 += wi * wi;
            m.sy += wi * yi;
            m.syy += wi * yi * yi;
            for j in 0..d {
                m.sx[j] += wi * xi[j];
                m.sxy[j] += wi * xi[j] * yi;
                weighted.push(wi * xi[j]);
            }
        }
        // Σ w x xᵀ = Xᵀ (W X), by faer's matrix product.
        let xs = faer::MatRef::from_row_major_slice(&x.data[rows.start * d..rows.end * d], r, d);
        let wx = faer::MatRef::from_row_major_slice(&weighted, r, d);
        let mut g = faer::Mat::<f64>::zeros(d, d);
        faer::linalg::matmul::matmul(g.as_mut(), faer::Accum::Replace, xs.transpose(), wx, 1.0, faer::Par::Seq);
        for a in 0..d {
            for b in 0..d {
                m.sxx[a * d + b] = g[(a, b)];
            }
        }
        m
    });
    let mut total = Moments { w: 0.0, w2: 0.0, sx: vec![0.0; d], sy: 0.0, syy: 0.0, sxx: vec![0.0; d * d], sxy: vec![0.0; d] };
    for p in parts {
        total.w += p.w;
        total.w2 += p.w2;
        total.sy += p.sy;
        total.syy += p.syy;
        for (a, b) in total.sx.iter_mut().zip(&p.sx) {
            *a += b;
        }
        for (a, b) in total.sxy.iter_mut().zip(&p.sxy) {
            *a += b;
        }
        for (a, b) in total.sxx.iter_mut().zip(&p.sxx) {
            *a += b;
        }
    }
    total
}

impl LinearRegression {
    pub fn new() -> Self {
        LinearRegression { params: Params::new("LinearRegression", PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }

    pub fn fit_arrays(&self, x: &Matrix, y: &[f64], w: &[f64], lineage: Option<Lineage>) -> Result<LinearRegressionModel> {
        let p = &self.params;
        if p.string("loss")? != "squaredError" {
            return Err(MlError::InvalidParam { stage: "LinearRegression".into(), param: "loss".into(), message: "only squaredError is supported".into() });
        }
        let alpha = p.f64("elasticNetParam")?;
        if alpha > 1.0 {
            return Err(MlError::InvalidParam { stage: "LinearRegression".into(), param: "elasticNetParam".into(), message: "must be in [0, 1]".into() });
        }
        let d = x.cols;
        if x.rows == 0 {
            return Err(invalid("LinearRegression: no rows to fit"));
        }
        if y.len() != x.rows || w.len() != x.rows || x.data.len() != x.rows * d {
            return Err(invalid(format!("LinearRegression: {} feature rows, {} labels, {} weights", x.rows, y.len(), w.len())));
        }
        let fit_intercept = p.bool("fitIntercept")?;
        let standardization = p.bool("standardization")?;
        let reg = p.f64("regParam")?;
        let solver = p.string("solver")?;
        let normal = solver == "normal" || (solver == "auto" && d <= 4096);
        let m = moments(x, y, w);
        if m.w <= 0.0 {
            return Err(invalid("LinearRegression: the weights sum to 0"));
        }
        let mean_x: Vec<f64> = m.sx.iter().map(|s| s / m.w).collect();
        let mean_y = m.sy / m.w;
        // Population (normal) or sample (l-bfgs) variances, as MLlib's two solvers use them.
        let denom = if normal { m.w } else { m.w - m.w2 / m.w };
        let var_y = ((m.syy - m.w * mean_y * mean_y) / denom).max(0.0);
        let std_y = var_y.sqrt();
        let std_x: Vec<f64> = (0..d).map(|j| ((m.sxx[j * d + j] - m.w * mean_x[j] * mean_x[j]) / denom).max(0.0).sqrt()).collect();
        if std_y == 0.0 && (fit_intercept || mean_y == 0.0) {
            // A constant label: zero coefficients, the intercept its value (MLlib's shortcut).
            let intercept = if fit_intercept { mean_y } else { 0.0 };
            return Ok(LinearRegressionModel { params: rebrand(self.params.clone(), "LinearRegressionModel", PARAMS), coefficients: vec![0.0; d], intercept, objective_history: Vec::new(), lineage });
        }
        // The quadratic ½βᵀAβ − bᵀβ: A = weighted (centred) covariance, b = cross-covariance.
        let (cx, cy) = if fit_intercept { (mean_x.clone(), mean_y) } else { (vec![0.0; d], 0.0) };
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] = (m.sxx[i * d + j] - m.w * cx[i] * cx[j]) / m.w;
            }
            b[i] = (m.sxy[i] - m.w * cx[i] * cy) / m.w;
        }
        let eff = if std_y > 0.0 { reg / std_y } else { reg };
        let l2 = eff * (1.0 - alpha);
        let l1 = eff * alpha;
        let scale: Vec<f64> = std_x.iter().map(|s| if standardization { *s } else { 1.0 }).collect();
        // Features without variance get a zero coefficient (MLlib drops them).
        let active: Vec<usize> = (0..d).filter(|j| std_x[*j] > 0.0 || (!fit_intercept && a[j * d + j] > 0.0)).collect();
        let k = active.len();
        let mut ak = vec![0.0; k * k];
        let mut bk = vec![0.0; k];
        for (ii, i) in active.iter().enumerate() {
            for (jj, j) in active.iter().enumerate() {
                ak[ii * k + jj] = a[i * d + j];
            }
            ak[ii * k + ii] += l2 * scale[*i] * scale[*i];
            bk[ii] = b[*i];
        }
        let mut history = Vec::new();
        let beta_k = if normal && l1 == 0.0 {
            match cholesky_solve(&ak, &bk, k) {
                Some(s) => s,
                None => {
                    let (s, h) = quadratic_lbfgs(&ak, &bk, k, &vec![0.0; k], p.usize("maxIter")?, p.f64("tol")?, &active, &std_x, std_y);
                    history = h;
                    s
                }
            }
        } else {
            // MLlib's L1 is effL1·Σ|u_j| on u_j = β_j·σ_j/σ_y; in β's units that is
            // regParam·α·Σ|σ_j β_j| (σ_j = 1 without standardisation, where MLlib divides by σ_j).
            let l1w: Vec<f64> = active.iter().map(|j| l1 * std_y * scale[*j]).collect();
            let (s, h) = quadratic_lbfgs(&ak, &bk, k, &l1w, p.usize("maxIter")?, p.f64("tol")?, &active, &std_x, std_y);
            history = h;
            s
        };
        let mut coefficients = vec![0.0; d];
        for (ii, j) in active.iter().enumerate() {
            coefficients[*j] = beta_k[ii];
        }
        let intercept = if fit_intercept { mean_y - coefficients.iter().zip(&mean_x).map(|(c, m)| c * m).sum::<f64>() } else { 0.0 };
        Ok(LinearRegressionModel { params: rebrand(self.params.clone(), "LinearRegressionModel", PARAMS), coefficients, intercept, objective_history: history, lineage })
    }
}

fn cholesky_solve(a: &[f64], b: &[f64], k: usize) -> Option<Vec<f64>> {
    if k == 0 {
        return Some(Vec::new());
    }
    let m = faer::Mat::<f64>::from_fn(k, k, |i, j| a[i * k + j]);
    let llt = m.llt(faer::Side::Lower).ok()?;
    let rhs = faer::Mat::<f64>::from_fn(k, 1, |i, _| b[i]);
    let s = llt.solve(&rhs);
    let out: Vec<f64> = (0..k).map(|i| s[(i, 0)]).collect();
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// L-BFGS / OWL-QN on ½βᵀAβ − bᵀβ + L1, run in MLlib's scaled space (β_j·σ_j/σ_y), so that
/// the stopping rule sees the values MLlib's solver sees.
#[allow(clippy::too_many_arguments)]
fn quadratic_lbfgs(a: &[f64], b: &[f64], k: usize, l1: &[f64], max_iter: usize, tol: f64, active: &[usize], std_x: &[f64], std_y: f64) -> (Vec<f64>, Vec<f64>) {
    // β_j = u_j·σ_y/σ_j  (σ_j = 1 where a feature has no spread but is kept).
    let s: Vec<f64> = active.iter().map(|j| if std_x[*j] > 0.0 { std_y / std_x[*j] } else { std_y.max(1.0) }).collect();
    let sy2 = std_y * std_y;
    let mut f = |u: &[f64], g: &mut [f64]| -> f64 {
        let beta: Vec<f64> = u.iter().zip(&s).map(|(a, b)| a * b).collect();
        let mut v = 0.0;
        for i in 0..k {
            let ab: f64 = (0..k).map(|j| a[i * k + j] * beta[j]).sum();
            v += 0.5 * beta[i] * ab - b[i] * beta[i];
            g[i] = (ab - b[i]) * s[i] / sy2;
        }
        // ½ of the mean squared scaled residual, up to the constant ½·Var(y)/σ_y².
        v / sy2 + 0.5
    };
    let l1u: Vec<f64> = l1.iter().zip(&s).map(|(w, si)| w * si / sy2).collect();
    let solver = Lbfgs::new(max_iter, tol).with_l1(if l1u.iter().any(|w| *w != 0.0) { l1u } else { Vec::new() });
    let sol = solver.minimize(&mut f, vec![0.0; k]);
    (sol.x.iter().zip(&s).map(|(a, b)| a * b).collect(), sol.history)
}

impl Estimator for LinearRegression {
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
        let x = frame.matrix(&p.string("featuresCol")?)?;
        let y = frame.f64_values(&p.string("labelCol")?)?;
        let w = frame.weights(p.opt_string("weightCol")?.as_deref())?;
        Ok(Arc::new(self.fit_arrays(&x, &y, &w, frame.lineage.clone())?))
    }
}

/// A fitted linear regression: `prediction = x·β + intercept`.
#[derive(Debug, Clone)]
pub struct LinearRegressionModel {
    params: Params,
    coefficients: Vec<f64>,
    intercept: f64,
    pub objective_history: Vec<f64>,
    lineage: Option<Lineage>,
}

impl LinearRegressionModel {
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    pub fn load(params: Params, data: &ModelData, lineage: Option<Lineage>) -> Result<Self> {
        let c = data.field("coefficients")?.as_array().ok_or_else(|| MlError::Format("coefficients".into()))?;
        let coefficients = c.iter().map(|v| json_f64(v).ok_or_else(|| MlError::Format("coefficient".into()))).collect::<Result<_>>()?;
        let intercept = json_f64(data.field("intercept")?).ok_or_else(|| MlError::Format("intercept".into()))?;
        Ok(LinearRegressionModel { params: rebrand(params, "LinearRegressionModel", PARAMS), coefficients, intercept, objective_history: Vec::new(), lineage })
    }
}

impl Transformer for LinearRegressionModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let f = self.params.string("featuresCol")?;
        schema.field_with_name(&f).map_err(|_| column_error(&f, "not found"))?;
        append_fields(schema, vec![Field::new(self.params.string("predictionCol")?, DataType::Float64, true)])
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let mut pred = vec![0.0; batch.num_rows()];
        for_each_row(batch, &self.params.string("featuresCol")?, self.coefficients.len(), |i, x| {
            pred[i] = self.intercept + x.iter().zip(&self.coefficients).map(|(a, b)| a * b).sum::<f64>();
        })?;
        with_columns(batch, &schema, vec![(self.params.string("predictionCol")?, doubles(pred))])
    }

    fn model_data(&self) -> Result<ModelData> {
        Ok(ModelData { json: json!({ "coefficients": self.coefficients.iter().map(|v| f64_json(*v)).collect::<Vec<_>>(), "intercept": f64_json(self.intercept) }), tables: Vec::new() })
    }

    fn lineage(&self) -> Option<&Lineage> {
        self.lineage.as_ref()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
