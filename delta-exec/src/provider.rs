//! The Delta scan inside DataFusion: a [`TableProvider`] for one snapshot and [`DeltaScanExec`].
//!
//! ```text
//!  DataFusion filters ──► to_delta_predicate (the forms delta-core evaluates identically)
//!                              │
//!  projection, limit ──────────┤
//!                              ▼
//!  delta-core Scan at plan time: partition values + min/max/nullCount prune files
//!                              │ pruned ScanFiles, grouped by size into target_partitions
//!                              ▼
//!  DeltaScanExec partition i ─► delta-core scan of its files: row groups pruned by statistics,
//!      projected columns decoded, the file's deletion vector applied, column mapping / widening /
//!      partition values, residual predicate ─► record batches
//! ```
//!
//! A file is never split between partitions, so a deletion vector (row positions within the
//! file) always meets the whole file it belongs to, however many partitions the session asks
//! for. Filters delta-core evaluates exactly as DataFusion would ([`to_delta_predicate`]) are
//! pushed as `Exact`: delta-core prunes files and row groups with them and filters the rows it
//! reads (reading the filter's columns itself), so no second filter runs above the scan. Filters
//! delta-core cannot express are not pushed; DataFusion applies them above the scan.
//!
//! Strings and binaries come out as Arrow's view types (`Utf8View`, `BinaryView`), as
//! DataFusion's own parquet source gives them: decoded without copying values, and hashed,
//! compared and filtered faster by DataFusion's operators.
//!
//! Statistics come from the log ([`ScanStatistics`]): the row count (`numRecords` less
//! deletion-vector cardinalities), bytes, and per column min/max/null count, exact where Delta's
//! statistics are, so `count(*)` and an unfiltered `min`/`max` read no data file, and join
//! planning (build side, broadcast) sees real sizes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr as DfExpr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream};
use delta_core::expr::{ArithOp, CmpOp, Scalar};
use delta_core::scan::ScanMetrics;
use delta_core::skipping::FilePruner;
use delta_core::{DeltaError, Expr as DeltaExpr, ScanFile, Snapshot};
use futures::{StreamExt, TryStreamExt};

/// A delta-core error as DataFusion's (kept as the source, so callers can downcast it).
pub fn df_error(e: DeltaError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Files and bytes the session's Delta scans planned and have opened so far: what a progress
/// display shows. A session carries one (a DataFusion config extension); every scan planned under
/// it adds its files, every executing partition reports what it opened.
#[derive(Debug, Default)]
pub struct ScanProgress {
    files_planned: AtomicU64,
    bytes_planned: AtomicU64,
    running: Mutex<Vec<Arc<ScanMetrics>>>,
}

impl ScanProgress {
    /// `(files opened, files planned, bytes opened, bytes planned)`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let opened = running.iter().map(|m| m.files_opened.load(AtomicOrdering::Relaxed)).sum();
        let bytes = running.iter().map(|m| m.bytes_opened.load(AtomicOrdering::Relaxed)).sum();
        (opened, self.files_planned.load(AtomicOrdering::Relaxed), bytes, self.bytes_planned.load(AtomicOrdering::Relaxed))
    }

    /// Starts counting afresh (one statement's scans).
    pub fn reset(&self) {
        self.files_planned.store(0, AtomicOrdering::Relaxed);
        self.bytes_planned.store(0, AtomicOrdering::Relaxed);
        self.running.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn plan(&self, files: &[Vec<ScanFile>]) {
        let n: usize = files.iter().map(Vec::len).sum();
        let bytes: i64 = files.iter().flatten().map(|f| f.size.max(0)).sum();
        self.files_planned.fetch_add(n as u64, AtomicOrdering::Relaxed);
        self.bytes_planned.fetch_add(bytes as u64, AtomicOrdering::Relaxed);
    }

    fn track(&self, metrics: Arc<ScanMetrics>) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).push(metrics);
    }
}

/// A Delta table at one version, as DataFusion sees it.
#[derive(Debug, Clone)]
pub struct DeltaTableProvider {
    snapshot: Snapshot,
    schema: SchemaRef,
}

impl DeltaTableProvider {
    /// A provider over `snapshot` (its schema is the scan's: logical names, every field nullable).
    pub fn try_new(snapshot: Snapshot) -> Result<Self> {
        let schema = snapshot.scan().with_view_types(true).build().map_err(df_error)?.schema();
        Ok(DeltaTableProvider { snapshot, schema })
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

#[async_trait]
impl TableProvider for DeltaTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&DfExpr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters_pushdown(filters))
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[DfExpr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let predicate = filters.iter().filter_map(to_delta_predicate).reduce(|a, b| DeltaExpr::And(Box::new(a), Box::new(b)));
        let projected: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let output_schema = Arc::new(self.schema.project(&projected)?);
        // Columns to read: the projection, or one column when none is asked for (count(*)): rows
        // are counted from it and it is dropped.
        let read: Vec<String> = match projected.first() {
            Some(_) => projected.iter().map(|i| self.schema.field(*i).name().clone()).collect(),
            None => self.schema.fields().first().map(|f| vec![f.name().clone()]).unwrap_or_default(),
        };
        let mut builder = self.snapshot.scan().with_columns(&read).with_view_types(true);
        if let Some(p) = &predicate {
            builder = builder.with_predicate(p.clone());
        }
        let planned = builder.build().map_err(df_error)?;
        let files = planned.files().to_vec();
        let total_files = planned.total_files();
        let target = state.config().target_partitions();
        let table_columns = self.schema.fields().len().max(1);
        let fraction = projected.len() as f64 / table_columns as f64;
        // Statistics of the whole scan come from whole files (a split's rows are not known).
        let total_stats = ScanStatistics::merge(&ScanStatistics::of_files(&self.snapshot, &files, &output_schema, fraction)?, &output_schema)?;
        let min_split = state.config().options().optimizer.repartition_file_min_size;
        let partitions = group_by_size(split_large_files(files, target, min_split), target);
        let progress = state.config().get_extension::<ScanProgress>();
        if let Some(p) = &progress {
            p.plan(&partitions);
        }
        let mut stats = ScanStatistics::from_log(&self.snapshot, &partitions, &output_schema, fraction)?;
        stats.total = total_stats;
        let mut exec = DeltaScanExec::new(self.snapshot.clone(), read, output_schema, predicate, (partitions, total_files), limit, stats);
        exec.progress = progress;
        Ok(Arc::new(exec))
    }
}

/// Which filters a Delta scan takes: exactly those delta-core evaluates as DataFusion would.
pub(crate) fn filters_pushdown(filters: &[&DfExpr]) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| match to_delta_predicate(f) {
            Some(_) => TableProviderFilterPushDown::Exact,
            None => TableProviderFilterPushDown::Unsupported,
        })
        .collect()
}

/// With fewer files than partitions, large files are cut into byte ranges (row groups by where
/// they start) so that every partition has about as much to read; deletion vectors stay right
/// because delta-core numbers a split's rows from the file's first row.
/// Below `min_bytes` in all (DataFusion's `repartition_file_min_size`) nothing is split.
fn split_large_files(files: Vec<ScanFile>, partitions: usize, min_bytes: usize) -> Vec<ScanFile> {
    let total: i64 = files.iter().map(|f| f.size.max(0)).sum();
    if files.len() >= partitions || total < min_bytes as i64 {
        return files;
    }
    let share = (total / partitions.max(1) as i64).max(1);
    files
        .into_iter()
        .flat_map(|f| {
            let parts = ((f.size + share - 1) / share).clamp(1, partitions as i64) as usize;
            f.split(parts)
        })
        .collect()
}

/// A whole file, or the first of its splits (what counts it once).
fn is_first_piece(f: &ScanFile) -> bool {
    f.byte_range.is_none_or(|(lo, _)| lo == 0)
}

/// Splits files into at most `n` groups of about equal bytes (largest first into the lightest
/// group). Files stay whole.
fn group_by_size(mut files: Vec<ScanFile>, n: usize) -> Vec<Vec<ScanFile>> {
    let n = n.max(1).min(files.len().max(1));
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let mut groups: Vec<(i64, Vec<ScanFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for f in files {
        let Some(lightest) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) else { break };
        lightest.0 += f.size.max(1);
        lightest.1.push(f);
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// What the log says of a scan's rows and columns, per output partition, before any predicate
/// or limit: rows (`numRecords` less deletion-vector cardinalities, exact), bytes (file sizes in
/// the share of the columns read, an estimate as Spark's `sizeInBytes` is), and per column the
/// minimum, maximum and null count. Those are exact only where Delta's statistics are exact
/// values: no deletion vector on the file (its deleted rows still count in them), and integers,
/// dates, decimals and booleans, or partition values of any type; string statistics may be
/// truncated, timestamps are truncated to milliseconds and floats may hide NaNs, so those are
/// bounds.
#[derive(Debug, Clone)]
struct ScanStatistics {
    partitions: Vec<Statistics>,
    total: Statistics,
}

impl ScanStatistics {
    fn from_log(snapshot: &Snapshot, partitions: &[Vec<ScanFile>], schema: &SchemaRef, bytes_fraction: f64) -> Result<Self> {
        let mut per_partition = Vec::with_capacity(partitions.len());
        for files in partitions {
            per_partition.push(Self::merge(&Self::of_files(snapshot, files, schema, bytes_fraction)?, schema)?);
        }
        let total = Self::merge(&per_partition, schema)?;
        Ok(ScanStatistics { partitions: per_partition, total })
    }

    /// Each file's statistics (a split of a file: its share, as estimates).
    fn of_files(snapshot: &Snapshot, files: &[ScanFile], schema: &SchemaRef, bytes_fraction: f64) -> Result<Vec<Statistics>> {
        let pruner = FilePruner::new(snapshot).map_err(df_error)?;
        let columns: Vec<(String, DataType)> = schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let partition_columns = snapshot.partition_columns();
        files
            .iter()
            .map(|f| {
                let s = Self::of_file(&pruner, f, &columns, partition_columns, schema, bytes_fraction)?;
                Ok(match f.byte_range {
                    None => s,
                    Some((lo, hi)) => {
                        let share = (hi.min(f.size) - lo).max(0) as f64 / f.size.max(1) as f64;
                        let mut s = s.to_inexact();
                        s.num_rows = s.num_rows.map(|r| (r as f64 * share) as usize);
                        s.total_byte_size = s.total_byte_size.map(|b| (b as f64 * share) as usize);
                        s
                    }
                })
            })
            .collect()
    }

    fn merge(items: &[Statistics], schema: &SchemaRef) -> Result<Statistics> {
        match items.is_empty() {
            true => Ok(Self::empty(schema)),
            false => Statistics::try_merge_iter(items, schema),
        }
    }

    /// No rows at all (a table without files).
    fn empty(schema: &SchemaRef) -> Statistics {
        let mut s = Statistics::new_unknown(schema);
        s.num_rows = Precision::Exact(0);
        s.total_byte_size = Precision::Exact(0);
        s
    }

    fn of_file(
        pruner: &FilePruner,
        file: &ScanFile,
        columns: &[(String, DataType)],
        partition_columns: &[String],
        schema: &SchemaRef,
        bytes_fraction: f64,
    ) -> Result<Statistics> {
        let mut s = Statistics::new_unknown(schema);
        let deleted = file.deletion_vector.as_ref().map(|d| d.cardinality.max(0) as u64);
        // `tightBounds: false` (written with deletion vectors, or by a writer that widened the
        // bounds): the statistics are bounds, whatever the file's state now.
        let loose = deleted.is_some()
            || file
                .stats()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .is_some_and(|v| v.get("tightBounds").and_then(serde_json::Value::as_bool) == Some(false));
        if let Some(n) = file.num_records {
            s.num_rows = Precision::Exact(n.saturating_sub(deleted.unwrap_or(0)) as usize);
        }
        s.total_byte_size = Precision::Inexact((file.size.max(0) as f64 * bytes_fraction) as usize);
        let bounds = pruner.column_bounds(&file.partition_values, file.stats(), columns).map_err(df_error)?;
        for ((cs, b), (name, t)) in s.column_statistics.iter_mut().zip(bounds).zip(columns) {
            let is_partition = partition_columns.iter().any(|p| p.eq_ignore_ascii_case(name));
            let exact_type = is_partition
                || matches!(
                    t,
                    DataType::Int8
                        | DataType::Int16
                        | DataType::Int32
                        | DataType::Int64
                        | DataType::Date32
                        | DataType::Boolean
                        | DataType::Decimal128(_, _)
                );
            let exact = |v| if loose { Precision::Inexact(v) } else { Precision::Exact(v) };
            let bound = |a: Option<arrow::array::ArrayRef>| -> Precision<ScalarValue> {
                match a.and_then(|a| ScalarValue::try_from_array(&a, 0).ok()) {
                    Some(v) if exact_type => exact(v),
                    Some(v) => Precision::Inexact(v),
                    None => Precision::Absent,
                }
            };
            cs.min_value = bound(b.min);
            cs.max_value = bound(b.max);
            cs.null_count = match b.null_count {
                Some(n) if !loose => Precision::Exact(n as usize),
                Some(n) => Precision::Inexact(n as usize),
                None => Precision::Absent,
            };
            // A column of nulls only has no bounds, but its null count says all.
            if let (Precision::Exact(nulls), Precision::Exact(rows)) = (&cs.null_count, &s.num_rows) {
                if nulls == rows && cs.min_value == Precision::Absent {
                    let null = ScalarValue::try_from(t).unwrap_or(ScalarValue::Null);
                    cs.min_value = Precision::Exact(null.clone());
                    cs.max_value = Precision::Exact(null);
                }
            }
        }
        Ok(s)
    }
}

/// Scans groups of a snapshot's files, one group per output partition.
#[derive(Debug)]
pub struct DeltaScanExec {
    snapshot: Snapshot,
    /// Table columns read (logical names); the output is these, or no columns when the output
    /// schema is empty.
    read: Vec<String>,
    schema: SchemaRef,
    predicate: Option<DeltaExpr>,
    partitions: Vec<Vec<ScanFile>>,
    total_files: usize,
    limit: Option<usize>,
    stats: ScanStatistics,
    progress: Option<Arc<ScanProgress>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DeltaScanExec {
    fn new(
        snapshot: Snapshot,
        read: Vec<String>,
        schema: SchemaRef,
        predicate: Option<DeltaExpr>,
        (partitions, total_files): (Vec<Vec<ScanFile>>, usize),
        limit: Option<usize>,
        stats: ScanStatistics,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        DeltaScanExec {
            snapshot,
            read,
            schema,
            predicate,
            partitions,
            total_files,
            limit,
            stats,
            progress: None,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Files in the table's snapshot.
    pub fn files_total(&self) -> usize {
        self.total_files
    }

    /// Files left to read after partition and statistics pruning (a split file once).
    pub fn files_scanned(&self) -> usize {
        self.partitions.iter().flatten().filter(|f| is_first_piece(f)).count()
    }

    /// The files of each output partition.
    pub fn partition_files(&self) -> &[Vec<ScanFile>] {
        &self.partitions
    }
}

/// A [`DeltaScanExec`] as it travels to another process (a cluster's executors): the table's
/// root URL, version, protocol and metadata (not its log), the columns, the pushed predicate,
/// and each partition's files with everything reading them needs (deletion-vector descriptor,
/// partition values, row-tracking ids, byte range). Storage credentials never travel: the
/// receiving process opens the URL with its own options. Statistics do not travel either;
/// planning is over by then.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ScanWire {
    pub table: String,
    pub version: i64,
    pub protocol: delta_core::protocol::Protocol,
    pub metadata: delta_core::protocol::Metadata,
    pub read: Vec<String>,
    /// False when the scan outputs no columns (rows are only counted).
    pub columns: bool,
    pub predicate: Option<DeltaExpr>,
    pub partitions: Vec<Vec<ScanFile>>,
    pub total_files: usize,
    pub limit: Option<usize>,
}

impl ScanWire {
    /// A Delta file scan (after Ballista restricted it to a task's partitions) on the wire.
    pub(crate) fn of_file_scan(source: &crate::file_source::DeltaFileSource, config: &datafusion::datasource::physical_plan::FileScanConfig) -> Result<Self> {
        let partitions = crate::file_source::DeltaFileSource::partitions(config)?;
        Ok(ScanWire {
            table: source.snapshot.location().root_url().to_string(),
            version: source.snapshot.version(),
            protocol: source.snapshot.protocol().clone(),
            metadata: source.snapshot.metadata().clone(),
            read: source.read.clone(),
            columns: !source.schema().fields().is_empty(),
            predicate: source.predicate.clone(),
            total_files: partitions.iter().map(Vec::len).sum(),
            partitions,
            limit: config.limit,
        })
    }
}

impl DeltaScanExec {
    /// The file scan `wire` describes (statistics do not travel; planning is over).
    pub(crate) fn file_scan_from_wire(wire: ScanWire, location: delta_core::storage::TableLocation) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = DeltaScanExec::from_wire(wire, location)?;
        Ok(crate::file_source::DeltaFileSource::plan(scan.snapshot, scan.read, scan.schema, scan.predicate, &scan.partitions, scan.limit, None))
    }

    pub(crate) fn to_wire(&self) -> ScanWire {
        ScanWire {
            table: self.snapshot.location().root_url().to_string(),
            version: self.snapshot.version(),
            protocol: self.snapshot.protocol().clone(),
            metadata: self.snapshot.metadata().clone(),
            read: self.read.clone(),
            columns: !self.schema.fields().is_empty(),
            predicate: self.predicate.clone(),
            partitions: self.partitions.clone(),
            total_files: self.total_files,
            limit: self.limit,
        }
    }

    /// The same scan as DataFusion's file scan over [`crate::file_source::DeltaFileSource`] (one
    /// file group per partition, the log's statistics kept): the form a Ballista cluster can
    /// restrict to a task's partitions.
    pub fn to_file_scan(&self) -> Arc<dyn ExecutionPlan> {
        let adjust = |s: &Statistics| match (&self.predicate, self.limit) {
            (None, None) => s.clone(),
            (_, Some(l)) => {
                let mut s = s.clone().to_inexact();
                s.num_rows = s.num_rows.map(|r| r.min(l));
                s
            }
            (Some(_), None) => s.clone().to_inexact(),
        };
        let statistics = (adjust(&self.stats.total), self.stats.partitions.iter().map(adjust).collect());
        crate::file_source::DeltaFileSource::plan(
            self.snapshot.clone(),
            self.read.clone(),
            self.schema.clone(),
            self.predicate.clone(),
            &self.partitions,
            self.limit,
            Some(statistics),
        )
    }

    /// The scan `wire` describes, reading through `location` (opened by the receiving process).
    pub(crate) fn from_wire(wire: ScanWire, location: delta_core::storage::TableLocation) -> Result<Self> {
        let snapshot = Snapshot::definition(location, wire.version, wire.protocol, wire.metadata).map_err(df_error)?;
        let schema = match wire.columns {
            true => snapshot.scan().with_columns(&wire.read).with_view_types(true).build().map_err(df_error)?.schema(),
            false => Arc::new(arrow::datatypes::Schema::empty()),
        };
        let unknown = |_: &Vec<ScanFile>| Statistics::new_unknown(&schema);
        let stats = ScanStatistics { partitions: wire.partitions.iter().map(unknown).collect(), total: Statistics::new_unknown(&schema) };
        Ok(DeltaScanExec::new(snapshot, wire.read, schema.clone(), wire.predicate, (wire.partitions, wire.total_files), wire.limit, stats))
    }
}

impl DisplayAs for DeltaScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DeltaScanExec: version={}, files_total={}, files_scanned={}, columns=[{}]",
            self.snapshot.version(),
            self.total_files,
            self.files_scanned(),
            self.schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        )?;
        if let Some(p) = &self.predicate {
            write!(f, ", predicate={p}")?;
        }
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DeltaScanExec {
    fn name(&self) -> &'static str {
        "DeltaScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(self: Arc<Self>, _: Vec<Arc<dyn ExecutionPlan>>, _: ReplaceChildrenOptions) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.schema.clone();
        let Some(files) = self.partitions.get(partition).cloned() else {
            if partition == 0 && self.partitions.is_empty() {
                return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::empty())));
            }
            return Err(DataFusionError::Internal(format!("DeltaScanExec has no partition {partition}")));
        };
        if partition == 0 {
            MetricBuilder::new(&self.metrics).global_counter("files_total").add(self.total_files);
        }
        MetricBuilder::new(&self.metrics).counter("files_scanned", partition).add(files.iter().filter(|f| is_first_piece(f)).count());
        let output_rows: Count = MetricBuilder::new(&self.metrics).output_rows(partition);
        // Batches of the session's size, as DataFusion's operators expect (and budget memory for).
        let mut builder =
            self.snapshot.scan().with_files(files).with_columns(&self.read).with_view_types(true).with_batch_size(context.session_config().batch_size());
        if let Some(p) = &self.predicate {
            builder = builder.with_predicate(p.clone());
        }
        let scan = builder.build().map_err(df_error)?;
        // delta-core counts row groups and deletion-vector rows as it reads; they become this
        // partition's metrics (EXPLAIN ANALYZE) when its stream ends.
        let scan_metrics = scan.metrics();
        if let Some(p) = &self.progress {
            p.track(scan_metrics.clone());
        }
        let row_groups_total = MetricBuilder::new(&self.metrics).counter("row_groups_total", partition);
        let row_groups_pruned = MetricBuilder::new(&self.metrics).counter("row_groups_pruned", partition);
        let rows_deleted = MetricBuilder::new(&self.metrics).counter("rows_deleted_by_dv", partition);
        let publish = futures::stream::once(async move {
            let (_, read, total, _, deleted, _) = scan_metrics.snapshot();
            row_groups_total.add(total as usize);
            row_groups_pruned.add(total.saturating_sub(read) as usize);
            rows_deleted.add(deleted as usize);
            None
        })
        .filter_map(futures::future::ready);
        let keep_columns = !schema.fields().is_empty();
        let out_schema = schema.clone();
        let mut remaining = self.limit;
        let stream = scan
            .execute()
            .map_err(df_error)
            .and_then(move |batch| {
                let out_schema = out_schema.clone();
                async move {
                    if keep_columns {
                        Ok(RecordBatch::try_new(out_schema, batch.columns().to_vec())?)
                    } else {
                        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                        Ok(RecordBatch::try_new_with_options(out_schema, vec![], &options)?)
                    }
                }
            })
            .take_while(move |b| {
                // Stop reading once the limit is met (DataFusion's limit above trims the rest).
                let go = remaining != Some(0);
                if let (Ok(b), Some(r)) = (b, remaining.as_mut()) {
                    *r = r.saturating_sub(b.num_rows());
                }
                futures::future::ready(go)
            })
            .inspect_ok(move |b| output_rows.add(b.num_rows()))
            .chain(publish);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn statistics_from_inputs(&self, _input_stats: &[Arc<Statistics>], args: &StatisticsArgs) -> Result<Arc<Statistics>> {
        let log = match args.partition() {
            Some(p) => self.stats.partitions.get(p).cloned().unwrap_or_else(|| Statistics::new_unknown(&self.schema)),
            None => self.stats.total.clone(),
        };
        // The log decides alone only without a predicate (which filters rows inside files) and
        // without a limit (the scan stops at a batch boundary past it).
        Ok(Arc::new(match (&self.predicate, self.limit) {
            (None, None) => log,
            (_, Some(l)) => {
                let mut s = log.to_inexact();
                s.num_rows = s.num_rows.map(|r| r.min(l));
                s
            }
            (Some(_), None) => log.to_inexact(),
        }))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }
}

/// A DataFusion filter as a delta-core predicate, when it has a form delta-core evaluates the
/// same way: columns, literals, comparisons, arithmetic, AND/OR/NOT, IS [NOT] NULL, [NOT] IN
/// lists, BETWEEN and case-sensitive LIKE. Anything else is not pushed.
pub fn to_delta_predicate(e: &DfExpr) -> Option<DeltaExpr> {
    let b = |e: &DfExpr| to_delta_predicate(e).map(Box::new);
    Some(match e {
        DfExpr::Column(c) => DeltaExpr::Column(vec![c.name.clone()]),
        DfExpr::Literal(v, _) => DeltaExpr::Literal(to_scalar(v)?),
        DfExpr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (l, r) = (b(left)?, b(right)?);
            let cmp = |o| DeltaExpr::Cmp(o, l.clone(), r.clone());
            let arith = |o| DeltaExpr::Arith(o, l.clone(), r.clone());
            match op {
                Operator::Eq => cmp(CmpOp::Eq),
                Operator::NotEq => cmp(CmpOp::NotEq),
                Operator::Lt => cmp(CmpOp::Lt),
                Operator::LtEq => cmp(CmpOp::LtEq),
                Operator::Gt => cmp(CmpOp::Gt),
                Operator::GtEq => cmp(CmpOp::GtEq),
                Operator::IsNotDistinctFrom => cmp(CmpOp::NullSafeEq),
                Operator::And => DeltaExpr::And(l, r),
                Operator::Or => DeltaExpr::Or(l, r),
                Operator::Plus => arith(ArithOp::Add),
                Operator::Minus => arith(ArithOp::Sub),
                Operator::Multiply => arith(ArithOp::Mul),
                _ => return None,
            }
        }
        DfExpr::Not(inner) => DeltaExpr::Not(b(inner)?),
        DfExpr::IsNull(inner) => DeltaExpr::IsNull(b(inner)?),
        DfExpr::IsNotNull(inner) => DeltaExpr::IsNotNull(b(inner)?),
        DfExpr::Between(between) => {
            let x = b(&between.expr)?;
            let range = DeltaExpr::And(
                Box::new(DeltaExpr::Cmp(CmpOp::GtEq, x.clone(), b(&between.low)?)),
                Box::new(DeltaExpr::Cmp(CmpOp::LtEq, x, b(&between.high)?)),
            );
            if between.negated {
                DeltaExpr::Not(Box::new(range))
            } else {
                range
            }
        }
        DfExpr::InList(list) => DeltaExpr::In {
            expr: b(&list.expr)?,
            list: list.list.iter().map(to_delta_predicate).collect::<Option<Vec<_>>>()?,
            negated: list.negated,
        },
        // Patterns without a backslash only: engines disagree on whether it escapes by default.
        DfExpr::Like(like) if !like.case_insensitive && like.escape_char.is_none() => match like.pattern.as_ref() {
            DfExpr::Literal(ScalarValue::Utf8(Some(p)) | ScalarValue::LargeUtf8(Some(p)) | ScalarValue::Utf8View(Some(p)), _)
                if !p.contains('\\') =>
            {
                DeltaExpr::Like { expr: b(&like.expr)?, pattern: p.clone(), negated: like.negated }
            }
            _ => return None,
        },
        _ => return None,
    })
}

fn to_scalar(v: &ScalarValue) -> Option<Scalar> {
    if v.is_null() {
        return Some(Scalar::Null);
    }
    Some(match v {
        ScalarValue::Boolean(Some(x)) => Scalar::Boolean(*x),
        ScalarValue::Int8(Some(x)) => Scalar::Integer(i64::from(*x)),
        ScalarValue::Int16(Some(x)) => Scalar::Integer(i64::from(*x)),
        ScalarValue::Int32(Some(x)) => Scalar::Integer(i64::from(*x)),
        ScalarValue::Int64(Some(x)) => Scalar::Integer(*x),
        ScalarValue::UInt8(Some(x)) => Scalar::Integer(i64::from(*x)),
        ScalarValue::UInt16(Some(x)) => Scalar::Integer(i64::from(*x)),
        ScalarValue::UInt32(Some(x)) => Scalar::Integer(i64::from(*x)),
        ScalarValue::UInt64(Some(x)) => Scalar::Integer(i64::try_from(*x).ok()?),
        // Doubles only: a float literal's decimal text is not the float it stands for, and a
        // comparison on a float column must see the very same value DataFusion does.
        ScalarValue::Float64(Some(x)) if x.is_finite() => Scalar::Number(x.to_string()),
        ScalarValue::Decimal128(Some(_), _, _) => Scalar::Number(v.to_string()),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Scalar::String(s.clone()),
        ScalarValue::Date32(Some(_)) => Scalar::Date(v.to_string()),
        _ => return None,
    })
}
