//! Running a MERGE: the passes over source partitions, the target scan, clause decisions per
//! joined batch, and the commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{DataType as ArrowType, Field, Schema};
use futures::TryStreamExt;
use roaring::RoaringTreemap;
use serde_json::{json, Value};

use super::index::{cast_keys, take_batch, KeyIndex};
use super::spill::{partitions_of, SourceSide};
use super::{
    and_all, clause_selections, joined, one_side, sides, strip, struct_of, Clause, Kind, MergeAction, MergeBuilder, MergeWhen, Resolver, S,
    SPILL_PARTITIONS, T,
};
use crate::error::{DeltaError, DeltaResult};
use crate::ops::dml::apply_assignments;
use crate::table::expr::{evaluate, evaluate_predicate, CmpOp, Expr};
use crate::write::enforce::{
    conform_without_generated, fill_generated_columns, fill_identity_columns, identity_columns, schema_from_arrow,
};
use crate::write::rewrite::{commit_dml, file_of, row_indexes, ChangeType, DmlResult, Rewriter};

/// Unmatched source rows turned into inserts at a time.
const INSERT_SLICE_ROWS: usize = 65536;

pub(super) async fn execute(b: MergeBuilder<'_>) -> DeltaResult<DmlResult> {
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
        let widen = snapshot.protocol().has_feature(&crate::table::protocol::TableFeature::TypeWidening);
        let merged = crate::write::enforce::merge_schemas(&rw.schema, &schema_from_arrow(&source_schema)?, widen)?;
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

async fn write_update(rw: &mut Rewriter, before: &RecordBatch, after: &RecordBatch, row_ids: Option<ArrayRef>) -> DeltaResult<()> {
    rw.write_changes(before, ChangeType::UpdatePreimage).await?;
    rw.write_changes(after, ChangeType::UpdatePostimage).await?;
    // `row_ids` is `Some` on row-tracking tables (`Rewriter::lineage_of` fails otherwise).
    let lineage = row_ids.map(crate::read::row_tracking::Lineage::Updated).unwrap_or(crate::read::row_tracking::Lineage::Inserted);
    rw.write_rows_as(after, lineage).await
}

/// The smallest (or largest) non-null value of `a` as a literal, for pruning by the key range.
fn min_max(a: &ArrayRef, max: bool) -> DeltaResult<Option<crate::table::expr::Scalar>> {
    use crate::table::expr::Scalar;
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
