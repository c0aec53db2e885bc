//! MERGE INTO: upserts, deletes and inserts driven by a source relation, with every clause kind
//! of delta-spark.
//!
//! ```text
//!  source batches ─► one in-memory batch ─► hash table on the ON condition's equi-keys
//!  target files that can match (ON's target-only conjuncts and the source key range prune them;
//!  all files when a NOT MATCHED BY SOURCE clause exists) ─► per batch: probe ─► residual ON ─►
//!     matched pairs:   WHEN MATCHED clauses in order (first whose condition holds)
//!     unmatched rows:  WHEN NOT MATCHED BY SOURCE clauses in order
//!  source rows no target row matched ─► WHEN NOT MATCHED clauses in order (inserts)
//! ```
//!
//! Expressions see the target under its alias (`target` / `t` by default) and the source under
//! its own (`source` / `s`); an unqualified column resolves to whichever side has it and is an
//! error when both do. Internally both sides are struct columns of one "joined" batch, so every
//! clause condition and assignment is evaluated by the ordinary expression evaluator.
//!
//! As in delta-spark, a target row that more than one source row matches (ON and some matched
//! clause's condition) is an error, unless the only matched clause is an unconditional delete.
//! Deleted and updated rows go through the [`Rewriter`] (deletion vectors or copy-on-write),
//! updated and inserted rows stream into data files, changes into `cdc` files when CDF is on.
//!
//! The source is held in memory (the hash table indexes it) up to a budget
//! ([`MergeBuilder::with_memory_budget`], default [`DEFAULT_SOURCE_BUDGET`]); target files
//! stream through. A source over the budget is spilled to temporary Arrow IPC files in
//! [`SPILL_PARTITIONS`] partitions by a hash of its join keys, and the MERGE runs in passes, each
//! over as many consecutive partitions as fit the budget: a pass loads its partitions' rows,
//! indexes them and scans the candidate target files again, considering only target rows whose
//! keys hash to its partitions (rows with a NULL key, which match nothing, belong to the first). A target row can only match source rows with
//! equal keys, which share its partition, so every clause decision — matched, not matched, not
//! matched by source, the multiple-match error — is the same as in one pass; deletions of all
//! passes accumulate in the rewriter. Memory then holds one partition of the source; the cost is
//! one target scan per pass. A MERGE without equi-join keys cannot be partitioned and keeps its
//! source in memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, StructArray, UInt32Array};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{DataType as ArrowType, Field, Fields, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use roaring::RoaringTreemap;
use serde_json::{json, Value};

use crate::dml::{apply_assignments, commit_dml, file_of, row_indexes, ChangeType, DmlResult, Rewriter};
use crate::error::{DeltaError, DeltaResult};
use crate::expr::{evaluate, evaluate_predicate, CmpOp, Expr};
use crate::snapshot::Table;
use crate::write::{conform_without_generated, fill_generated_columns, fill_identity_columns, identity_columns, schema_from_arrow};

const T: &str = "__target";
const S: &str = "__source";

/// Which rows a clause applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeWhen {
    /// Target rows matched by a source row.
    Matched,
    /// Source rows that no target row matched.
    NotMatched,
    /// Target rows that no source row matched.
    NotMatchedBySource,
}

/// What a clause does; column names and Spark SQL expression text.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeAction {
    /// `UPDATE SET col = expr, …` (Matched, NotMatchedBySource).
    Update(Vec<(String, String)>),
    /// `UPDATE SET *`: every target column from the source column of the same name (Matched).
    UpdateAll,
    /// `DELETE` (Matched, NotMatchedBySource).
    Delete,
    /// `INSERT (cols) VALUES (exprs)` (NotMatched).
    Insert(Vec<(String, String)>),
    /// `INSERT *` (NotMatched).
    InsertAll,
}

#[derive(Debug, Clone)]
struct PendingClause {
    when: MergeWhen,
    condition: Option<String>,
    action: MergeAction,
}

/// Builds a MERGE; see [`Table::merge`].
pub struct MergeBuilder<'a> {
    table: &'a Table,
    source: BoxStream<'static, DeltaResult<RecordBatch>>,
    source_schema: Option<SchemaRef>,
    on: String,
    target_alias: Option<String>,
    source_alias: Option<String>,
    clauses: Vec<PendingClause>,
    schema_evolution: bool,
    memory_budget: usize,
}

/// Source bytes (Arrow memory) held before a MERGE spills its source.
pub const DEFAULT_SOURCE_BUDGET: usize = 512 * 1024 * 1024;

/// Partitions of a spilled source (one target pass each).
pub const SPILL_PARTITIONS: usize = 16;

impl Table {
    /// `MERGE INTO this USING source ON condition …`: add clauses, then [`MergeBuilder::execute`].
    ///
    /// ```no_run
    /// # async fn f(table: delta_core::Table, source: Vec<arrow::array::RecordBatch>) -> delta_core::DeltaResult<()> {
    /// table.merge(source, "t.id = s.id").when_matched_update_all().when_not_matched_insert_all().execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn merge(&self, source: Vec<RecordBatch>, on: &str) -> MergeBuilder<'_> {
        let schema = source.first().map(|b| b.schema());
        let mut b = self.merge_stream(futures::stream::iter(source.into_iter().map(Ok)).boxed(), on);
        b.source_schema = schema;
        b
    }

    /// [`Table::merge`] from a stream of batches (another table's scan, a file reader …).
    pub fn merge_stream(&self, source: BoxStream<'static, DeltaResult<RecordBatch>>, on: &str) -> MergeBuilder<'_> {
        MergeBuilder {
            table: self,
            source,
            source_schema: None,
            on: on.to_string(),
            target_alias: None,
            source_alias: None,
            clauses: Vec::new(),
            schema_evolution: false,
            memory_budget: DEFAULT_SOURCE_BUDGET,
        }
    }
}

impl<'a> MergeBuilder<'a> {
    /// Source bytes held in memory before the source spills to disk (see the module docs).
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// The source's schema, for a source stream that may be empty.
    pub fn with_source_schema(mut self, schema: SchemaRef) -> Self {
        self.source_schema = Some(schema);
        self
    }

    /// Names the target in expressions (default: `target` or `t`).
    pub fn with_target_alias(mut self, alias: &str) -> Self {
        self.target_alias = Some(alias.to_string());
        self
    }

    /// Names the source in expressions (default: `source` or `s`).
    pub fn with_source_alias(mut self, alias: &str) -> Self {
        self.source_alias = Some(alias.to_string());
        self
    }

    /// Adds source columns missing from the target (`UPDATE SET *` / `INSERT *`) to its schema.
    pub fn with_schema_evolution(mut self) -> Self {
        self.schema_evolution = true;
        self
    }

    /// Adds a clause; clauses of one kind are evaluated in the order added.
    pub fn when(mut self, when: MergeWhen, condition: Option<&str>, action: MergeAction) -> Self {
        self.clauses.push(PendingClause { when, condition: condition.map(str::to_string), action });
        self
    }

    pub fn when_matched_update(self, set: &[(&str, &str)]) -> Self {
        self.when(MergeWhen::Matched, None, MergeAction::Update(pairs(set)))
    }
    pub fn when_matched_update_all(self) -> Self {
        self.when(MergeWhen::Matched, None, MergeAction::UpdateAll)
    }
    pub fn when_matched_delete(self) -> Self {
        self.when(MergeWhen::Matched, None, MergeAction::Delete)
    }
    pub fn when_not_matched_insert(self, values: &[(&str, &str)]) -> Self {
        self.when(MergeWhen::NotMatched, None, MergeAction::Insert(pairs(values)))
    }
    pub fn when_not_matched_insert_all(self) -> Self {
        self.when(MergeWhen::NotMatched, None, MergeAction::InsertAll)
    }
    pub fn when_not_matched_by_source_update(self, set: &[(&str, &str)]) -> Self {
        self.when(MergeWhen::NotMatchedBySource, None, MergeAction::Update(pairs(set)))
    }
    pub fn when_not_matched_by_source_delete(self) -> Self {
        self.when(MergeWhen::NotMatchedBySource, None, MergeAction::Delete)
    }
    /// `WHEN MATCHED AND condition THEN UPDATE SET …`.
    pub fn when_matched_update_if(self, condition: &str, set: &[(&str, &str)]) -> Self {
        self.when(MergeWhen::Matched, Some(condition), MergeAction::Update(pairs(set)))
    }
    /// `WHEN MATCHED AND condition THEN DELETE`.
    pub fn when_matched_delete_if(self, condition: &str) -> Self {
        self.when(MergeWhen::Matched, Some(condition), MergeAction::Delete)
    }
    /// `WHEN NOT MATCHED AND condition THEN INSERT *`.
    pub fn when_not_matched_insert_all_if(self, condition: &str) -> Self {
        self.when(MergeWhen::NotMatched, Some(condition), MergeAction::InsertAll)
    }
    /// `WHEN NOT MATCHED BY SOURCE AND condition THEN DELETE`.
    pub fn when_not_matched_by_source_delete_if(self, condition: &str) -> Self {
        self.when(MergeWhen::NotMatchedBySource, Some(condition), MergeAction::Delete)
    }

    /// Runs the merge and commits it.
    pub async fn execute(self) -> DeltaResult<DmlResult> {
        execute(self).await
    }
}

fn pairs(set: &[(&str, &str)]) -> Vec<(String, String)> {
    set.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A clause resolved against both schemas.
struct Clause {
    when: MergeWhen,
    condition: Option<Expr>,
    /// The condition as written (for the commit's operation parameters).
    text: Option<String>,
    kind: Kind,
}

enum Kind {
    /// Assignments by target column name; expressions over the joined batch.
    Update(Vec<(String, Expr)>),
    Delete,
    /// Values by target column name; columns not listed are NULL, defaults or generated.
    Insert(Vec<(String, Expr)>),
}

/// Resolves column references to `__target.…` / `__source.…`.
struct Resolver {
    target_names: Vec<String>,
    source_names: Vec<String>,
    target_columns: Vec<String>,
    source_columns: Vec<String>,
}

impl Resolver {
    fn qualify(&self, e: &Expr) -> DeltaResult<Expr> {
        e.map_columns(&mut |path: &[String]| {
            let has = |cols: &[String], c: &str| cols.iter().any(|x| x.eq_ignore_ascii_case(c));
            if path.len() >= 2 {
                if self.target_names.iter().any(|a| a.eq_ignore_ascii_case(&path[0])) {
                    return Ok(std::iter::once(T.to_string()).chain(path[1..].iter().cloned()).collect());
                }
                if self.source_names.iter().any(|a| a.eq_ignore_ascii_case(&path[0])) {
                    return Ok(std::iter::once(S.to_string()).chain(path[1..].iter().cloned()).collect());
                }
            }
            let (in_t, in_s) = (has(&self.target_columns, &path[0]), has(&self.source_columns, &path[0]));
            match (in_t, in_s) {
                (true, false) => Ok(std::iter::once(T.to_string()).chain(path.iter().cloned()).collect()),
                (false, true) => Ok(std::iter::once(S.to_string()).chain(path.iter().cloned()).collect()),
                (true, true) => Err(DeltaError::expr(
                    e,
                    format!(
                        "column `{}` is ambiguous: both target and source have it; qualify it as {}.{0} or {}.{0}",
                        path.join("."),
                        self.target_names[0],
                        self.source_names[0]
                    ),
                )),
                (false, false) => Err(DeltaError::ColumnNotFound {
                    column: path.join("."),
                    available: format!(
                        "target ({}): {}; source ({}): {}",
                        self.target_names[0],
                        self.target_columns.join(", "),
                        self.source_names[0],
                        self.source_columns.join(", ")
                    ),
                }),
            }
        })
    }

    /// The target column an assignment names (`col` or `t.col`).
    fn target_column(&self, name: &str) -> DeltaResult<String> {
        let parts: Vec<&str> = name.split('.').map(|p| p.trim().trim_matches('`')).collect();
        let col = match parts.as_slice() {
            [c] => *c,
            [a, c] if self.target_names.iter().any(|t| t.eq_ignore_ascii_case(a)) => *c,
            _ => return Err(DeltaError::WriteRefused { reason: format!("MERGE cannot assign `{name}`: name a top-level target column") }),
        };
        self.target_columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(col))
            .cloned()
            .ok_or_else(|| DeltaError::ColumnNotFound { column: name.to_string(), available: self.target_columns.join(", ") })
    }
}

/// Which sides an expression reads.
fn sides(e: &Expr) -> (bool, bool) {
    let cols = e.columns();
    (cols.iter().any(|c| c[0] == T), cols.iter().any(|c| c[0] == S))
}

fn strip(e: &Expr, side: &str) -> DeltaResult<Expr> {
    e.map_columns(&mut |p: &[String]| Ok(if p[0] == side { p[1..].to_vec() } else { p.to_vec() }))
}

fn and_all(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|a, b| Expr::And(Box::new(a), Box::new(b)))
}

fn struct_of(batch: &RecordBatch) -> DeltaResult<StructArray> {
    let fields: Fields = batch.schema().fields().iter().map(|f| Arc::new(f.as_ref().clone().with_nullable(true))).collect();
    Ok(StructArray::try_new(fields, batch.columns().to_vec(), None)?)
}

fn joined(target: ArrayRef, source: ArrayRef) -> DeltaResult<RecordBatch> {
    let n = target.len();
    let schema = Schema::new(vec![Field::new(T, target.data_type().clone(), true), Field::new(S, source.data_type().clone(), true)]);
    Ok(RecordBatch::try_new_with_options(
        Arc::new(schema),
        vec![target, source],
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

fn one_side(name: &str, side: ArrayRef) -> DeltaResult<RecordBatch> {
    let n = side.len();
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(vec![Field::new(name, side.data_type().clone(), true)])),
        vec![side],
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}

fn cond_mask(condition: Option<&Expr>, batch: &RecordBatch) -> DeltaResult<BooleanArray> {
    match condition {
        Some(c) => evaluate_predicate(c, batch),
        None => Ok(BooleanArray::from(vec![true; batch.num_rows()])),
    }
}

/// For clauses evaluated in order, the rows each one applies to: those where its condition holds
/// and no earlier clause's did.
fn clause_selections(clauses: &[&Clause], batch: &RecordBatch) -> DeltaResult<Vec<BooleanArray>> {
    let mut taken = vec![false; batch.num_rows()];
    let mut out = Vec::with_capacity(clauses.len());
    for c in clauses {
        let cond = cond_mask(c.condition.as_ref(), batch)?;
        let sel: BooleanArray = (0..batch.num_rows())
            .map(|p| {
                let hit = !taken[p] && cond.value(p);
                taken[p] |= hit;
                Some(hit)
            })
            .collect();
        out.push(sel);
    }
    Ok(out)
}

/// FxHash (as rustc uses): fast for the integer and short byte keys of a join, and the table is
/// built from the source, not from untrusted input.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

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
/// Unmatched source rows turned into inserts at a time.
const INSERT_SLICE_ROWS: usize = 65536;

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
struct RowTable {
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
enum KeyIndex {
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

fn cast_keys(columns: &[ArrayRef], types: &[ArrowType]) -> DeltaResult<Vec<ArrayRef>> {
    Ok(columns
        .iter()
        .zip(types)
        .map(|(c, t)| if c.data_type() == t { Ok(c.clone()) } else { arrow::compute::cast(c, t) })
        .collect::<Result<_, _>>()?)
}

impl KeyIndex {
    fn build(columns: &[ArrayRef], types: &[ArrowType], n: usize) -> DeltaResult<Self> {
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

    fn is_empty(&self) -> bool {
        match self {
            KeyIndex::All(n) => *n == 0,
            KeyIndex::Int { table, .. } | KeyIndex::Bytes { table, .. } => table.len() == 0,
        }
    }

    /// (target row, source row) pairs whose keys are equal (NULL keys never match).
    fn probe(&self, columns: &[ArrayRef], types: &[ArrowType], n: usize) -> DeltaResult<(Vec<u32>, Vec<u32>)> {
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

async fn execute(b: MergeBuilder<'_>) -> DeltaResult<DmlResult> {
    let started = std::time::Instant::now();
    let snapshot = b.table.snapshot().await?;
    let mut rw = Rewriter::new(snapshot.clone(), "MERGE")?;

    // The source's schema: its first batch's (read now), else the one given.
    let mut source_stream = b.source;
    let first = source_stream.try_next().await?;
    let source_schema = match (b.source_schema, &first) {
        (_, Some(first)) => first.schema(),
        (Some(s), None) => s,
        (None, None) => Arc::new(Schema::empty()),
    };

    // Schema evolution from `*` clauses.
    let star = b.clauses.iter().any(|c| matches!(c.action, MergeAction::UpdateAll | MergeAction::InsertAll));
    if b.schema_evolution && star {
        let widen = snapshot.protocol().has_feature(&crate::protocol::TableFeature::TypeWidening);
        let merged = crate::write::merge_schemas(&rw.schema, &schema_from_arrow(&source_schema)?, widen)?;
        rw.evolve(merged)?;
    }

    let resolver = Resolver {
        target_names: b.target_alias.clone().map(|a| vec![a]).unwrap_or_else(|| vec!["target".into(), "t".into()]),
        source_names: b.source_alias.clone().map(|a| vec![a]).unwrap_or_else(|| vec!["source".into(), "s".into()]),
        target_columns: rw.schema.fields.iter().map(|f| f.name.clone()).collect(),
        source_columns: source_schema.fields().iter().map(|f| f.name().clone()).collect(),
    };

    // Clauses.
    let mut clauses = Vec::with_capacity(b.clauses.len());
    for c in &b.clauses {
        let condition = c.condition.as_deref().map(|t| Expr::parse(t).and_then(|e| resolver.qualify(&e))).transpose()?;
        let parse_set = |set: &[(String, String)]| -> DeltaResult<Vec<(String, Expr)>> {
            set.iter().map(|(col, e)| Ok((resolver.target_column(col)?, resolver.qualify(&Expr::parse(e)?)?))).collect()
        };
        let star_pairs = |what: &str| -> DeltaResult<Vec<(String, Expr)>> {
            let mut out = Vec::new();
            for f in &rw.schema.fields {
                let derived = f.metadata.contains_key("delta.generationExpression")
                    || f.metadata.contains_key("delta.identity.start")
                    || f.metadata.contains_key("CURRENT_DEFAULT");
                match resolver.source_columns.iter().find(|s| s.eq_ignore_ascii_case(&f.name)) {
                    Some(s) => out.push((f.name.clone(), Expr::Column(vec![S.to_string(), s.clone()]))),
                    None if derived || b.schema_evolution => {}
                    None => {
                        return Err(DeltaError::WriteRefused {
                            reason: format!(
                                "{what} needs source column `{}` (the target has it); add it to the source or enable schema evolution",
                                f.name
                            ),
                        })
                    }
                }
            }
            Ok(out)
        };
        let kind = match (&c.when, &c.action) {
            (MergeWhen::NotMatched, MergeAction::Insert(v)) => Kind::Insert(parse_set(v)?),
            (MergeWhen::NotMatched, MergeAction::InsertAll) => Kind::Insert(star_pairs("INSERT *")?),
            (MergeWhen::Matched | MergeWhen::NotMatchedBySource, MergeAction::Update(v)) => Kind::Update(parse_set(v)?),
            (MergeWhen::Matched, MergeAction::UpdateAll) => Kind::Update(star_pairs("UPDATE SET *")?),
            (MergeWhen::Matched | MergeWhen::NotMatchedBySource, MergeAction::Delete) => Kind::Delete,
            (when, action) => {
                return Err(DeltaError::WriteRefused { reason: format!("a WHEN {when:?} clause cannot {action:?}") });
            }
        };
        if c.when == MergeWhen::NotMatchedBySource {
            if let Some(cond) = &condition {
                if sides(cond).1 {
                    return Err(DeltaError::expr(cond, "a WHEN NOT MATCHED BY SOURCE condition can only read target columns"));
                }
            }
        }
        if c.when == MergeWhen::NotMatched {
            if let Some(cond) = &condition {
                if sides(cond).0 {
                    return Err(DeltaError::expr(cond, "a WHEN NOT MATCHED condition can only read source columns"));
                }
            }
        }
        clauses.push(Clause { when: c.when, condition, text: c.condition.clone(), kind });
    }
    let matched: Vec<&Clause> = clauses.iter().filter(|c| c.when == MergeWhen::Matched).collect();
    let not_matched: Vec<&Clause> = clauses.iter().filter(|c| c.when == MergeWhen::NotMatched).collect();
    let by_source: Vec<&Clause> = clauses.iter().filter(|c| c.when == MergeWhen::NotMatchedBySource).collect();
    // Only one unconditional delete among matched clauses: several matches per target row are fine.
    let delete_only = matched.len() == 1 && matched[0].condition.is_none() && matches!(matched[0].kind, Kind::Delete);

    // The ON condition: equi-keys, target-only conjuncts (pruning), the rest.
    let on = resolver.qualify(&Expr::parse(&b.on)?)?;
    let mut target_keys = Vec::new();
    let mut source_keys = Vec::new();
    let mut target_only = Vec::new();
    let mut residual = Vec::new();
    for c in on.conjuncts() {
        if let Expr::Cmp(CmpOp::Eq, l, r) = c {
            match (sides(l), sides(r)) {
                ((true, false), (false, true)) => {
                    target_keys.push((**l).clone());
                    source_keys.push((**r).clone());
                    continue;
                }
                ((false, true), (true, false)) => {
                    target_keys.push((**r).clone());
                    source_keys.push((**l).clone());
                    continue;
                }
                _ => {}
            }
        }
        match sides(c) {
            (true, false) => {
                target_only.push(strip(c, T)?);
                residual.push(c.clone());
            }
            _ => residual.push(c.clone()),
        }
    }
    let residual = and_all(residual);
    let target_read = target_columns_read(&rw, &on, &clauses);
    let empty_target = RecordBatch::new_empty(rw.target.clone());
    let empty_t = one_side(T, Arc::new(struct_of(&empty_target)?))?;
    let key_types: Vec<ArrowType> =
        target_keys.iter().map(|k| evaluate(k, &empty_t).map(|a| a.data_type().clone())).collect::<DeltaResult<_>>()?;

    // The source: in memory, or spilled by key hash when over the budget.
    let keys_of = |batch: &RecordBatch| -> DeltaResult<Vec<ArrayRef>> {
        let s_side = one_side(S, Arc::new(struct_of(batch)?))?;
        cast_keys(&source_keys.iter().map(|k| evaluate(k, &s_side)).collect::<DeltaResult<Vec<_>>>()?, &key_types)
    };
    let source =
        SourceSide::collect(first, source_stream, source_schema.clone(), b.memory_budget, (!source_keys.is_empty()).then_some(&keys_of))
            .await?;
    rw.count("numSourceRows", source.rows);
    if source.passes() > 1 {
        rw.count("numSourceSpillPasses", source.passes() as u64);
    }
    let mut identities = identity_columns(&rw.schema)?;
    let mut m = Counts::default();
    for pass in 0..source.passes() {
        let source_batch = source.load(pass)?;
        let n_source = source_batch.num_rows();
        // Source side: struct column and hash table on the keys.
        let source_struct: ArrayRef = Arc::new(struct_of(&source_batch)?);
        let s_side = one_side(S, source_struct.clone())?;
        let s_key_cols: Vec<ArrayRef> = source_keys.iter().map(|k| evaluate(k, &s_side)).collect::<DeltaResult<_>>()?;
        let index = KeyIndex::build(&s_key_cols, &key_types, n_source)?;
        // Target pruning: ON's target-only conjuncts, and the source key range of a plain key column.
        let mut pushdown = target_only.clone();
        if let (1, Some(Expr::Column(p))) = (target_keys.len(), target_keys.first()) {
            let keys = &s_key_cols[0];
            if keys.null_count() < keys.len() && p.len() == 2 {
                let cast = arrow::compute::cast(keys, &key_types[0])?;
                let (lo, hi) = (min_max(&cast, false)?, min_max(&cast, true)?);
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    let col = Expr::Column(vec![p[1].clone()]);
                    pushdown.push(Expr::Cmp(CmpOp::GtEq, Box::new(col.clone()), Box::new(Expr::Literal(lo))));
                    pushdown.push(Expr::Cmp(CmpOp::LtEq, Box::new(col), Box::new(Expr::Literal(hi))));
                }
            }
        }
        // Without NOT MATCHED BY SOURCE clauses, target rows that cannot match are never touched.
        let pushdown = if by_source.is_empty() { and_all(pushdown) } else { None };
        let no_match_possible = by_source.is_empty() && index.is_empty();

        let mut source_matched = vec![false; n_source];
        if !no_match_possible {
            let mut candidates = Vec::new();
            for add in snapshot.add_files()? {
                if pushdown.as_ref().map_or(Ok(true), |p| rw.pruner.may_match_add(p, &add))? {
                    candidates.push(add);
                }
            }
            rw.read.extend(candidates.iter().map(|a| a.path.clone()));
            let mut found: Vec<RoaringTreemap> = vec![RoaringTreemap::new(); candidates.len()];
            if !candidates.is_empty() {
                // Every candidate file in one scan: files decode concurrently while batches are probed.
                let mut stream = rw.scan_columns(&candidates, pushdown.clone(), target_read.as_deref())?.execute();
                while let Some(batch) = stream.try_next().await? {
                    let Some(file_rows) = found.get_mut(file_of(&batch)?) else { continue };
                    let idx = row_indexes(&batch)?;
                    let rows = rw.table_columns(&batch)?;
                    let row_ids = rw.lineage_of(&batch)?.map(|(ids, _)| ids);
                    // A spilled source: only the target rows whose keys hash to this pass.
                    let (idx, rows, row_ids) = if source.passes() > 1 {
                        let t_side = one_side(T, Arc::new(struct_of(&rows)?))?;
                        let cols =
                            cast_keys(&target_keys.iter().map(|k| evaluate(k, &t_side)).collect::<DeltaResult<Vec<_>>>()?, &key_types)?;
                        let keep: BooleanArray =
                            partitions_of(&cols, SPILL_PARTITIONS)?.into_iter().map(|p| Some(source.pass_of(p) == pass)).collect();
                        let idx = arrow::compute::filter(&idx, &keep)?;
                        let idx = idx
                            .as_any()
                            .downcast_ref::<arrow::array::UInt64Array>()
                            .cloned()
                            .ok_or_else(|| DeltaError::Internal("row index column is not u64".into()))?;
                        let row_ids = row_ids.map(|ids| arrow::compute::filter(&ids, &keep)).transpose()?;
                        (idx, filter_record_batch(&rows, &keep)?, row_ids)
                    } else {
                        (idx, rows, row_ids)
                    };
                    // Row tracking: updated rows keep the ids of the rows they replace.
                    let ids_of = |sel: &UInt32Array| row_ids.as_ref().map(|ids| take(ids, sel, None)).transpose();
                    if rows.num_rows() == 0 {
                        continue;
                    }
                    let t_struct: ArrayRef = Arc::new(struct_of(&rows)?);
                    // Probe.
                    let t_cols: Vec<ArrayRef> = if target_keys.is_empty() {
                        Vec::new()
                    } else {
                        let t_side = one_side(T, t_struct.clone())?;
                        target_keys.iter().map(|k| evaluate(k, &t_side)).collect::<DeltaResult<_>>()?
                    };
                    let (ti, si) = index.probe(&t_cols, &key_types, rows.num_rows())?;
                    let (ti, si, pairs) = {
                        let (ti, si) = (UInt32Array::from(ti), UInt32Array::from(si));
                        let pairs = joined(take(&t_struct, &ti, None)?, take(&source_struct, &si, None)?)?;
                        match &residual {
                            Some(r) => {
                                let keep = evaluate_predicate(r, &pairs)?;
                                (filter_u32(&ti, &keep)?, filter_u32(&si, &keep)?, filter_record_batch(&pairs, &keep)?)
                            }
                            None => (ti, si, pairs),
                        }
                    };
                    for s in si.values() {
                        source_matched[*s as usize] = true;
                    }
                    let mut target_hit = vec![false; rows.num_rows()];
                    for t in ti.values() {
                        target_hit[*t as usize] = true;
                    }
                    // WHEN MATCHED.
                    if !matched.is_empty() && pairs.num_rows() > 0 {
                        let selections = clause_selections(&matched, &pairs)?;
                        // Pairs some matched clause applies to (its condition, or an earlier one's, holds).
                        let mut any = BooleanArray::from(vec![false; pairs.num_rows()]);
                        for sel in &selections {
                            any = arrow::compute::or(&any, sel)?;
                        }
                        if !delete_only {
                            let mut per_target = vec![0u8; rows.num_rows()];
                            for (p, t) in ti.values().iter().enumerate() {
                                if any.value(p) {
                                    per_target[*t as usize] = per_target[*t as usize].saturating_add(1);
                                }
                            }
                            let multiple = per_target.iter().filter(|c| **c > 1).count() as u64;
                            if multiple > 0 {
                                return Err(DeltaError::MultipleSourceRowsMatched { target_rows: multiple });
                            }
                        }
                        let mut deleted_t: std::collections::BTreeSet<u32> = Default::default();
                        for (c, sel) in matched.iter().zip(&selections) {
                            if sel.true_count() == 0 {
                                continue;
                            }
                            let t_sel = filter_u32(&ti, sel)?;
                            match &c.kind {
                                Kind::Delete => deleted_t.extend(t_sel.values().iter().copied()),
                                Kind::Update(set) => {
                                    let before = take_batch(&rows, &t_sel)?;
                                    let on = filter_record_batch(&pairs, sel)?;
                                    let after = apply_assignments(&rw, &before, &on, set)?;
                                    m.matched_updated += before.num_rows() as u64;
                                    write_update(&mut rw, &before, &after, ids_of(&t_sel)?).await?;
                                    file_rows.extend(t_sel.values().iter().map(|t| idx.value(*t as usize)));
                                }
                                Kind::Insert(_) => {}
                            }
                        }
                        m.matched_deleted += deleted_t.len() as u64;
                        let t_del = UInt32Array::from(deleted_t.into_iter().collect::<Vec<_>>());
                        rw.write_changes(&take_batch(&rows, &t_del)?, ChangeType::Delete).await?;
                        file_rows.extend(t_del.values().iter().map(|t| idx.value(*t as usize)));
                    }
                    // WHEN NOT MATCHED BY SOURCE.
                    if !by_source.is_empty() {
                        let unmatched =
                            UInt32Array::from((0..rows.num_rows() as u32).filter(|t| !target_hit[*t as usize]).collect::<Vec<_>>());
                        if !unmatched.is_empty() {
                            let t_rows = take(&t_struct, &unmatched, None)?;
                            let nulls = new_null_array(source_struct.data_type(), unmatched.len());
                            let pairs = joined(t_rows, nulls)?;
                            for (c, sel) in by_source.iter().zip(clause_selections(&by_source, &pairs)?) {
                                if sel.true_count() == 0 {
                                    continue;
                                }
                                let t_sel = filter_u32(&unmatched, &sel)?;
                                let before = take_batch(&rows, &t_sel)?;
                                match &c.kind {
                                    Kind::Delete => {
                                        m.by_source_deleted += before.num_rows() as u64;
                                        rw.write_changes(&before, ChangeType::Delete).await?;
                                    }
                                    Kind::Update(set) => {
                                        let on = filter_record_batch(&pairs, &sel)?;
                                        let after = apply_assignments(&rw, &before, &on, set)?;
                                        m.by_source_updated += before.num_rows() as u64;
                                        write_update(&mut rw, &before, &after, ids_of(&t_sel)?).await?;
                                    }
                                    Kind::Insert(_) => {}
                                }
                                file_rows.extend(t_sel.values().iter().map(|t| idx.value(*t as usize)));
                            }
                        }
                    }
                }
            }
            for (add, rows) in candidates.iter().zip(found) {
                rw.mark(add, rows);
            }
        }

        // WHEN NOT MATCHED: inserts, in slices of the unmatched source rows (bounded memory).
        if !not_matched.is_empty() {
            let unmatched: Vec<u32> = (0..n_source as u32).filter(|s| !source_matched[*s as usize]).collect();
            for slice in unmatched.chunks(INSERT_SLICE_ROWS) {
                let unmatched = UInt32Array::from(slice.to_vec());
                let s_rows = take(&source_struct, &unmatched, None)?;
                let nulls = new_null_array(&ArrowType::Struct(struct_of(&empty_target)?.fields().clone()), unmatched.len());
                let pairs = joined(nulls, s_rows)?;
                for (c, sel) in not_matched.iter().zip(clause_selections(&not_matched, &pairs)?) {
                    if sel.true_count() == 0 {
                        continue;
                    }
                    let Kind::Insert(values) = &c.kind else { continue };
                    let on = filter_record_batch(&pairs, &sel)?;
                    let mut fields = Vec::with_capacity(values.len());
                    let mut cols = Vec::with_capacity(values.len());
                    for (col, e) in values {
                        let Some(i) = rw.schema.fields.iter().position(|f| &f.name == col) else { continue };
                        let v = rw.evaluate_for_column(i, e, &on)?;
                        fields.push(Field::new(col, v.data_type().clone(), true));
                        cols.push(v);
                    }
                    let given = RecordBatch::try_new_with_options(
                        Arc::new(Schema::new(fields)),
                        cols,
                        &arrow::array::RecordBatchOptions::new().with_row_count(Some(on.num_rows())),
                    )?;
                    let (rows, provided) = conform_without_generated(&given, &rw.target, &rw.schema)?;
                    let rows = fill_identity_columns(rows, &provided, &mut identities)?;
                    let rows = fill_generated_columns((rows, provided), &rw.schema)?;
                    m.inserted += rows.num_rows() as u64;
                    rw.write_changes(&rows, ChangeType::Insert).await?;
                    rw.write_rows(&rows).await?;
                }
            }
        }
    }
    if identities.iter().any(|i| i.assigned.is_some()) {
        let mut schema = rw.schema.clone();
        for id in &identities {
            if let Some(last) = id.assigned {
                schema.fields[id.index].metadata.insert("delta.identity.highWaterMark".into(), json!(last));
            }
        }
        rw.evolve(schema)?;
    }
    // Files read by several passes are one read.
    rw.read.sort();
    rw.read.dedup();

    let read = std::mem::take(&mut rw.read);
    let (actions, raw, snapshot) = rw.finish().await?;
    let g = |k: &str| raw.get(k).copied().unwrap_or(0);
    let mut metrics = BTreeMap::new();
    let mut put = |k: &str, v: u64| {
        metrics.insert(k.to_string(), v);
    };
    put("numSourceRows", g("numSourceRows"));
    if g("numSourceSpillPasses") > 0 {
        put("numSourceSpillPasses", g("numSourceSpillPasses"));
    }
    put("numTargetRowsInserted", m.inserted);
    put("numTargetRowsUpdated", m.matched_updated + m.by_source_updated);
    put("numTargetRowsMatchedUpdated", m.matched_updated);
    put("numTargetRowsNotMatchedBySourceUpdated", m.by_source_updated);
    put("numTargetRowsDeleted", m.matched_deleted + m.by_source_deleted);
    put("numTargetRowsMatchedDeleted", m.matched_deleted);
    put("numTargetRowsNotMatchedBySourceDeleted", m.by_source_deleted);
    put("numTargetRowsCopied", g("numCopiedRows"));
    put("numOutputRows", m.inserted + m.matched_updated + m.by_source_updated + g("numCopiedRows"));
    put("numTargetFilesAdded", g("numAddedFiles"));
    put("numTargetFilesRemoved", g("numRemovedFiles"));
    put("numTargetChangeFilesAdded", g("numAddedChangeFiles"));
    put("numTargetBytesAdded", g("numAddedBytes"));
    put("numTargetBytesRemoved", g("numRemovedBytes"));
    put("numTargetDeletionVectorsAdded", g("numDeletionVectorsAdded"));
    put("numTargetDeletionVectorsUpdated", g("numDeletionVectorsUpdated"));
    put("numTargetDeletionVectorsRemoved", g("numDeletionVectorsRemoved"));
    put("executionTimeMs", started.elapsed().as_millis() as u64);
    let describe = |cs: &[&Clause]| -> Value {
        let items: Vec<Value> = cs
            .iter()
            .map(|c| {
                let action = match c.kind {
                    Kind::Update(_) => "update",
                    Kind::Delete => "delete",
                    Kind::Insert(_) => "insert",
                };
                let mut o = json!({"actionType": action});
                if let Some(cond) = &c.text {
                    o["predicate"] = json!(cond);
                }
                o
            })
            .collect();
        json!(Value::Array(items).to_string())
    };
    let params = json!({
        "predicate": json!(serde_json::to_string(&vec![b.on.clone()]).unwrap_or_default()),
        "matchedPredicates": describe(&matched),
        "notMatchedPredicates": describe(&not_matched),
        "notMatchedBySourcePredicates": describe(&by_source),
    });
    let read_predicate = if by_source.is_empty() { and_all(target_only) } else { None };
    commit_dml(b.table, snapshot, actions, read_predicate, &read, ("MERGE", params), metrics).await
}

/// The target columns the MERGE reads from candidate files (`None`: all of them): those the ON
/// condition, clause conditions and expressions name, and those an update clause keeps (does not
/// assign). Deleted rows only need finding, and `UPDATE SET *` replaces every column, so an upsert
/// reads its join keys only; the change feed records whole rows, so with CDF on every column is
/// read. (Copy-on-write copies the untouched rows in a second, full read.)
fn target_columns_read(rw: &Rewriter, on: &Expr, clauses: &[Clause]) -> Option<Vec<String>> {
    if rw.cdf {
        return None;
    }
    fn note(cols: &mut Vec<String>, name: &str) {
        if !cols.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            cols.push(name.to_string());
        }
    }
    let mut cols = Vec::new();
    let named = |e: &Expr, cols: &mut Vec<String>| {
        for c in e.columns() {
            if let (Some(T), Some(name)) = (c.first().map(String::as_str), c.get(1)) {
                note(cols, name);
            }
        }
    };
    named(on, &mut cols);
    for c in clauses {
        if let Some(cond) = &c.condition {
            named(cond, &mut cols);
        }
        match &c.kind {
            Kind::Update(set) => {
                for (_, e) in set {
                    named(e, &mut cols);
                }
                for f in &rw.schema.fields {
                    if !set.iter().any(|(n, _)| n.eq_ignore_ascii_case(&f.name)) {
                        note(&mut cols, &f.name);
                    }
                }
            }
            Kind::Insert(values) => {
                for (_, e) in values {
                    named(e, &mut cols);
                }
            }
            Kind::Delete => {}
        }
    }
    Some(cols)
}

/// The partition (of `n`) each row's keys hash to; rows with a NULL key go to partition 0.
fn partitions_of(keys: &[ArrayRef], n: usize) -> DeltaResult<Vec<usize>> {
    use std::hash::Hasher;
    let rows = keys.first().map(|k| k.len()).unwrap_or(0);
    if n <= 1 || keys.is_empty() {
        return Ok(vec![0; rows]);
    }
    let converter = RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(keys)?;
    Ok((0..rows)
        .map(|i| {
            if keys.iter().any(|k| k.is_null(i)) {
                return 0;
            }
            let mut h = FxHasher::default();
            h.write(encoded.row(i).as_ref());
            // The high bits: FxHash's low bits are weak for small integers.
            ((h.finish() >> 32) % n as u64) as usize
        })
        .collect())
}

/// Removes a spill directory when the MERGE ends, however it ends.
struct SpillDir(std::path::PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The MERGE source: one in-memory batch, or [`SPILL_PARTITIONS`] Arrow IPC files.
struct SourceSide {
    schema: SchemaRef,
    rows: u64,
    memory: Option<RecordBatch>,
    spilled: Vec<std::path::PathBuf>,
    /// Partitions per pass: consecutive partitions whose spill files together fit the budget.
    groups: Vec<Vec<usize>>,
    _dir: Option<SpillDir>,
}

/// Evaluates a source batch's join keys (cast to the key types).
type KeysOf<'a> = &'a (dyn Fn(&RecordBatch) -> DeltaResult<Vec<ArrayRef>> + Sync);

type IpcWriter = arrow::ipc::writer::FileWriter<std::io::BufWriter<std::fs::File>>;

impl SourceSide {
    /// Reads the source; past `budget` bytes (and with join keys to partition by) the batches
    /// held so far and every later one go to spill files by key hash.
    async fn collect(
        first: Option<RecordBatch>,
        mut rest: BoxStream<'static, DeltaResult<RecordBatch>>,
        schema: SchemaRef,
        budget: usize,
        keys_of: Option<KeysOf<'_>>,
    ) -> DeltaResult<SourceSide> {
        let mut held: Vec<RecordBatch> = Vec::new();
        let mut bytes = 0usize;
        let mut rows = 0u64;
        let mut writers: Option<(SpillDir, Vec<IpcWriter>, Vec<std::path::PathBuf>)> = None;
        let mut next = first;
        loop {
            let Some(batch) = next.take() else {
                match rest.try_next().await? {
                    Some(b) => {
                        next = Some(b);
                        continue;
                    }
                    None => break,
                }
            };
            if batch.num_rows() == 0 {
                continue;
            }
            rows += batch.num_rows() as u64;
            match (&mut writers, keys_of) {
                (Some((_, ws, _)), Some(keys_of)) => spill(&batch, keys_of, ws)?,
                (None, Some(keys_of)) if bytes + batch.get_array_memory_size() > budget => {
                    let dir = std::env::temp_dir().join(format!("delta-merge-spill-{}", uuid::Uuid::new_v4()));
                    std::fs::create_dir_all(&dir).map_err(|e| DeltaError::Internal(format!("cannot create spill directory: {e}")))?;
                    let guard = SpillDir(dir.clone());
                    let mut ws = Vec::with_capacity(SPILL_PARTITIONS);
                    let mut paths = Vec::with_capacity(SPILL_PARTITIONS);
                    for i in 0..SPILL_PARTITIONS {
                        let path = dir.join(format!("part-{i}.arrow"));
                        let file =
                            std::fs::File::create(&path).map_err(|e| DeltaError::Internal(format!("cannot create spill file: {e}")))?;
                        ws.push(arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &schema)?);
                        paths.push(path);
                    }
                    for b in held.drain(..) {
                        spill(&b, keys_of, &mut ws)?;
                    }
                    spill(&batch, keys_of, &mut ws)?;
                    writers = Some((guard, ws, paths));
                }
                _ => {
                    bytes += batch.get_array_memory_size();
                    held.push(batch);
                }
            }
        }
        match writers {
            Some((guard, ws, paths)) => {
                for mut w in ws {
                    w.finish()?;
                }
                let mut groups: Vec<Vec<usize>> = Vec::new();
                let mut size = 0u64;
                for (i, p) in paths.iter().enumerate() {
                    let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    match groups.last_mut() {
                        Some(g) if size + len <= budget as u64 => g.push(i),
                        _ => {
                            groups.push(vec![i]);
                            size = 0;
                        }
                    }
                    size += len;
                }
                Ok(SourceSide { schema, rows, memory: None, spilled: paths, groups, _dir: Some(guard) })
            }
            None => {
                let memory = arrow::compute::concat_batches(&schema, &held)?;
                Ok(SourceSide { schema, rows, memory: Some(memory), spilled: Vec::new(), groups: Vec::new(), _dir: None })
            }
        }
    }

    fn passes(&self) -> usize {
        self.groups.len().max(1)
    }

    /// The pass that handles spill partition `p`.
    fn pass_of(&self, p: usize) -> usize {
        self.groups.iter().position(|g| g.contains(&p)).unwrap_or(0)
    }

    /// The source rows of one pass.
    fn load(&self, pass: usize) -> DeltaResult<RecordBatch> {
        if let Some(m) = &self.memory {
            return Ok(m.clone());
        }
        let group = self.groups.get(pass).ok_or_else(|| DeltaError::Internal(format!("no spill pass {pass}")))?;
        let mut batches = Vec::new();
        for p in group {
            let path = self.spilled.get(*p).ok_or_else(|| DeltaError::Internal(format!("no spill partition {p}")))?;
            let file = std::fs::File::open(path).map_err(|e| DeltaError::Internal(format!("cannot read spill file: {e}")))?;
            let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)?;
            for b in reader {
                batches.push(b?);
            }
        }
        Ok(arrow::compute::concat_batches(&self.schema, &batches)?)
    }
}

/// Appends each row of `batch` to the spill file of its key partition.
fn spill(batch: &RecordBatch, keys_of: KeysOf<'_>, writers: &mut [IpcWriter]) -> DeltaResult<()> {
    let parts = partitions_of(&keys_of(batch)?, writers.len())?;
    for (p, w) in writers.iter_mut().enumerate() {
        let idx = UInt32Array::from(parts.iter().enumerate().filter(|(_, q)| **q == p).map(|(i, _)| i as u32).collect::<Vec<_>>());
        if !idx.is_empty() {
            w.write(&take_batch(batch, &idx)?)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    inserted: u64,
    matched_updated: u64,
    matched_deleted: u64,
    by_source_updated: u64,
    by_source_deleted: u64,
}

fn filter_u32(a: &UInt32Array, mask: &BooleanArray) -> DeltaResult<UInt32Array> {
    use arrow::array::AsArray;
    Ok(arrow::compute::filter(a, mask)?.as_primitive::<arrow::datatypes::UInt32Type>().clone())
}

fn take_batch(batch: &RecordBatch, idx: &UInt32Array) -> DeltaResult<RecordBatch> {
    let cols = batch.columns().iter().map(|c| take(c, idx, None)).collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new_with_options(batch.schema(), cols, &arrow::array::RecordBatchOptions::new().with_row_count(Some(idx.len())))?)
}

async fn write_update(rw: &mut Rewriter, before: &RecordBatch, after: &RecordBatch, row_ids: Option<ArrayRef>) -> DeltaResult<()> {
    rw.write_changes(before, ChangeType::UpdatePreimage).await?;
    rw.write_changes(after, ChangeType::UpdatePostimage).await?;
    // `row_ids` is `Some` on row-tracking tables (`Rewriter::lineage_of` fails otherwise).
    let lineage = row_ids.map(crate::row_tracking::Lineage::Updated).unwrap_or(crate::row_tracking::Lineage::Inserted);
    rw.write_rows_as(after, lineage).await
}

/// The smallest (or largest) non-null value of `a` as a literal, for pruning by the key range.
fn min_max(a: &ArrayRef, max: bool) -> DeltaResult<Option<crate::expr::Scalar>> {
    use crate::expr::Scalar;
    use arrow::array::AsArray;
    use arrow::datatypes::*;
    Ok(match a.data_type() {
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::Int32 | ArrowType::Int64 => {
            let a = arrow::compute::cast(a, &ArrowType::Int64)?;
            let p = a.as_primitive::<Int64Type>();
            let v = if max { arrow::compute::max(p) } else { arrow::compute::min(p) };
            v.map(Scalar::Integer)
        }
        ArrowType::Utf8 => {
            let s = a.as_string::<i32>();
            let v = if max { arrow::compute::max_string(s) } else { arrow::compute::min_string(s) };
            v.map(|v| Scalar::String(v.to_string()))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
