//! The rewrite machinery of row-level changes (DELETE, UPDATE and MERGE in [`crate::ops`], and a
//! `replaceWhere` overwrite in [`super::writer`]).
//!
//! Every operation is planned the same way: a first pass reads only the files that can hold
//! affected rows (partition values and statistics prune the rest; the predicate is pushed into
//! the parquet reader), and produces, per file, the set of row indexes it deletes or replaces,
//! plus new rows (updated or inserted) and change data. The `Rewriter` then materialises the
//! deletions in one of two ways:
//!
//! ```text
//!  merge-on-read (delta.enableDeletionVectors):  existing DV ∪ new rows ─► one DV file per commit
//!                                                remove(old DV) + add(same path, new DV)
//!  copy-on-write:                                second pass over touched files copies the rows
//!                                                not deleted into new files; remove the old ones
//! ```
//!
//! A file whose rows are all deleted is removed either way. A DELETE whose predicate reads only
//! partition columns removes whole files without reading them. New rows stream into a
//! [`DeltaWriter`] as they are produced, so memory is bounded by a file's batches, not the table.
//!
//! With `delta.enableChangeDataFeed`, the rows deleted, the pre- and post-images of updates and
//! the inserted rows are written as `cdc` files (`_change_data/`) in the same commit; commits that
//! only remove whole files write none (readers derive those changes from the `remove` actions).
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{filter, filter_record_batch};
use arrow::datatypes::{Schema, SchemaRef, UInt64Type};
use futures::TryStreamExt;
use roaring::RoaringTreemap;
use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult};
use crate::read::row_tracking::Lineage;
use crate::read::scan::{ScanBuilder, ScanFile, FILE_INDEX_COLUMN, ROW_COMMIT_VERSION_COLUMN, ROW_ID_COLUMN, ROW_INDEX_COLUMN};
use crate::read::skipping::FilePruner;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::{Action, AddCdcFile, AddFile};
use crate::table::expr::{evaluate, Expr};
use crate::table::protocol::{Metadata, TableFeature};
use crate::table::schema::{ColumnMappingMode, StructType};
use crate::write::enforce::{check_rules, ensure_writable, table_rules};
use crate::write::files::{DeltaWriter, ParallelWriter, CHANGE_TYPE_COLUMN};
use crate::write::txn::{IsolationLevel, Transaction};

/// What a DELETE, UPDATE or MERGE did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmlResult {
    /// The committed version; `None` when nothing changed (no commit is written).
    pub version: Option<i64>,
    /// delta-spark's operation metrics for the operation (`numDeletedRows`, `numUpdatedRows`,
    /// `numTargetRowsInserted`, `numCopiedRows`, `numDeletionVectorsAdded`, …), also written to
    /// the commit's `operationMetrics`.
    pub metrics: BTreeMap<String, u64>,
    /// A failure after the commit (checksum or checkpoint); the commit stands.
    pub post_commit_error: Option<String>,
}

impl DmlResult {
    /// A metric by delta-spark's name (0 when absent).
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics.get(name).copied().unwrap_or(0)
    }
}

/// How a change data row changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Insert,
    Delete,
    UpdatePreimage,
    UpdatePostimage,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Insert => "insert",
            ChangeType::Delete => "delete",
            ChangeType::UpdatePreimage => "update_preimage",
            ChangeType::UpdatePostimage => "update_postimage",
        }
    }
}

/// Accumulates the effects of one DML operation and turns them into a commit.
pub(crate) struct Rewriter {
    pub(crate) snapshot: Snapshot,
    pub(crate) metadata: Metadata,
    pub(crate) schema: StructType,
    /// The table's logical Arrow schema, every field nullable (what new rows are conformed to).
    pub(crate) target: SchemaRef,
    pub(crate) pruner: FilePruner,
    pub(crate) use_dv: bool,
    pub(crate) cdf: bool,
    pub(crate) rules: Vec<(String, Expr)>,
    data: Option<ParallelWriter>,
    cdc: Option<ParallelWriter>,
    /// Files with rows deleted or replaced, and those rows' indexes (beyond any existing DV).
    touched: Vec<(AddFile, RoaringTreemap)>,
    touched_index: std::collections::HashMap<String, usize>,
    /// Files removed without being read.
    whole: Vec<AddFile>,
    /// Files read (for the conflict checker).
    pub(crate) read: Vec<String>,
    pub(crate) metrics: BTreeMap<String, u64>,
    /// Schema evolution: the metadata (and protocol) the commit installs.
    evolved: Option<(Metadata, Option<crate::table::protocol::Protocol>)>,
    /// Row tracking: the materialised row id and commit version columns rewritten rows carry.
    pub(crate) tracking: Option<(String, String)>,
}

/// The number of rows a file holds (`numRecords` less its deletion vector), if its stats say.
pub(crate) fn live_rows(add: &AddFile) -> Option<u64> {
    let n = add.num_records()?;
    Some(n.saturating_sub(add.deletion_vector.as_ref().map(|d| d.cardinality.max(0) as u64).unwrap_or(0)))
}

impl Rewriter {
    /// Checks that `operation` may change rows of this table and prepares the writers.
    pub(crate) fn new(snapshot: Snapshot, operation: &str) -> DeltaResult<Self> {
        ensure_writable(snapshot.protocol())?;
        let metadata = snapshot.metadata().clone();
        if metadata.bool_property("delta.appendOnly", false) {
            return Err(DeltaError::WriteRefused {
                reason: format!("the table is append-only (delta.appendOnly=true); {operation} is not allowed"),
            });
        }
        let schema = snapshot.schema().clone();
        let target =
            Arc::new(Schema::new(schema.to_arrow()?.fields().iter().map(|f| crate::table::schema::all_nullable(f)).collect::<Vec<_>>()));
        let use_dv =
            snapshot.protocol().has_feature(&TableFeature::DeletionVectors) && metadata.bool_property("delta.enableDeletionVectors", false);
        let cdf = metadata.bool_property("delta.enableChangeDataFeed", false);
        let rules = table_rules(&metadata, &schema)?;
        let pruner = FilePruner::new(&snapshot)?;
        let (tracking, declared) = match crate::read::row_tracking::names_for_rewrite(&snapshot) {
            Some((names, declared)) => (Some(names), declared),
            None => (None, None),
        };
        // A table that never declared the materialised column names gets them in this commit.
        let metadata = declared.clone().unwrap_or(metadata);
        let evolved = declared.map(|m| (m, None));
        Ok(Rewriter {
            snapshot,
            metadata,
            schema,
            target,
            pruner,
            use_dv,
            cdf,
            rules,
            data: None,
            cdc: None,
            touched: Vec::new(),
            touched_index: std::collections::HashMap::new(),
            whole: Vec::new(),
            read: Vec::new(),
            metrics: BTreeMap::new(),
            evolved,
            tracking,
        })
    }

    /// Schema evolution (MERGE `withSchemaEvolution`): rows are written, and existing rows read,
    /// in `schema`; the commit carries the new metadata (column mapping ids for new columns, a
    /// protocol upgrade where the new schema needs one).
    pub(crate) fn evolve(&mut self, mut schema: StructType) -> DeltaResult<()> {
        if schema == self.schema {
            return Ok(());
        }
        let mut metadata = self.metadata.clone();
        if self.mode() != ColumnMappingMode::None {
            crate::table::column_mapping::assign_new_column_ids(&mut schema, &mut metadata);
        }
        metadata.schema_string = schema.to_json().to_string();
        let props: std::collections::HashMap<String, String> =
            metadata.configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        let needed = crate::table::features::min_protocol(&schema, &props);
        let current = self.snapshot.protocol();
        let protocol = (needed.min_writer_version > current.min_writer_version || needed.min_reader_version > current.min_reader_version)
            .then_some(needed);
        self.target =
            Arc::new(Schema::new(schema.to_arrow()?.fields().iter().map(|f| crate::table::schema::all_nullable(f)).collect::<Vec<_>>()));
        self.rules = table_rules(&metadata, &schema)?;
        self.schema = schema;
        self.metadata = metadata.clone();
        self.evolved = Some((metadata, protocol));
        Ok(())
    }

    pub(crate) fn count(&mut self, metric: &str, n: u64) {
        *self.metrics.entry(metric.to_string()).or_insert(0) += n;
    }

    fn mode(&self) -> ColumnMappingMode {
        self.snapshot.column_mapping_mode()
    }

    /// `e` on `batch`, as values of table column `i` (Spark's store assignment: a value that does
    /// not fit the column's type is an error, not NULL).
    pub(crate) fn evaluate_for_column(&self, i: usize, e: &Expr, batch: &RecordBatch) -> DeltaResult<ArrayRef> {
        let t = self.target.field(i).data_type();
        let v = evaluate(e, batch)?;
        if v.data_type() == t {
            return Ok(v);
        }
        let f = &self.schema.fields[i];
        arrow::compute::cast_with_options(&v, t, &arrow::compute::CastOptions { safe: false, ..Default::default() }).map_err(|err| {
            DeltaError::WriteRefused {
                reason: format!("cannot assign `{e}` ({}) to column `{}` ({}): {err}", v.data_type(), f.name, f.data_type),
            }
        })
    }

    /// A scan of these files (read concurrently) with each row's index in its file and the
    /// file's position in `adds` (existing deletion vectors applied). Every batch comes from
    /// one file.
    pub(crate) fn scan_files(&self, adds: &[AddFile], pushdown: Option<Expr>) -> DeltaResult<crate::read::scan::Scan> {
        self.scan_columns(adds, pushdown, None)
    }

    /// [`Rewriter::scan_files`] reading only `columns` (top-level names) when given: the
    /// operation needs no other value of these rows (it only records which rows match, or
    /// replaces every other column). [`Rewriter::table_columns`] gives the skipped columns as
    /// NULL, so a caller must never write a row it read this way without replacing them.
    pub(crate) fn scan_columns(
        &self,
        adds: &[AddFile],
        pushdown: Option<Expr>,
        columns: Option<&[String]>,
    ) -> DeltaResult<crate::read::scan::Scan> {
        let files = adds.iter().map(|a| ScanFile::from_add(a, &self.pruner)).collect();
        // As many files in flight as there are cores to decode them: DML holds more per batch
        // than a plain scan (the rows it rewrites, the writers' open files).
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8);
        let mut b = ScanBuilder::new(self.snapshot.clone()).with_files(files).with_row_index().with_concurrency(cores);
        if self.tracking.is_some() {
            b = b.with_row_tracking();
        }
        if let Some(columns) = columns {
            // Columns of the files' schema only (schema evolution adds columns no file has).
            let file_schema = self.snapshot.schema();
            let mut read: Vec<String> = file_schema
                .fields
                .iter()
                .filter(|f| columns.iter().any(|c| c.eq_ignore_ascii_case(&f.name)))
                .map(|f| f.name.clone())
                .collect();
            if read.is_empty() {
                // Row positions still come from reading some column.
                read.extend(file_schema.fields.first().map(|f| f.name.clone()));
            }
            b = b.with_columns(&read);
        }
        if let Some(p) = pushdown {
            b = b.with_predicate(p);
        }
        b.build()
    }

    /// Whether the partition values of `add` satisfy a predicate over partition columns only.
    pub(crate) fn partition_predicate_holds(&self, predicate: &Expr, add: &AddFile) -> DeltaResult<bool> {
        self.pruner.partition_predicate_holds(predicate, add)
    }

    /// Whether every column `predicate` reads is a partition column.
    pub(crate) fn is_partition_only(&self, predicate: &Expr) -> bool {
        self.pruner.is_partition_only(predicate)
    }

    /// Refuses predicates and expressions naming columns the table does not have.
    pub(crate) fn check_columns(&self, e: &Expr) -> DeltaResult<()> {
        for c in e.columns() {
            if self.schema.field(&c[0]).is_none() {
                return Err(self.schema.column_not_found(c.join(".")));
            }
        }
        Ok(())
    }

    /// Removes a file without reading it (its rows all go).
    pub(crate) fn remove_whole(&mut self, add: AddFile) {
        self.read.push(add.path.clone());
        self.whole.push(add);
    }

    /// Records rows of `add` (file row indexes) as deleted or replaced.
    pub(crate) fn mark(&mut self, add: &AddFile, rows: RoaringTreemap) {
        if rows.is_empty() {
            return;
        }
        match self.touched_index.get(&add.path) {
            Some(i) => self.touched[*i].1 |= rows,
            None => {
                self.touched_index.insert(add.path.clone(), self.touched.len());
                self.touched.push((add.clone(), rows));
            }
        }
    }

    /// Writes new rows (table columns, conformed and checked) to data files.
    pub(crate) async fn write_rows(&mut self, batch: &RecordBatch) -> DeltaResult<()> {
        self.write_rows_as(batch, Lineage::Inserted).await
    }

    /// The row ids and commit versions of a [`Rewriter::scan_files`] batch, on a row-tracking
    /// table.
    pub(crate) fn lineage_of(&self, batch: &RecordBatch) -> DeltaResult<Option<(ArrayRef, ArrayRef)>> {
        if self.tracking.is_none() {
            return Ok(None);
        }
        crate::read::row_tracking::of_batch(batch)
            .map(Some)
            .ok_or_else(|| DeltaError::Internal("scan lacks its row tracking columns".into()))
    }

    /// [`Rewriter::write_rows`] for rows that replace (`Updated`) or copy (`Copied`) existing
    /// rows: on a row-tracking table they keep their row ids (see [`crate::read::row_tracking`]).
    pub(crate) async fn write_rows_as(&mut self, batch: &RecordBatch, lineage: Lineage) -> DeltaResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        check_rules(batch, &self.rules)?;
        if self.data.is_none() {
            let size = self.metadata.property("delta.targetFileSize").and_then(|v| v.parse().ok()).unwrap_or(128 * 1024 * 1024);
            let (location, mode) = (self.snapshot.location().clone(), self.mode());
            let (metadata, schema) = (&self.metadata, &self.schema);
            let hidden = self.tracking.as_ref().map(crate::read::row_tracking::hidden_fields).unwrap_or_default();
            self.data = Some(ParallelWriter::new(|| {
                DeltaWriter::new(location.clone(), metadata, schema, mode, size)?.with_hidden_columns(hidden.clone())
            })?);
        }
        let batch = match &self.tracking {
            None => batch.clone(),
            Some(names) => {
                let mut fields: Vec<arrow::datatypes::FieldRef> = self.target.fields().iter().cloned().collect();
                for n in [&names.0, &names.1] {
                    fields.push(Arc::new(arrow::datatypes::Field::new(n, arrow::datatypes::DataType::Int64, true)));
                }
                let mut columns = batch.columns().to_vec();
                columns.extend(lineage.columns(batch.num_rows()));
                RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?
            }
        };
        send(&mut self.data, batch, "data").await
    }

    /// Writes change data rows (table columns) with their change type, when CDF is on.
    pub(crate) async fn write_changes(&mut self, batch: &RecordBatch, change: ChangeType) -> DeltaResult<()> {
        if !self.cdf || batch.num_rows() == 0 {
            return Ok(());
        }
        if self.cdc.is_none() {
            let (location, mode) = (self.snapshot.location().clone(), self.mode());
            let (metadata, schema) = (&self.metadata, &self.schema);
            self.cdc = Some(ParallelWriter::new(|| DeltaWriter::for_change_data(location.clone(), metadata, schema, mode))?);
        }
        let table_cols = self.target.fields().len();
        let mut cols: Vec<ArrayRef> = batch.columns()[..table_cols.min(batch.num_columns())].to_vec();
        cols.push(Arc::new(StringArray::from(vec![change.as_str(); batch.num_rows()])));
        let mut fields: Vec<arrow::datatypes::FieldRef> = self.target.fields().iter().cloned().collect();
        fields.push(Arc::new(arrow::datatypes::Field::new(CHANGE_TYPE_COLUMN, arrow::datatypes::DataType::Utf8, true)));
        let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
        send(&mut self.cdc, out, "change").await
    }

    /// The table columns of a scan batch (drops the row index columns; after schema evolution,
    /// columns the files lack are NULL, as are those a [`Rewriter::scan_columns`] scan skipped).
    pub(crate) fn table_columns(&self, batch: &RecordBatch) -> DeltaResult<RecordBatch> {
        let schema = batch.schema();
        // The scan appends its own columns (row index, file index, row tracking) after the table's.
        let special = [ROW_INDEX_COLUMN, FILE_INDEX_COLUMN, ROW_ID_COLUMN, ROW_COMMIT_VERSION_COLUMN];
        let own = schema.fields().iter().filter(|f| special.contains(&f.name().as_str())).count();
        let read = &schema.fields()[..batch.num_columns().saturating_sub(own)];
        let columns = if self.evolved.is_none() && read.len() == self.target.fields().len() {
            batch.columns()[..read.len()].to_vec()
        } else {
            self.target
                .fields()
                .iter()
                .map(|f| match read.iter().position(|r| r.name() == f.name()) {
                    Some(i) if batch.column(i).data_type() == f.data_type() => Ok(batch.column(i).clone()),
                    Some(i) => crate::log::replay::conform(batch.column(i), f.data_type()),
                    None => Ok(arrow::array::new_null_array(f.data_type(), batch.num_rows())),
                })
                .collect::<DeltaResult<Vec<_>>>()?
        };
        Ok(RecordBatch::try_new_with_options(
            self.target.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }

    /// Deletes the rows for which `predicate` is true (all rows without one): files a
    /// partition-only predicate selects go whole; other files that may match are read (the
    /// predicate's columns only, unless the change feed needs whole rows) and their matching
    /// rows marked. Counts `numDeletedRows`.
    pub(crate) async fn delete_rows(&mut self, predicate: Option<&Expr>) -> DeltaResult<u64> {
        if let Some(p) = predicate {
            self.check_columns(p)?;
        }
        let partition_only = predicate.is_none_or(|p| self.is_partition_only(p));
        let mut deleted = 0u64;
        let mut candidates = Vec::new();
        for add in self.snapshot.add_files()? {
            if partition_only {
                let holds = match predicate {
                    None => true,
                    Some(p) => self.partition_predicate_holds(p, &add)?,
                };
                if holds {
                    deleted += live_rows(&add).unwrap_or(0);
                    self.remove_whole(add);
                }
                continue;
            }
            let Some(p) = predicate else { continue };
            if self.pruner.may_match_add(p, &add)? {
                candidates.push(add);
            }
        }
        if !candidates.is_empty() {
            self.read.extend(candidates.iter().map(|a| a.path.clone()));
            let mut found: Vec<RoaringTreemap> = vec![RoaringTreemap::new(); candidates.len()];
            // Finding the rows needs the predicate's columns only; the change feed records
            // whole deleted rows. (Copy-on-write reads the kept rows whole in `finish`.)
            let needed: Option<Vec<String>> =
                (!self.cdf).then(|| predicate.iter().flat_map(|p| p.columns()).filter_map(|c| c.first().cloned()).collect());
            let mut stream = self.scan_columns(&candidates, predicate.cloned(), needed.as_deref())?.execute();
            while let Some(batch) = stream.try_next().await? {
                let Some(rows) = found.get_mut(file_of(&batch)?) else { continue };
                rows.extend(row_indexes(&batch)?.values().iter().copied());
                if self.cdf {
                    let data = self.table_columns(&batch)?;
                    self.write_changes(&data, ChangeType::Delete).await?;
                }
            }
            for (add, rows) in candidates.iter().zip(found) {
                deleted += rows.len();
                self.mark(add, rows);
            }
        }
        self.count("numDeletedRows", deleted);
        Ok(deleted)
    }

    /// Materialises the deletions, writes the remaining files and returns the actions to commit
    /// (`remove`s, `add`s, `cdc`s). Nothing is visible until the commit.
    pub(crate) async fn finish(mut self) -> DeltaResult<(Vec<Action>, BTreeMap<String, u64>, Snapshot)> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions = Vec::new();
        if let Some((metadata, protocol)) = self.evolved.clone() {
            if let Some(p) = protocol {
                actions.push(Action::Protocol(p));
            }
            actions.push(Action::Metadata(metadata));
        }
        let location = self.snapshot.location().clone();
        for add in std::mem::take(&mut self.whole) {
            self.count("numRemovedFiles", 1);
            self.count("numRemovedBytes", add.size.max(0) as u64);
            if add.deletion_vector.is_some() {
                self.count("numDeletionVectorsRemoved", 1);
            }
            actions.push(Action::Remove(add.to_remove(now, true)));
        }
        let touched = std::mem::take(&mut self.touched);
        if self.use_dv {
            let mut dvs = crate::read::dv::DvFileWriter::new();
            for (add, rows) in touched {
                let mut all = rows;
                let records = add.num_records();
                if let Some(old) = &add.deletion_vector {
                    all |= old.load(&location, records).await?;
                }
                actions.push(Action::Remove(add.to_remove(now, true)));
                if records.is_some_and(|n| all.len() >= n) {
                    self.count("numRemovedFiles", 1);
                    self.count("numRemovedBytes", add.size.max(0) as u64);
                    if add.deletion_vector.is_some() {
                        self.count("numDeletionVectorsRemoved", 1);
                    }
                    continue;
                }
                let descriptor = dvs.add(&all)?;
                self.count(if add.deletion_vector.is_some() { "numDeletionVectorsUpdated" } else { "numDeletionVectorsAdded" }, 1);
                let mut next = add.clone();
                next.deletion_vector = Some(descriptor);
                next.data_change = true;
                next.modification_time = now;
                // Bounds stay valid for the remaining rows but may no longer be tight.
                if let Some(Value::Object(mut stats)) = add.stats.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()) {
                    stats.insert("tightBounds".into(), json!(false));
                    next.stats = Some(Value::Object(stats).to_string());
                }
                actions.push(Action::Add(next));
            }
            // The vectors must be durable before a commit names them.
            dvs.finish(&location).await?;
        } else {
            let mut adds = Vec::with_capacity(touched.len());
            let mut deleted = Vec::with_capacity(touched.len());
            for (add, rows) in touched {
                self.count("numRemovedFiles", 1);
                self.count("numRemovedBytes", add.size.max(0) as u64);
                if add.deletion_vector.is_some() {
                    self.count("numDeletionVectorsRemoved", 1);
                }
                actions.push(Action::Remove(add.to_remove(now, true)));
                adds.push(add);
                // Sorted row indexes: each batch finds its deleted rows by a merge walk.
                deleted.push(rows.iter().collect::<Vec<u64>>());
            }
            // Copy the rows that stay (the files are read concurrently).
            if !adds.is_empty() {
                let mut stream = self.scan_files(&adds, None)?.execute();
                while let Some(batch) = stream.try_next().await? {
                    let Some(rows) = deleted.get(file_of(&batch)?) else { continue };
                    let idx = row_indexes(&batch)?;
                    let keep = keep_mask(idx.values(), rows);
                    let columns = self.table_columns(&batch)?;
                    let kept = match keep.false_count() {
                        0 => columns,
                        _ => filter_record_batch(&columns, &keep)?,
                    };
                    self.count("numCopiedRows", kept.num_rows() as u64);
                    let lineage = match self.lineage_of(&batch)? {
                        Some((ids, versions)) => Lineage::Copied(filter(&ids, &keep)?, filter(&versions, &keep)?),
                        None => Lineage::Inserted,
                    };
                    self.write_rows_as(&kept, lineage).await?;
                }
            }
        }
        if let Some(w) = self.data.take() {
            let (adds, _) = w.finish().await?;
            for a in adds {
                self.count("numAddedFiles", 1);
                self.count("numAddedBytes", a.size.max(0) as u64);
                actions.push(Action::Add(a));
            }
        }
        if let Some(w) = self.cdc.take() {
            let (files, _) = w.finish().await?;
            for f in files {
                self.count("numAddedChangeFiles", 1);
                actions.push(Action::Cdc(AddCdcFile {
                    path: f.path,
                    partition_values: f.partition_values,
                    size: f.size,
                    data_change: false,
                    tags: None,
                }));
            }
        }
        Ok((actions, self.metrics, self.snapshot))
    }
}

/// The rows of a batch to keep: those whose index is not in `deleted` (sorted ascending).
/// Indexes ascend within a batch (a file is read in row order), so the deleted rows are found
/// by one merge walk; indexes out of order fall back to a binary search.
fn keep_mask(indexes: &[u64], deleted: &[u64]) -> BooleanArray {
    let (Some(first), Some(last)) = (indexes.first(), indexes.last()) else { return BooleanArray::from(Vec::<bool>::new()) };
    if !indexes.windows(2).all(|w| w[0] < w[1]) {
        return BooleanArray::from(indexes.iter().map(|i| deleted.binary_search(i).is_err()).collect::<Vec<bool>>());
    }
    let mut d = deleted.partition_point(|x| x < first);
    if d == deleted.len() || deleted[d] > *last {
        return BooleanArray::from(vec![true; indexes.len()]);
    }
    let keep: Vec<bool> = indexes
        .iter()
        .map(|i| {
            while d < deleted.len() && deleted[d] < *i {
                d += 1;
            }
            !(d < deleted.len() && deleted[d] == *i)
        })
        .collect();
    BooleanArray::from(keep)
}

/// Hands a batch to a started writer; when the writer has stopped, its error.
async fn send(writer: &mut Option<ParallelWriter>, batch: RecordBatch, what: &str) -> DeltaResult<()> {
    let Some(w) = writer.as_mut() else { return Err(DeltaError::Internal(format!("{what} writer missing"))) };
    if !w.write(batch).await {
        if let Some(w) = writer.take() {
            w.finish().await?;
        }
        return Err(DeltaError::Internal(format!("{what} writer stopped")));
    }
    Ok(())
}

/// Which of the scanned files a batch of a [`Rewriter::scan_files`] scan came from.
pub(crate) fn file_of(batch: &RecordBatch) -> DeltaResult<usize> {
    let c = batch
        .column_by_name(FILE_INDEX_COLUMN)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt32Type>())
        .ok_or_else(|| DeltaError::Internal("scan lacks its file index column".into()))?;
    if c.is_empty() {
        return Ok(usize::MAX);
    }
    Ok(c.value(0) as usize)
}

/// The row index column of a scan built with [`ScanBuilder::with_row_index`].
pub(crate) fn row_indexes(batch: &RecordBatch) -> DeltaResult<arrow::array::UInt64Array> {
    batch
        .column_by_name(ROW_INDEX_COLUMN)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .cloned()
        .ok_or_else(|| DeltaError::Internal("scan lacks its row index column".into()))
}

/// Commits the actions of a DML operation with delta-spark's operation name and parameters.
pub(crate) async fn commit_dml(
    table: &Table,
    snapshot: Snapshot,
    actions: Vec<Action>,
    read_predicate: Option<Expr>,
    read_files: &[String],
    (operation, parameters): (&str, Value),
    metrics: BTreeMap<String, u64>,
) -> DeltaResult<DmlResult> {
    if actions.is_empty() {
        return Ok(DmlResult { version: None, metrics, post_commit_error: None });
    }
    let mut txn = Transaction::new(snapshot).with_isolation(IsolationLevel::WriteSerializable);
    match read_predicate {
        Some(p) => txn.read_predicate(p),
        None => txn.read_whole_table(),
    }
    for f in read_files {
        txn.read_file(f);
    }
    txn.add_actions(actions);
    let shown: serde_json::Map<String, Value> = metrics.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect();
    let txn = txn.with_operation(operation, parameters).with_metrics(Value::Object(shown));
    let version = txn.commit().await?.version()?;
    let post_commit_error = crate::write::checkpoint::post_commit(table, version).await.err().map(|e| e.to_string());
    Ok(DmlResult { version: Some(version), metrics, post_commit_error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_mask_finds_deleted_rows_in_and_out_of_order() {
        let deleted = [2u64, 5, 6, 100];
        let mask = |idx: &[u64]| keep_mask(idx, &deleted).iter().map(|b| b.unwrap_or(false)).collect::<Vec<_>>();
        assert_eq!(mask(&[0, 1, 2, 3, 4, 5, 6, 7]), [true, true, false, true, true, false, false, true]);
        assert_eq!(mask(&[7, 8, 9]), [true, true, true]);
        assert_eq!(mask(&[100, 101]), [false, true]);
        assert_eq!(mask(&[6, 2, 3]), [false, false, true]);
        assert_eq!(mask(&[]), Vec::<bool>::new());
        assert!(keep_mask(&[1, 2], &[]).iter().all(|b| b == Some(true)));
    }
}
