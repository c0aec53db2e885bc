//! OPTIMIZE: compaction (bin-packing), Z-order, and purging deletion vectors (`REORG … APPLY
//! (PURGE)`).
//!
//! All three rewrite groups of files ("bins") into new files and commit `remove`s and `add`s with
//! `dataChange = false`, under snapshot isolation: concurrent appends never conflict, a
//! concurrent change to a file being rewritten does (delta-spark's rules).
//!
//! ```text
//!  live files ─► partition filter (partition columns only, exact) ─► per partition:
//!    compaction: files below the minimum size, or with more than 5 % of rows deleted;
//!                sorted by size, packed greedily into bins of at most the target size;
//!                bins of one file dropped unless it has a deletion vector  ─► idempotent
//!    Z-order:    every file of the partition is one bin; rows sorted by the interleaved bits
//!                of each column's rank (equal-depth ranges, as delta-spark's range ids)
//!    purge:      files with deletion vectors, packed like compaction, single files kept
//!    clustered table (plain OPTIMIZE): when some files are not clustered yet (no
//!                `clusteringProvider`), they and the clustered files below the minimum size
//!                (ours: provider `liquid`) are one bin, Z-ordered by the clustering columns
//!                (nested ones too); the new files say `clusteringProvider = liquid` ─► idempotent
//!  bins ─► rewritten concurrently (scan with DVs applied ─► one writer per bin, target size)
//! ```
//!
//! A Z-order bin holds its partition's rows in memory while sorting them; compaction and purge
//! stream. On row-tracking tables the rewritten rows keep their row ids and commit versions in
//! the materialised columns ([`crate::read::row_tracking`]).

use std::collections::BTreeMap;

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take, SortOptions};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult};
use crate::read::scan::{ScanBuilder, ScanFile};
use crate::read::skipping::FilePruner;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::{Action, AddFile};
use crate::table::expr::Expr;
use crate::write::enforce::ensure_writable;
use crate::write::files::DeltaWriter;
use crate::write::rewrite::DmlResult;
use crate::write::txn::{IsolationLevel, Transaction};

/// Files are rewritten into files of about this size unless `delta.targetFileSize` or
/// [`OptimizeBuilder::target_size`] says otherwise (delta-spark uses 1 GiB; output files are
/// encoded in memory, so this engine stays at its write default).
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Compaction also rewrites a file whose deletion vector covers more than this share of its rows
/// (delta-spark's `optimize.maxDeletedRowsRatio`).
pub const DEFAULT_MAX_DELETED_ROWS_RATIO: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Compact,
    ZOrder,
    Purge,
}

/// Builds an OPTIMIZE (or purge) of a table; see the module docs.
pub struct OptimizeBuilder<'a> {
    table: &'a Table,
    strategy: Strategy,
    filter: Option<Expr>,
    target_size: Option<u64>,
    min_file_size: Option<u64>,
    z_order: Vec<String>,
    max_deleted_rows_ratio: f64,
}

impl Table {
    /// `OPTIMIZE table [WHERE partition_predicate] [ZORDER BY (columns)]`.
    pub fn optimize(&self) -> OptimizeBuilder<'_> {
        OptimizeBuilder {
            table: self,
            strategy: Strategy::Compact,
            filter: None,
            target_size: None,
            min_file_size: None,
            z_order: Vec::new(),
            max_deleted_rows_ratio: DEFAULT_MAX_DELETED_ROWS_RATIO,
        }
    }

    /// `REORG TABLE table [WHERE partition_predicate] APPLY (PURGE)`: rewrites every file that
    /// carries a deletion vector so that deleted rows are physically gone.
    pub async fn purge_deletion_vectors(&self, partition_filter: Option<&str>) -> DeltaResult<DmlResult> {
        let mut b = self.optimize();
        b.strategy = Strategy::Purge;
        if let Some(f) = partition_filter {
            b = b.with_filter(f)?;
        }
        b.execute().await
    }
}

impl<'a> OptimizeBuilder<'a> {
    /// Only files whose partition values satisfy this predicate (partition columns only).
    pub fn with_filter(self, predicate: &str) -> DeltaResult<Self> {
        Ok(self.with_filter_expr(Expr::parse(predicate)?))
    }

    pub fn with_filter_expr(mut self, predicate: Expr) -> Self {
        self.filter = Some(predicate);
        self
    }

    /// The size of the files written (bytes).
    pub fn target_size(mut self, bytes: u64) -> Self {
        self.target_size = Some(bytes.max(1));
        self
    }

    /// Files at least this large are left alone by compaction (default: the target size).
    pub fn min_file_size(mut self, bytes: u64) -> Self {
        self.min_file_size = Some(bytes);
        self
    }

    /// Compaction rewrites files with more than this share of rows deleted, whatever their size.
    pub fn max_deleted_rows_ratio(mut self, ratio: f64) -> Self {
        self.max_deleted_rows_ratio = ratio;
        self
    }

    /// `ZORDER BY (columns)`: cluster rows by these (non-partition) columns.
    pub fn z_order<S: AsRef<str>>(mut self, columns: &[S]) -> Self {
        self.z_order = columns.iter().map(|c| c.as_ref().to_string()).collect();
        if !self.z_order.is_empty() && self.strategy == Strategy::Compact {
            self.strategy = Strategy::ZOrder;
        }
        self
    }

    /// Plans, rewrites and commits. Returns `version: None` when there was nothing to do.
    pub async fn execute(self) -> DeltaResult<DmlResult> {
        let started = std::time::Instant::now();
        let snapshot = self.table.snapshot().await?;
        ensure_writable(snapshot.protocol())?;
        let operation = if self.strategy == Strategy::Purge { "REORG" } else { "OPTIMIZE" };
        // Row tracking: rewritten rows keep their ids and commit versions (materialised).
        let tracking = crate::read::row_tracking::names_for_rewrite(&snapshot);
        let pruner = FilePruner::new(&snapshot)?;
        if let Some(f) = &self.filter {
            if !pruner.is_partition_only(f) {
                return Err(DeltaError::InvalidExpression {
                    text: f.to_string(),
                    reason: format!(
                        "{operation} may only filter on partition columns ({})",
                        if snapshot.partition_columns().is_empty() {
                            "the table has none".to_string()
                        } else {
                            snapshot.partition_columns().join(", ")
                        }
                    ),
                });
            }
        }
        // Z-order keys as column paths (clustering columns may be nested).
        let mut z_columns: Option<Vec<Vec<String>>> = self.z_order_columns(&snapshot)?.map(|c| c.into_iter().map(|n| vec![n]).collect());
        // Liquid clustering: a plain OPTIMIZE of a clustered table clusters what is unclustered.
        let clustering = match self.strategy {
            Strategy::Compact => snapshot.clustering_columns()?,
            Strategy::ZOrder if snapshot.protocol().has_feature(&crate::table::protocol::TableFeature::Clustering) => {
                return Err(DeltaError::FeatureRequirement {
                    feature: "clustering".into(),
                    reason: "a clustered table is optimized along its clustering columns; ZORDER BY is not allowed".into(),
                })
            }
            _ => Vec::new(),
        };
        let cluster = !clustering.is_empty();
        if cluster {
            z_columns = Some(clustering.clone());
        }
        let target = self
            .target_size
            .or_else(|| snapshot.metadata().property("delta.targetFileSize").and_then(|v| v.parse().ok()))
            .unwrap_or(DEFAULT_TARGET_FILE_SIZE)
            .max(1);
        let min_size = self.min_file_size.unwrap_or(target);

        // Plan: candidate files per partition, then bins.
        let mut partitions: BTreeMap<Vec<(String, Option<String>)>, Vec<AddFile>> = BTreeMap::new();
        let mut considered = 0u64;
        for add in snapshot.add_files()? {
            if let Some(f) = &self.filter {
                if !pruner.partition_predicate_holds(f, &add)? {
                    continue;
                }
            }
            considered += 1;
            let selected = match self.strategy {
                Strategy::Compact if cluster => match add.clustering_provider.as_deref() {
                    None => true,
                    // Small files clustered before join the new ones (only when there are new
                    // ones: see below), so that appends do not leave ever more small files.
                    Some(p) => p == crate::table::features::CLUSTERING_PROVIDER && (add.size as u64) < min_size,
                },
                Strategy::Compact => (add.size as u64) < min_size || deleted_ratio(&add) > self.max_deleted_rows_ratio,
                Strategy::ZOrder => true,
                Strategy::Purge => add.deletion_vector.is_some(),
            };
            if selected {
                let mut key: Vec<(String, Option<String>)> = add.partition_values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                key.sort();
                partitions.entry(key).or_default().push(add);
            }
        }
        let mut bins: Vec<Vec<AddFile>> = Vec::new();
        let partitions_optimized = partitions.len() as u64;
        for (_, files) in partitions {
            match self.strategy {
                Strategy::ZOrder => bins.push(files),
                Strategy::Compact if cluster => {
                    if files.iter().any(|f| f.clustering_provider.is_none()) {
                        bins.push(files);
                    }
                }
                Strategy::Compact | Strategy::Purge => {
                    for bin in pack(files, target) {
                        let keep = bin.len() > 1 || self.strategy == Strategy::Purge || bin[0].deletion_vector.is_some();
                        if keep {
                            bins.push(bin);
                        }
                    }
                }
            }
        }
        let rewritten: u64 = bins.iter().map(|b| b.len() as u64).sum();
        let mut metrics = BTreeMap::new();
        metrics.insert("totalConsideredFiles".to_string(), considered);
        metrics.insert("totalFilesSkipped".to_string(), considered - rewritten);
        metrics.insert("numBatches".to_string(), bins.len() as u64);
        metrics.insert("partitionsOptimized".to_string(), if bins.is_empty() { 0 } else { partitions_optimized });
        if bins.is_empty() {
            return Ok(DmlResult { version: None, metrics, post_commit_error: None });
        }

        // Rewrite the bins, as many at once as there are cores.
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8);
        // Owned inputs per task, so that the future stays `Send` for any caller (a borrowing
        // closure here is not general enough for the compiler to prove it).
        let pruner = std::sync::Arc::new(pruner);
        let added: Vec<Vec<AddFile>> = futures::stream::iter(bins.clone())
            .map(|bin| {
                let (snapshot, pruner, z) = (snapshot.clone(), pruner.clone(), z_columns.clone());
                let names = tracking.as_ref().map(|(names, _)| names.clone());
                async move { rewrite_bin(&snapshot, &pruner, &bin, z.as_deref(), target, names).await }
            })
            .buffer_unordered(cores)
            .try_collect()
            .await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut txn = Transaction::new(snapshot.clone()).with_isolation(IsolationLevel::SnapshotIsolation);
        if let Some((_, Some(declared))) = tracking {
            txn.add_action(Action::Metadata(declared));
        }
        let mut removed_sizes = Vec::new();
        let mut dvs_removed = 0u64;
        for add in bins.iter().flatten() {
            txn.read_file(&add.path);
            removed_sizes.push(add.size.max(0) as u64);
            dvs_removed += add.deletion_vector.is_some() as u64;
            txn.add_action(Action::Remove(add.to_remove(now, false)));
        }
        let mut added_sizes = Vec::new();
        for mut add in added.into_iter().flatten() {
            if cluster {
                add.clustering_provider = Some(crate::table::features::CLUSTERING_PROVIDER.to_string());
            }
            added_sizes.push(add.size.max(0) as u64);
            txn.add_action(Action::Add(add));
        }
        metrics.insert("numRemovedFiles".into(), removed_sizes.len() as u64);
        metrics.insert("numRemovedBytes".into(), removed_sizes.iter().sum());
        metrics.insert("numAddedFiles".into(), added_sizes.len() as u64);
        metrics.insert("numAddedBytes".into(), added_sizes.iter().sum());
        metrics.insert("numDeletionVectorsRemoved".into(), dvs_removed);
        added_sizes.sort_unstable();
        let at = |q: usize| added_sizes.get((added_sizes.len().saturating_sub(1)) * q / 100).copied().unwrap_or(0);
        metrics.insert("minFileSize".into(), at(0));
        metrics.insert("p25FileSize".into(), at(25));
        metrics.insert("p50FileSize".into(), at(50));
        metrics.insert("p75FileSize".into(), at(75));
        metrics.insert("maxFileSize".into(), at(100));
        metrics.insert("executionTimeMs".into(), started.elapsed().as_millis() as u64);
        let predicate: Vec<String> = self.filter.iter().map(|f| f.to_string()).collect();
        let parameters = if self.strategy == Strategy::Purge {
            json!({ "predicate": json!(predicate).to_string(), "applyPurge": "true" })
        } else if cluster {
            let names: Vec<String> = clustering.iter().map(|c| c.join(".")).collect();
            json!({ "predicate": json!(predicate).to_string(), "clusterBy": json!(names).to_string(), "auto": "false" })
        } else {
            json!({ "predicate": json!(predicate).to_string(), "zOrderBy": json!(self.z_order).to_string(), "auto": "false" })
        };
        let shown: serde_json::Map<String, Value> = metrics.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect();
        let txn = txn.with_operation(operation, parameters).with_metrics(Value::Object(shown));
        let version = txn.commit().await?.version()?;
        let post_commit_error = crate::write::checkpoint::post_commit(self.table, version).await.err().map(|e| e.to_string());
        Ok(DmlResult { version: Some(version), metrics, post_commit_error })
    }

    /// The logical names of the Z-order columns, checked: known, not partition columns, orderable.
    fn z_order_columns(&self, snapshot: &Snapshot) -> DeltaResult<Option<Vec<String>>> {
        if self.strategy != Strategy::ZOrder {
            return Ok(None);
        }
        if self.z_order.len() > 32 {
            return Err(DeltaError::InvalidExpression { text: self.z_order.join(", "), reason: "Z-order takes at most 32 columns".into() });
        }
        let schema = snapshot.schema();
        let mut out = Vec::with_capacity(self.z_order.len());
        for c in &self.z_order {
            let f = schema.field(c).ok_or_else(|| schema.column_not_found(c.clone()))?;
            if snapshot.partition_columns().iter().any(|p| p.eq_ignore_ascii_case(&f.name)) {
                return Err(DeltaError::InvalidExpression {
                    text: c.clone(),
                    reason: format!("`{}` is a partition column; Z-order by data columns only", f.name),
                });
            }
            if matches!(
                f.data_type,
                crate::table::schema::DataType::Struct(..)
                    | crate::table::schema::DataType::Array(..)
                    | crate::table::schema::DataType::Map(..)
            ) {
                return Err(DeltaError::InvalidExpression {
                    text: c.clone(),
                    reason: format!("cannot Z-order by `{}` of type {}", f.name, f.data_type),
                });
            }
            out.push(f.name.clone());
        }
        Ok(Some(out))
    }
}

/// The share of a file's rows that its deletion vector deletes (0 without one or without stats).
fn deleted_ratio(add: &AddFile) -> f64 {
    let Some(dv) = &add.deletion_vector else { return 0.0 };
    let records = add.num_records().unwrap_or(0);
    if records == 0 {
        return 1.0;
    }
    dv.cardinality.max(0) as f64 / records as f64
}

/// Greedy bin-packing in size order: a bin closes when the next file would take it past `target`.
fn pack(mut files: Vec<AddFile>, target: u64) -> Vec<Vec<AddFile>> {
    files.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.path.cmp(&b.path)));
    let mut bins = Vec::new();
    let mut current: Vec<AddFile> = Vec::new();
    let mut size = 0u64;
    for f in files {
        let s = f.size.max(0) as u64;
        if !current.is_empty() && size + s > target {
            bins.push(std::mem::take(&mut current));
            size = 0;
        }
        size += s;
        current.push(f);
    }
    if !current.is_empty() {
        bins.push(current);
    }
    bins
}

/// Reads one bin (deletion vectors applied) and writes its rows to new files of the target size.
async fn rewrite_bin(
    snapshot: &Snapshot,
    pruner: &FilePruner,
    bin: &[AddFile],
    z: Option<&[Vec<String>]>,
    target: u64,
    tracking: Option<(String, String)>,
) -> DeltaResult<Vec<AddFile>> {
    let files = bin.iter().map(|a| ScanFile::from_add(a, pruner)).collect();
    let mut builder = ScanBuilder::new(snapshot.clone()).with_files(files).with_concurrency(2);
    let mut writer =
        DeltaWriter::new(snapshot.location().clone(), snapshot.metadata(), snapshot.schema(), snapshot.column_mapping_mode(), target)?;
    if let Some(names) = &tracking {
        // The scan's row id and commit version columns (after the table's) go to the hidden
        // materialised columns, in the same positions.
        builder = builder.with_row_tracking();
        writer = writer.with_hidden_columns(crate::read::row_tracking::hidden_fields(names))?;
    }
    let scan = builder.build()?;
    let schema = scan.schema();
    let as_written = |batch: RecordBatch, writer: &DeltaWriter| -> DeltaResult<RecordBatch> {
        if tracking.is_none() {
            return Ok(batch);
        }
        Ok(RecordBatch::try_new(writer.arrow_schema(), batch.columns().to_vec())?)
    };
    let mut stream = scan.execute();
    match z {
        None => {
            while let Some(batch) = stream.try_next().await? {
                let batch = as_written(batch, &writer)?;
                writer.write(&batch).await?;
            }
        }
        Some(columns) => {
            let batches: Vec<RecordBatch> = stream.try_collect().await?;
            let all = concat_batches(&schema, &batches)?;
            drop(batches);
            // The key columns (leaves of nested paths too) as one batch to rank.
            let mut key_fields = Vec::with_capacity(columns.len());
            let mut key_arrays = Vec::with_capacity(columns.len());
            for (i, path) in columns.iter().enumerate() {
                let missing = || DeltaError::Internal(format!("Z-order column `{}` is not in the rows read", path.join(".")));
                let mut array = all.column_by_name(&path[0]).cloned().ok_or_else(missing)?;
                for part in &path[1..] {
                    array = array.as_struct_opt().and_then(|s| s.column_by_name(part)).cloned().ok_or_else(missing)?;
                }
                key_fields.push(arrow::datatypes::Field::new(format!("k{i}"), array.data_type().clone(), true));
                key_arrays.push(array);
            }
            let keys = RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(key_fields)), key_arrays)?;
            let idx: Vec<usize> = (0..columns.len()).collect();
            // Ranking and sorting are CPU work: off the async runtime's threads.
            let (all, order) = tokio::task::spawn_blocking(move || {
                let order = z_order(&keys, &idx);
                (all, order)
            })
            .await
            .map_err(|e| DeltaError::Internal(format!("Z-order task failed: {e}")))?;
            let order = order?;
            // Each output file is one contiguous stretch of the curve: rows per file estimated
            // from the input's bytes per row.
            let input_bytes: u64 = bin.iter().map(|a| a.size.max(0) as u64).sum();
            let per_row = (input_bytes / order.len().max(1) as u64).max(1);
            let rows_per_file = (target / per_row).max(1) as usize;
            const CHUNK: usize = 64 * 1024;
            let mut file_start = 0;
            while file_start < order.len() {
                let file_end = (file_start + rows_per_file).min(order.len());
                let mut start = file_start;
                while start < file_end {
                    let slice = order.slice(start, CHUNK.min(file_end - start));
                    let cols = all.columns().iter().map(|c| take(c, &slice, None)).collect::<Result<Vec<_>, _>>()?;
                    let batch = as_written(RecordBatch::try_new(all.schema(), cols)?, &writer)?;
                    writer.write(&batch).await?;
                    start += CHUNK;
                }
                writer.close_open_files().await?;
                file_start = file_end;
            }
        }
    }
    let (mut adds, _) = writer.finish().await?;
    for a in &mut adds {
        a.data_change = false;
    }
    Ok(adds)
}

/// The row order of `batch` along a Z-order curve over `columns`: each column's values become
/// equal-depth range ids (rank scaled to `bits` bits, equal values equal ids, NULLs first), and
/// rows sort by the ids' bits interleaved from the most significant down.
pub fn z_order(batch: &RecordBatch, columns: &[usize]) -> DeltaResult<UInt32Array> {
    let n = batch.num_rows();
    if n > u32::MAX as usize {
        return Err(DeltaError::LimitExceeded { what: "rows in one Z-order partition", limit: u32::MAX as u64, actual: n as u64 });
    }
    if columns.is_empty() || n == 0 {
        return Ok(UInt32Array::from_iter_values(0..n as u32));
    }
    let bits = (64 / columns.len()).min(21) as u32;
    let options = SortOptions { descending: false, nulls_first: true };
    let ids: Vec<Vec<u64>> = columns
        .iter()
        .map(|c| {
            let column = batch.column(*c);
            let ranks = arrow::compute::rank(column.as_ref(), Some(options)).map_err(|e| DeltaError::InvalidExpression {
                text: batch.schema().field(*c).name().clone(),
                reason: format!("cannot Z-order by a column of type {}: {e}", column.data_type()),
            })?;
            Ok(ranks
                .into_iter()
                .map(|r| ((r.saturating_sub(1) as u128) << bits) as u64 / n as u64)
                .map(|v| v.min((1 << bits) - 1))
                .collect())
        })
        .collect::<DeltaResult<_>>()?;
    let mut keys: Vec<(u64, u32)> = (0..n)
        .map(|row| {
            let mut z = 0u64;
            for bit in (0..bits).rev() {
                for col in &ids {
                    z = (z << 1) | ((col[row] >> bit) & 1);
                }
            }
            (z, row as u32)
        })
        .collect();
    keys.sort_unstable();
    Ok(UInt32Array::from_iter_values(keys.into_iter().map(|(_, r)| r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn z_order_keeps_neighbours_together() {
        // A 16×16 grid: the first quarter of the Z-order is the lower-left 8×8 quadrant.
        let xs: Vec<i64> = (0..256).map(|i| i % 16).collect();
        let ys: Vec<i64> = (0..256).map(|i| i / 16).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false), Field::new("y", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(xs)), Arc::new(Int64Array::from(ys))]).unwrap();
        let order = z_order(&batch, &[0, 1]).unwrap();
        assert_eq!(order.len(), 256);
        for i in 0..64 {
            let row = order.value(i) as usize;
            assert!(row % 16 < 8 && row / 16 < 8, "row {row} at {i}");
        }
        let mut seen: Vec<u32> = order.values().to_vec();
        seen.sort();
        assert_eq!(seen, (0..256).collect::<Vec<u32>>());
    }

    #[test]
    fn packing_closes_bins_at_the_target() {
        let f = |size: i64| AddFile::new(format!("f{size}"), Default::default(), size);
        let bins = pack(vec![f(5), f(1), f(3), f(4), f(2)], 6);
        let sizes: Vec<Vec<i64>> = bins.iter().map(|b| b.iter().map(|a| a.size).collect()).collect();
        assert_eq!(sizes, vec![vec![1, 2, 3], vec![4], vec![5]]);
    }
}
