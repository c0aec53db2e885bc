//! `StringIndexer` and `OneHotEncoder`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{json, Value};

use crate::error::{column_error, invalid, Result};
use crate::feature::in_out_cols;
use crate::params::{Kind, ParamSpec, Params};
use crate::stage::{append_fields, numeric_f64, with_columns, Estimator, Frame, ModelData, Transformer};
use crate::vector::sparse_field;

/// Field metadata key: the labels of an indexed column, as a JSON array (MLlib's nominal
/// attribute). `OneHotEncoder` reads the number of categories from it.
pub const LABELS_KEY: &str = "delta.ml.labels";

static INDEXER_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCol", Kind::Str, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("inputCols", Kind::Strings, ""),
    ParamSpec::new("outputCols", Kind::Strings, ""),
    ParamSpec::new("handleInvalid", Kind::Str, "\"error\"").choices(&["error", "skip", "keep"]),
    ParamSpec::new("stringOrderType", Kind::Str, "\"frequencyDesc\"").choices(&["frequencyDesc", "frequencyAsc", "alphabetDesc", "alphabetAsc"]),
];

/// Maps strings (or numbers, as their string form) to indices ordered by `stringOrderType`;
/// frequency ties are broken alphabetically, as in MLlib. Nulls are not counted at fit.
#[derive(Debug, Clone)]
pub struct StringIndexer {
    params: Params,
}

impl Default for StringIndexer {
    fn default() -> Self {
        Self::new()
    }
}

impl StringIndexer {
    pub fn new() -> Self {
        StringIndexer { params: Params::new("StringIndexer", INDEXER_PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }
}

/// A column as strings (numbers cast as Spark casts them), for indexing.
fn string_values(name: &str, a: &ArrayRef) -> Result<StringArray> {
    let s = match a.data_type() {
        DataType::Utf8 => a.clone(),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => cast(a, &DataType::Utf8)?,
        t if t.is_numeric() => cast(a, &DataType::Utf8)?,
        other => return Err(column_error(name, format!("StringIndexer needs a string or numeric column, found {other}"))),
    };
    Ok(s.as_string::<i32>().clone())
}

/// Orders labels by their counts under `order` (MLlib's four orders; ties alphabetical).
pub(crate) fn order_labels(counts: HashMap<String, u64>, order: &str) -> Vec<String> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    match order {
        "frequencyAsc" => v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0))),
        "alphabetDesc" => v.sort_by(|a, b| b.0.cmp(&a.0)),
        "alphabetAsc" => v.sort_by(|a, b| a.0.cmp(&b.0)),
        _ => v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))),
    }
    v.into_iter().map(|(l, _)| l).collect()
}

impl Estimator for StringIndexer {
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
        let order = self.params.string("stringOrderType")?;
        let mut labels = Vec::new();
        for (input, _) in in_out_cols(&self.params)? {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for a in frame.arrays(&input)? {
                let s = string_values(&input, &a)?;
                for v in s.iter().flatten() {
                    match counts.get_mut(v) {
                        Some(c) => *c += 1,
                        None => {
                            counts.insert(v.to_string(), 1);
                        }
                    }
                }
            }
            labels.push(order_labels(counts, &order));
        }
        let mut params = self.params.clone();
        params.set_uid(self.params.uid());
        Ok(Arc::new(StringIndexerModel::from_labels(params, labels)?))
    }
}

/// A fitted `StringIndexer`: the labels of each input column, index = position.
#[derive(Debug, Clone)]
pub struct StringIndexerModel {
    params: Params,
    labels: Vec<Vec<String>>,
    index: Vec<HashMap<String, usize>>,
}

impl StringIndexerModel {
    pub fn from_labels(mut params: Params, labels: Vec<Vec<String>>) -> Result<Self> {
        params = rebrand(params, "StringIndexerModel", INDEXER_PARAMS);
        let index = labels.iter().map(|l| l.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect()).collect();
        Ok(StringIndexerModel { params, labels, index })
    }

    /// `labelsArray`: the labels per input column.
    pub fn labels_array(&self) -> &[Vec<String>] {
        &self.labels
    }

    pub fn load(params: Params, data: &ModelData) -> Result<Self> {
        let labels: Vec<Vec<String>> = serde_json::from_value(data.field("labelsArray")?.clone())?;
        Self::from_labels(params, labels)
    }
}

/// The same params under the model's class name (the uid is kept, as MLlib keeps it).
pub(crate) fn rebrand(params: Params, stage: &'static str, specs: &'static [crate::params::ParamSpec]) -> Params {
    let mut p = Params::new(stage, specs);
    p.set_uid(params.uid());
    let _ = p.set_json(&params.to_json());
    p
}

impl Transformer for StringIndexerModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let keep = self.params.string("handleInvalid")? == "keep";
        let mut fields = Vec::new();
        for ((input, output), labels) in in_out_cols(&self.params)?.iter().zip(&self.labels) {
            schema.field_with_name(input).map_err(|_| column_error(input, "not found"))?;
            let mut names = labels.clone();
            if keep {
                names.push("__unknown".into());
            }
            fields.push(Field::new(output, DataType::Float64, false).with_metadata(HashMap::from([(LABELS_KEY.to_string(), Value::from(names).to_string())])));
        }
        append_fields(schema, fields)
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let handle = self.params.string("handleInvalid")?;
        let mut keep_rows = vec![true; batch.num_rows()];
        let mut outputs = Vec::new();
        for (((input, output), labels), index) in in_out_cols(&self.params)?.iter().zip(&self.labels).zip(&self.index) {
            let col = batch.column(batch.schema().index_of(input).map_err(|_| column_error(input, "not found"))?);
            let s = string_values(input, col)?;
            let mut out = Vec::with_capacity(s.len());
            for (i, v) in s.iter().enumerate() {
                match v.and_then(|v| index.get(v)) {
                    Some(ix) => out.push(*ix as f64),
                    None => match handle.as_str() {
                        "keep" => out.push(labels.len() as f64),
                        "skip" => {
                            keep_rows[i] = false;
                            out.push(f64::NAN);
                        }
                        _ => {
                            return Err(invalid(match v {
                                None => format!("StringIndexer: column `{input}` has a null value (handleInvalid = error; use skip or keep)"),
                                Some(v) => format!("StringIndexer: unseen label `{v}` in column `{input}` (handleInvalid = error; use skip or keep)"),
                            }))
                        }
                    },
                }
            }
            outputs.push((output.clone(), Arc::new(Float64Array::from(out)) as ArrayRef));
        }
        let out = with_columns(batch, &schema, outputs)?;
        if keep_rows.iter().all(|k| *k) {
            Ok(out)
        } else {
            Ok(filter_record_batch(&out, &BooleanArray::from(keep_rows))?)
        }
    }

    fn model_data(&self) -> Result<ModelData> {
        Ok(ModelData { json: json!({ "labelsArray": self.labels }), tables: Vec::new() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

static OHE_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCol", Kind::Str, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("inputCols", Kind::Strings, ""),
    ParamSpec::new("outputCols", Kind::Strings, ""),
    ParamSpec::new("dropLast", Kind::Bool, "true"),
    ParamSpec::new("handleInvalid", Kind::Str, "\"error\"").choices(&["error", "keep"]),
];

/// One-hot encodes category indices into sparse vectors. The number of categories comes from
/// the input's labels (a `StringIndexer` output) or, without them, from the largest index seen.
#[derive(Debug, Clone)]
pub struct OneHotEncoder {
    params: Params,
}

impl Default for OneHotEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl OneHotEncoder {
    pub fn new() -> Self {
        OneHotEncoder { params: Params::new("OneHotEncoder", OHE_PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }
}

impl Estimator for OneHotEncoder {
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
        let mut sizes = Vec::new();
        for (input, _) in in_out_cols(&self.params)? {
            let field = frame.field(&input)?;
            let from_meta = field.metadata().get(LABELS_KEY).and_then(|l| serde_json::from_str::<Vec<String>>(l).ok()).map(|l| l.len());
            let size = match from_meta {
                Some(n) => n,
                None => {
                    let mut max = -1.0f64;
                    for v in frame.f64_values(&input)? {
                        if !(v >= 0.0 && v.fract() == 0.0) {
                            return Err(invalid(format!("OneHotEncoder: column `{input}` has the value {v}; category indices are integers >= 0")));
                        }
                        max = max.max(v);
                    }
                    (max + 1.0) as usize
                }
            };
            sizes.push(size);
        }
        Ok(Arc::new(OneHotEncoderModel { params: rebrand(self.params.clone(), "OneHotEncoderModel", OHE_PARAMS), category_sizes: sizes }))
    }
}

/// A fitted `OneHotEncoder`: the number of categories of each input.
#[derive(Debug, Clone)]
pub struct OneHotEncoderModel {
    params: Params,
    category_sizes: Vec<usize>,
}

impl OneHotEncoderModel {
    pub fn category_sizes(&self) -> &[usize] {
        &self.category_sizes
    }

    pub fn load(params: Params, data: &ModelData) -> Result<Self> {
        let category_sizes: Vec<usize> = serde_json::from_value(data.field("categorySizes")?.clone())?;
        Ok(OneHotEncoderModel { params: rebrand(params, "OneHotEncoderModel", OHE_PARAMS), category_sizes })
    }

    fn out_size(&self, categories: usize) -> Result<usize> {
        let keep = self.params.string("handleInvalid")? == "keep";
        let drop = self.params.bool("dropLast")?;
        Ok(categories + usize::from(keep) - usize::from(drop))
    }
}

impl Transformer for OneHotEncoderModel {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let mut fields = Vec::new();
        for ((input, output), size) in in_out_cols(&self.params)?.iter().zip(&self.category_sizes) {
            let f = schema.field_with_name(input).map_err(|_| column_error(input, "not found"))?;
            if !(f.data_type().is_numeric()) {
                return Err(column_error(input, format!("OneHotEncoder needs numeric category indices, found {}", f.data_type())));
            }
            fields.push(sparse_field(output, self.out_size(*size)?));
        }
        append_fields(schema, fields)
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = Arc::new(self.transform_schema(&batch.schema())?);
        let keep = self.params.string("handleInvalid")? == "keep";
        let mut outputs = Vec::new();
        for ((input, output), size) in in_out_cols(&self.params)?.iter().zip(&self.category_sizes) {
            let out_size = self.out_size(*size)?;
            let col = numeric_f64(input, batch.column(batch.schema().index_of(input).map_err(|_| column_error(input, "not found"))?))?;
            let col = col.as_primitive::<arrow::datatypes::Float64Type>();
            let mut rows = Vec::with_capacity(col.len());
            for i in 0..col.len() {
                let v = if col.is_null(i) { f64::NAN } else { col.value(i) };
                let valid = v >= 0.0 && v.fract() == 0.0 && (v as usize) < *size;
                let pos = if valid {
                    v as usize
                } else if keep {
                    *size
                } else {
                    return Err(invalid(format!(
                        "OneHotEncoder: column `{input}` has the value {v}, not a category index below {size} (handleInvalid = error; use keep)"
                    )));
                };
                rows.push(Some(if pos < out_size { (vec![pos as i32], vec![1.0]) } else { (vec![], vec![]) }));
            }
            outputs.push((output.clone(), crate::vector::sparse_array(out_size, &rows)?));
        }
        with_columns(batch, &schema, outputs)
    }

    fn model_data(&self) -> Result<ModelData> {
        Ok(ModelData { json: json!({ "categorySizes": self.category_sizes }), tables: Vec::new() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

