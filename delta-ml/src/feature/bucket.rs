//! `Bucketizer`, `QuantileDiscretizer` and `Imputer`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};

use crate::error::{column_error, invalid, MlError, Result};
use crate::feature::in_out_cols;
use crate::feature::indexer::rebrand;
use crate::params::{f64_json, json_f64, Kind, ParamSpec, Params};
use crate::stage::{append_fields, numeric_f64, with_columns, Estimator, Frame, ModelData, Transformer};

static BUCKETIZER_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCol", Kind::Str, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("splits", Kind::Floats, ""),
    ParamSpec::new("handleInvalid", Kind::Str, "\"error\"").choices(&["error", "skip", "keep"]),
];

/// Maps a number to the index of its bucket: `[splits[i], splits[i+1])`, the last bucket closed.
/// NaN (and null) is invalid: `keep` puts it in an extra bucket at the end.
#[derive(Debug, Clone)]
pub struct Bucketizer {
    params: Params,
}

impl Default for Bucketizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Bucketizer {
    /// The params, to set by name.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    pub fn new() -> Self {
        Bucketizer { params: Params::new("Bucketizer", BUCKETIZER_PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }

    fn splits(&self) -> Result<Vec<f64>> {
        let s = self.params.floats("splits")?;
        if s.len() < 3 && s.len() != 2 {
            return Err(MlError::InvalidParam { stage: "Bucketizer".into(), param: "splits".into(), message: "needs at least 2 values".into() });
        }
        if s.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) {
            return Err(MlError::InvalidParam { stage: "Bucketizer".into(), param: "splits".into(), message: "must be strictly increasing".into() });
        }
        Ok(s)
    }
}

fn bucket_of(splits: &[f64], x: f64) -> Option<usize> {
    let last = *splits.last()?;
    if x == last {
        return Some(splits.len() - 2);
    }
    if x < splits[0] || x > last {
        return None;
    }
    // The first split above x, minus one.
    Some(splits.partition_point(|s| *s <= x) - 1)
}

impl Transformer for Bucketizer {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let input = self.params.string("inputCol")?;
        let f = schema.field_with_name(&input).map_err(|_| column_error(&input, "not found"))?;
        if !f.data_type().is_numeric() {
            return Err(column_error(&input, format!("Bucketizer needs a numeric column, found {}", f.data_type())));
        }
        append_fields(schema, vec![Field::new(self.params.output_col("outputCol")?, DataType::Float64, true)])
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let splits = self.splits()?;
        let input = self.params.string("inputCol")?;
        let handle = self.params.string("handleInvalid")?;
        let col = numeric_f64(&input, batch.column(batch.schema().index_of(&input)?))?;
        let col = col.as_primitive::<arrow::datatypes::Float64Type>();
        let mut keep_rows = vec![true; col.len()];
        let mut out = Vec::with_capacity(col.len());
        for i in 0..col.len() {
            let x = if col.is_null(i) { f64::NAN } else { col.value(i) };
            if x.is_nan() {
                match handle.as_str() {
                    "keep" => out.push((splits.len() - 1) as f64),
                    "skip" => {
                        keep_rows[i] = false;
                        out.push(f64::NAN)
                    }
                    _ => return Err(invalid(format!("Bucketizer: column `{input}` has NaN or null at row {i} (handleInvalid = error; use skip or keep)"))),
                }
                continue;
            }
            match bucket_of(&splits, x) {
                Some(b) => out.push(b as f64),
                None => return Err(invalid(format!("Bucketizer: value {x} of column `{input}` is outside the splits [{}, {}]", splits[0], splits[splits.len() - 1]))),
            }
        }
        let out = with_columns(batch, &schema, vec![(self.params.output_col("outputCol")?, Arc::new(Float64Array::from(out)) as ArrayRef)])?;
        if keep_rows.iter().all(|k| *k) {
            Ok(out)
        } else {
            Ok(filter_record_batch(&out, &BooleanArray::from(keep_rows))?)
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

static QD_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCol", Kind::Str, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("numBuckets", Kind::Int, "2").min(2.0),
    ParamSpec::new("relativeError", Kind::Float, "0.001").min(0.0),
    ParamSpec::new("handleInvalid", Kind::Str, "\"error\"").choices(&["error", "skip", "keep"]),
];

/// Fits a [`Bucketizer`] whose splits are the column's quantiles at `i / numBuckets`, with −∞
/// and +∞ at the ends and repeated splits removed. Quantiles are exact (the element of rank
/// ⌈p·n⌉), which is within any `relativeError` of MLlib's approximate ones.
#[derive(Debug, Clone)]
pub struct QuantileDiscretizer {
    params: Params,
}

impl Default for QuantileDiscretizer {
    fn default() -> Self {
        Self::new()
    }
}

impl QuantileDiscretizer {
    pub fn new() -> Self {
        QuantileDiscretizer { params: Params::new("QuantileDiscretizer", QD_PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }
}

/// The element of rank ⌈p·n⌉ (1-based) of sorted `v`.
pub(crate) fn quantile_sorted(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

impl Estimator for QuantileDiscretizer {
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
        let input = self.params.string("inputCol")?;
        let k = self.params.usize("numBuckets")?;
        let mut v: Vec<f64> = Vec::new();
        for a in frame.arrays(&input)? {
            let a = numeric_f64(&input, &a)?;
            v.extend(a.as_primitive::<arrow::datatypes::Float64Type>().iter().flatten().filter(|x| !x.is_nan()));
        }
        v.sort_by(f64::total_cmp);
        let mut splits = vec![f64::NEG_INFINITY];
        for i in 1..k {
            let q = quantile_sorted(&v, i as f64 / k as f64);
            if q.is_finite() && splits.last().is_some_and(|l| *l < q) {
                splits.push(q);
            }
        }
        splits.push(f64::INFINITY);
        let mut b = Bucketizer::new();
        b.params.set_uid(self.params.uid());
        b.params.set("inputCol", input)?;
        b.params.set("outputCol", self.params.output_col("outputCol")?)?;
        b.params.set("handleInvalid", self.params.string("handleInvalid")?)?;
        b.params.set("splits", Value::Array(splits.into_iter().map(f64_json).collect()))?;
        Ok(Arc::new(b))
    }
}

static IMPUTER_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCol", Kind::Str, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("inputCols", Kind::Strings, ""),
    ParamSpec::new("outputCols", Kind::Strings, ""),
    ParamSpec::new("strategy", Kind::Str, "\"mean\"").choices(&["mean", "median", "mode"]),
    ParamSpec::new("missingValue", Kind::Float, "\"NaN\""),
    ParamSpec::new("relativeError", Kind::Float, "0.001").min(0.0),
];

/// Replaces missing values (null and `missingValue`, NaN by default) by the column's mean,
/// median or mode (the smallest of the most frequent values), computed on the other values.
/// The output keeps the input's type.
#[derive(Debug, Clone)]
pub struct Imputer {
    params: Params,
}

impl Default for Imputer {
    fn default() -> Self {
        Self::new()
    }
}

impl Imputer {
    pub fn new() -> Self {
        Imputer { params: Params::new("Imputer", IMPUTER_PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }
}

fn is_missing(x: f64, missing: f64) -> bool {
    x.is_nan() || x == missing
}

impl Estimator for Imputer {
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
        let strategy = self.params.string("strategy")?;
        let missing = self.params.f64("missingValue")?;
        let mut surrogates = Vec::new();
        for (input, _) in in_out_cols(&self.params)? {
            let mut v: Vec<f64> = Vec::new();
            for a in frame.arrays(&input)? {
                let a = numeric_f64(&input, &a)?;
                v.extend(a.as_primitive::<arrow::datatypes::Float64Type>().iter().flatten().filter(|x| !is_missing(*x, missing)));
            }
            if v.is_empty() {
                return Err(invalid(format!("Imputer: column `{input}` has only missing values; no surrogate can be computed")));
            }
            let s = match strategy.as_str() {
                "median" => {
                    v.sort_by(f64::total_cmp);
                    quantile_sorted(&v, 0.5)
                }
                "mode" => {
                    let mut counts: HashMap<u64, usize> = HashMap::new();
                    for x in &v {
                        *counts.entry(x.to_bits()).or_default() += 1;
                    }
                    let best = counts.values().copied().max().unwrap_or(0);
                    v.iter().copied().filter(|x| counts.get(&x.to_bits()) == Some(&best)).fold(f64::INFINITY, f64::min)
                }
                _ => v.iter().sum::<f64>() / v.len() as f64,
            };
            surrogates.push(s);
        }
        Ok(Arc::new(ImputerModel { params: rebrand(self.params.clone(), "ImputerModel", IMPUTER_PARAMS), surrogates }))
    }
}

/// A fitted `Imputer`: one surrogate per input column.
#[derive(Debug, Clone)]
pub struct ImputerModel {
    params: Params,
    pub surrogates: Vec<f64>,
}

impl ImputerModel {
    pub fn load(params: Params, data: &ModelData) -> Result<Self> {
        let s = data.field("surrogates")?.as_array().ok_or_else(|| MlError::Format("surrogates is not a list".into()))?;
        let surrogates = s.iter().map(|v| json_f64(v).ok_or_else(|| MlError::Format("surrogate is not a number".into()))).collect::<Result<_>>()?;
        Ok(ImputerModel { params: rebrand(params, "ImputerModel", IMPUTER_PARAMS), surrogates })
    }
}

impl Transformer for ImputerModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let mut fields = Vec::new();
        for (input, output) in in_out_cols(&self.params)? {
            let f = schema.field_with_name(&input).map_err(|_| column_error(&input, "not found"))?;
            if !f.data_type().is_numeric() {
                return Err(column_error(&input, format!("Imputer needs a numeric column, found {}", f.data_type())));
            }
            fields.push(Field::new(output, f.data_type().clone(), true));
        }
        append_fields(schema, fields)
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let missing = self.params.f64("missingValue")?;
        let mut outputs = Vec::new();
        for ((input, output), s) in in_out_cols(&self.params)?.iter().zip(&self.surrogates) {
            let col = batch.column(batch.schema().index_of(input)?);
            let f = numeric_f64(input, col)?;
            let f = f.as_primitive::<arrow::datatypes::Float64Type>();
            let filled: Float64Array = f.iter().map(|x| Some(x.filter(|x| !is_missing(*x, missing)).unwrap_or(*s))).collect();
            let out = cast(&(Arc::new(filled) as ArrayRef), col.data_type())?;
            outputs.push((output.clone(), out));
        }
        with_columns(batch, &schema, outputs)
    }

    fn model_data(&self) -> Result<ModelData> {
        Ok(ModelData { json: json!({ "surrogates": self.surrogates.iter().map(|x| f64_json(*x)).collect::<Vec<_>>() }), tables: Vec::new() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
