//! Data skipping: can a file (or a parquet row group) hold a row matching a predicate?
//!
//! [`can_match`] evaluates a predicate over statistics — min, max, null count, row count — and
//! answers `false` only when no row can match. Missing statistics always answer `true`. Delta's
//! statistics are imprecise in two documented ways, both handled by the sources here: string maxima
//! may be truncated prefixes (treated as unknown once they reach the truncation length) and
//! timestamp statistics are truncated to milliseconds (a maximum is widened by 999 µs).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, StringArray};
use arrow::compute::kernels::cmp;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

use crate::error::{DeltaError, DeltaResult};
use crate::read::snapshot::Snapshot;
use crate::table::expr::{evaluate_predicate, scalar_to_array, CmpOp, Expr, Scalar};
use crate::table::schema::{ColumnMappingMode, StructType};

/// Statistics of a set of rows, per column (logical path).
pub trait StatsSource {
    fn num_records(&self) -> Option<u64>;
    /// Lower bound of non-null values, as a one-row array of type `t`.
    fn min(&self, column: &[String], t: &ArrowType) -> Option<ArrayRef>;
    /// Upper bound of non-null values, as a one-row array of type `t`.
    fn max(&self, column: &[String], t: &ArrowType) -> Option<ArrayRef>;
    fn null_count(&self, column: &[String]) -> Option<u64>;
}

/// Column types for skipping (logical path → Arrow type).
pub trait ColumnTypes {
    fn column_type(&self, column: &[String]) -> Option<ArrowType>;
}

impl ColumnTypes for arrow::datatypes::Schema {
    fn column_type(&self, column: &[String]) -> Option<ArrowType> {
        let first = column.first()?;
        let mut t = self
            .fields()
            .iter()
            .find(|f| f.name() == first)
            .or_else(|| self.fields().iter().find(|f| f.name().eq_ignore_ascii_case(first)))?
            .data_type()
            .clone();
        for part in &column[1..] {
            let ArrowType::Struct(fields) = &t else { return None };
            t = fields.iter().find(|f| f.name() == part)?.data_type().clone();
        }
        Some(t)
    }
}

fn compare(a: &ArrayRef, b: &ArrayRef, op: CmpOp) -> Option<bool> {
    let r = match op {
        CmpOp::Eq => cmp::eq(a, b),
        CmpOp::NotEq => cmp::neq(a, b),
        CmpOp::Lt => cmp::lt(a, b),
        CmpOp::LtEq => cmp::lt_eq(a, b),
        CmpOp::Gt => cmp::gt(a, b),
        CmpOp::GtEq => cmp::gt_eq(a, b),
        CmpOp::NullSafeEq => cmp::not_distinct(a, b),
    }
    .ok()?;
    (r.len() == 1 && r.is_valid(0)).then(|| r.value(0))
}

/// Whether any row described by `stats` can satisfy `e`. Conservative: `true` when unsure.
pub fn can_match(e: &Expr, stats: &dyn StatsSource, types: &dyn ColumnTypes) -> bool {
    match e {
        Expr::Literal(Scalar::Boolean(b)) => *b,
        Expr::Literal(Scalar::Null) => false,
        Expr::And(l, r) => can_match(l, stats, types) && can_match(r, stats, types),
        Expr::Or(l, r) => can_match(l, stats, types) || can_match(r, stats, types),
        Expr::Not(inner) => match negate(inner) {
            Some(n) => can_match(&n, stats, types),
            None => true,
        },
        Expr::IsNull(inner) => match inner.as_ref() {
            Expr::Column(c) => stats.null_count(c).is_none_or(|n| n > 0),
            _ => true,
        },
        Expr::IsNotNull(inner) => match inner.as_ref() {
            Expr::Column(c) => match (stats.null_count(c), stats.num_records()) {
                (Some(nulls), Some(rows)) => nulls < rows,
                _ => true,
            },
            _ => true,
        },
        Expr::In { expr, list, negated: false } => {
            list.iter().any(|item| can_match(&Expr::Cmp(CmpOp::Eq, expr.clone(), Box::new(item.clone())), stats, types))
        }
        Expr::In { expr, list, negated: true } => {
            list.iter().all(|item| can_match(&Expr::Cmp(CmpOp::NotEq, expr.clone(), Box::new(item.clone())), stats, types))
        }
        Expr::Cmp(op, l, r) => match (l.as_ref(), r.as_ref()) {
            (Expr::Column(c), Expr::Literal(v)) => cmp_can_match(c, *op, v, stats, types),
            (Expr::Literal(v), Expr::Column(c)) => cmp_can_match(c, op.flip(), v, stats, types),
            _ => true,
        },
        _ => true,
    }
}

/// Pushes a negation inwards where the result is expressible.
fn negate(e: &Expr) -> Option<Expr> {
    Some(match e {
        Expr::Cmp(op, l, r) => Expr::Cmp(op.negate()?, l.clone(), r.clone()),
        Expr::And(l, r) => Expr::Or(Box::new(Expr::Not(l.clone())), Box::new(Expr::Not(r.clone()))),
        Expr::Or(l, r) => Expr::And(Box::new(Expr::Not(l.clone())), Box::new(Expr::Not(r.clone()))),
        Expr::Not(inner) => inner.as_ref().clone(),
        Expr::IsNull(x) => Expr::IsNotNull(x.clone()),
        Expr::IsNotNull(x) => Expr::IsNull(x.clone()),
        Expr::In { expr, list, negated } => Expr::In { expr: expr.clone(), list: list.clone(), negated: !negated },
        Expr::Literal(Scalar::Boolean(b)) => Expr::Literal(Scalar::Boolean(!b)),
        _ => return None,
    })
}

fn cmp_can_match(column: &[String], op: CmpOp, v: &Scalar, stats: &dyn StatsSource, types: &dyn ColumnTypes) -> bool {
    let Some(t) = types.column_type(column) else { return true };
    if matches!(t, ArrowType::Struct(_) | ArrowType::List(_) | ArrowType::Map(_, _) | ArrowType::Null) {
        return true;
    }
    let Ok(lit) = scalar_to_array(v, &t) else { return true };
    if lit.is_null(0) {
        // `x = NULL` is never true; `x <=> NULL` matches nulls.
        return op == CmpOp::NullSafeEq && stats.null_count(column).is_none_or(|n| n > 0);
    }
    if let (Some(nulls), Some(rows)) = (stats.null_count(column), stats.num_records()) {
        if rows > 0 && nulls >= rows {
            return false;
        }
        if rows == 0 {
            return false;
        }
    }
    let min = stats.min(column, &t);
    let max = stats.max(column, &t);
    // `bound op lit` may hold: false only when the bound is known and the comparison fails.
    let may_hold = |bound: &Option<ArrayRef>, op: CmpOp| -> bool { bound.as_ref().and_then(|b| compare(b, &lit, op)).unwrap_or(true) };
    match op {
        CmpOp::Eq | CmpOp::NullSafeEq => may_hold(&min, CmpOp::LtEq) && may_hold(&max, CmpOp::GtEq),
        CmpOp::NotEq => match (&min, &max) {
            (Some(lo), Some(hi)) => {
                let all_equal = compare(lo, &lit, CmpOp::Eq) == Some(true) && compare(hi, &lit, CmpOp::Eq) == Some(true);
                !all_equal
            }
            _ => true,
        },
        CmpOp::Lt => may_hold(&min, CmpOp::Lt),
        CmpOp::LtEq => may_hold(&min, CmpOp::LtEq),
        CmpOp::Gt => may_hold(&max, CmpOp::Gt),
        CmpOp::GtEq => may_hold(&max, CmpOp::GtEq),
    }
}

/// Statistics of one Delta file: its stats JSON (keys are physical names) plus exact partition
/// values.
pub struct FileStats<'a> {
    pub stats: Option<Value>,
    /// Logical partition column name → one-row array of its value (null when the value is null).
    pub partition_values: &'a HashMap<String, ArrayRef>,
    /// Logical path → physical path (column mapping); identity when absent.
    pub physical: &'a dyn Fn(&[String]) -> Option<Vec<String>>,
    /// String statistics at or beyond this many characters may be truncated.
    pub string_prefix_length: usize,
}

impl FileStats<'_> {
    fn partition(&self, column: &[String]) -> Option<&ArrayRef> {
        if column.len() != 1 {
            return None;
        }
        self.partition_values
            .get(&column[0])
            .or_else(|| self.partition_values.iter().find(|(k, _)| k.eq_ignore_ascii_case(&column[0])).map(|(_, v)| v))
    }

    fn lookup(&self, section: &str, column: &[String]) -> Option<&Value> {
        let path = (self.physical)(column)?;
        let mut v = self.stats.as_ref()?.get(section)?;
        for p in &path {
            v = v.get(p)?;
        }
        Some(v)
    }

    fn typed(&self, v: &Value, t: &ArrowType) -> Option<ArrayRef> {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        let scalar = match t {
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Date32 | ArrowType::Timestamp(_, _) | ArrowType::Binary => {
                Scalar::String(text.clone())
            }
            _ => Scalar::Number(text.clone()),
        };
        match t {
            t if t.is_integer() => scalar_to_array(&Scalar::Integer(text.parse().ok()?), t).ok(),
            _ => scalar_to_array(&scalar, t).ok(),
        }
    }
}

impl StatsSource for FileStats<'_> {
    fn num_records(&self) -> Option<u64> {
        self.stats.as_ref()?.get("numRecords")?.as_u64()
    }

    fn min(&self, column: &[String], t: &ArrowType) -> Option<ArrayRef> {
        if let Some(p) = self.partition(column) {
            return (!p.is_null(0)).then(|| arrow::compute::cast(p, t).ok()).flatten();
        }
        self.typed(self.lookup("minValues", column)?, t)
    }

    fn max(&self, column: &[String], t: &ArrowType) -> Option<ArrayRef> {
        if let Some(p) = self.partition(column) {
            return (!p.is_null(0)).then(|| arrow::compute::cast(p, t).ok()).flatten();
        }
        let v = self.lookup("maxValues", column)?;
        if let (ArrowType::Utf8, Value::String(s)) = (t, v) {
            if s.chars().count() >= self.string_prefix_length {
                return None;
            }
        }
        let arr = self.typed(v, t)?;
        if let ArrowType::Timestamp(_, _) = t {
            // Stats are truncated to milliseconds: the true maximum may be up to 999 µs later.
            let widened = arrow::compute::kernels::numeric::add(
                &arrow::compute::cast(&arr, &ArrowType::Int64).ok()?,
                &arrow::array::Int64Array::new_scalar(999),
            )
            .ok()?;
            return arrow::compute::cast(&widened, t).ok();
        }
        Some(arr)
    }

    fn null_count(&self, column: &[String]) -> Option<u64> {
        if let Some(p) = self.partition(column) {
            return if p.is_null(0) { self.num_records().or(Some(u64::MAX)) } else { Some(0) };
        }
        self.lookup("nullCount", column)?.as_u64()
    }
}

/// Per-column statistics of every row group of a file: mins, maxes (one entry per row group) and
/// null counts.
pub type RowGroupColumnStats = HashMap<Vec<String>, (ArrayRef, ArrayRef, Option<Vec<Option<u64>>>)>;

/// Statistics of one parquet row group.
pub struct RowGroupStats<'a> {
    pub row_group: usize,
    pub num_rows: u64,
    /// Logical column → statistics over all row groups.
    pub columns: &'a RowGroupColumnStats,
}

impl StatsSource for RowGroupStats<'_> {
    fn num_records(&self) -> Option<u64> {
        Some(self.num_rows)
    }
    fn min(&self, column: &[String], t: &ArrowType) -> Option<ArrayRef> {
        let (mins, _, _) = self.columns.get(column)?;
        let v = mins.slice(self.row_group, 1);
        (!v.is_null(0)).then(|| arrow::compute::cast(&v, t).ok()).flatten()
    }
    fn max(&self, column: &[String], t: &ArrowType) -> Option<ArrayRef> {
        let (_, maxes, _) = self.columns.get(column)?;
        let v = maxes.slice(self.row_group, 1);
        (!v.is_null(0)).then(|| arrow::compute::cast(&v, t).ok()).flatten()
    }
    fn null_count(&self, column: &[String]) -> Option<u64> {
        let (_, _, nulls) = self.columns.get(column)?;
        nulls.as_ref()?.get(self.row_group).copied().flatten()
    }
}

/// One column of one file, by its statistics: one-row arrays of the minimum and maximum, and the
/// null count, each when the statistics say.
#[derive(Debug, Clone)]
pub struct ColumnBounds {
    pub min: Option<ArrayRef>,
    pub max: Option<ArrayRef>,
    pub null_count: Option<u64>,
}

/// Decides whether a file can hold rows matching a predicate, from its partition values and
/// statistics. Shared by scans and by the conflict checker (files added by a winning commit
/// against a transaction's read predicates).
pub struct FilePruner {
    schema: StructType,
    arrow_schema: SchemaRef,
    mode: ColumnMappingMode,
    /// (logical, physical, type) of each partition column.
    pub(crate) partitions: Vec<(String, String, ArrowType)>,
    string_prefix_length: usize,
}

impl FilePruner {
    pub fn new(snapshot: &Snapshot) -> DeltaResult<Self> {
        let schema = snapshot.schema().clone();
        let mode = snapshot.column_mapping_mode();
        let partitions = snapshot
            .partition_columns()
            .iter()
            .map(|c| {
                let f = schema.field(c).ok_or_else(|| DeltaError::schema(format!("partition column `{c}` is not in the schema")))?;
                Ok((f.name.clone(), f.physical_name(mode).to_string(), f.data_type.to_arrow(false)?))
            })
            .collect::<DeltaResult<_>>()?;
        let string_prefix_length =
            snapshot.metadata().property("delta.dataSkippingStringPrefixLength").and_then(|v| v.parse().ok()).unwrap_or(32usize);
        Ok(FilePruner { arrow_schema: snapshot.arrow_schema(), schema, mode, partitions, string_prefix_length })
    }

    /// Partition values keyed by logical column name (the log keys them by physical name under
    /// column mapping); empty strings are nulls.
    pub fn logical_partition_values(&self, raw: &HashMap<String, Option<String>>) -> HashMap<String, Option<String>> {
        self.partitions
            .iter()
            .map(|(logical, physical, _)| {
                let v = raw.get(physical).or_else(|| raw.get(logical)).cloned().flatten().filter(|v| !v.is_empty());
                (logical.clone(), v)
            })
            .collect()
    }

    /// Whether the file an `add` names can match `predicate`, by its partition values and stats.
    pub fn may_match_add(&self, predicate: &Expr, add: &crate::table::actions::AddFile) -> DeltaResult<bool> {
        let pv = self.logical_partition_values(&add.partition_values);
        let stats = add.stats.as_deref().and_then(|s| serde_json::from_str(s).ok());
        self.may_match(predicate, &pv, stats)
    }

    /// Whether every column `predicate` reads is a partition column.
    pub fn is_partition_only(&self, predicate: &Expr) -> bool {
        !self.partitions.is_empty()
            && predicate.columns().iter().all(|c| c.len() == 1 && self.partitions.iter().any(|(p, _, _)| p.eq_ignore_ascii_case(&c[0])))
    }

    /// Whether the partition values of `add` satisfy a predicate over partition columns only:
    /// exact, not a pruning guess (`false` also when it is NULL).
    pub fn partition_predicate_holds(&self, predicate: &Expr, add: &crate::table::actions::AddFile) -> DeltaResult<bool> {
        let pv = self.logical_partition_values(&add.partition_values);
        let mut fields = Vec::with_capacity(self.partitions.len());
        let mut columns = Vec::with_capacity(self.partitions.len());
        for (logical, _, t) in &self.partitions {
            columns.push(parse_partition_value(logical, pv.get(logical).cloned().flatten().as_deref(), t)?);
            fields.push(Field::new(logical, t.clone(), true));
        }
        let batch = arrow::array::RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        Ok(evaluate_predicate(predicate, &batch)?.value(0))
    }

    /// What one file's partition values and statistics say of each of `columns` (top-level
    /// logical names with the type they are read as). Bounds, not always exact values: string
    /// statistics may be truncated prefixes, timestamp statistics are truncated to milliseconds,
    /// and rows a deletion vector removed still count.
    pub fn column_bounds(
        &self,
        partition_values: &HashMap<String, Option<String>>,
        stats: Option<&str>,
        columns: &[(String, ArrowType)],
    ) -> DeltaResult<Vec<ColumnBounds>> {
        let mut arrays: HashMap<String, ArrayRef> = HashMap::with_capacity(self.partitions.len());
        for (logical, _, t) in &self.partitions {
            let v = partition_values.get(logical).cloned().flatten();
            arrays.insert(logical.clone(), parse_partition_value(logical, v.as_deref(), t)?);
        }
        let physical = |c: &[String]| crate::table::schema::physical_path(&self.schema, c, self.mode);
        let stats = stats.and_then(|s| serde_json::from_str(s).ok());
        let fs = FileStats { stats, partition_values: &arrays, physical: &physical, string_prefix_length: self.string_prefix_length };
        Ok(columns
            .iter()
            .map(|(name, t)| {
                let path = [name.clone()];
                ColumnBounds { min: fs.min(&path, t), max: fs.max(&path, t), null_count: fs.null_count(&path) }
            })
            .collect())
    }

    /// Whether a file with these (logical) partition values and stats can match `predicate`.
    pub fn may_match(
        &self,
        predicate: &Expr,
        partition_values: &HashMap<String, Option<String>>,
        stats: Option<Value>,
    ) -> DeltaResult<bool> {
        let mut arrays: HashMap<String, ArrayRef> = HashMap::with_capacity(self.partitions.len());
        for (logical, _, t) in &self.partitions {
            let v = partition_values.get(logical).cloned().flatten();
            arrays.insert(logical.clone(), parse_partition_value(logical, v.as_deref(), t)?);
        }
        let physical = |c: &[String]| crate::table::schema::physical_path(&self.schema, c, self.mode);
        let fs = FileStats { stats, partition_values: &arrays, physical: &physical, string_prefix_length: self.string_prefix_length };
        Ok(can_match(predicate, &fs, self.arrow_schema.as_ref()))
    }
}

/// Parses a partition value (its string form in the log) as a one-row array of `t`.
pub fn parse_partition_value(column: &str, value: Option<&str>, t: &ArrowType) -> DeltaResult<ArrayRef> {
    let Some(value) = value else { return Ok(new_null_array(t, 1)) };
    let invalid = || DeltaError::InvalidPartitionValue { column: column.to_string(), value: value.to_string(), data_type: t.to_string() };
    let text: ArrayRef = Arc::new(StringArray::from(vec![value]));
    let opts = CastOptions { safe: false, ..Default::default() };
    match t {
        ArrowType::Timestamp(_, tz) => {
            // `2021-09-08 11:11:11[.ffffff]` (UTC for `timestamp`, wall clock for `timestamp_ntz`)
            // or ISO-8601 with a zone.
            let parsed =
                cast_with_options(&text, &ArrowType::Timestamp(TimeUnit::Microsecond, tz.clone()), &opts).map_err(|_| invalid())?;
            Ok(parsed)
        }
        ArrowType::Binary => Ok(Arc::new(arrow::array::BinaryArray::from(vec![value.as_bytes()]))),
        ArrowType::Null => Ok(new_null_array(t, 1)),
        _ => cast_with_options(&text, t, &opts).map_err(|_| invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", ArrowType::Int64, true),
            Field::new("s", ArrowType::Utf8, true),
            Field::new("ts", ArrowType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("p", ArrowType::Utf8, true),
        ])
    }

    fn check(stats: &str, pred: &str) -> bool {
        let partitions: HashMap<String, ArrayRef> =
            [("p".to_string(), std::sync::Arc::new(arrow::array::StringArray::from(vec![Some("x")])) as ArrayRef)].into();
        let identity = |c: &[String]| Some(c.to_vec());
        let fs = FileStats {
            stats: serde_json::from_str(stats).ok(),
            partition_values: &partitions,
            physical: &identity,
            string_prefix_length: 32,
        };
        can_match(&Expr::parse(pred).unwrap(), &fs, &schema())
    }

    const S: &str = r#"{"numRecords":10,"minValues":{"id":5,"s":"bbb","ts":"2024-01-01T00:00:00.000Z"},
        "maxValues":{"id":9,"s":"ddd","ts":"2024-01-02T00:00:00.123Z"},"nullCount":{"id":0,"s":10,"ts":0}}"#;

    #[test]
    fn min_max_prune() {
        assert!(check(S, "id = 7"));
        assert!(!check(S, "id = 4"));
        assert!(!check(S, "id > 9"));
        assert!(check(S, "id >= 9"));
        assert!(!check(S, "id < 5"));
        assert!(check(S, "id IN (1, 6)"));
        assert!(!check(S, "id IN (1, 10)"));
        assert!(!check(S, "NOT (id >= 5)"));
        assert!(check(S, "id = 4 OR id = 5"));
        assert!(!check(S, "s = 'ccc'"), "all-null column never equals a value");
        assert!(check(S, "s IS NULL"));
        assert!(!check(S, "s IS NOT NULL"));
        assert!(!check(S, "p = 'y'"));
        assert!(check(S, "p = 'x' AND id = 6"));
        assert!(check(r#"{"numRecords":1}"#, "id = 1"), "missing stats never prune");
        assert!(check("not json", "id = 1"));
    }

    #[test]
    fn truncated_stats_are_widened() {
        // Timestamp max truncated to ms: 00:00:00.123456 must still match.
        assert!(check(S, "ts = TIMESTAMP '2024-01-02 00:00:00.123456'"));
        assert!(!check(S, "ts > TIMESTAMP '2024-01-02 00:00:00.124'"));
        let long = format!(r#"{{"numRecords":1,"minValues":{{"id":1}},"maxValues":{{"s":"{}"}},"nullCount":{{"s":0}}}}"#, "a".repeat(32));
        assert!(check(&long, &format!("s = '{}b'", "a".repeat(32))), "truncated string max is not an upper bound");
    }
}
