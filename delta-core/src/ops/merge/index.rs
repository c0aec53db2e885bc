//! The source side's hash index: source rows by join key, storing row numbers only.

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::DataType as ArrowType;
use arrow::row::{RowConverter, SortField};

use crate::error::DeltaResult;

/// FxHash (as rustc uses): fast for the integer and short byte keys of a join, and the table is
/// built from the source, not from untrusted input.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
}

const NO_ROW: u32 = u32::MAX;

/// A folded multiply (as foldhash does): the 128-bit product of the key and an odd constant,
/// high half xor low half, so every output bit depends on every key bit. One multiply: keys
/// that share their low bits (multiples of 1,000, timestamps) still spread over the table, which
/// a plain multiplicative hash does not do.
fn mix(z: u64) -> u64 {
    let p = (z as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A hash table of source rows by key that stores no keys: only row numbers (`u32`), in
/// hashbrown's SIMD-probed table; keys are compared in the source's own key column. For a million
/// keys that is 10 MiB, where a `HashMap<i64, u32>` takes 36 MiB and one of boxed byte keys far
/// more.
pub(super) struct RowTable {
    table: hashbrown::HashTable<u32>,
}

impl RowTable {
    fn with_rows(n: usize) -> Self {
        RowTable { table: hashbrown::HashTable::with_capacity(n) }
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    /// Puts `row` under `hash`; returns the row that held the equal key (`same(row)`), if any.
    /// `hash_of` rehashes stored rows should the table grow.
    fn insert(&mut self, hash: u64, row: u32, same: impl Fn(u32) -> bool, hash_of: impl Fn(u32) -> u64) -> Option<u32> {
        match self.table.entry(hash, |r| same(*r), |r| hash_of(*r)) {
            hashbrown::hash_table::Entry::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), row)),
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(row);
                None
            }
        }
    }

    /// The row stored under an equal key.
    fn get(&self, hash: u64, same: impl Fn(u32) -> bool) -> Option<u32> {
        self.table.find(hash, |r| same(*r)).copied()
    }
}

fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = FxHasher::default();
    h.write(b);
    mix(h.finish() ^ b.len() as u64)
}

/// The source rows by join key: the last row of each key in a [`RowTable`] and a chain through
/// earlier rows with the same key (no allocation per key). Integer keys hash as `i64`; other
/// keys as Arrow row-format bytes.
pub(super) enum KeyIndex {
    /// No equi-join keys: every source row is a candidate for every target row.
    All(u32),
    Int {
        keys: arrow::array::Int64Array,
        table: RowTable,
        next: Vec<u32>,
    },
    Bytes {
        converter: RowConverter,
        rows: arrow::row::Rows,
        table: RowTable,
        next: Vec<u32>,
    },
}

fn is_int(t: &ArrowType) -> bool {
    matches!(
        t,
        ArrowType::Int8
            | ArrowType::Int16
            | ArrowType::Int32
            | ArrowType::Int64
            | ArrowType::UInt8
            | ArrowType::UInt16
            | ArrowType::UInt32
            | ArrowType::Date32
    )
}

fn as_i64(c: &ArrayRef) -> DeltaResult<arrow::array::Int64Array> {
    use arrow::array::AsArray;
    let c = if matches!(c.data_type(), ArrowType::Date32) { arrow::compute::cast(c, &ArrowType::Int32)? } else { c.clone() };
    Ok(arrow::compute::cast(&c, &ArrowType::Int64)?.as_primitive::<arrow::datatypes::Int64Type>().clone())
}

pub(super) fn cast_keys(columns: &[ArrayRef], types: &[ArrowType]) -> DeltaResult<Vec<ArrayRef>> {
    Ok(columns
        .iter()
        .zip(types)
        .map(|(c, t)| if c.data_type() == t { Ok(c.clone()) } else { arrow::compute::cast(c, t) })
        .collect::<Result<_, _>>()?)
}

impl KeyIndex {
    pub(super) fn build(columns: &[ArrayRef], types: &[ArrowType], n: usize) -> DeltaResult<Self> {
        if columns.is_empty() {
            return Ok(KeyIndex::All(n as u32));
        }
        let cast = cast_keys(columns, types)?;
        let mut next = vec![NO_ROW; n];
        let mut table = RowTable::with_rows(n);
        if cast.len() == 1 && is_int(&types[0]) {
            let keys = as_i64(&cast[0])?;
            let values = keys.values();
            for (i, slot) in next.iter_mut().enumerate() {
                if keys.is_valid(i) {
                    let k = values[i];
                    *slot = table
                        .insert(mix(k as u64), i as u32, |r| values[r as usize] == k, |r| mix(values[r as usize] as u64))
                        .unwrap_or(NO_ROW);
                }
            }
            return Ok(KeyIndex::Int { keys, table, next });
        }
        let converter = RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
        let rows = converter.convert_columns(&cast)?;
        for (i, slot) in next.iter_mut().enumerate() {
            if cast.iter().all(|c| c.is_valid(i)) {
                let key = rows.row(i);
                *slot = table
                    .insert(
                        hash_bytes(key.as_ref()),
                        i as u32,
                        |r| rows.row(r as usize).as_ref() == key.as_ref(),
                        |r| hash_bytes(rows.row(r as usize).as_ref()),
                    )
                    .unwrap_or(NO_ROW);
            }
        }
        Ok(KeyIndex::Bytes { converter, rows, table, next })
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            KeyIndex::All(n) => *n == 0,
            KeyIndex::Int { table, .. } | KeyIndex::Bytes { table, .. } => table.len() == 0,
        }
    }

    /// (target row, source row) pairs whose keys are equal (NULL keys never match).
    pub(super) fn probe(&self, columns: &[ArrayRef], types: &[ArrowType], n: usize) -> DeltaResult<(Vec<u32>, Vec<u32>)> {
        let mut ti = Vec::new();
        let mut si = Vec::new();
        let mut chain = |t: usize, mut s: u32, next: &[u32]| {
            while s != NO_ROW {
                ti.push(t as u32);
                si.push(s);
                s = next[s as usize];
            }
        };
        match self {
            KeyIndex::All(m) => {
                for t in 0..n as u32 {
                    for s in 0..*m {
                        ti.push(t);
                        si.push(s);
                    }
                }
            }
            KeyIndex::Int { keys, table, next } => {
                let source = keys.values();
                let probe = as_i64(&cast_keys(columns, types)?[0])?;
                for t in 0..n {
                    if probe.is_valid(t) {
                        let k = probe.value(t);
                        if let Some(s) = table.get(mix(k as u64), |r| source[r as usize] == k) {
                            chain(t, s, next);
                        }
                    }
                }
            }
            KeyIndex::Bytes { converter, rows: source, table, next } => {
                let cast = cast_keys(columns, types)?;
                let rows = converter.convert_columns(&cast)?;
                for t in 0..n {
                    if cast.iter().all(|c| c.is_valid(t)) {
                        let key = rows.row(t);
                        if let Some(s) = table.get(hash_bytes(key.as_ref()), |r| source.row(r as usize).as_ref() == key.as_ref()) {
                            chain(t, s, next);
                        }
                    }
                }
            }
        }
        Ok((ti, si))
    }
}

pub(super) fn take_batch(batch: &RecordBatch, idx: &UInt32Array) -> DeltaResult<RecordBatch> {
    let cols = batch.columns().iter().map(|c| take(c, idx, None)).collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new_with_options(batch.schema(), cols, &arrow::array::RecordBatchOptions::new().with_row_count(Some(idx.len())))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    /// The index finds exactly the pairs a nested loop finds: duplicate keys, NULLs, and keys
    /// that share their low bits (which a plain multiplicative hash would pile into few slots).
    #[test]
    fn key_index_equals_nested_loop() {
        let source: Vec<Option<i64>> =
            (0..5000i64).map(|i| if i % 97 == 0 { None } else { Some((i % 3000) << 20) }).chain([Some(-1), Some(i64::MIN)]).collect();
        let target: Vec<Option<i64>> =
            (0..4000i64).map(|i| if i % 89 == 0 { None } else { Some((i - 500) << 20) }).chain([Some(-1)]).collect();
        let naive = |s: &[Option<i64>], t: &[Option<i64>]| {
            let mut out = Vec::new();
            for (ti, tk) in t.iter().enumerate() {
                for (si, sk) in s.iter().enumerate() {
                    if tk.is_some() && tk == sk {
                        out.push((ti as u32, si as u32));
                    }
                }
            }
            out.sort();
            out
        };
        let expected = naive(&source, &target);
        assert!(expected.len() > 3000);
        for types in [vec![ArrowType::Int64], vec![ArrowType::Utf8]] {
            let col = |v: &[Option<i64>]| -> ArrayRef {
                if types[0] == ArrowType::Int64 {
                    Arc::new(Int64Array::from(v.to_vec()))
                } else {
                    Arc::new(StringArray::from(v.iter().map(|k| k.map(|k| format!("k{k}"))).collect::<Vec<_>>()))
                }
            };
            let index = KeyIndex::build(&[col(&source)], &types, source.len()).unwrap();
            let (ti, si) = index.probe(&[col(&target)], &types, target.len()).unwrap();
            let mut got: Vec<(u32, u32)> = ti.into_iter().zip(si).collect();
            got.sort();
            assert_eq!(got, expected, "{types:?}");
        }
    }
}
