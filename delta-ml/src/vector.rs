//! Feature vectors as Arrow columns.
//!
//! * **Dense**: `FixedSizeList<Float64>` of the vector's size (item field `item`, nullable);
//!   `VectorAssembler`, `StandardScaler`, `MinMaxScaler` and the models' `rawPrediction` /
//!   `probability` columns are dense.
//! * **Sparse**: `Struct<size: Int32, indices: List<Int32>, values: List<Float64>>`, indices
//!   ascending, as MLlib's `SparseVector`; `OneHotEncoder` writes these. The field carries the
//!   size in its metadata (`delta.ml.size`) so that a reader knows it without a row.
//!
//! Every stage that reads vectors accepts both; [`VectorColumn`] reads either.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float64Array, Int32Array, ListArray, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields};

use crate::error::{column_error, Result};

/// Field metadata key holding a sparse vector column's size.
pub const SIZE_KEY: &str = "delta.ml.size";

/// The Arrow type of a dense vector of `dim` values.
pub fn dense_type(dim: usize) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, true)), dim as i32)
}

/// A dense vector field named `name`.
pub fn dense_field(name: &str, dim: usize) -> Field {
    Field::new(name, dense_type(dim), true)
}

fn sparse_fields() -> Fields {
    Fields::from(vec![
        Field::new("size", DataType::Int32, false),
        Field::new("indices", DataType::List(Arc::new(Field::new("item", DataType::Int32, false))), false),
        Field::new("values", DataType::List(Arc::new(Field::new("item", DataType::Float64, false))), false),
    ])
}

/// The Arrow type of a sparse vector.
pub fn sparse_type() -> DataType {
    DataType::Struct(sparse_fields())
}

/// A sparse vector field of `size`, the size in its metadata.
pub fn sparse_field(name: &str, size: usize) -> Field {
    Field::new(name, sparse_type(), true).with_metadata(HashMap::from([(SIZE_KEY.to_string(), size.to_string())]))
}

/// Whether a field holds vectors, and of what size when that is known from the type or metadata.
pub fn vector_size(field: &Field) -> Option<Option<usize>> {
    match field.data_type() {
        DataType::FixedSizeList(item, n) if item.data_type() == &DataType::Float64 => Some(Some(*n as usize)),
        DataType::Struct(f) if f == &sparse_fields() => Some(field.metadata().get(SIZE_KEY).and_then(|s| s.parse().ok())),
        _ => None,
    }
}

/// Builds a dense vector column from row-major `values` (`rows × dim`).
pub fn dense_array(dim: usize, values: Vec<f64>, nulls: Option<NullBuffer>) -> Result<ArrayRef> {
    let item = Arc::new(Field::new("item", DataType::Float64, true));
    Ok(Arc::new(FixedSizeListArray::try_new(item, dim as i32, Arc::new(Float64Array::from(values)), nulls)?))
}

/// Builds a sparse vector column: one `(indices, values)` per row (`None` for a null row).
pub fn sparse_array(size: usize, rows: &[Option<(Vec<i32>, Vec<f64>)>]) -> Result<ArrayRef> {
    let mut idx_offsets = vec![0i32];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    let mut valid = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some((i, v)) = row {
            indices.extend_from_slice(i);
            values.extend_from_slice(v);
        }
        idx_offsets.push(indices.len() as i32);
        valid.push(row.is_some());
    }
    let fields = sparse_fields();
    let offsets = OffsetBuffer::new(idx_offsets.into());
    let idx = ListArray::try_new(Arc::new(Field::new("item", DataType::Int32, false)), offsets.clone(), Arc::new(Int32Array::from(indices)), None)?;
    let val = ListArray::try_new(Arc::new(Field::new("item", DataType::Float64, false)), offsets, Arc::new(Float64Array::from(values)), None)?;
    let sizes = Int32Array::from(vec![size as i32; rows.len()]);
    let nulls = if valid.iter().all(|v| *v) { None } else { Some(NullBuffer::from(valid)) };
    Ok(Arc::new(StructArray::try_new(fields, vec![Arc::new(sizes), Arc::new(idx), Arc::new(val)], nulls)?))
}

/// A vector column read row by row, dense or sparse.
pub enum VectorColumn<'a> {
    Dense { dim: usize, values: &'a [f64], array: &'a FixedSizeListArray },
    Sparse { array: &'a StructArray, sizes: &'a Int32Array, indices: &'a ListArray, values: &'a ListArray },
}

impl<'a> VectorColumn<'a> {
    /// Reads `array` (the column `name`) as vectors.
    pub fn new(name: &str, array: &'a dyn Array) -> Result<Self> {
        match array.data_type() {
            DataType::FixedSizeList(item, n) if item.data_type() == &DataType::Float64 => {
                let fsl = array.as_fixed_size_list();
                let values = fsl.values().as_primitive::<arrow::datatypes::Float64Type>();
                // A sliced array's values start at its offset.
                let start = fsl.offset() * *n as usize;
                let end = start + fsl.len() * *n as usize;
                Ok(VectorColumn::Dense { dim: *n as usize, values: &values.values()[start..end], array: fsl })
            }
            DataType::Struct(f) if f == &sparse_fields() => {
                let s = array.as_struct();
                Ok(VectorColumn::Sparse {
                    array: s,
                    sizes: s.column(0).as_primitive(),
                    indices: s.column(1).as_list(),
                    values: s.column(2).as_list(),
                })
            }
            other => Err(column_error(name, format!("expected a vector column, found {other}"))),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            VectorColumn::Dense { array, .. } => array.len(),
            VectorColumn::Sparse { array, .. } => array.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_null(&self, row: usize) -> bool {
        match self {
            VectorColumn::Dense { array, .. } => array.is_null(row),
            VectorColumn::Sparse { array, .. } => array.is_null(row),
        }
    }

    /// The size of the vector in `row`.
    pub fn size(&self, row: usize) -> usize {
        match self {
            VectorColumn::Dense { dim, .. } => *dim,
            VectorColumn::Sparse { sizes, .. } => sizes.value(row).max(0) as usize,
        }
    }

    /// Calls `f(index, value)` for every stored entry of `row` (every entry of a dense vector).
    pub fn for_each(&self, row: usize, mut f: impl FnMut(usize, f64)) {
        match self {
            VectorColumn::Dense { dim, values, .. } => {
                for (j, v) in values[row * dim..(row + 1) * dim].iter().enumerate() {
                    f(j, *v);
                }
            }
            VectorColumn::Sparse { indices, values, .. } => {
                let i = indices.value(row);
                let v = values.value(row);
                let i = i.as_primitive::<arrow::datatypes::Int32Type>();
                let v = v.as_primitive::<arrow::datatypes::Float64Type>();
                for (j, x) in i.values().iter().zip(v.values().iter()) {
                    f(*j as usize, *x);
                }
            }
        }
    }

    /// Writes `row` into `out` (length = the vector's size), zeros where sparse.
    pub fn write_dense(&self, row: usize, out: &mut [f64]) {
        match self {
            VectorColumn::Dense { dim, values, .. } => out.copy_from_slice(&values[row * dim..(row + 1) * dim]),
            VectorColumn::Sparse { .. } => {
                out.fill(0.0);
                self.for_each(row, |j, v| {
                    if let Some(o) = out.get_mut(j) {
                        *o = v;
                    }
                });
            }
        }
    }
}
