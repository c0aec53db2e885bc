//! `VectorAssembler`: numeric columns and vectors into one dense vector.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use serde_json::Value;

use crate::error::{column_error, invalid, Result};
use crate::params::{Kind, ParamSpec, Params};
use crate::stage::{append_fields, numeric_f64, with_columns, Transformer};
use crate::vector::{dense_array, dense_field, vector_size, VectorColumn};

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new("inputCols", Kind::Strings, ""),
    ParamSpec::new("outputCol", Kind::Str, ""),
    ParamSpec::new("handleInvalid", Kind::Str, "\"error\"").choices(&["error", "skip", "keep"]),
];

/// Concatenates numeric columns (booleans as 0/1) and vector columns (dense or sparse) into a
/// dense vector. Nulls and NaN are invalid: `error` fails naming the column, `skip` drops the
/// row, `keep` writes NaN (a null vector becomes its size in NaN).
///
/// MLlib picks dense or sparse per row; we always write dense (`FixedSizeList<Float64>`), which
/// is what every model here reads fastest. Values are the same.
#[derive(Debug, Clone)]
pub struct VectorAssembler {
    params: Params,
}

impl Default for VectorAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl VectorAssembler {
    /// The params, to set by name.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    pub fn new() -> Self {
        VectorAssembler { params: Params::new("VectorAssembler", PARAMS) }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.params.set(name, value)?;
        Ok(self)
    }

    /// The size each input contributes.
    fn sizes(&self, schema: &Schema) -> Result<Vec<usize>> {
        let mut sizes = Vec::new();
        for c in self.params.strings("inputCols")? {
            let f = schema.field_with_name(&c).map_err(|_| column_error(&c, "not found"))?;
            let size = match vector_size(f) {
                Some(Some(n)) => n,
                Some(None) => return Err(column_error(&c, "a sparse vector column of unknown size (no `delta.ml.size` metadata)")),
                None if f.data_type().is_numeric() || f.data_type() == &arrow::datatypes::DataType::Boolean => 1,
                None => return Err(column_error(&c, format!("VectorAssembler needs numeric, boolean or vector columns, found {}", f.data_type()))),
            };
            sizes.push(size);
        }
        Ok(sizes)
    }
}

impl Transformer for VectorAssembler {
    fn params(&self) -> &Params {
        &self.params
    }

    fn transform_schema(&self, schema: &Schema) -> Result<Schema> {
        let dim = self.sizes(schema)?.iter().sum();
        append_fields(schema, vec![dense_field(&self.params.output_col("outputCol")?, dim)])
    }

    fn transform_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let in_schema = batch.schema();
        let schema = Arc::new(self.transform_schema(&in_schema)?);
        let sizes = self.sizes(&in_schema)?;
        let dim: usize = sizes.iter().sum();
        let handle = self.params.string("handleInvalid")?;
        let n = batch.num_rows();
        let mut values = vec![0.0; n * dim];
        let mut keep_rows = vec![true; n];
        let mut offset = 0;
        for (c, size) in self.params.strings("inputCols")?.iter().zip(&sizes) {
            let col = batch.column(in_schema.index_of(c).map_err(|_| column_error(c, "not found"))?);
            let bad = |row: usize, what: &str| invalid(format!("VectorAssembler: column `{c}` has {what} at row {row} (handleInvalid = error; use skip or keep)"));
            if vector_size(in_schema.field_with_name(c)?).is_some() {
                let v = VectorColumn::new(c, col.as_ref())?;
                for i in 0..n {
                    let out = &mut values[i * dim + offset..i * dim + offset + size];
                    if v.is_null(i) {
                        match handle.as_str() {
                            "keep" => out.fill(f64::NAN),
                            "skip" => keep_rows[i] = false,
                            _ => return Err(bad(i, "a null vector")),
                        }
                        continue;
                    }
                    v.write_dense(i, out);
                    if out.iter().any(|x| x.is_nan()) {
                        match handle.as_str() {
                            "keep" => {}
                            "skip" => keep_rows[i] = false,
                            _ => return Err(bad(i, "NaN")),
                        }
                    }
                }
            } else {
                let a = numeric_f64(c, col)?;
                let a = a.as_primitive::<arrow::datatypes::Float64Type>();
                for i in 0..n {
                    let x = if a.is_null(i) { None } else { Some(a.value(i)) };
                    let slot = &mut values[i * dim + offset];
                    match x {
                        Some(x) if !x.is_nan() => *slot = x,
                        _ => match handle.as_str() {
                            "keep" => *slot = f64::NAN,
                            "skip" => keep_rows[i] = false,
                            _ => return Err(bad(i, if x.is_none() { "a null" } else { "NaN" })),
                        },
                    }
                }
            }
            offset += size;
        }
        let out = with_columns(batch, &schema, vec![(self.params.output_col("outputCol")?, dense_array(dim, values, None)?)])?;
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
