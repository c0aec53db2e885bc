//! Conformance helpers: locating the shared corpus and comparing scan output with expected rows.
//!
//! Rows are compared as multisets of canonical strings, columns matched by name. The canonical
//! form follows the corpus rules: timestamps as UTC (or wall-clock) microseconds, decimals as
//! unscaled integers at the declared scale, floats by bits with every NaN equal, maps as sorted
//! entry sets, a null struct distinct from a struct of nulls.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType,
};

/// The corpus directory: `$DELTA_CONFORMANCE_DIR`, else `../shared/conformance` beside the
/// workspace. `None` when absent.
pub fn corpus_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("DELTA_CONFORMANCE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidate = workspace.join("../shared/conformance");
    candidate.join("MANIFEST.json").exists().then(|| candidate.canonicalize().unwrap_or(candidate))
}

/// A type with list/map field names and nullability erased, for "same type" checks.
pub fn normalize_type(t: &DataType) -> DataType {
    match t {
        DataType::List(f) | DataType::LargeList(f) => {
            DataType::List(std::sync::Arc::new(Field::new("e", normalize_type(f.data_type()), true)))
        }
        DataType::Map(f, _) => {
            let DataType::Struct(kv) = f.data_type() else { return t.clone() };
            let fields: Vec<Field> = kv
                .iter()
                .enumerate()
                .map(|(i, f)| Field::new(if i == 0 { "k" } else { "v" }, normalize_type(f.data_type()), true))
                .collect();
            DataType::Map(std::sync::Arc::new(Field::new("kv", DataType::Struct(Fields::from(fields)), false)), false)
        }
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| Field::new(f.name(), normalize_type(f.data_type()), true)).collect())
        }
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}

/// Appends the canonical text of `array[row]`.
pub fn write_value(out: &mut String, array: &ArrayRef, row: usize) {
    if array.is_null(row) {
        out.push('∅');
        return;
    }
    match array.data_type() {
        DataType::Null => out.push('∅'),
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) { "true" } else { "false" }),
        DataType::Int8 => {
            let _ = write!(out, "{}", array.as_primitive::<Int8Type>().value(row));
        }
        DataType::Int16 => {
            let _ = write!(out, "{}", array.as_primitive::<Int16Type>().value(row));
        }
        DataType::Int32 => {
            let _ = write!(out, "{}", array.as_primitive::<Int32Type>().value(row));
        }
        DataType::Int64 => {
            let _ = write!(out, "{}", array.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(row);
            if v.is_nan() {
                out.push_str("NaN")
            } else {
                let _ = write!(out, "f{:08x}", v.to_bits());
            }
        }
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            if v.is_nan() {
                out.push_str("NaN")
            } else {
                let _ = write!(out, "d{:016x}", v.to_bits());
            }
        }
        DataType::Decimal128(_, s) => {
            let _ = write!(out, "{}e-{s}", array.as_primitive::<Decimal128Type>().value(row));
        }
        DataType::Date32 => {
            let _ = write!(out, "D{}", array.as_primitive::<Date32Type>().value(row));
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let _ = write!(out, "T{}", array.as_primitive::<TimestampMicrosecondType>().value(row));
        }
        DataType::Timestamp(_, tz) => {
            let cast = arrow::compute::cast(&array.slice(row, 1), &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()));
            match cast {
                Ok(c) => write_value(out, &c, 0),
                Err(e) => {
                    let _ = write!(out, "<{e}>");
                }
            }
        }
        DataType::Utf8 => {
            let _ = write!(out, "{:?}", array.as_string::<i32>().value(row));
        }
        DataType::LargeUtf8 => {
            let _ = write!(out, "{:?}", array.as_string::<i64>().value(row));
        }
        DataType::Utf8View => {
            let _ = write!(out, "{:?}", array.as_string_view().value(row));
        }
        DataType::Binary => {
            let _ = write!(out, "b{:02x?}", array.as_binary::<i32>().value(row));
        }
        DataType::LargeBinary => {
            let _ = write!(out, "b{:02x?}", array.as_binary::<i64>().value(row));
        }
        DataType::BinaryView => {
            let _ = write!(out, "b{:02x?}", array.as_binary_view().value(row));
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut parts: Vec<(String, String)> = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let mut v = String::new();
                write_value(&mut v, s.column(i), row);
                parts.push((f.name().clone(), v));
            }
            parts.sort();
            out.push('{');
            for (k, v) in parts {
                let _ = write!(out, "{k}:{v},");
            }
            out.push('}');
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let values = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                _ => array.as_list::<i64>().value(row),
            };
            out.push('[');
            for i in 0..values.len() {
                write_value(out, &values, i);
                out.push(',');
            }
            out.push(']');
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let mut pairs: Vec<String> = (0..entries.len())
                .map(|i| {
                    let mut s = String::new();
                    write_value(&mut s, entries.column(0), i);
                    s.push_str("=>");
                    write_value(&mut s, entries.column(1), i);
                    s
                })
                .collect();
            pairs.sort();
            let _ = write!(out, "map{pairs:?}");
        }
        other => {
            let _ = write!(out, "<unsupported {other}>");
        }
    }
}

/// Rows of `batches` as canonical strings with columns in name order.
pub fn canonical_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        let schema = b.schema();
        let mut order: Vec<usize> = (0..schema.fields().len()).collect();
        order.sort_by(|a, c| schema.field(*a).name().cmp(schema.field(*c).name()));
        for row in 0..b.num_rows() {
            let mut s = String::new();
            for i in &order {
                write_value(&mut s, b.column(*i), row);
                s.push('|');
            }
            rows.push(s);
        }
    }
    rows.sort();
    rows
}

/// Compares two results: same column names, same normalized types, same multiset of rows.
/// Returns a description of the first difference.
pub fn compare(
    actual: &[RecordBatch],
    actual_schema: &arrow::datatypes::Schema,
    expected: &[RecordBatch],
    expected_schema: &arrow::datatypes::Schema,
) -> Result<(), String> {
    let cols = |s: &arrow::datatypes::Schema| -> BTreeMap<String, DataType> {
        s.fields().iter().map(|f| (f.name().clone(), normalize_type(f.data_type()))).collect()
    };
    let (a, e) = (cols(actual_schema), cols(expected_schema));
    if a.keys().collect::<Vec<_>>() != e.keys().collect::<Vec<_>>() {
        return Err(format!("columns differ: got {:?}, expected {:?}", a.keys().collect::<Vec<_>>(), e.keys().collect::<Vec<_>>()));
    }
    for (name, t) in &e {
        if a.get(name) != Some(t) {
            return Err(format!("column `{name}`: got type {:?}, expected {t:?}", a.get(name)));
        }
    }
    let (ra, re) = (canonical_rows(actual), canonical_rows(expected));
    if ra != re {
        let missing: Vec<&String> = re.iter().filter(|r| !ra.contains(r)).take(3).collect();
        let extra: Vec<&String> = ra.iter().filter(|r| !re.contains(r)).take(3).collect();
        return Err(format!("{} rows, expected {}; missing e.g. {missing:?}; unexpected e.g. {extra:?}", ra.len(), re.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, StringArray};
    use arrow::datatypes::Schema;
    use std::sync::Arc;

    #[test]
    fn compare_is_order_insensitive_and_nan_aware() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true), Field::new("f", DataType::Float64, true)]));
        let b1 = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![1, 2])), Arc::new(Float64Array::from(vec![f64::NAN, 1.0]))],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![2, 1])), Arc::new(Float64Array::from(vec![1.0, -f64::NAN]))],
        )
        .unwrap();
        assert!(compare(std::slice::from_ref(&b1), &schema, &[b2], &schema).is_ok());
        let b3 = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![2, 1])), Arc::new(Float64Array::from(vec![1.0, 0.0]))],
        )
        .unwrap();
        assert!(compare(&[b1], &schema, &[b3], &schema).is_err());
    }

    #[test]
    fn compare_checks_types_and_columns() {
        let s1 = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let s2 = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
        let b1 = RecordBatch::try_new(s1.clone(), vec![Arc::new(StringArray::from(vec!["1"]))]).unwrap();
        let b2 = RecordBatch::try_new(s2.clone(), vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
        assert!(compare(&[b1], &s1, &[b2], &s2).is_err());
    }
}
