//! File statistics (numRecords, minValues, maxValues, nullCount) from the parquet writer's
//! column chunk statistics, truncated as delta-spark truncates them.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat, sort_to_indices, take, SortOptions};
use arrow::datatypes::{DataType as ArrowType, TimeUnit};
use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult};
use crate::table::schema::{ColumnMappingMode, DataType, StructType};

/// Statistics of one leaf column within one file: the null count and whether bounds may be
/// given, kept while rows are written. The bounds themselves come from the parquet writer's
/// column chunk statistics when the file closes ([`chunk_bounds`]): it computes them anyway, and
/// a second pass here cost a tenth of the encoding time.
pub(crate) struct ColumnStats {
    path: Vec<String>,
    /// The leaf's Arrow type (from the first batch).
    data_type: Option<ArrowType>,
    nulls: u64,
    /// Min/max are not collected for this type (or became unreliable, e.g. NaN).
    no_bounds: bool,
}

/// The smallest (or largest) non-null value as a one-row array: arrow's aggregate kernels for
/// primitives and strings (one pass), a partial sort for anything else.
pub(crate) fn extreme(a: &ArrayRef, descending: bool) -> DeltaResult<Option<ArrayRef>> {
    use arrow::datatypes::*;
    if a.len() == a.null_count() {
        return Ok(None);
    }
    macro_rules! prim {
        ($t:ty) => {{
            let p = a.as_primitive::<$t>();
            let v = if descending { arrow::compute::max(p) } else { arrow::compute::min(p) };
            return Ok(
                v.map(|v| Arc::new(arrow::array::PrimitiveArray::<$t>::from(vec![v]).with_data_type(a.data_type().clone())) as ArrayRef)
            );
        }};
    }
    match a.data_type() {
        ArrowType::Int8 => prim!(Int8Type),
        ArrowType::Int16 => prim!(Int16Type),
        ArrowType::Int32 => prim!(Int32Type),
        ArrowType::Int64 => prim!(Int64Type),
        ArrowType::Float32 => prim!(Float32Type),
        ArrowType::Float64 => prim!(Float64Type),
        ArrowType::Date32 => prim!(Date32Type),
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondType),
        ArrowType::Decimal128(_, _) => prim!(Decimal128Type),
        ArrowType::Utf8 => {
            let s = a.as_string::<i32>();
            let v = if descending { arrow::compute::max_string(s) } else { arrow::compute::min_string(s) };
            return Ok(v.map(|v| Arc::new(arrow::array::StringArray::from(vec![v])) as ArrayRef));
        }
        _ => {}
    }
    let idx = sort_to_indices(a, Some(SortOptions { descending, nulls_first: false }), Some(1))?;
    Ok(Some(take(a, &idx, None)?))
}

pub(crate) fn leaf_arrays(batch: &RecordBatch, schema: &StructType, mode: ColumnMappingMode) -> Vec<(Vec<String>, ArrayRef)> {
    fn walk(prefix: &[String], t: &StructType, arrays: &[ArrayRef], mode: ColumnMappingMode, out: &mut Vec<(Vec<String>, ArrayRef)>) {
        for (f, a) in t.fields.iter().zip(arrays) {
            let mut p = prefix.to_vec();
            p.push(f.physical_name(mode).to_string());
            match (&f.data_type, a.as_struct_opt()) {
                (DataType::Struct(inner), Some(s)) => walk(&p, inner, s.columns(), mode, out),
                _ => out.push((p, a.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk(&[], schema, batch.columns(), mode, &mut out);
    out
}

impl ColumnStats {
    pub(crate) fn new(path: Vec<String>) -> Self {
        ColumnStats { path, data_type: None, nulls: 0, no_bounds: false }
    }

    /// The leaf column's logical path.
    pub(crate) fn path(&self) -> &[String] {
        &self.path
    }

    pub(crate) fn update(&mut self, a: &ArrayRef) -> DeltaResult<()> {
        self.nulls += a.null_count() as u64;
        if self.data_type.is_none() {
            self.data_type = Some(a.data_type().clone());
        }
        if self.no_bounds {
            return Ok(());
        }
        match a.data_type() {
            ArrowType::Boolean | ArrowType::Binary | ArrowType::Null | ArrowType::List(_) | ArrowType::Map(_, _) | ArrowType::Struct(_) => {
                self.no_bounds = true;
                return Ok(());
            }
            ArrowType::Float32 | ArrowType::Float64 => {
                fn any_nan<T: arrow::datatypes::ArrowPrimitiveType>(a: &ArrayRef, is_nan: impl Fn(T::Native) -> bool) -> bool {
                    let p = a.as_primitive::<T>();
                    match p.nulls() {
                        None => p.values().iter().any(|v| is_nan(*v)),
                        Some(_) => p.iter().flatten().any(is_nan),
                    }
                }
                let nan = match a.data_type() {
                    ArrowType::Float32 => any_nan::<arrow::datatypes::Float32Type>(a, f32::is_nan),
                    _ => any_nan::<arrow::datatypes::Float64Type>(a, f64::is_nan),
                };
                // Parquet's float statistics leave NaN out; Spark orders it above every value.
                if nan {
                    self.no_bounds = true;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parquet column chunk statistics of strings are kept to this many bytes: the first 32
/// characters (at most 4 bytes each) always survive whole, so the Delta statistics cut from them
/// (32 characters, see [`stat_value`]) are the same as if cut from the exact values.
pub(crate) const STATS_TRUNCATE_BYTES: usize = 32 * 4 + 4;

/// A parquet statistics value pair as one-row arrays of the leaf's Arrow type `t` (`None` when
/// absent or of a type stats are not kept for).
fn stat_arrays(st: &parquet::file::statistics::Statistics, t: &ArrowType) -> DeltaResult<Option<(ArrayRef, ArrayRef)>> {
    use arrow::array::{Decimal128Array, Float32Array, Float64Array, Int32Array, Int64Array, StringArray};
    use parquet::file::statistics::Statistics as S;
    fn pair<A: Array + 'static, V: Clone>(lo: Option<&V>, hi: Option<&V>, make: impl Fn(V) -> A) -> Option<(ArrayRef, ArrayRef)> {
        Some((Arc::new(make(lo?.clone())) as ArrayRef, Arc::new(make(hi?.clone())) as ArrayRef))
    }
    let decimal = |v: i128| -> DeltaResult<ArrayRef> {
        let ArrowType::Decimal128(p, s) = t else { return Err(DeltaError::Internal("not a decimal".into())) };
        Ok(Arc::new(Decimal128Array::from(vec![v]).with_precision_and_scale(*p, *s)?))
    };
    let decimal_pair = |lo: Option<i128>, hi: Option<i128>| -> DeltaResult<Option<(ArrayRef, ArrayRef)>> {
        match (lo, hi) {
            (Some(lo), Some(hi)) => Ok(Some((decimal(lo)?, decimal(hi)?))),
            _ => Ok(None),
        }
    };
    let raw = match (st, t) {
        (S::Int32(v), ArrowType::Decimal128(_, _)) => decimal_pair(v.min_opt().map(|x| *x as i128), v.max_opt().map(|x| *x as i128))?,
        (S::Int64(v), ArrowType::Decimal128(_, _)) => decimal_pair(v.min_opt().map(|x| *x as i128), v.max_opt().map(|x| *x as i128))?,
        (S::FixedLenByteArray(v), ArrowType::Decimal128(_, _)) => {
            // Big-endian two's complement, sign-extended to 16 bytes.
            let value = |b: &[u8]| -> Option<i128> {
                if b.is_empty() || b.len() > 16 {
                    return None;
                }
                let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
                let mut bytes = [fill; 16];
                bytes[16 - b.len()..].copy_from_slice(b);
                Some(i128::from_be_bytes(bytes))
            };
            decimal_pair(v.min_bytes_opt().and_then(value), v.max_bytes_opt().and_then(value))?
        }
        (S::Int32(v), _) => pair(v.min_opt(), v.max_opt(), |x: i32| Int32Array::from(vec![x])),
        (S::Int64(v), _) => pair(v.min_opt(), v.max_opt(), |x: i64| Int64Array::from(vec![x])),
        (S::Float(v), _) => pair(v.min_opt(), v.max_opt(), |x: f32| Float32Array::from(vec![x])),
        (S::Double(v), _) => pair(v.min_opt(), v.max_opt(), |x: f64| Float64Array::from(vec![x])),
        (S::ByteArray(v), ArrowType::Utf8) => {
            match (v.min_bytes_opt().map(std::str::from_utf8), v.max_bytes_opt().map(std::str::from_utf8)) {
                (Some(Ok(lo)), Some(Ok(hi))) => {
                    Some((Arc::new(StringArray::from(vec![lo])) as ArrayRef, Arc::new(StringArray::from(vec![hi])) as ArrayRef))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some((lo, hi)) = raw else { return Ok(None) };
    if lo.data_type() == t {
        return Ok(Some((lo, hi)));
    }
    // Physical to logical: Int32 → Int8/Int16/Date32, Int64 → Timestamp(µs).
    match t {
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 | ArrowType::Date32 | ArrowType::Timestamp(_, _) => {
            Ok(Some((cast(&lo, t)?, cast(&hi, t)?)))
        }
        _ => Ok(None),
    }
}

/// The bounds of leaf `path` over a file's row groups, from the parquet writer's column chunk
/// statistics; `None` when some row group with values lacks them.
fn chunk_bounds(
    groups: &[parquet::file::metadata::RowGroupMetaData],
    path: &[String],
    t: &ArrowType,
) -> DeltaResult<Option<(ArrayRef, ArrayRef)>> {
    let mut bounds: Option<(ArrayRef, ArrayRef)> = None;
    for g in groups {
        let Some(col) = g.columns().iter().find(|c| c.column_path().parts() == path) else { return Ok(None) };
        let Some(st) = col.statistics() else { return Ok(None) };
        let Some((lo, hi)) = stat_arrays(st, t)? else {
            if st.null_count_opt() == Some(g.num_rows() as u64) {
                continue; // only nulls here
            }
            return Ok(None);
        };
        bounds = Some(match bounds {
            None => (lo, hi),
            Some((min, max)) => {
                let min = extreme(&concat(&[min.as_ref(), lo.as_ref()])?, false)?;
                let max = extreme(&concat(&[max.as_ref(), hi.as_ref()])?, true)?;
                match min.zip(max) {
                    Some(b) => b,
                    None => return Ok(None),
                }
            }
        });
    }
    Ok(bounds)
}

/// Renders a one-row array as a stats JSON value; `is_max` rounds the way readers expect
/// (strings truncated to 32 characters with a tie-breaker for maxima, timestamps to ms).
pub(crate) fn stat_value(a: &ArrayRef, is_max: bool) -> DeltaResult<Option<Value>> {
    Ok(Some(match a.data_type() {
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 => {
            json!(cast(a, &ArrowType::Int64)?.as_primitive::<arrow::datatypes::Int64Type>().value(0))
        }
        ArrowType::Float32 | ArrowType::Float64 => {
            let v = cast(a, &ArrowType::Float64)?.as_primitive::<arrow::datatypes::Float64Type>().value(0);
            match serde_json::Number::from_f64(v) {
                Some(n) => Value::Number(n),
                None => return Ok(None),
            }
        }
        ArrowType::Decimal128(_, _) => {
            let s = cast(a, &ArrowType::Utf8)?;
            let text = s.as_string::<i32>().value(0).to_string();
            match serde_json::from_str::<Value>(&text) {
                // serde_json keeps integers exact; fractional decimals become f64 (exact for
                // the precision stats need to bound, since parsing rounds to nearest).
                Ok(v) if v.is_number() => v,
                _ => return Ok(None),
            }
        }
        ArrowType::Date32 => json!(cast(a, &ArrowType::Utf8)?.as_string::<i32>().value(0)),
        ArrowType::Timestamp(TimeUnit::Microsecond, tz) => {
            let us = a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0);
            let ms = us.div_euclid(1000);
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
            let _ = is_max; // readers widen maxima by 999 µs
            if tz.is_some() {
                json!(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            } else {
                json!(t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
            }
        }
        ArrowType::Utf8 => {
            let s = a.as_string::<i32>().value(0);
            if s.chars().count() > 32 {
                let prefix: String = s.chars().take(32).collect();
                if is_max {
                    json!(format!("{prefix}\u{10FFFF}"))
                } else {
                    json!(prefix)
                }
            } else {
                json!(s)
            }
        }
        _ => return Ok(None),
    }))
}

fn insert_path(obj: &mut serde_json::Map<String, Value>, path: &[String], v: Value) {
    if path.len() == 1 {
        obj.insert(path[0].clone(), v);
        return;
    }
    let child = obj.entry(path[0].clone()).or_insert_with(|| json!({}));
    if let Some(o) = child.as_object_mut() {
        insert_path(o, &path[1..], v);
    }
}

/// The `stats` JSON of a closed file: `numRecords`, the null counts kept while writing, and
/// min/max from the column chunk statistics of its row groups.
pub(crate) fn file_stats(columns: &[ColumnStats], groups: &[parquet::file::metadata::RowGroupMetaData], rows: u64) -> DeltaResult<Value> {
    let mut min = serde_json::Map::new();
    let mut max = serde_json::Map::new();
    let mut nulls = serde_json::Map::new();
    for s in columns {
        insert_path(&mut nulls, &s.path, json!(s.nulls));
        let Some(t) = s.data_type.as_ref().filter(|_| !s.no_bounds) else { continue };
        let Some((lo, hi)) = chunk_bounds(groups, &s.path, t)? else { continue };
        if let Some(v) = stat_value(&lo, false)? {
            insert_path(&mut min, &s.path, v);
        }
        if let Some(v) = stat_value(&hi, true)? {
            insert_path(&mut max, &s.path, v);
        }
    }
    Ok(json!({"numRecords": rows, "minValues": min, "maxValues": max, "nullCount": nulls}))
}
