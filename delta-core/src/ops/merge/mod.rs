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
//! Deleted and updated rows go through the `Rewriter` (`crate::write::rewrite`) (deletion vectors or copy-on-write),
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

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StructArray};
use arrow::datatypes::{Field, Fields, Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::{DeltaError, DeltaResult};
use crate::read::snapshot::Table;
use crate::table::expr::{evaluate_predicate, Expr};
use crate::write::rewrite::DmlResult;

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

mod execute;
mod index;
mod spill;

use execute::execute;
