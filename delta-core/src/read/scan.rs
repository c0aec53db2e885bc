//! Scans: from a snapshot and an optional predicate to a stream of Arrow record batches.
//!
//! ```text
//!  Snapshot files ─► partition values + stats ─► can_match? ─► ScanFile list (pruned)
//!                                                                  │ (io_concurrency tasks)
//!                                                                  ▼
//!   parquet footer ─► row-group stats ─► can_match? ─► read projected columns
//!        ─► adapt (column mapping, widening, INT96, missing columns) ─► add partition columns
//!        ─► drop DV-deleted rows ─► residual predicate ─► project ─► bounded channel ─► stream
//! ```
//!
//! Output columns use the table's logical names and the Arrow types of
//! [`crate::table::schema::StructType::to_arrow`]; every output field is nullable (older files may lack
//! columns added later).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, GenericListArray, MapArray, RecordBatch, StructArray, UInt32Array,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType as ArrowType, Field, FieldRef, Fields, Int64Type, Schema, SchemaRef, TimeUnit};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::Type as PhysicalType;
use roaring::RoaringTreemap;
use serde_json::Value;

use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::log::replay::map_cell;
use crate::log::storage::{ResolvedPath, TableLocation};
use crate::read::skipping::{can_match, RowGroupStats};
use crate::read::snapshot::Snapshot;
use crate::table::expr::{evaluate_predicate, Expr};
use crate::table::protocol::{add_col, DeletionVectorDescriptor};
use crate::table::schema::{ColumnMappingMode, DataType, StructField, PARQUET_FIELD_ID_KEY};

pub use crate::log::file_reader::StoreFileReader;
pub use crate::read::dv::dv_at;
pub use crate::read::row_tracking::{ROW_COMMIT_VERSION_COLUMN, ROW_ID_COLUMN};
pub use crate::read::skipping::{parse_partition_value, FilePruner};

/// A file a scan will read. Serializable (serde) so that a scan planned in one process can be
/// run in another (a cluster's executors): everything reading the file needs travels with it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScanFile {
    /// The path as the log names it.
    pub path: String,
    pub size: i64,
    /// Partition values by logical column name.
    pub partition_values: HashMap<String, Option<String>>,
    /// Number of records, from stats.
    pub num_records: Option<u64>,
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    /// Row tracking: the row id of the file's first row (`add.baseRowId`).
    pub base_row_id: Option<i64>,
    /// Row tracking: the commit version of rows without a materialised one.
    pub default_row_commit_version: Option<i64>,
    /// Only the row groups that start in this byte range `[start, end)` of the file (an engine's
    /// split of a large file); the whole file when `None`. Deletion vectors and row indexes stay
    /// right: rows are still numbered from the file's first row.
    pub byte_range: Option<(i64, i64)>,
    stats_json: Option<String>,
}

impl ScanFile {
    /// A file named by an `add` (or a `remove`/`cdc` turned into one), with partition values
    /// keyed as the log keys them; `pruner` maps them to logical names.
    pub fn from_add(add: &crate::table::actions::AddFile, pruner: &FilePruner) -> Self {
        let num_records = add.num_records();
        ScanFile {
            path: add.path.clone(),
            size: add.size,
            partition_values: pruner.logical_partition_values(&add.partition_values),
            num_records,
            deletion_vector: add.deletion_vector.clone(),
            base_row_id: add.base_row_id,
            default_row_commit_version: add.default_row_commit_version,
            byte_range: None,
            stats_json: add.stats.clone(),
        }
    }

    /// The file cut into `parts` byte ranges of about equal size, each reading the row groups
    /// that start in it (a file of one row group is read by the range its start falls in).
    pub fn split(&self, parts: usize) -> Vec<ScanFile> {
        let parts = parts.max(1) as i64;
        if parts == 1 || self.size <= 0 {
            return vec![self.clone()];
        }
        let chunk = (self.size + parts - 1) / parts;
        (0..parts)
            .map(|i| {
                let end = if i == parts - 1 { i64::MAX } else { (i + 1) * chunk };
                ScanFile { byte_range: Some((i * chunk, end)), ..self.clone() }
            })
            .collect()
    }

    /// The stats JSON string, if the log had one.
    pub fn stats(&self) -> Option<&str> {
        self.stats_json.as_deref()
    }
}

/// Builds a [`Scan`].
pub struct ScanBuilder {
    snapshot: Snapshot,
    columns: Option<Vec<String>>,
    predicate: Option<Expr>,
    batch_size: usize,
    only_files: Option<std::collections::HashSet<String>>,
    files: Option<Vec<ScanFile>>,
    extra_fields: Vec<StructField>,
    row_index: bool,
    row_tracking: bool,
    concurrency: Option<usize>,
    view_types: bool,
}

/// The column [`ScanBuilder::with_row_index`] appends: each row's index in its data file (as
/// deletion vectors count rows), `UInt64`.
pub const ROW_INDEX_COLUMN: &str = "__delta_row_index";

/// The column [`ScanBuilder::with_row_index`] appends after [`ROW_INDEX_COLUMN`]: the row's file,
/// as its position in [`Scan::files`], `UInt32`.
pub const FILE_INDEX_COLUMN: &str = "__delta_file_index";

impl ScanBuilder {
    pub fn new(snapshot: Snapshot) -> Self {
        ScanBuilder {
            snapshot,
            columns: None,
            predicate: None,
            batch_size: 65536,
            only_files: None,
            files: None,
            extra_fields: Vec::new(),
            row_index: false,
            row_tracking: false,
            concurrency: None,
            view_types: false,
        }
    }

    /// Appends [`ROW_INDEX_COLUMN`], the row's index in its data file (what DML records in
    /// deletion vectors), and [`FILE_INDEX_COLUMN`], which file of [`Scan::files`] it is from.
    pub fn with_row_index(mut self) -> Self {
        self.row_index = true;
        self
    }

    /// Appends [`ROW_ID_COLUMN`] and [`ROW_COMMIT_VERSION_COLUMN`] (before the row index
    /// columns): a row's materialised row id, else its file's `baseRowId` plus its index in the
    /// file; its materialised commit version, else the file's `defaultRowCommitVersion`. The
    /// table must support row tracking.
    pub fn with_row_tracking(mut self) -> Self {
        self.row_tracking = true;
        self
    }

    /// Reads exactly these files instead of the snapshot's (files that are no longer in the
    /// snapshot, such as removed files or change data files, read with its schema). The predicate
    /// still filters rows and row groups, but does not prune these files.
    pub fn with_files(mut self, files: Vec<ScanFile>) -> Self {
        self.files = Some(files);
        self
    }

    /// Files read at once (default: the table's `io_concurrency`). Each file in flight holds a
    /// row group, so fewer bound memory tighter.
    pub fn with_concurrency(mut self, files: usize) -> Self {
        self.concurrency = Some(files.max(1));
        self
    }

    /// Reads and outputs extra columns that are in the files but not in the table schema (the
    /// `_change_type` column of change data files), after the table's columns.
    pub fn with_extra_fields(mut self, fields: Vec<StructField>) -> Self {
        self.extra_fields = fields;
        self
    }

    /// Output only these columns (logical names), in this order.
    pub fn with_columns<S: AsRef<str>>(mut self, columns: &[S]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.as_ref().to_string()).collect());
        self
    }

    /// Keep only rows matching `predicate`; files and row groups that cannot match are skipped.
    pub fn with_predicate(mut self, predicate: Expr) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// Parses Spark SQL expression text as the predicate.
    pub fn with_filter(self, text: &str) -> DeltaResult<Self> {
        Ok(self.with_predicate(Expr::parse(text)?))
    }

    /// Restricts the scan to these files (their `add.path`), for rewrites of single files.
    pub fn only_files(mut self, paths: &[String]) -> Self {
        self.only_files = Some(paths.iter().cloned().collect());
        self
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Top-level string and binary columns as Arrow's view types (`Utf8View`, `BinaryView`):
    /// decoded straight from parquet pages without copying values into one buffer, which query
    /// engines (DataFusion) hash, compare and filter faster. Nested ones keep their types.
    pub fn with_view_types(mut self, view_types: bool) -> Self {
        self.view_types = view_types;
        self
    }

    /// Resolves columns, validates the predicate and prunes files.
    pub fn build(self) -> DeltaResult<Scan> {
        let snapshot = self.snapshot;
        if snapshot.metadata().schema_string.is_empty() {
            return Err(DeltaError::schema(format!("the metaData action at version {} has no schemaString", snapshot.version())));
        }
        let schema = snapshot.schema().clone();
        let table_arrow = snapshot.arrow_schema();
        let available = || table_arrow.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ");
        let output_names: Vec<String> = match &self.columns {
            Some(cols) => cols
                .iter()
                .map(|c| {
                    schema
                        .field(c)
                        .map(|f| f.name.clone())
                        .ok_or_else(|| DeltaError::ColumnNotFound { column: c.clone(), available: available() })
                })
                .collect::<DeltaResult<_>>()?,
            None => schema.fields.iter().map(|f| f.name.clone()).collect(),
        };
        let mut read_names = output_names.clone();
        if let Some(p) = &self.predicate {
            for col in p.columns() {
                let top =
                    schema.field(&col[0]).ok_or_else(|| DeltaError::ColumnNotFound { column: col.join("."), available: available() })?;
                if !read_names.contains(&top.name) {
                    read_names.push(top.name.clone());
                }
            }
        }
        let nullable = |f: &StructField| -> DeltaResult<Field> { Ok(crate::table::schema::all_nullable(&f.to_arrow(false)?)) };
        let mut output_fields: Vec<Field> =
            output_names.iter().filter_map(|n| schema.field(n)).chain(&self.extra_fields).map(nullable).collect::<DeltaResult<_>>()?;
        let mut read_fields: Vec<StructField> = read_names.iter().filter_map(|n| schema.field(n)).cloned().collect();
        read_fields.extend(self.extra_fields.iter().cloned());
        let row_tracking = if self.row_tracking {
            if !snapshot.protocol().has_feature(&crate::table::protocol::TableFeature::RowTracking) {
                return Err(DeltaError::RowTrackingNotSupported);
            }
            // The materialised columns are read (when files have them) under their own names.
            let names = crate::read::row_tracking::materialized_names(snapshot.metadata());
            for n in [&names.0, &names.1].into_iter().flatten() {
                read_fields.push(StructField::new(
                    n.clone(),
                    crate::table::schema::DataType::Primitive(crate::table::schema::PrimitiveType::Long),
                    true,
                ));
            }
            Some(names)
        } else {
            None
        };
        let mut read_arrow: Vec<Field> = read_fields.iter().map(nullable).collect::<DeltaResult<_>>()?;
        if row_tracking.is_some() {
            for f in [Field::new(ROW_ID_COLUMN, ArrowType::Int64, true), Field::new(ROW_COMMIT_VERSION_COLUMN, ArrowType::Int64, true)] {
                output_fields.push(f.clone());
                read_arrow.push(f);
            }
        }
        if self.row_index {
            for f in [Field::new(ROW_INDEX_COLUMN, ArrowType::UInt64, false), Field::new(FILE_INDEX_COLUMN, ArrowType::UInt32, false)] {
                output_fields.push(f.clone());
                read_arrow.push(f);
            }
        }
        // Statistics and predicates see the table's own types; only the batches use views.
        let stats_schema = Arc::new(Schema::new(read_arrow.clone()));
        if self.view_types {
            for f in output_fields.iter_mut().chain(read_arrow.iter_mut()) {
                *f = f.clone().with_data_type(view_type(f.data_type()));
            }
        }
        let output_schema = Arc::new(Schema::new(output_fields));
        let read_schema = Arc::new(Schema::new(read_arrow));
        let mode = snapshot.column_mapping_mode();
        let pruner = FilePruner::new(&snapshot)?;
        let partition_physical = pruner.partitions.clone();

        let mut files = Vec::with_capacity(snapshot.num_files());
        let mut total_files = 0usize;
        let listed: &[StructArray] = if self.files.is_some() { &[] } else { snapshot.file_columns() };
        if let Some(explicit) = self.files {
            total_files = explicit.len();
            files = explicit;
        }
        for column in listed {
            let paths = column.column(add_col::PATH).as_string::<i32>();
            let sizes = column.column(add_col::SIZE).as_primitive::<Int64Type>();
            let stats_col = column.column(add_col::STATS).as_string::<i32>();
            let pv_col = column.column(add_col::PARTITION_VALUES).as_map();
            let dv_col = column.column(add_col::DELETION_VECTOR).as_struct();
            for row in 0..column.len() {
                total_files += 1;
                if self.only_files.as_ref().is_some_and(|only| !only.contains(paths.value(row))) {
                    continue;
                }
                let raw_pv = map_cell(pv_col, row).unwrap_or_default();
                let partition_values = pruner.logical_partition_values(&raw_pv);
                let stats_json = stats_col.is_valid(row).then(|| stats_col.value(row).to_string());
                let num_records = match &self.predicate {
                    Some(p) => {
                        let parsed_stats: Option<Value> = stats_json.as_deref().and_then(|s| serde_json::from_str(s).ok());
                        let n = parsed_stats.as_ref().and_then(|s| s.get("numRecords")).and_then(Value::as_u64);
                        if !pruner.may_match(p, &partition_values, parsed_stats)? {
                            continue;
                        }
                        n
                    }
                    // Without a predicate only the row count is wanted: read past the rest.
                    None => stats_json.as_deref().and_then(crate::table::actions::num_records_of),
                };
                let deletion_vector = dv_at(dv_col, row);
                let i64_at = |name: &str| {
                    column
                        .column_by_name(name)
                        .and_then(|c| c.as_primitive_opt::<Int64Type>().filter(|a| a.is_valid(row)).map(|a| a.value(row)))
                };
                files.push(ScanFile {
                    base_row_id: i64_at("baseRowId"),
                    default_row_commit_version: i64_at("defaultRowCommitVersion"),
                    path: paths.value(row).to_string(),
                    size: sizes.value(row),
                    partition_values,
                    num_records,
                    deletion_vector,
                    byte_range: None,
                    stats_json,
                });
            }
        }
        Ok(Scan {
            inner: Arc::new(ScanInner {
                location: snapshot.location().clone(),
                mode,
                output_schema,
                read_schema,
                stats_schema,
                view_types: self.view_types,
                read_fields,
                partition_physical,
                predicate: self.predicate,
                batch_size: self.batch_size,
                row_index: self.row_index,
                row_tracking,
                concurrency: self.concurrency.unwrap_or_else(|| snapshot.location().options().io_concurrency).max(1),
                metrics: Arc::new(ScanMetrics::default()),
            }),
            files,
            total_files,
        })
    }
}

struct ScanInner {
    location: TableLocation,
    mode: ColumnMappingMode,
    output_schema: SchemaRef,
    read_schema: SchemaRef,
    /// The read schema with the table's types (no view types), for statistics.
    stats_schema: SchemaRef,
    view_types: bool,
    read_fields: Vec<StructField>,
    partition_physical: Vec<(String, String, ArrowType)>,
    predicate: Option<Expr>,
    batch_size: usize,
    row_index: bool,
    /// Row tracking output, with the materialised row id and commit version column names.
    row_tracking: Option<(Option<String>, Option<String>)>,
    concurrency: usize,
    metrics: Arc<ScanMetrics>,
}

/// A planned scan: the files left after pruning, and how to read them.
pub struct Scan {
    inner: Arc<ScanInner>,
    files: Vec<ScanFile>,
    total_files: usize,
}

/// Counters of what a scan read, filled while it executes (shared with the executing tasks).
#[derive(Debug, Default)]
pub struct ScanMetrics {
    pub files_opened: AtomicU64,
    /// Sizes (bytes, as the log records them) of the files opened.
    pub bytes_opened: AtomicU64,
    pub row_groups_total: AtomicU64,
    pub row_groups_read: AtomicU64,
    pub rows_read: AtomicU64,
    pub rows_deleted_by_dv: AtomicU64,
    pub rows_output: AtomicU64,
}

impl ScanMetrics {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `(files opened, row groups read, row groups in those files, rows read, rows deleted by DVs, rows output)`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64, u64) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            g(&self.files_opened),
            g(&self.row_groups_read),
            g(&self.row_groups_total),
            g(&self.rows_read),
            g(&self.rows_deleted_by_dv),
            g(&self.rows_output),
        )
    }
}

impl Scan {
    /// Files that will be read (after partition pruning and data skipping).
    pub fn files(&self) -> &[ScanFile] {
        &self.files
    }

    /// Files in the snapshot before pruning.
    pub fn total_files(&self) -> usize {
        self.total_files
    }

    /// Counters filled while the scan executes; keep the `Arc` to read them afterwards.
    pub fn metrics(&self) -> Arc<ScanMetrics> {
        self.inner.metrics.clone()
    }

    /// The schema of the output batches.
    pub fn schema(&self) -> SchemaRef {
        self.inner.output_schema.clone()
    }

    /// Reads the files with up to `io_concurrency` in flight and yields their batches in file
    /// order: each file reads ahead into its own small bounded channel, and the stream drains
    /// them one file after another. Memory stays proportional to the concurrency, not the
    /// table, and the same snapshot gives the same rows in the same order on every run (what a
    /// reproducible model fit or a stable `LIMIT` needs).
    ///
    /// Must be called inside a Tokio runtime (the reads run as tasks on it); outside one, the
    /// stream yields a single error.
    pub fn execute(self) -> BoxStream<'static, DeltaResult<RecordBatch>> {
        type FileRx = tokio::sync::mpsc::Receiver<DeltaResult<RecordBatch>>;
        if tokio::runtime::Handle::try_current().is_err() {
            let err = DeltaError::Internal("Scan::execute needs a Tokio runtime (call it from async code)".into());
            return futures::stream::once(async move { Err(err) }).boxed();
        }
        let concurrency = self.inner.concurrency.max(1);
        // The files' channels, in file order.
        let (order_tx, order_rx) = tokio::sync::mpsc::channel::<FileRx>(concurrency);
        let inner = self.inner.clone();
        let files = self.files;
        tokio::spawn(async move {
            let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
            for (index, file) in files.into_iter().enumerate() {
                let Ok(permit) = semaphore.clone().acquire_owned().await else { break };
                let (tx, rx) = tokio::sync::mpsc::channel::<DeltaResult<RecordBatch>>(2);
                if order_tx.send(rx).await.is_err() {
                    break; // the stream was dropped
                }
                let inner = inner.clone();
                let reader_tx = tx.clone();
                let reader = tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = read_file(&inner, index as u32, &file, &reader_tx).await {
                        let _ = reader_tx.send(Err(e)).await;
                    }
                });
                // A read task that panicked (a bug, here or in a decoder) must not look like a
                // file with no rows: its channel stays open until the error is sent.
                tokio::spawn(async move {
                    if let Err(e) = reader.await {
                        let _ = tx.send(Err(DeltaError::Internal(format!("file read task failed: {e}")))).await;
                    }
                });
            }
        });
        futures::stream::unfold((order_rx, None::<FileRx>), |(mut order, mut current)| async move {
            loop {
                if let Some(rx) = current.as_mut() {
                    if let Some(item) = rx.recv().await {
                        return Some((item, (order, current)));
                    }
                }
                current = Some(order.recv().await?);
            }
        })
        .boxed()
    }

    /// Counts the rows the scan would return. Without a predicate and deletion vectors, and with
    /// `numRecords` in every file's statistics, the answer comes from the log alone.
    pub async fn count(self) -> DeltaResult<u64> {
        if self.inner.predicate.is_none() && self.files.iter().all(|f| f.deletion_vector.is_none() && f.num_records.is_some()) {
            return Ok(self.files.iter().filter_map(|f| f.num_records).sum());
        }
        let mut stream = self.execute();
        let mut n = 0u64;
        while let Some(b) = stream.try_next().await? {
            n += b.num_rows() as u64;
        }
        Ok(n)
    }

    /// Reads everything into memory.
    pub async fn collect(self) -> DeltaResult<Vec<RecordBatch>> {
        self.execute().try_collect().await
    }
}

/// Finds the file column for a table field: by field id in id mode, else by physical name.
fn find_file_field(fields: &Fields, field: &StructField, mode: ColumnMappingMode) -> Option<usize> {
    if mode == ColumnMappingMode::Id {
        if let Some(id) = field.field_id() {
            if let Some(i) =
                fields.iter().position(|f| f.metadata().get(PARQUET_FIELD_ID_KEY).and_then(|v| v.parse::<i64>().ok()) == Some(id))
            {
                return Some(i);
            }
        }
    }
    let name = field.physical_name(mode);
    fields.iter().position(|f| f.name() == name).or_else(|| {
        // Spark resolves names case-insensitively.
        fields.iter().position(|f| f.name().eq_ignore_ascii_case(name))
    })
}

/// Converts a column read from a file to the table's type for `field`.
fn adapt(array: &ArrayRef, data_type: &DataType, mode: ColumnMappingMode, path: &str) -> DeltaResult<ArrayRef> {
    let mismatch = |reason: String| DeltaError::SchemaMismatch { path: path.to_string(), reason };
    let target = data_type.to_arrow(false)?;
    Ok(match (data_type, array.data_type()) {
        (DataType::Void, _) => new_null_array(&ArrowType::Null, array.len()),
        (DataType::Variant, ArrowType::Struct(fields)) => {
            let s = array.as_struct();
            if let Some(i) = fields.iter().position(|f| f.name() == "typed_value") {
                if s.column(i).null_count() < s.len() {
                    return Err(DeltaError::UnsupportedType { data_type: "shredded variant (typed_value present)".into() });
                }
            }
            let pick = |name: &str| -> DeltaResult<ArrayRef> {
                let c = s.column_by_name(name).ok_or_else(|| mismatch(format!("variant column lacks `{name}`")))?;
                Ok(arrow::compute::cast(c, &ArrowType::Binary)?)
            };
            let ArrowType::Struct(target_fields) = target else { return Err(DeltaError::Internal("variant type".into())) };
            Arc::new(StructArray::try_new(target_fields, vec![pick("metadata")?, pick("value")?], s.nulls().cloned())?)
        }
        (DataType::Struct(st), ArrowType::Struct(file_fields)) => {
            let s = array.as_struct();
            let mut columns = Vec::with_capacity(st.fields.len());
            let mut out_fields = Vec::with_capacity(st.fields.len());
            for f in &st.fields {
                let col = match find_file_field(file_fields, f, mode) {
                    Some(i) => adapt(s.column(i), &f.data_type, mode, path)?,
                    None => new_null_array(&f.data_type.to_arrow(false)?, s.len()),
                };
                out_fields.push(Arc::new(Field::new(&f.name, col.data_type().clone(), true)));
                columns.push(col);
            }
            Arc::new(StructArray::try_new(Fields::from(out_fields), columns, s.nulls().cloned())?)
        }
        (DataType::Array(elem, _), ArrowType::List(_) | ArrowType::LargeList(_)) => {
            let list = if let ArrowType::LargeList(f) = array.data_type() {
                let t = ArrowType::List(Arc::new(Field::new("element", f.data_type().clone(), true)));
                arrow::compute::cast(array, &t)?.as_list::<i32>().clone()
            } else {
                array.as_list::<i32>().clone()
            };
            let values = adapt(list.values(), elem, mode, path)?;
            let field = Arc::new(Field::new("element", values.data_type().clone(), true));
            Arc::new(GenericListArray::<i32>::try_new(field, list.offsets().clone(), values, list.nulls().cloned())?)
        }
        (DataType::Map(k, v, _), ArrowType::Map(_, _)) => {
            let m = array.as_map();
            let keys = adapt(m.keys(), k, mode, path)?;
            let values = adapt(m.values(), v, mode, path)?;
            let entry_fields = Fields::from(vec![
                Field::new("key", keys.data_type().clone(), false),
                Field::new("value", values.data_type().clone(), true),
            ]);
            let entries = StructArray::try_new(entry_fields.clone(), vec![keys, values], None)?;
            let field: FieldRef = Arc::new(Field::new("key_value", ArrowType::Struct(entry_fields), false));
            Arc::new(MapArray::try_new(field, m.offsets().clone(), entries, m.nulls().cloned(), false)?)
        }
        (DataType::Primitive(_), _) => {
            if array.data_type() == &target {
                array.clone()
            } else {
                arrow::compute::cast(array, &target)
                    .map_err(|e| mismatch(format!("cannot read {} as {}: {e}", array.data_type(), target)))?
            }
        }
        (expected, found) => return Err(mismatch(format!("expected {expected}, found {found}"))),
    })
}

/// The view type of a top-level string or binary type; other types as they are.
fn view_type(t: &ArrowType) -> ArrowType {
    match t {
        ArrowType::Utf8 | ArrowType::LargeUtf8 => ArrowType::Utf8View,
        ArrowType::Binary | ArrowType::LargeBinary => ArrowType::BinaryView,
        other => other.clone(),
    }
}

/// Replaces `Timestamp(ns, None)` (how INT96 is read by default) with microseconds, so that
/// timestamps beyond year 2262 survive.
fn int96_hint(t: &ArrowType) -> ArrowType {
    match t {
        ArrowType::Timestamp(TimeUnit::Nanosecond, None) => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        ArrowType::Struct(fields) => {
            ArrowType::Struct(fields.iter().map(|f| Arc::new(f.as_ref().clone().with_data_type(int96_hint(f.data_type())))).collect())
        }
        ArrowType::List(f) => ArrowType::List(Arc::new(f.as_ref().clone().with_data_type(int96_hint(f.data_type())))),
        ArrowType::LargeList(f) => ArrowType::LargeList(Arc::new(f.as_ref().clone().with_data_type(int96_hint(f.data_type())))),
        ArrowType::Map(f, s) => ArrowType::Map(Arc::new(f.as_ref().clone().with_data_type(int96_hint(f.data_type()))), *s),
        other => other.clone(),
    }
}

async fn load_dv(inner: &ScanInner, file: &ScanFile) -> DeltaResult<Option<RoaringTreemap>> {
    match &file.deletion_vector {
        Some(dv) => Ok(Some(dv.load(&inner.location, file.num_records).await?)),
        None => Ok(None),
    }
}

async fn read_file(
    inner: &ScanInner,
    file_index: u32,
    file: &ScanFile,
    tx: &tokio::sync::mpsc::Sender<DeltaResult<RecordBatch>>,
) -> DeltaResult<()> {
    let resolved: ResolvedPath = inner.location.resolve(PathKind::Data, &file.path)?;
    let display = resolved.url.to_string();
    let deleted = load_dv(inner, file).await?;
    let mut reader =
        StoreFileReader::new(inner.location.store().clone(), resolved.store_path.clone(), (file.size > 0).then_some(file.size as u64));
    let metadata = match ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new().with_skip_arrow_metadata(true)).await {
        Ok(m) => m,
        Err(parquet::errors::ParquetError::External(e))
            if e.downcast_ref::<object_store::Error>().is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })) =>
        {
            return Err(DeltaError::DataFileNotFound { path: display });
        }
        Err(e) => return Err(DeltaError::parquet(&display, e)),
    };
    let has_int96 = metadata.metadata().file_metadata().schema_descr().columns().iter().any(|c| c.physical_type() == PhysicalType::INT96);
    let metadata = if has_int96 {
        let hinted = Schema::new(
            metadata.schema().fields().iter().map(|f| f.as_ref().clone().with_data_type(int96_hint(f.data_type()))).collect::<Vec<_>>(),
        );
        let opts = ArrowReaderOptions::new().with_schema(Arc::new(hinted));
        ArrowReaderMetadata::try_new(metadata.metadata().clone(), opts).unwrap_or(metadata)
    } else {
        metadata
    };
    let metrics = &inner.metrics;
    ScanMetrics::add(&metrics.files_opened, 1);
    ScanMetrics::add(&metrics.bytes_opened, file.size.max(0) as u64);
    let file_schema = metadata.schema().clone();
    let file_fields = file_schema.fields();
    // Table field → file root column.
    let mut roots: Vec<Option<usize>> = Vec::with_capacity(inner.read_fields.len());
    for f in &inner.read_fields {
        let is_partition = inner.partition_physical.iter().any(|(l, _, _)| *l == f.name);
        roots.push(if is_partition { None } else { find_file_field(file_fields, f, inner.mode) });
    }
    // View types: the referenced top-level string/binary file columns decode as views.
    let metadata = if inner.view_types {
        let wanted: Vec<usize> = roots.iter().flatten().copied().collect();
        let fields: Vec<Field> = file_fields
            .iter()
            .enumerate()
            .map(|(i, f)| if wanted.contains(&i) { f.as_ref().clone().with_data_type(view_type(f.data_type())) } else { f.as_ref().clone() })
            .collect();
        let opts = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
        ArrowReaderMetadata::try_new(metadata.metadata().clone(), opts).unwrap_or(metadata)
    } else {
        metadata
    };
    // Row-group pruning on top-level primitive columns the predicate reads.
    let parquet_meta = metadata.metadata().clone();
    let num_groups = parquet_meta.num_row_groups();
    // A split reads the row groups that start in its byte range.
    let group_start = |rg: usize| {
        // The first page of its first column chunk (`file_offset` is wrong in some writers' files).
        let meta = parquet_meta.row_group(rg);
        meta.columns().iter().map(|c| c.dictionary_page_offset().filter(|o| *o > 0).unwrap_or(c.data_page_offset())).min().unwrap_or(0)
    };
    let mut keep_groups: Vec<usize> = match file.byte_range {
        Some((lo, hi)) => (0..num_groups).filter(|rg| (lo..hi).contains(&group_start(*rg))).collect(),
        None => (0..num_groups).collect(),
    };
    let groups_in_range = keep_groups.len();
    if let (Some(pred), true) = (&inner.predicate, keep_groups.len() > 1) {
        let mut columns = HashMap::new();
        for col in pred.columns() {
            if col.len() != 1 {
                continue;
            }
            let Some(idx) = inner.read_fields.iter().position(|f| f.name.eq_ignore_ascii_case(&col[0])) else { continue };
            let Some(root) = roots[idx] else { continue };
            if !matches!(inner.read_fields[idx].data_type, DataType::Primitive(_)) {
                continue;
            }
            let file_name = file_fields[root].name();
            let Ok(conv) = StatisticsConverter::try_new(file_name, &file_schema, parquet_meta.file_metadata().schema_descr()) else {
                continue;
            };
            let groups = parquet_meta.row_groups();
            let (Ok(mins), Ok(maxes)) = (conv.row_group_mins(groups.iter()), conv.row_group_maxes(groups.iter())) else { continue };
            let nulls = conv.row_group_null_counts(groups.iter()).ok().map(|a| a.iter().collect::<Vec<_>>());
            columns.insert(vec![inner.read_fields[idx].name.clone()], (mins, maxes, nulls));
        }
        if !columns.is_empty() {
            keep_groups.retain(|rg| {
                let stats =
                    RowGroupStats { row_group: *rg, num_rows: parquet_meta.row_group(*rg).num_rows().max(0) as u64, columns: &columns };
                can_match(pred, &stats, inner.stats_schema.as_ref())
            });
        }
    }
    ScanMetrics::add(&metrics.row_groups_total, groups_in_range as u64);
    ScanMetrics::add(&metrics.row_groups_read, keep_groups.len() as u64);
    if keep_groups.is_empty() {
        return Ok(());
    }
    // File row index of each kept row group's first row.
    let mut starts = Vec::with_capacity(num_groups);
    let mut acc = 0u64;
    for rg in parquet_meta.row_groups() {
        starts.push(acc);
        acc += rg.num_rows().max(0) as u64;
    }
    let ranges: Vec<(u64, u64)> =
        keep_groups.iter().map(|rg| (starts[*rg], parquet_meta.row_group(*rg).num_rows().max(0) as u64)).collect();

    let root_indices: Vec<usize> = {
        let mut v: Vec<usize> = roots.iter().flatten().copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mask = ProjectionMask::roots(parquet_meta.file_metadata().schema_descr(), root_indices);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata.clone())
        .with_projection(mask)
        .with_row_groups(keep_groups)
        .with_batch_size(inner.batch_size);
    let mut stream = builder.build().map_err(|e| DeltaError::parquet(&display, e))?;

    // Partition columns as one-row arrays.
    let mut partition_arrays: HashMap<&str, ArrayRef> = HashMap::new();
    for (logical, _, t) in &inner.partition_physical {
        let value = file.partition_values.get(logical).cloned().flatten();
        partition_arrays.insert(logical.as_str(), parse_partition_value(logical, value.as_deref(), t)?);
    }

    let mut range_idx = 0usize;
    let mut offset_in_range = 0u64;
    while let Some(batch) = stream.try_next().await.map_err(|e| DeltaError::parquet(&display, e))? {
        let n = batch.num_rows();
        ScanMetrics::add(&metrics.rows_read, n as u64);
        // File row index of each row (row groups may have been skipped).
        let row_indexes: Option<arrow::array::UInt64Array> =
            (deleted.is_some() || inner.row_index || inner.row_tracking.is_some()).then(|| {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    while range_idx < ranges.len() && offset_in_range >= ranges[range_idx].1 {
                        range_idx += 1;
                        offset_in_range = 0;
                    }
                    v.push(ranges.get(range_idx).map(|r| r.0 + offset_in_range).unwrap_or(u64::MAX));
                    offset_in_range += 1;
                }
                arrow::array::UInt64Array::from(v)
            });
        let batch_schema = batch.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(inner.read_fields.len());
        for (k, (f, root)) in inner.read_fields.iter().zip(&roots).enumerate() {
            let col = if let Some(p) = partition_arrays.get(f.name.as_str()) {
                let idx = UInt32Array::from(vec![0u32; n]);
                arrow::compute::take(p, &idx, None)?
            } else {
                match root.and_then(|r| batch_schema.index_of(file_fields[r].name()).ok()) {
                    // Decoded as the view type asked for: nothing to adapt.
                    Some(i) if inner.view_types && Some(batch.column(i).data_type()) == inner.read_schema.fields().get(k).map(|f| f.data_type()) => {
                        batch.column(i).clone()
                    }
                    Some(i) => adapt(batch.column(i), &f.data_type, inner.mode, &display)?,
                    None => new_null_array(&f.data_type.to_arrow(false)?, n),
                }
            };
            let col = match inner.read_schema.fields().get(k) {
                Some(target) if inner.view_types && col.data_type() != target.data_type() => arrow::compute::cast(&col, target.data_type())?,
                _ => col,
            };
            columns.push(col);
        }
        if let Some((id_name, version_name)) = &inner.row_tracking {
            // Materialised values win; the file's base row id + row index and its default commit
            // version fill the rest.
            let indexes = row_indexes.as_ref().ok_or_else(|| DeltaError::Internal("row tracking without row indexes".into()))?;
            let materialized = |name: &Option<String>| -> Option<arrow::array::Int64Array> {
                let i = inner.read_fields.iter().position(|f| Some(&f.name) == name.as_ref())?;
                columns.get(i)?.as_primitive_opt::<Int64Type>().cloned()
            };
            let (ids, versions) = (materialized(id_name), materialized(version_name));
            let base = file.base_row_id;
            let id_col: arrow::array::Int64Array = (0..n)
                .map(|r| match &ids {
                    Some(m) if m.is_valid(r) => Some(m.value(r)),
                    _ => base.map(|b| b + indexes.value(r) as i64),
                })
                .collect();
            let version_col: arrow::array::Int64Array = (0..n)
                .map(|r| match &versions {
                    Some(m) if m.is_valid(r) => Some(m.value(r)),
                    _ => file.default_row_commit_version,
                })
                .collect();
            columns.push(Arc::new(id_col));
            columns.push(Arc::new(version_col));
        }
        if let (true, Some(indexes)) = (inner.row_index, &row_indexes) {
            // Shares the buffer with `row_indexes` (no copy).
            columns.push(Arc::new(indexes.clone()));
            columns.push(Arc::new(UInt32Array::from(vec![file_index; n])));
        }
        let mut working = RecordBatch::try_new_with_options(
            inner.read_schema.clone(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        // Deletion vector: drop rows whose file row index is deleted.
        if let (Some(deleted), Some(indexes)) = (&deleted, &row_indexes) {
            let mask: BooleanArray = indexes.values().iter().map(|r| Some(!deleted.contains(*r))).collect();
            ScanMetrics::add(&metrics.rows_deleted_by_dv, (n - mask.true_count()) as u64);
            working = filter_record_batch(&working, &mask)?;
        }
        if let Some(pred) = &inner.predicate {
            let mask = evaluate_predicate(pred, &working)?;
            working = filter_record_batch(&working, &mask)?;
        }
        let out_cols: Vec<ArrayRef> = inner
            .output_schema
            .fields()
            .iter()
            .map(|f| working.column_by_name(f.name()).cloned().ok_or_else(|| DeltaError::Internal(format!("missing column {}", f.name()))))
            .collect::<DeltaResult<_>>()?;
        let out = RecordBatch::try_new_with_options(
            inner.output_schema.clone(),
            out_cols,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(working.num_rows())),
        )?;
        ScanMetrics::add(&metrics.rows_output, out.num_rows() as u64);
        if out.num_rows() > 0 && tx.send(Ok(out)).await.is_err() {
            break;
        }
    }
    Ok(())
}

impl Snapshot {
    /// Starts building a scan of this snapshot.
    pub fn scan(&self) -> ScanBuilder {
        ScanBuilder::new(self.clone())
    }
}
