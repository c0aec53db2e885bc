//! Row-level changes: DELETE and UPDATE (here) and MERGE ([`crate::ops::merge`]), planned and
//! materialised by the write layer's `Rewriter` (deletion vectors or copy-on-write, change
//! data on CDF tables; see [`crate::write::rewrite`]). This module finds the rows and computes
//! the new values: predicates, `SET` assignments (nested struct fields too), the commit.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use futures::TryStreamExt;
use roaring::RoaringTreemap;
use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult};
use crate::read::row_tracking::Lineage;
use crate::read::snapshot::Table;
use crate::table::expr::{evaluate, Expr};
use crate::write::enforce::conform_without_generated;
use crate::write::rewrite::{file_of, row_indexes};

use crate::write::rewrite::{commit_dml, Rewriter};
pub use crate::write::rewrite::{ChangeType, DmlResult};

/// Applies `SET column = expression` assignments to `rows` (table columns): assigned columns take
/// the expression's value cast to the column's type; generated columns that are not assigned are
/// recomputed; NOT NULL and CHECK constraints are checked by the writer.
pub(crate) fn apply_assignments(
    rw: &Rewriter,
    rows: &RecordBatch,
    eval_on: &RecordBatch,
    assignments: &[(String, Expr)],
) -> DeltaResult<RecordBatch> {
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    let mut provided = vec![true; columns.len()];
    for (i, f) in rw.schema.fields.iter().enumerate() {
        if f.metadata.contains_key("delta.generationExpression") {
            provided[i] = false;
        }
    }
    for (name, e) in assignments {
        let path = assignment_path(name);
        let i = rw
            .schema
            .fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(&path[0]))
            .ok_or_else(|| rw.schema.column_not_found(name.clone()))?;
        if path.len() > 1 {
            // A nested field: the struct is rebuilt around the new value (as delta-spark does,
            // the struct is no longer NULL; its other fields keep their values, NULL where it was).
            let value = evaluate(e, eval_on)?;
            columns[i] = assign_nested(&columns[i], &rw.schema.fields[i].data_type, &path[1..], value, name)?;
            provided[i] = true;
            continue;
        }
        let f = &rw.schema.fields[i];
        if f.metadata.contains_key("delta.identity.start")
            && !f.metadata.get("delta.identity.allowExplicitInsert").and_then(Value::as_bool).unwrap_or(false)
        {
            return Err(DeltaError::WriteRefused {
                reason: format!("identity column `{}` is GENERATED ALWAYS and cannot be updated", f.name),
            });
        }
        columns[i] = rw.evaluate_for_column(i, e, eval_on)?;
        provided[i] = true;
    }
    let batch = RecordBatch::try_new_with_options(
        rw.target.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )?;
    // NOT NULL checks and generated columns, as for inserted rows.
    let (batch, _) = conform_without_generated(&batch, &rw.target, &rw.schema)?;
    crate::write::enforce::fill_generated_columns((batch, provided), &rw.schema)
}

/// `a.b.c` (backquotes allowed) as its path.
fn assignment_path(name: &str) -> Vec<String> {
    name.split('.').map(|p| p.trim().trim_matches('`').to_string()).collect()
}

/// `array` (a struct column of type `data_type`) with the field at `path` replaced by `value`.
fn assign_nested(
    array: &ArrayRef,
    data_type: &crate::table::schema::DataType,
    path: &[String],
    value: ArrayRef,
    shown: &str,
) -> DeltaResult<ArrayRef> {
    let (crate::table::schema::DataType::Struct(st), Some(s)) = (data_type, array.as_struct_opt()) else {
        return Err(DeltaError::WriteRefused { reason: format!("cannot assign `{shown}`: `{}` is not inside a struct", path[0]) });
    };
    let j = st.fields.iter().position(|f| f.name.eq_ignore_ascii_case(&path[0])).ok_or_else(|| DeltaError::ColumnNotFound {
        column: shown.to_string(),
        available: st.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(", "),
    })?;
    // Where the struct was NULL its fields read as NULL.
    let was_null: Option<BooleanArray> = s.nulls().map(|n| n.iter().map(|valid| Some(!valid)).collect());
    let mut columns: Vec<ArrayRef> = s.columns().to_vec();
    for c in columns.iter_mut() {
        if let Some(mask) = &was_null {
            *c = arrow::compute::nullif(c.as_ref(), mask)?;
        }
    }
    let field = &st.fields[j];
    columns[j] = if path.len() == 1 {
        let t = s.fields()[j].data_type();
        if value.data_type() == t {
            value
        } else {
            arrow::compute::cast_with_options(&value, t, &arrow::compute::CastOptions { safe: false, ..Default::default() }).map_err(
                |err| DeltaError::WriteRefused {
                    reason: format!("cannot assign {} to `{shown}` ({}): {err}", value.data_type(), field.data_type),
                },
            )?
        }
    } else {
        assign_nested(&columns[j], &field.data_type, &path[1..], value, shown)?
    };
    Ok(Arc::new(arrow::array::StructArray::try_new(s.fields().clone(), columns, None)?))
}

fn predicate_parameter(p: Option<&Expr>) -> Value {
    json!(serde_json::to_string(&p.map(|p| vec![p.to_string()]).unwrap_or_default()).unwrap_or_default())
}

/// DELETE and UPDATE end alike: materialise the changes, fill in the metrics delta-spark always
/// reports, and commit with the predicate as the operation parameter and the read set.
async fn finish_predicate_dml(
    table: &Table,
    mut rw: Rewriter,
    started: std::time::Instant,
    operation: &str,
    predicate: Option<Expr>,
) -> DeltaResult<DmlResult> {
    let read = std::mem::take(&mut rw.read);
    let (actions, mut metrics, snapshot) = rw.finish().await?;
    for m in ["numRemovedFiles", "numAddedFiles", "numCopiedRows", "numDeletionVectorsAdded", "numAddedChangeFiles"] {
        metrics.entry(m.into()).or_insert(0);
    }
    metrics.insert("executionTimeMs".into(), started.elapsed().as_millis() as u64);
    let params = json!({"predicate": predicate_parameter(predicate.as_ref())});
    commit_dml(table, snapshot, actions, predicate, &read, (operation, params), metrics).await
}

impl Table {
    /// `DELETE FROM table [WHERE predicate]` (Spark SQL predicate text). Deletion vectors when
    /// the table enables them, copy-on-write otherwise; see the module docs.
    pub async fn delete(&self, predicate: Option<&str>) -> DeltaResult<DmlResult> {
        let predicate = predicate.map(Expr::parse).transpose()?;
        self.delete_where(predicate).await
    }

    /// [`Table::delete`] with a parsed predicate.
    pub async fn delete_where(&self, predicate: Option<Expr>) -> DeltaResult<DmlResult> {
        let started = std::time::Instant::now();
        let snapshot = self.snapshot().await?;
        let mut rw = Rewriter::new(snapshot, "DELETE")?;
        rw.delete_rows(predicate.as_ref()).await?;
        finish_predicate_dml(self, rw, started, "DELETE", predicate).await
    }

    /// `UPDATE table SET column = expression, … [WHERE predicate]` (Spark SQL text). A column
    /// may be a nested field (`s.a`): the struct keeps its other fields.
    pub async fn update(&self, predicate: Option<&str>, assignments: &[(&str, &str)]) -> DeltaResult<DmlResult> {
        let predicate = predicate.map(Expr::parse).transpose()?;
        let assignments =
            assignments.iter().map(|(c, e)| Ok((c.to_string(), Expr::parse(e)?))).collect::<DeltaResult<Vec<(String, Expr)>>>()?;
        self.update_where(predicate, assignments).await
    }

    /// [`Table::update`] with parsed expressions.
    pub async fn update_where(&self, predicate: Option<Expr>, assignments: Vec<(String, Expr)>) -> DeltaResult<DmlResult> {
        let started = std::time::Instant::now();
        let snapshot = self.snapshot().await?;
        let mut rw = Rewriter::new(snapshot.clone(), "UPDATE")?;
        if let Some(p) = &predicate {
            rw.check_columns(p)?;
        }
        for (c, e) in &assignments {
            // `a.b.c` assigns a nested field (checked against the schema when applied).
            rw.check_columns(&Expr::col(assignment_path(c)[0].as_str()))?;
            rw.check_columns(e)?;
        }
        let mut updated = 0u64;
        let mut candidates = Vec::new();
        for add in snapshot.add_files()? {
            if predicate.as_ref().map_or(Ok(true), |p| rw.pruner.may_match_add(p, &add))? {
                candidates.push(add);
            }
        }
        if !candidates.is_empty() {
            rw.read.extend(candidates.iter().map(|a| a.path.clone()));
            let mut found: Vec<RoaringTreemap> = vec![RoaringTreemap::new(); candidates.len()];
            let mut stream = rw.scan_files(&candidates, predicate.clone())?.execute();
            while let Some(batch) = stream.try_next().await? {
                let file = file_of(&batch)?;
                if file >= found.len() {
                    continue;
                }
                // The scan kept exactly the rows the predicate is true for (NULL is false).
                let data = rw.table_columns(&batch)?;
                found[file].extend(row_indexes(&batch)?.values().iter().copied());
                let new = apply_assignments(&rw, &data, &data, &assignments)?;
                rw.write_changes(&data, ChangeType::UpdatePreimage).await?;
                rw.write_changes(&new, ChangeType::UpdatePostimage).await?;
                let lineage = rw.lineage_of(&batch)?.map(|(ids, _)| Lineage::Updated(ids)).unwrap_or(Lineage::Inserted);
                rw.write_rows_as(&new, lineage).await?;
            }
            for (add, rows) in candidates.iter().zip(found) {
                updated += rows.len();
                rw.mark(add, rows);
            }
        }
        rw.count("numUpdatedRows", updated);
        finish_predicate_dml(self, rw, started, "UPDATE", predicate).await
    }
}
