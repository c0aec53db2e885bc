//! `StandardScaler` and `MinMaxScaler`.

use std::any::Any;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use serde_json::{json, Value};

use crate::error::{column_error, invalid, Result};
use crate::feature::indexer::rebrand;
use crate::params::{Kind, ParamSpec, Params};
use crate::stage::{append_fields, with_columns, Estimator, Frame, ModelData, Transformer};
use crate::vector::{dense_array, dense_field, vector_size, VectorColumn};

/// Per-dimension count, mean and sum of squared deviations (Welford, in row order).
/// (rows, mean, M2, min, max) per dimension.
type Moments = (usize, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

fn moments(frame: &Frame, col: &str) -> Result<Moments> {
    let dim = match vector_size(frame.field(col)?) {
        Some(Some(d)) => d,
        _ => return Err(column_error(col, "expected a vector column of known size")),
    };
    let (mut n, mut mean, mut m2) = (0usize, vec![0.0; dim], vec![0.0; dim]);
    let (mut min, mut max) = (vec![f64::INFINITY; dim], vec![f64::NEG_INFINITY; dim]);
    let mut row = vec![0.0; dim];
    for a in frame.arrays(col)? {
        let v = VectorColumn::new(col, a.as_ref())?;
        for i in 0..v.len() {
            if v.is_null(i) {
                continue;
            }
            v.write_dense(i, &mut row);
            n += 1;
            for j in 0..dim {
                let x = row[j];
                let d = x - mean[j];
                mean[j] += d / n as f64;
                m2[j] += d * (x - mean[j]);
                min[j] = min[j].min(x);
                max[j] = max[j].max(x);
            }
        }
    }
    Ok((n, mean, m2, min, max))
}

/// Maps each non-null vector of `col` through `f` into a dense vector of the same size.
fn map_vectors(batch: &RecordBatch, schema: &Arc<Schema>, input: &str, output: &str, dim: usize, f: impl Fn(usize, f64) -> f64) -> Result<RecordBatch> {
    let col = batch.column(batch.schema().index_of(input).map_err(|_| column_error(input, "not found"))?);
    let v = VectorColumn::new(input, col.as_ref())?;
    let mut values = vec![0.0; v.len() * dim];
    for i in 0..v.len() {
        if v.is_null(i) {
            continue;
        }
        if v.size(i) != dim {
            return Err(invalid(format!("column `{input}`: a vector of size {} where the model expects {dim}", v.size(i))));
        }
        let out = &mut values[i * dim..(i + 1) * dim];
        v.write_dense(i, out);
        for (j, x) in out.iter_mut().enumerate() {
            *x = f(j, *x);
        }
    }
    let nulls = if !v.is_empty() && (0..v.len()).any(|i| v.is_null(i)) { Some(arrow::buffer::NullBuffer::from((0..v.len()).map(|i| !v.is_null(i)).collect::<Vec<_>>())) } else { None };
    with_columns(batch, schema, vec![(output.to_string(), dense_array(dim, values, nulls)?)])
}

static STD_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCol", Kind::Str, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("withMean", Kind::Bool, "false"),
    ParamSpec::new("withStd", Kind::Bool, "true"),
];

/// Scales to unit sample standard deviation (n − 1), optionally centring; a zero-variance
/// dimension becomes 0.0, as in MLlib.
#[derive(Debug, Clone)]
pub struct StandardScaler {
    params: Params,
}

impl Default for StandardScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl StandardScaler {
    pub fn new() -> Self {
        StandardScaler { params: Params::new("StandardScaler", STD_PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }
}

impl Estimator for StandardScaler {
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
        let (n, mean, m2, _, _) = moments(frame, &self.params.string("inputCol")?)?;
        let std = m2.iter().map(|s| if n > 1 { (s / (n - 1) as f64).sqrt() } else { 0.0 }).collect();
        Ok(Arc::new(StandardScalerModel { params: rebrand(self.params.clone(), "StandardScalerModel", STD_PARAMS), mean, std }))
    }
}

/// A fitted `StandardScaler`: `mean` and `std` per dimension.
#[derive(Debug, Clone)]
pub struct StandardScalerModel {
    params: Params,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl StandardScalerModel {
    pub fn load(params: Params, data: &ModelData) -> Result<Self> {
        Ok(StandardScalerModel {
            params: rebrand(params, "StandardScalerModel", STD_PARAMS),
            mean: serde_json::from_value(data.field("mean")?.clone())?,
            std: serde_json::from_value(data.field("std")?.clone())?,
        })
    }
}

impl Transformer for StandardScalerModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let input = self.params.string("inputCol")?;
        schema.field_with_name(&input).map_err(|_| column_error(&input, "not found"))?;
        append_fields(schema, vec![dense_field(&self.params.output_col("outputCol")?, self.mean.len())])
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let (with_mean, with_std) = (self.params.bool("withMean")?, self.params.bool("withStd")?);
        let (mean, std) = (&self.mean, &self.std);
        map_vectors(batch, &schema, &self.params.string("inputCol")?, &self.params.output_col("outputCol")?, mean.len(), |j, x| {
            let x = if with_mean { x - mean[j] } else { x };
            if with_std {
                if std[j] != 0.0 {
                    x / std[j]
                } else {
                    0.0
                }
            } else {
                x
            }
        })
    }

    fn model_data(&self) -> Result<ModelData> {
        Ok(ModelData { json: json!({ "mean": self.mean, "std": self.std }), tables: Vec::new() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

static MINMAX_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCol", Kind::Str, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("min", Kind::Float, "0.0"),
    ParamSpec::new("max", Kind::Float, "1.0"),
];

/// Rescales each dimension to `[min, max]`; a constant dimension maps to the middle.
#[derive(Debug, Clone)]
pub struct MinMaxScaler {
    params: Params,
}

impl Default for MinMaxScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl MinMaxScaler {
    pub fn new() -> Self {
        MinMaxScaler { params: Params::new("MinMaxScaler", MINMAX_PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }
}

impl Estimator for MinMaxScaler {
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
        if self.params.f64("min")? >= self.params.f64("max")? {
            return Err(crate::error::MlError::InvalidParam { stage: "MinMaxScaler".into(), param: "min".into(), message: "min must be below max".into() });
        }
        let (_, _, _, min, max) = moments(frame, &self.params.string("inputCol")?)?;
        Ok(Arc::new(MinMaxScalerModel { params: rebrand(self.params.clone(), "MinMaxScalerModel", MINMAX_PARAMS), original_min: min, original_max: max }))
    }
}

/// A fitted `MinMaxScaler`: the observed minimum and maximum per dimension.
#[derive(Debug, Clone)]
pub struct MinMaxScalerModel {
    params: Params,
    pub original_min: Vec<f64>,
    pub original_max: Vec<f64>,
}

impl MinMaxScalerModel {
    pub fn load(params: Params, data: &ModelData) -> Result<Self> {
        Ok(MinMaxScalerModel {
            params: rebrand(params, "MinMaxScalerModel", MINMAX_PARAMS),
            original_min: serde_json::from_value(data.field("originalMin")?.clone())?,
            original_max: serde_json::from_value(data.field("originalMax")?.clone())?,
        })
    }
}

impl Transformer for MinMaxScalerModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let input = self.params.string("inputCol")?;
        schema.field_with_name(&input).map_err(|_| column_error(&input, "not found"))?;
        append_fields(schema, vec![dense_field(&self.params.output_col("outputCol")?, self.original_min.len())])
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let (lo, hi) = (self.params.f64("min")?, self.params.f64("max")?);
        let (emin, emax) = (&self.original_min, &self.original_max);
        map_vectors(batch, &schema, &self.params.string("inputCol")?, &self.params.output_col("outputCol")?, emin.len(), |j, x| {
            let range = emax[j] - emin[j];
            let r = if range != 0.0 { (x - emin[j]) / range } else { 0.5 };
            r * (hi - lo) + lo
        })
    }

    fn model_data(&self) -> Result<ModelData> {
        Ok(ModelData { json: json!({ "originalMin": self.original_min, "originalMax": self.original_max }), tables: Vec::new() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
