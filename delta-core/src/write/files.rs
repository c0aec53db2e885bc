//! Data files: rows split by partition values into parquet files at a target size (physical
//! names and field ids under column mapping), each becoming an `add` action with statistics
//! ([`super::stats`]); `ParallelWriter` runs encoders on both cores.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StructArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType as ArrowType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use super::stats::{file_stats, leaf_arrays, ColumnStats, STATS_TRUNCATE_BYTES};
use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::log::storage::TableLocation;
use crate::table::actions::AddFile;
use crate::table::features::stats_columns;
use crate::table::protocol::Metadata;
use crate::table::schema::{ColumnMappingMode, DataType, PrimitiveType, StructField, StructType, PARQUET_FIELD_ID_KEY};

/// Characters Spark escapes in partition directory names (`ExternalCatalogUtils.escapePathName`).
pub(crate) fn escape_partition_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        let needs =
            (c as u32) < 0x20 || matches!(c, '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\x7f' | '{' | '[' | ']' | '^');
        if needs {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Percent-encodes a relative path for `add.path` (a URI reference).
pub fn encode_path(path: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/').remove(b'=');
    percent_encoding::utf8_percent_encode(path, KEEP).to_string()
}

/// The string form of a partition value (Delta's partition value serialisation).
fn partition_strings(col: &ArrayRef) -> DeltaResult<Vec<Option<String>>> {
    let n = col.len();
    Ok(match col.data_type() {
        ArrowType::Timestamp(TimeUnit::Microsecond, tz) => {
            let a = col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            (0..n)
                .map(|i| {
                    a.is_valid(i).then(|| {
                        let t = chrono::DateTime::from_timestamp_micros(a.value(i)).unwrap_or_default();
                        if tz.is_some() {
                            t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
                        } else {
                            t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
                        }
                    })
                })
                .collect()
        }
        ArrowType::Binary => {
            // Spark and readers (this one too) take a binary partition value's string as its
            // UTF-8 bytes; other bytes have no faithful string form.
            let a = col.as_binary::<i32>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        return Ok(None);
                    }
                    std::str::from_utf8(a.value(i)).map(|s| Some(s.to_string())).map_err(|_| DeltaError::WriteRefused {
                        reason: format!("binary partition value {:02x?} is not UTF-8 text, which partition values must be", a.value(i)),
                    })
                })
                .collect::<DeltaResult<Vec<_>>>()?
        }
        ArrowType::Struct(_) | ArrowType::List(_) | ArrowType::Map(_, _) => {
            return Err(DeltaError::WriteRefused { reason: format!("partition columns of type {} are not supported", col.data_type()) })
        }
        _ => {
            let s = cast(col, &ArrowType::Utf8)?;
            let s = s.as_string::<i32>();
            (0..n).map(|i| s.is_valid(i).then(|| s.value(i).to_string())).collect()
        }
    })
}

/// Renames a logical batch's fields to physical names with field ids (column mapping), nested
/// fields too (inside structs, arrays and maps). Array elements and map keys and values get the
/// field ids IcebergCompatV2 assigns them (`delta.columnMapping.nested.ids` of the nearest field).
fn to_physical(batch: &RecordBatch, schema: &StructType, mode: ColumnMappingMode) -> DeltaResult<RecordBatch> {
    if mode == ColumnMappingMode::None {
        return Ok(batch.clone());
    }
    type Ids = serde_json::Map<String, Value>;
    fn with_id(f: Field, id: Option<i64>) -> Field {
        match id {
            Some(id) => {
                let md: std::collections::HashMap<String, String> = [(PARQUET_FIELD_ID_KEY.to_string(), id.to_string())].into();
                f.with_metadata(md)
            }
            None => f,
        }
    }
    fn field_for(sf: &StructField, array: &ArrayRef, mode: ColumnMappingMode) -> DeltaResult<(Field, ArrayRef)> {
        let ids = match sf.metadata.get(crate::table::features::NESTED_IDS_KEY) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let name = sf.physical_name(mode);
        let (t, a) = physical_array(&sf.data_type, array, mode, ids, name)?;
        Ok((with_id(Field::new(name, t, true), sf.field_id()), a))
    }
    fn physical_array(
        t: &DataType,
        array: &ArrayRef,
        mode: ColumnMappingMode,
        ids: Option<&Ids>,
        key: &str,
    ) -> DeltaResult<(ArrowType, ArrayRef)> {
        let id = |k: &str| ids.and_then(|m| m.get(k)).and_then(Value::as_i64);
        Ok(match (t, array.data_type()) {
            (DataType::Struct(st), ArrowType::Struct(_)) => {
                let s = array.as_struct();
                let mut fields = Vec::new();
                let mut cols = Vec::new();
                for (i, sf) in st.fields.iter().enumerate() {
                    let (f, a) = field_for(sf, s.column(i), mode)?;
                    fields.push(Arc::new(f));
                    cols.push(a);
                }
                let fields = Fields::from(fields);
                let out = StructArray::try_new(fields.clone(), cols, s.nulls().cloned())?;
                (ArrowType::Struct(fields), Arc::new(out))
            }
            (DataType::Array(elem, _), ArrowType::List(field)) => {
                let list = array.as_list::<i32>();
                let key = format!("{key}.element");
                let (et, values) = physical_array(elem, list.values(), mode, ids, &key)?;
                let field = Arc::new(with_id(Field::new(field.name(), et, field.is_nullable()), id(&key)));
                let out = arrow::array::ListArray::try_new(field, list.offsets().clone(), values, list.nulls().cloned())?;
                (out.data_type().clone(), Arc::new(out))
            }
            (DataType::Map(k, v, _), ArrowType::Map(entries, sorted)) => {
                let m = array.as_map();
                let ArrowType::Struct(entry_fields) = entries.data_type() else {
                    return Err(DeltaError::Internal("map entries are not a struct".into()));
                };
                let (key_key, value_key) = (format!("{key}.key"), format!("{key}.value"));
                let (kt, keys) = physical_array(k, m.keys(), mode, ids, &key_key)?;
                let (vt, values) = physical_array(v, m.values(), mode, ids, &value_key)?;
                let value_nullable = entry_fields.get(1).is_none_or(|f| f.is_nullable());
                let fields = Fields::from(vec![
                    with_id(Field::new("key", kt, false), id(&key_key)),
                    with_id(Field::new("value", vt, value_nullable), id(&value_key)),
                ]);
                let entries_out = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
                let entries_field = Arc::new(Field::new(entries.name(), ArrowType::Struct(fields), false));
                let out = arrow::array::MapArray::try_new(entries_field, m.offsets().clone(), entries_out, m.nulls().cloned(), *sorted)?;
                (out.data_type().clone(), Arc::new(out))
            }
            _ => (array.data_type().clone(), array.clone()),
        })
    }
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (i, sf) in schema.fields.iter().enumerate() {
        let (f, a) = field_for(sf, batch.column(i), mode)?;
        fields.push(f);
        cols.push(a);
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        cols,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// One data file being written. Row groups are encoded into `writer`'s buffer; once the flushed
/// bytes pass [`STREAM_BYTES`] the file streams to the store as a multipart upload (nothing is
/// visible until it completes), so a large file never sits whole in memory. Smaller files are
/// one `put` when they close.
struct OpenFile {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
    stats: Vec<ColumnStats>,
    /// The file's path relative to the table root, and its partition values (physical names).
    rel: String,
    partition_values: HashMap<String, Option<String>>,
    upload: Option<object_store::WriteMultipart>,
    /// Bytes already handed to `upload`.
    streamed: u64,
}

/// Flushed bytes past which a data file streams to the store in parts of this size (small in
/// unit tests, so that they stream).
const STREAM_BYTES: usize = if cfg!(test) { 64 * 1024 } else { 8 * 1024 * 1024 };

/// Rows per row group at most: parquet's default, small in unit tests.
const ROW_GROUP_ROWS: usize = if cfg!(test) { 8192 } else { 1024 * 1024 };

/// Largest row group (encoded bytes) a writer holds before flushing it, as Spark's 128 MiB
/// `parquet.block.size`: wide rows do not fill a 1M-row group in memory.
const ROW_GROUP_BYTES: usize = 128 * 1024 * 1024;

/// Writes partitioned parquet files with statistics and returns their `add` actions.
pub struct DeltaWriter {
    location: TableLocation,
    schema: StructType,
    logical_arrow: SchemaRef,
    /// The columns data files hold, in file order: `schema`'s non-partition columns, then the
    /// partition columns where they are materialised (IcebergCompat).
    data_schema: StructType,
    /// Positions in `schema` of `data_schema`'s columns.
    keep: Vec<usize>,
    partition_columns: Vec<String>,
    /// Partition values are also written into the data files (IcebergCompatV1/V2 require it).
    materialize_partitions: bool,
    mode: ColumnMappingMode,
    stats_columns: Vec<Vec<String>>,
    target_file_size: u64,
    /// Rows per parquet row group at most.
    row_group_rows: usize,
    open: BTreeMap<Vec<Option<String>>, OpenFile>,
    /// Files opened so far (their sequence number in the file name).
    opened: usize,
    done: Vec<AddFile>,
    rows: u64,
    /// `_change_data/` for change data files, empty for data files.
    prefix: &'static str,
}

/// The column change data files add to the table's columns.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";

impl DeltaWriter {
    /// At most `rows` rows per parquet row group (default 1 Mi rows, or 128 MiB).
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    /// A writer for a table with this metadata.
    pub fn new(
        location: TableLocation,
        metadata: &Metadata,
        schema: &StructType,
        mode: ColumnMappingMode,
        target_file_size: u64,
    ) -> DeltaResult<Self> {
        let partition_columns = metadata.partition_columns.clone();
        let non_partition = StructType {
            fields: schema.fields.iter().filter(|f| !partition_columns.iter().any(|p| p.eq_ignore_ascii_case(&f.name))).cloned().collect(),
        };
        let stats_columns = stats_columns(metadata, &non_partition, mode);
        let mut w = DeltaWriter {
            location,
            logical_arrow: schema.to_arrow()?,
            schema: schema.clone(),
            data_schema: StructType::default(),
            keep: Vec::new(),
            partition_columns,
            materialize_partitions: crate::table::features::iceberg_compat(metadata).is_some(),
            mode,
            stats_columns,
            target_file_size: target_file_size.max(1),
            row_group_rows: ROW_GROUP_ROWS,
            open: BTreeMap::new(),
            opened: 0,
            done: Vec::new(),
            rows: 0,
            prefix: "",
        };
        w.lay_out_files();
        Ok(w)
    }

    /// Computes which of `schema`'s columns data files hold, and in which order.
    fn lay_out_files(&mut self) {
        let is_partition = |f: &StructField| self.partition_columns.iter().any(|p| p.eq_ignore_ascii_case(&f.name));
        let mut keep: Vec<usize> = (0..self.schema.fields.len()).filter(|&i| !is_partition(&self.schema.fields[i])).collect();
        if self.materialize_partitions {
            keep.extend((0..self.schema.fields.len()).filter(|&i| is_partition(&self.schema.fields[i])));
        }
        self.data_schema = StructType { fields: keep.iter().map(|&i| self.schema.fields[i].clone()).collect() };
        self.keep = keep;
    }

    /// A writer of change data files (`_change_data/`, CDF): the table's columns plus
    /// [`CHANGE_TYPE_COLUMN`], partitioned like the table, without statistics.
    pub fn for_change_data(
        location: TableLocation,
        metadata: &Metadata,
        schema: &StructType,
        mode: ColumnMappingMode,
    ) -> DeltaResult<Self> {
        let mut with_type = schema.clone();
        with_type.fields.push(StructField::new(CHANGE_TYPE_COLUMN, DataType::Primitive(PrimitiveType::String), true));
        let mut w = DeltaWriter::new(location, metadata, &with_type, mode, u64::MAX)?;
        w.stats_columns.clear();
        w.prefix = "_change_data/";
        // Change data files are not data files: partition values stay in the log only.
        w.materialize_partitions = false;
        w.lay_out_files();
        Ok(w)
    }

    /// Adds hidden columns after the table's (row tracking's materialised row ids and commit
    /// versions): written to the files, never in statistics.
    pub(crate) fn with_hidden_columns(mut self, fields: Vec<StructField>) -> DeltaResult<Self> {
        self.schema.fields.extend(fields);
        self.lay_out_files();
        self.logical_arrow = self.schema.to_arrow()?;
        Ok(self)
    }

    /// The table schema as Arrow (logical names): what [`DeltaWriter::write`] expects.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.logical_arrow.clone()
    }

    /// Writes one batch already conformed to [`DeltaWriter::arrow_schema`].
    pub async fn write(&mut self, batch: &RecordBatch) -> DeltaResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        if self.partition_columns.is_empty() {
            return self.write_partition(Vec::new(), batch).await;
        }
        // Partition keys per row.
        let mut keys: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(self.partition_columns.len()); batch.num_rows()];
        for p in &self.partition_columns {
            let idx = self
                .schema
                .fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(p))
                .ok_or_else(|| DeltaError::schema(format!("partition column `{p}` is not in the schema")))?;
            for (row, v) in partition_strings(batch.column(idx))?.into_iter().enumerate() {
                keys[row].push(v.filter(|s| !s.is_empty()));
            }
        }
        let mut groups: BTreeMap<Vec<Option<String>>, Vec<u32>> = BTreeMap::new();
        for (row, k) in keys.into_iter().enumerate() {
            groups.entry(k).or_default().push(row as u32);
        }
        for (key, rows) in groups {
            let idx = UInt32Array::from(rows);
            let cols = batch.columns().iter().map(|c| take(c, &idx, None)).collect::<Result<Vec<_>, _>>()?;
            let part = RecordBatch::try_new(batch.schema(), cols)?;
            self.write_partition(key, &part).await?;
        }
        Ok(())
    }

    async fn write_partition(&mut self, key: Vec<Option<String>>, batch: &RecordBatch) -> DeltaResult<()> {
        // Data files hold the non-partition columns (and the materialised partition columns
        // after them), under physical names.
        let data = batch.project(&self.keep)?;
        let physical = to_physical(&data, &self.data_schema, self.mode)?;
        if !self.open.contains_key(&key) {
            // Snappy, as Spark and delta-rs write by default.
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
                .set_max_row_group_row_count(Some(self.row_group_rows))
                .set_statistics_truncate_length(Some(STATS_TRUNCATE_BYTES))
                .build();
            let writer =
                ArrowWriter::try_new(Vec::new(), physical.schema(), Some(props)).map_err(|e| DeltaError::parquet("new file", e))?;
            let stats = self.stats_columns.iter().map(|p| ColumnStats::new(p.clone())).collect();
            let (rel, partition_values) = self.new_file_path(&key)?;
            self.open.insert(key.clone(), OpenFile { writer, rows: 0, stats, rel, partition_values, upload: None, streamed: 0 });
        }
        let leaves = leaf_arrays(&data, &self.data_schema, self.mode);
        let Some(mut file) = self.open.remove(&key) else { return Err(DeltaError::Internal("open file vanished".into())) };
        // Encoding is CPU work: off the async runtime's threads.
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = (|| -> DeltaResult<()> {
                file.writer.write(&physical).map_err(|e| DeltaError::parquet("new file", e))?;
                file.rows += physical.num_rows() as u64;
                for s in &mut file.stats {
                    if let Some((_, a)) = leaves.iter().find(|(p, _)| *p == s.path()) {
                        s.update(a)?;
                    }
                }
                Ok(())
            })();
            (file, result)
        })
        .await
        .map_err(|e| DeltaError::Internal(format!("encoding task failed: {e}")))?;
        result?;
        let full = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64 >= self.target_file_size;
        let mut file = file;
        if file.writer.inner().len() >= STREAM_BYTES {
            Self::stream_part(&self.location, &mut file).await?;
        }
        self.open.insert(key.clone(), file);
        if full {
            self.close_file(&key).await?;
        }
        Ok(())
    }

    /// A new data file's path (Hive-style partition directories) and partition values.
    fn new_file_path(&mut self, key: &[Option<String>]) -> DeltaResult<(String, HashMap<String, Option<String>>)> {
        let mut dir = String::new();
        let mut partition_values = HashMap::new();
        for (p, v) in self.partition_columns.iter().zip(key) {
            let field = self.schema.field(p).ok_or_else(|| DeltaError::schema(format!("partition column `{p}` is not in the schema")))?;
            let name = field.physical_name(self.mode).to_string();
            let shown = v.as_deref().map(escape_partition_value).unwrap_or_else(|| "__HIVE_DEFAULT_PARTITION__".into());
            dir.push_str(&format!("{}={shown}/", escape_partition_value(&name)));
            partition_values.insert(name, v.clone());
        }
        let n = self.opened;
        self.opened += 1;
        // Spark's names: `part-00000-<uuid>-c000…` for data, `cdc-00000-<uuid>.c000…` for changes.
        let rel = if self.prefix.is_empty() {
            format!("{dir}part-{n:05}-{}-c000.snappy.parquet", uuid::Uuid::new_v4())
        } else {
            format!("{}{dir}cdc-{n:05}-{}.c000.snappy.parquet", self.prefix, uuid::Uuid::new_v4())
        };
        Ok((encode_path(&rel), partition_values))
    }

    /// Hands the bytes `file` has flushed so far to its multipart upload (started on first use),
    /// waiting while two parts are in flight.
    async fn stream_part(location: &TableLocation, file: &mut OpenFile) -> DeltaResult<()> {
        // The next row group's bytes go to a buffer of this one's size: no regrowing (realloc
        // copies and page faults) while a row group is flushed.
        let capacity = file.writer.inner().len();
        let bytes = bytes::Bytes::from(std::mem::replace(file.writer.inner_mut(), Vec::with_capacity(capacity)));
        if bytes.is_empty() {
            return Ok(());
        }
        if file.upload.is_none() {
            let path = location.resolve(PathKind::Data, &file.rel)?;
            let upload = object_store::ObjectStoreExt::put_multipart(location.store().as_ref(), &path.store_path).await?;
            file.upload = Some(object_store::WriteMultipart::new_with_chunk_size(upload, STREAM_BYTES));
        }
        let Some(upload) = file.upload.as_mut() else { return Err(DeltaError::Internal("upload vanished".into())) };
        file.streamed += bytes.len() as u64;
        upload.put(bytes);
        upload.wait_for_capacity(2).await?;
        Ok(())
    }

    async fn close_file(&mut self, key: &Vec<Option<String>>) -> DeltaResult<()> {
        let Some(file) = self.open.remove(key) else { return Ok(()) };
        let OpenFile { writer, rows, stats: stats_of_file, rel, partition_values, upload, streamed } = file;
        let (bytes, groups) = tokio::task::spawn_blocking(move || {
            let mut writer = writer;
            writer.flush()?;
            let groups = writer.flushed_row_groups().to_vec();
            writer.into_inner().map(|bytes| (bytes, groups))
        })
        .await
        .map_err(|e| DeltaError::Internal(format!("encoding task failed: {e}")))?
        .map_err(|e| DeltaError::parquet("new file", e))?;
        let size = streamed as i64 + bytes.len() as i64;
        match upload {
            Some(mut upload) => {
                upload.put(bytes.into());
                upload.finish().await?;
            }
            None => {
                let path = self.location.resolve(PathKind::Data, &rel)?;
                self.location.put(&path.store_path, bytes).await?;
            }
        }
        let stats = file_stats(&stats_of_file, &groups, rows)?;
        self.done.push(AddFile {
            modification_time: chrono::Utc::now().timestamp_millis(),
            stats: Some(stats.to_string()),
            ..AddFile::new(rel, partition_values, size)
        });
        Ok(())
    }

    /// Closes the open files now: the next rows start new files (e.g. at a boundary the caller
    /// chose, such as a Z-order range).
    pub async fn close_open_files(&mut self) -> DeltaResult<()> {
        let keys: Vec<_> = self.open.keys().cloned().collect();
        for k in keys {
            self.close_file(&k).await?;
        }
        Ok(())
    }

    /// Closes every open file and returns the `add` actions.
    pub async fn finish(mut self) -> DeltaResult<(Vec<AddFile>, u64)> {
        let keys: Vec<_> = self.open.keys().cloned().collect();
        for k in keys {
            self.close_file(&k).await?;
        }
        Ok((self.done, self.rows))
    }
}

/// What one writer task returns: its files and the rows it wrote.
type WriterOutput = DeltaResult<(Vec<AddFile>, u64)>;

/// Up to four [`DeltaWriter`]s encoding in parallel, each on its own task. Batches go to one
/// writer until it has taken [`ParallelWriter::SWITCH_ROWS`] rows, then to the next, so small
/// outputs stay in one file and large ones spread over all encoders.
pub(crate) struct ParallelWriter {
    senders: Vec<tokio::sync::mpsc::Sender<RecordBatch>>,
    handles: Vec<tokio::task::JoinHandle<WriterOutput>>,
    current: usize,
    rows_on_current: usize,
}

impl ParallelWriter {
    const SWITCH_ROWS: usize = 256 * 1024;

    pub(crate) fn new(make: impl Fn() -> DeltaResult<DeltaWriter>) -> DeltaResult<Self> {
        let parallelism = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4);
        let mut senders = Vec::with_capacity(parallelism);
        let mut handles = Vec::with_capacity(parallelism);
        for _ in 0..parallelism {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
            let mut writer = make()?;
            senders.push(tx);
            handles.push(tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    writer.write(&b).await?;
                }
                writer.finish().await
            }));
        }
        Ok(ParallelWriter { senders, handles, current: 0, rows_on_current: 0 })
    }

    /// Queues a batch; `false` when the writer stopped (its error comes from `finish`).
    pub(crate) async fn write(&mut self, batch: RecordBatch) -> bool {
        if batch.num_rows() == 0 {
            return true;
        }
        if self.rows_on_current >= Self::SWITCH_ROWS {
            self.current = (self.current + 1) % self.senders.len();
            self.rows_on_current = 0;
        }
        self.rows_on_current += batch.num_rows();
        self.senders[self.current].send(batch).await.is_ok()
    }

    /// Closes every file: the `add` actions and the number of rows written.
    pub(crate) async fn finish(self) -> DeltaResult<(Vec<AddFile>, u64)> {
        drop(self.senders);
        let mut adds = Vec::new();
        let mut rows = 0u64;
        let mut error = None;
        for h in self.handles {
            match h.await {
                Ok(Ok((a, r))) => {
                    adds.extend(a);
                    rows += r;
                }
                Ok(Err(e)) => error = error.or(Some(e)),
                Err(e) => error = error.or(Some(DeltaError::Internal(format!("writer task failed: {e}")))),
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok((adds, rows)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::schema::{DataType, PrimitiveType, StructField};
    use crate::write::stats::{extreme, stat_value};
    use crate::write::writer::new_metadata;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType as ArrowType, Field, Schema};
    use serde_json::{json, Value};

    /// A file larger than the streaming threshold goes to the store in parts and reads back
    /// whole: same rows, the size the `add` says, no staging file left beside it.
    #[tokio::test]
    async fn large_files_stream_to_the_store_and_read_back() {
        let dir = std::env::temp_dir().join(format!("delta-write-stream-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let location = TableLocation::open(dir.to_str().unwrap(), Default::default()).unwrap();
        let schema = StructType {
            fields: vec![
                StructField::new("id", DataType::Primitive(PrimitiveType::Long), true),
                StructField::new("s", DataType::Primitive(PrimitiveType::String), true),
            ],
        };
        let metadata = new_metadata(&schema, Vec::new(), &HashMap::new());
        let mut writer = DeltaWriter::new(location.clone(), &metadata, &schema, ColumnMappingMode::None, u64::MAX).unwrap();
        let arrow_schema = Arc::new(Schema::new(vec![Field::new("id", ArrowType::Int64, true), Field::new("s", ArrowType::Utf8, true)]));
        let n = 100_000i64;
        for start in (0..n).step_by(10_000) {
            let ids: Vec<i64> = (start..start + 10_000).collect();
            let strings: Vec<String> = ids.iter().map(|i| format!("value-{}", i.wrapping_mul(2_654_435_761) % 1_000_003)).collect();
            let batch =
                RecordBatch::try_new(arrow_schema.clone(), vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(strings))])
                    .unwrap();
            writer.write(&batch).await.unwrap();
        }
        // The open file has streamed parts already.
        assert!(writer.open.values().any(|f| f.upload.is_some() && f.streamed > 0), "the file did not stream");
        let (adds, rows) = writer.finish().await.unwrap();
        assert_eq!((adds.len(), rows), (1, n as u64));
        let path = dir.join(&adds[0].path);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as i64, adds[0].size);
        let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 1, "staging files left: {names:?}");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut next = 0i64;
        for b in reader {
            let b = b.unwrap();
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..ids.len() {
                assert_eq!(ids.value(i), next);
                next += 1;
            }
        }
        assert_eq!(next, n);
        let stats: Value = serde_json::from_str(adds[0].stats.as_deref().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], json!(n));
        assert_eq!(stats["maxValues"]["id"], json!(n - 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The statistics of a file spanning several row groups equal the bounds computed from the
    /// data itself, for every type stats are kept for; NaN and boolean columns get no bounds,
    /// an all-NULL column only its null count.
    #[tokio::test]
    async fn statistics_equal_the_data_for_every_type() {
        use arrow::array::{
            BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array, Int8Array, StructArray,
            TimestampMicrosecondArray,
        };
        let dir = std::env::temp_dir().join(format!("delta-write-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let location = TableLocation::open(dir.to_str().unwrap(), Default::default()).unwrap();
        let schema = StructType::parse(
            r#"{"type":"struct","fields":[
            {"name":"b","type":"byte","nullable":true,"metadata":{}},
            {"name":"s","type":"short","nullable":true,"metadata":{}},
            {"name":"i","type":"integer","nullable":true,"metadata":{}},
            {"name":"l","type":"long","nullable":true,"metadata":{}},
            {"name":"f","type":"float","nullable":true,"metadata":{}},
            {"name":"d","type":"double","nullable":true,"metadata":{}},
            {"name":"nan","type":"double","nullable":true,"metadata":{}},
            {"name":"dec","type":"decimal(10,2)","nullable":true,"metadata":{}},
            {"name":"big","type":"decimal(30,3)","nullable":true,"metadata":{}},
            {"name":"day","type":"date","nullable":true,"metadata":{}},
            {"name":"ts","type":"timestamp","nullable":true,"metadata":{}},
            {"name":"ntz","type":"timestamp_ntz","nullable":true,"metadata":{}},
            {"name":"str","type":"string","nullable":true,"metadata":{}},
            {"name":"flag","type":"boolean","nullable":true,"metadata":{}},
            {"name":"none","type":"long","nullable":true,"metadata":{}},
            {"name":"st","type":{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}]}"#,
        )
        .unwrap();
        let metadata = new_metadata(&schema, Vec::new(), &HashMap::new());
        let mut writer = DeltaWriter::new(location.clone(), &metadata, &schema, ColumnMappingMode::None, u64::MAX).unwrap();
        // Values that wander (a hash of the row), NULLs every 7th row; 3 row groups under test.
        let n = 20_000i64;
        let h = |r: i64| (r.wrapping_mul(2_654_435_761) % 1_000_003) - 500_000;
        fn opt<T>(r: i64, v: T) -> Option<T> {
            (r % 7 != 3).then_some(v)
        }
        let rows: Vec<i64> = (0..n).collect();
        let strings: Vec<Option<String>> =
            rows.iter().map(|r| opt(*r, format!("{}-ü-{}", "x".repeat((h(*r).rem_euclid(80)) as usize), h(*r)))).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from_iter(rows.iter().map(|r| opt(*r, (h(*r) % 128) as i8)))),
            Arc::new(Int16Array::from_iter(rows.iter().map(|r| opt(*r, (h(*r) % 30_000) as i16)))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as i32)))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) * 1_000_000_007)))),
            Arc::new(Float32Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as f32 / 7.0)))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as f64 / 3.0)))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| opt(*r, if *r == 12_345 { f64::NAN } else { *r as f64 })))),
            Arc::new(Decimal128Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as i128))).with_precision_and_scale(10, 2).unwrap()),
            Arc::new(
                Decimal128Array::from_iter(rows.iter().map(|r| opt(*r, h(*r) as i128 * 10i128.pow(20))))
                    .with_precision_and_scale(30, 3)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| opt(*r, (h(*r) / 100) as i32)))),
            Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| opt(*r, h(*r) * 1_000_003_001))).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| opt(*r, h(*r) * 999_983)))),
            Arc::new(StringArray::from(strings)),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| opt(*r, r % 2 == 0)))),
            Arc::new(Int64Array::from(vec![None::<i64>; n as usize])),
            Arc::new(StructArray::from(vec![(
                Arc::new(Field::new("a", ArrowType::Int64, true)),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| opt(*r, -h(*r))))) as ArrayRef,
            )])),
        ];
        let arrow_schema = Arc::new(Schema::new(
            schema.to_arrow().unwrap().fields().iter().map(|f| crate::table::schema::all_nullable(f)).collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(arrow_schema, columns).unwrap();
        for start in (0..n as usize).step_by(5_000) {
            writer.write(&batch.slice(start, 5_000)).await.unwrap();
        }
        let (adds, _) = writer.finish().await.unwrap();
        assert_eq!(adds.len(), 1);
        let stats: Value = serde_json::from_str(adds[0].stats.as_deref().unwrap()).unwrap();
        let groups = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(dir.join(&adds[0].path)).unwrap()).unwrap(),
        )
        .num_row_groups();
        assert!(groups >= 3, "only {groups} row groups");
        for (path, column) in leaf_arrays(&batch, &schema, ColumnMappingMode::None) {
            let at = |key: &str| path.iter().fold(&stats[key], |v, p| &v[p.as_str()]).clone();
            assert_eq!(at("nullCount"), json!(column.null_count()), "nullCount of {path:?}");
            let expected = |desc| extreme(&column, desc).unwrap().map(|a| stat_value(&a, desc).unwrap().unwrap());
            match path[0].as_str() {
                "nan" | "flag" | "none" => {
                    assert_eq!((at("minValues"), at("maxValues")), (Value::Null, Value::Null), "{path:?} has no bounds")
                }
                _ => {
                    assert_eq!(Some(at("minValues")), expected(false), "minimum of {path:?}");
                    assert_eq!(Some(at("maxValues")), expected(true), "maximum of {path:?}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
