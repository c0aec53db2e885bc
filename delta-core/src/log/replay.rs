//! Columnar log replay.
//!
//! Every log file (commit JSON, compacted JSON, checkpoint parquet or JSON, sidecar parquet) is
//! decoded into Arrow batches of [`action_schema`]. Replay walks them newest first and keeps, for
//! each file identity `(canonical path, deletion vector id)`, only the newest action: an `add`
//! survives only if no newer `add` or `remove` named the same identity. Surviving adds are kept as
//! filtered `add` struct columns — never one Rust struct per file — so a 300,000-file table costs
//! its Arrow buffers and one hash set of identities.
//!
//! ```text
//!  commit N ─┐
//!  commit N-1├─► decode (arrow-json) ─► newest-first dedup ─► Vec<StructArray> of live adds
//!  …         │                         ▲ seen: HashSet<(path, dv)>
//!  checkpoint┘─► decode (parquet) ─────┘ (checkpoint removes are tombstones and are skipped)
//! ```
//!
//! What is decoded is only what replay uses. A commit's `{"add":…}` lines (nearly all of a large
//! log) are decoded in place into batches holding the `add` column alone, the other lines in the
//! full layout; checkpoints are read with a projection (no `remove`). With
//! [`ReplayOptions::stats`] off — a file listing — `add.stats` is skipped by the JSON decoder and
//! not even read from checkpoints, which is most of their bytes; [`ReplayMetrics`] counts what
//! was read. While no newer commit has removed anything, checkpoint adds are kept without
//! building their replay keys.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, GenericListArray, ListArray, MapArray, RecordBatch, StringArray, StructArray,
};
use arrow::compute::filter;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Int32Type, Int64Type, Schema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};

use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::log::segment::{compaction_end, LogFile, LogFileKind, LogSegment};
use crate::log::storage::TableLocation;
use crate::table::protocol::{action_schema, add_col, add_fields, AppTransaction, DomainMetadata, Format, Metadata, Protocol};

/// Decodes one commit (or compacted / V2-JSON checkpoint) file into action batches.
pub fn decode_commit_json(path: &str, bytes: &[u8], max_actions: u64) -> DeltaResult<Vec<RecordBatch>> {
    let mut out = Vec::new();
    decode_commit_json_each(path, bytes, max_actions, |b| {
        out.push(b);
        true
    })?;
    Ok(out)
}

/// Decodes a commit file batch by batch, handing each to `each` (which returns `false` to stop),
/// so that memory holds one batch, not the decoded file.
pub fn decode_commit_json_each(path: &str, bytes: &[u8], max_actions: u64, mut each: impl FnMut(RecordBatch) -> bool) -> DeltaResult<()> {
    let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    if lines > max_actions.saturating_add(1) {
        return Err(DeltaError::LimitExceeded { what: "actions per commit", limit: max_actions, actual: lines });
    }
    let mut decoder = arrow::json::ReaderBuilder::new(action_schema())
        .with_strict_mode(false)
        .with_coerce_primitive(true)
        .with_batch_size(8192)
        .build_decoder()
        .map_err(|e| DeltaError::corrupt(path, e))?;
    let mut rest = bytes;
    while !rest.is_empty() {
        let consumed = decoder.decode(rest).map_err(|e| DeltaError::corrupt(path, e))?;
        rest = &rest[consumed..];
        if let Some(batch) = decoder.flush().map_err(|e| DeltaError::corrupt(path, e))? {
            if !each(batch) {
                return Ok(());
            }
        }
        if consumed == 0 && !rest.is_empty() {
            return Err(DeltaError::corrupt(path, "decoder made no progress"));
        }
    }
    if decoder.has_partial_record() {
        return Err(DeltaError::corrupt(path, "truncated JSON record at end of file"));
    }
    if let Some(batch) = decoder.flush().map_err(|e| DeltaError::corrupt(path, e))? {
        each(batch);
    }
    Ok(())
}

/// What replay decodes of each file's `add` action.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    /// Decode `add.stats` (and checkpoints' `stats_parsed`). Data skipping, checkpoints, table
    /// statistics and DML need them; a file listing does not, and skipping them skips most of a
    /// checkpoint's bytes.
    pub stats: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { stats: true }
    }
}

/// What a replay read, counted by the reader itself.
#[derive(Debug, Default)]
pub struct ReplayMetrics {
    /// Log files (commits, compactions, checkpoint parts, sidecars) read.
    pub files: AtomicU64,
    /// Bytes of JSON log files read.
    pub json_bytes: AtomicU64,
    /// Parquet leaf columns decoded from checkpoints and sidecars, as dotted paths
    /// (`add.path`, `add.stats`, `metaData.schemaString`, …).
    checkpoint_columns: Mutex<BTreeSet<String>>,
}

impl ReplayMetrics {
    /// The checkpoint leaf columns decoded, as dotted paths.
    pub fn checkpoint_columns(&self) -> Vec<String> {
        self.checkpoint_columns.lock().map(|c| c.iter().cloned().collect()).unwrap_or_default()
    }

    fn note_columns(&self, columns: impl IntoIterator<Item = String>) {
        if let Ok(mut c) = self.checkpoint_columns.lock() {
            c.extend(columns);
        }
    }
}

/// How one replay reads: its options and its counters, shared by the reading tasks.
#[derive(Debug, Clone, Default)]
pub struct ReplayContext {
    pub options: ReplayOptions,
    pub metrics: Arc<ReplayMetrics>,
}

impl ReplayContext {
    pub fn new(options: ReplayOptions) -> Self {
        ReplayContext { options, metrics: Arc::default() }
    }
}

/// `add` fields every add line is decoded with; the others only when some line names them.
const ADD_FIELDS_ALWAYS: [&str; 5] = ["path", "partitionValues", "size", "modificationTime", "dataChange"];

/// The `add`-only layout commit lines that start with `{"add":` are decoded into: no other
/// action's columns to build (a 300,000-file log is almost all adds), no `stats` unless asked
/// for, and none of the optional fields (deletion vector, tags, row tracking, clustering) that
/// no line of the file names (the decoder skips fields its schema does not name; absent ones are
/// filled from [`null_add_columns`], which costs nothing per row).
///
/// A field counts as named when its quoted name appears anywhere in the add lines (a partition
/// value spelled like it only costs decoding the field). Names inside the `stats` string are
/// escaped (`\"tags\"`) and do not count. A key spelled with a `\u` escape would be missed,
/// so lines with any `\u` decode every field.
fn add_decode_schema(add_lines: &[&[u8]], stats: bool) -> SchemaRef {
    let escaped = add_lines.iter().any(|l| memchr::memmem::find(l, b"\\u").is_some());
    let fields: Vec<FieldRef> = add_fields()
        .iter()
        .filter(|f| {
            let name = f.name().as_str();
            if name == "stats" {
                return stats;
            }
            if escaped || ADD_FIELDS_ALWAYS.contains(&name) {
                return true;
            }
            let quoted = format!("\"{name}\"");
            add_lines.iter().any(|l| memchr::memmem::find(l, quoted.as_bytes()).is_some())
        })
        .cloned()
        .collect();
    Arc::new(Schema::new(vec![Field::new("add", DataType::Struct(Fields::from(fields)), true)]))
}

/// Rows of the shared all-null `add` columns; decoder batches are never longer.
const NULL_ADD_ROWS: usize = 8192;

/// One all-null column per `add` field, [`NULL_ADD_ROWS`] long, built once: absent fields of a
/// decoded batch are slices of these, so they share one set of buffers.
fn null_add_columns() -> &'static [ArrayRef] {
    static NULLS: OnceLock<Vec<ArrayRef>> = OnceLock::new();
    NULLS.get_or_init(|| add_fields().iter().map(|f| new_null_array(f.data_type(), NULL_ADD_ROWS)).collect())
}

/// A decoded add-only batch's `add` column in [`add_fields`]' layout.
fn complete_add(decoded: &ArrayRef) -> DeltaResult<ArrayRef> {
    let Some(got) = decoded.as_struct_opt() else { return Err(DeltaError::Internal("add column is not a struct".into())) };
    let n = got.len();
    let fields = add_fields();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        columns.push(match got.column_by_name(f.name()) {
            Some(c) => conform(c, f.data_type())?,
            None if n <= NULL_ADD_ROWS => null_add_columns()[i].slice(0, n),
            None => new_null_array(f.data_type(), n),
        });
    }
    Ok(Arc::new(StructArray::try_new(fields, columns, got.nulls().cloned())?))
}

/// Decodes a commit (or JSON checkpoint) for replay, batch by batch: lines that are not plain
/// `add` actions first, in [`action_schema`]'s layout, then the `add` lines in a batch holding
/// only the `add` column (laid out as [`add_fields`], `stats` null unless `options.stats`).
/// Replay applies a file's removes before its adds either way (a commit never adds and removes
/// the same file). `each` returns `false` to stop.
pub fn decode_commit_for_replay(
    path: &str,
    bytes: &[u8],
    max_actions: u64,
    options: ReplayOptions,
    mut each: impl FnMut(RecordBatch) -> bool,
) -> DeltaResult<()> {
    let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    if lines > max_actions.saturating_add(1) {
        return Err(DeltaError::LimitExceeded { what: "actions per commit", limit: max_actions, actual: lines });
    }
    // The add lines are decoded in place, run by run; the few other lines are copied out.
    let mut add_runs: Vec<std::ops::Range<usize>> = Vec::new();
    let mut others: Vec<u8> = Vec::new();
    let mut start = 0usize;
    while start < bytes.len() {
        let end = bytes[start..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| start + i + 1);
        let line = &bytes[start..end];
        if line.starts_with(b"{\"add\":") {
            match add_runs.last_mut() {
                Some(run) if run.end == start => run.end = end,
                _ => add_runs.push(start..end),
            }
        } else {
            others.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                others.push(b'\n');
            }
        }
        start = end;
    }
    if others.iter().any(|b| !b.is_ascii_whitespace()) {
        let mut go_on = true;
        decode_commit_json_each(path, &others, u64::MAX, |b| {
            go_on = each(b);
            go_on
        })?;
        if !go_on {
            return Ok(());
        }
    }
    drop(others);
    if add_runs.is_empty() {
        return Ok(());
    }
    let out_schema = Arc::new(Schema::new(vec![Field::new("add", DataType::Struct(add_fields()), true)]));
    let lines: Vec<&[u8]> = add_runs.iter().map(|r| &bytes[r.clone()]).collect();
    let mut decoder = arrow::json::ReaderBuilder::new(add_decode_schema(&lines, options.stats))
        .with_strict_mode(false)
        .with_coerce_primitive(true)
        .with_batch_size(8192)
        .build_decoder()
        .map_err(|e| DeltaError::corrupt(path, e))?;
    let mut emit = |batch: RecordBatch| -> DeltaResult<bool> {
        let add = complete_add(batch.column(0))?;
        Ok(each(RecordBatch::try_new(out_schema.clone(), vec![add])?))
    };
    for run in add_runs {
        let mut rest = &bytes[run];
        while !rest.is_empty() {
            let consumed = decoder.decode(rest).map_err(|e| DeltaError::corrupt(path, e))?;
            rest = &rest[consumed..];
            if let Some(batch) = decoder.flush().map_err(|e| DeltaError::corrupt(path, e))? {
                if !emit(batch)? {
                    return Ok(());
                }
            }
            if consumed == 0 && !rest.is_empty() {
                return Err(DeltaError::corrupt(path, "decoder made no progress"));
            }
        }
    }
    if decoder.has_partial_record() {
        return Err(DeltaError::corrupt(path, "truncated JSON record at end of file"));
    }
    if let Some(batch) = decoder.flush().map_err(|e| DeltaError::corrupt(path, e))? {
        emit(batch)?;
    }
    Ok(())
}

/// A top-level action column of a replay batch (batches may hold any subset of them).
fn action<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StructArray> {
    batch.column_by_name(name).and_then(|c| c.as_struct_opt())
}

/// Makes `array` have exactly `target`'s type: struct fields matched by name (missing ones are
/// null, extra ones dropped), lists and maps recursively, primitives cast.
pub fn conform(array: &ArrayRef, target: &DataType) -> DeltaResult<ArrayRef> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    match (array.data_type(), target) {
        (DataType::Struct(_), DataType::Struct(target_fields)) => {
            let s = array.as_struct();
            let mut columns = Vec::with_capacity(target_fields.len());
            for f in target_fields {
                let col = match s.column_by_name(f.name()) {
                    Some(c) => conform(c, f.data_type())?,
                    None => new_null_array(f.data_type(), s.len()),
                };
                columns.push(col);
            }
            let fields: Fields = target_fields.iter().map(|f| Arc::new(f.as_ref().clone().with_nullable(true))).collect();
            Ok(Arc::new(StructArray::try_new(fields, columns, s.nulls().cloned())?))
        }
        (DataType::List(_) | DataType::LargeList(_), DataType::List(tf)) => {
            let list: ListArray = match array.data_type() {
                DataType::LargeList(_) => {
                    let cast = arrow::compute::cast(
                        array,
                        &DataType::List(Arc::new(Field::new("element", array.as_list::<i64>().values().data_type().clone(), true))),
                    )?;
                    cast.as_list::<i32>().clone()
                }
                _ => array.as_list::<i32>().clone(),
            };
            let values = conform(list.values(), tf.data_type())?;
            let field = Arc::new(Field::new(tf.name(), tf.data_type().clone(), true));
            Ok(Arc::new(GenericListArray::<i32>::try_new(field, list.offsets().clone(), values, list.nulls().cloned())?))
        }
        (DataType::Map(_, _), DataType::Map(tf, sorted)) => {
            let m = array.as_map();
            // Map entries keep their declared nullability (keys non-null). They are matched by
            // position, not name: writers name them key/value, keys/values or otherwise.
            let DataType::Struct(entry_fields) = tf.data_type() else {
                return Err(DeltaError::Internal("map entries must be a struct".into()));
            };
            let columns = [m.keys(), m.values()]
                .into_iter()
                .zip(entry_fields.iter())
                .map(|(c, f)| conform(c, f.data_type()))
                .collect::<DeltaResult<Vec<_>>>()?;
            let entries = StructArray::try_new(entry_fields.clone(), columns, m.entries().nulls().cloned())?;
            Ok(Arc::new(MapArray::try_new(tf.clone(), m.offsets().clone(), entries, m.nulls().cloned(), *sorted)?))
        }
        _ => Ok(arrow::compute::cast(array, target)?),
    }
}

/// Conforms a checkpoint batch (any column order and subset) to [`action_schema`]'s types:
/// the action columns it has, in their layout (replay looks actions up by name, so absent
/// ones are not built as null columns).
fn conform_to_actions(batch: &RecordBatch) -> DeltaResult<RecordBatch> {
    let schema = action_schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        if let Some(c) = batch.column_by_name(f.name()) {
            columns.push(conform(c, f.data_type())?);
            fields.push(f.clone());
        }
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// Checkpoints may carry statistics only as structs (`add.stats_parsed`, with
/// `delta.checkpoint.writeStatsAsJson=false`). Data skipping reads JSON stats, so rows whose
/// `stats` is null get their `stats_parsed` struct rendered as JSON.
fn with_json_stats(batch: &RecordBatch) -> DeltaResult<RecordBatch> {
    let Some(add) = batch.column_by_name("add").and_then(|a| a.as_struct_opt()) else { return Ok(batch.clone()) };
    let Some(parsed) = add.column_by_name("stats_parsed").and_then(|p| p.as_struct_opt()) else { return Ok(batch.clone()) };
    let json = add.column_by_name("stats").and_then(|s| s.as_string_opt::<i32>().cloned());
    let needs = (0..add.len()).any(|r| add.is_valid(r) && parsed.is_valid(r) && json.as_ref().is_none_or(|j| j.is_null(r)));
    if !needs {
        return Ok(batch.clone());
    }
    // (`RecordBatch::from(StructArray)` panics on null structs; build it by hand.)
    let rows = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(parsed.fields().clone())),
        parsed.columns().to_vec(),
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(parsed.len())),
    )?;
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
        writer.write(&rows)?;
        writer.finish()?;
    }
    let lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
    let mut out: Vec<Option<String>> = Vec::with_capacity(add.len());
    for r in 0..add.len() {
        let existing = json.as_ref().filter(|j| j.is_valid(r)).map(|j| j.value(r).to_string());
        let rendered = (parsed.is_valid(r)).then(|| lines.get(r).map(|l| String::from_utf8_lossy(l).into_owned())).flatten();
        out.push(existing.or(rendered));
    }
    let stats: ArrayRef = Arc::new(StringArray::from(out));
    let mut fields: Vec<FieldRef> = add.fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = add.columns().to_vec();
    match add.fields().iter().position(|f| f.name() == "stats") {
        Some(i) => {
            fields[i] = Arc::new(Field::new("stats", DataType::Utf8, true));
            columns[i] = stats;
        }
        None => {
            fields.push(Arc::new(Field::new("stats", DataType::Utf8, true)));
            columns.push(stats);
        }
    }
    let new_add: ArrayRef = Arc::new(StructArray::try_new(Fields::from(fields), columns, add.nulls().cloned())?);
    let schema = batch.schema();
    let idx = schema.index_of("add")?;
    let mut cols = batch.columns().to_vec();
    cols[idx] = new_add.clone();
    let mut schema_fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    schema_fields[idx] = Arc::new(Field::new("add", new_add.data_type().clone(), true));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), cols)?)
}

/// Reads a checkpoint or sidecar parquet file into action batches, projecting only what replay
/// needs (no `remove`; no `stats` or `stats_parsed` unless the context asks for statistics).
pub async fn read_checkpoint_parquet(location: &TableLocation, path: &Path, size: Option<u64>) -> DeltaResult<Vec<RecordBatch>> {
    read_checkpoint_parquet_with(location, path, size, &ReplayContext::default()).await
}

/// [`read_checkpoint_parquet`] under a replay's options, counting the columns it decodes.
pub async fn read_checkpoint_parquet_with(
    location: &TableLocation,
    path: &Path,
    size: Option<u64>,
    ctx: &ReplayContext,
) -> DeltaResult<Vec<RecordBatch>> {
    let stats = ctx.options.stats;
    let reader = crate::log::file_reader::StoreFileReader::new(location.store().clone(), path.clone(), size);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| DeltaError::parquet(path, e))?;
    let add_names: HashSet<String> = add_fields().iter().map(|f| f.name().clone()).collect();
    let wanted_roots = ["add", "metaData", "protocol", "txn", "domainMetadata", "checkpointMetadata", "sidecar"];
    let descr = builder.parquet_schema();
    let leaves: Vec<usize> = (0..descr.num_columns())
        .filter(|i| {
            let parts = descr.column(*i).path().parts().to_vec();
            match parts.first().map(String::as_str) {
                Some("add") => parts.get(1).is_some_and(|p| {
                    if p == "stats" || p == "stats_parsed" {
                        stats
                    } else {
                        add_names.contains(p)
                    }
                }),
                Some(root) => wanted_roots.contains(&root),
                None => false,
            }
        })
        .collect();
    ctx.metrics.files.fetch_add(1, Ordering::Relaxed);
    ctx.metrics.note_columns(leaves.iter().map(|i| descr.column(*i).path().string()));
    let mask = ProjectionMask::leaves(descr, leaves);
    let stream = builder.with_projection(mask).with_batch_size(16384).build().map_err(|e| DeltaError::parquet(path, e))?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| DeltaError::parquet(path, e))?;
    batches.iter().map(|b| conform_to_actions(&with_json_stats(b)?)).collect()
}

/// Decoded batches (8192 actions each) a log file may hold ready before replay takes them: files
/// ahead of the one being applied decode on the other core instead of waiting.
const LOG_FILE_BATCHES_AHEAD: usize = 8;

/// Live adds are kept in arrays of at least about this many rows (see `ReplayState::keep`).
const SMALL_RUN_ROWS: usize = 4096;

/// Commit files up to this size are decoded on the task that read them.
const INLINE_DECODE_BYTES: usize = 64 * 1024;

/// Bytes of log files replay reads ahead of the one it applies (besides at most
/// `io_concurrency` files): many small commits in flight hide the store's latency, a few large
/// ones keep memory flat.
const LOG_BYTES_AHEAD: u64 = 16 * 1024 * 1024;

/// Starts reading one log file in the background; its action batches arrive, in order, through
/// the returned bounded channel (at most [`LOG_FILE_BATCHES_AHEAD`] batches buffered), so replay can apply them while
/// later files are still being decoded, and memory holds a few batches rather than whole files.
pub fn stream_log_file(
    location: &TableLocation,
    file: &LogFile,
    ctx: &ReplayContext,
) -> tokio::sync::mpsc::Receiver<DeltaResult<RecordBatch>> {
    let (tx, rx) = tokio::sync::mpsc::channel(LOG_FILE_BATCHES_AHEAD);
    let location = location.clone();
    let file = file.clone();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let is_parquet = match file.name.kind {
            LogFileKind::SinglePartCheckpoint | LogFileKind::MultiPartCheckpoint { .. } => true,
            LogFileKind::V2Checkpoint { parquet } => parquet,
            _ => false,
        };
        if is_parquet {
            match read_checkpoint_parquet_with(&location, &file.meta.location, Some(file.meta.size), &ctx).await {
                Ok(batches) => {
                    for b in batches {
                        if tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
            return;
        }
        let bytes = match location.read_bounded(&file.meta.location, Some(file.meta.size)).await {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        ctx.metrics.files.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.json_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let path = file.meta.location.to_string();
        let max = location.options().max_actions_per_commit;
        let tx_err = tx.clone();
        let options = ctx.options;
        if bytes.len() <= INLINE_DECODE_BYTES {
            // A small commit decodes right here: handing it to a blocking thread would cost more
            // in thread switches than the decoding (10,000 commits replayed from JSON).
            let mut batches = Vec::new();
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decode_commit_for_replay(&path, &bytes, max, options, |b| {
                    batches.push(b);
                    true
                })
            }));
            let result = match decoded {
                Ok(r) => r,
                // A decoder that panicked must not look like a file with fewer actions.
                Err(_) => Err(DeltaError::Internal(format!("decoding {} failed", file.meta.location))),
            };
            match result {
                Ok(()) => {
                    for b in batches {
                        if tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
            return;
        }
        let decode = tokio::task::spawn_blocking(move || {
            let result = decode_commit_for_replay(&path, &bytes, max, options, |b| tx.blocking_send(Ok(b)).is_ok());
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        if let Err(e) = decode.await {
            // A decoder that panicked must not look like a file with fewer actions.
            let _ = tx_err.send(Err(DeltaError::Internal(format!("decoding {} failed: {e}", file.meta.location)))).await;
        }
    });
    rx
}

/// The live state after replay.
#[derive(Debug, Default)]
pub struct ReplayState {
    pub protocol: Option<Protocol>,
    pub metadata: Option<Metadata>,
    pub txns: HashMap<String, AppTransaction>,
    pub domains: HashMap<String, DomainMetadata>,
    /// Live `add` actions as struct columns of [`add_fields`] (complete after
    /// [`ReplayState::finish`]).
    pub files: Vec<StructArray>,
    /// Small runs of live adds (a commit's few files) waiting to be joined into one array.
    small: Vec<StructArray>,
    /// `commitInfo.inCommitTimestamp` of the newest commit, if it has one.
    pub newest_in_commit_timestamp: Option<i64>,
    seen: hashbrown::HashSet<Box<str>>,
    txn_seen: HashSet<String>,
    saw_newest: bool,
}

fn str_at<'a>(s: &'a StructArray, name: &str, row: usize) -> Option<&'a str> {
    let c = s.column_by_name(name)?;
    let c = c.as_string_opt::<i32>()?;
    c.is_valid(row).then(|| c.value(row))
}

fn i64_at(s: &StructArray, name: &str, row: usize) -> Option<i64> {
    let c = s.column_by_name(name)?;
    let c = c.as_primitive_opt::<Int64Type>()?;
    c.is_valid(row).then(|| c.value(row))
}

fn i32_at(s: &StructArray, name: &str, row: usize) -> Option<i32> {
    let c = s.column_by_name(name)?;
    let c = c.as_primitive_opt::<Int32Type>()?;
    c.is_valid(row).then(|| c.value(row))
}

fn bool_at(s: &StructArray, name: &str, row: usize) -> Option<bool> {
    let c = s.column_by_name(name)?;
    let c = c.as_boolean_opt()?;
    c.is_valid(row).then(|| c.value(row))
}

fn string_list_at(s: &StructArray, name: &str, row: usize) -> Option<Vec<String>> {
    let c = s.column_by_name(name)?;
    let list = c.as_list_opt::<i32>()?;
    if list.is_null(row) {
        return None;
    }
    let values = list.value(row);
    let values = values.as_string_opt::<i32>()?;
    Some(values.iter().flatten().map(str::to_string).collect())
}

/// Reads a `map<string,string>` cell into pairs.
pub fn string_map_at(s: &StructArray, name: &str, row: usize) -> Option<HashMap<String, Option<String>>> {
    let c = s.column_by_name(name)?;
    map_cell(c.as_map_opt()?, row)
}

/// Reads one row of a `map<string,string>` array.
pub fn map_cell(m: &MapArray, row: usize) -> Option<HashMap<String, Option<String>>> {
    if m.is_null(row) {
        return None;
    }
    let entries = m.value(row);
    let keys = entries.column(0).as_string_opt::<i32>()?;
    let values = entries.column(1).as_string_opt::<i32>()?;
    Some((0..entries.len()).map(|i| (keys.value(i).to_string(), values.is_valid(i).then(|| values.value(i).to_string()))).collect())
}

fn protocol_at(s: &StructArray, row: usize) -> DeltaResult<Protocol> {
    let min_reader_version =
        i32_at(s, "minReaderVersion", row).ok_or_else(|| DeltaError::corrupt("protocol", "minReaderVersion missing"))?;
    let min_writer_version =
        i32_at(s, "minWriterVersion", row).ok_or_else(|| DeltaError::corrupt("protocol", "minWriterVersion missing"))?;
    Ok(Protocol {
        min_reader_version,
        min_writer_version,
        reader_features: string_list_at(s, "readerFeatures", row),
        writer_features: string_list_at(s, "writerFeatures", row),
    })
}

fn metadata_at(s: &StructArray, row: usize) -> DeltaResult<Metadata> {
    let format = s.column_by_name("format").and_then(|f| f.as_struct_opt()).filter(|f| f.is_valid(row));
    Ok(Metadata {
        id: str_at(s, "id", row).unwrap_or_default().to_string(),
        name: str_at(s, "name", row).map(str::to_string),
        description: str_at(s, "description", row).map(str::to_string),
        format: Format {
            provider: format.and_then(|f| str_at(f, "provider", row)).unwrap_or("parquet").to_string(),
            options: format.and_then(|f| string_map_at(f, "options", row)).unwrap_or_default(),
        },
        schema_string: str_at(s, "schemaString", row).unwrap_or_default().to_string(),
        partition_columns: string_list_at(s, "partitionColumns", row).unwrap_or_default(),
        created_time: i64_at(s, "createdTime", row),
        configuration: string_map_at(s, "configuration", row).unwrap_or_default(),
    })
}

/// Whether a relative path is already in the canonical form the URL join would produce, so that
/// the replay key can be built without parsing (the common case for every writer).
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~/=".contains(&b))
        && !path.split('/').any(|seg| seg == "." || seg == ".." || seg.is_empty())
}

impl ReplayState {
    /// The replay identity of a file: canonical path (relative to the root when inside it) plus
    /// the deletion vector's unique id.
    fn file_key(location: &TableLocation, path: &str, dv: Option<(&StructArray, usize)>) -> DeltaResult<Box<str>> {
        let mut key = if is_plain_relative(path) {
            path.to_string()
        } else {
            let url = location.canonical_url(PathKind::Data, path)?;
            let root = location.root_url().as_str();
            match url.as_str().strip_prefix(root) {
                Some(rel) => rel.to_string(),
                None => url.to_string(),
            }
        };
        if let Some((dv, row)) = dv.filter(|(dv, row)| dv.is_valid(*row)) {
            key.push('\u{0}');
            key.push_str(str_at(dv, "storageType", row).unwrap_or(""));
            key.push_str(str_at(dv, "pathOrInlineDv", row).unwrap_or(""));
            if let Some(off) = i32_at(dv, "offset", row) {
                key.push('@');
                key.push_str(&off.to_string());
            }
        }
        Ok(key.into_boxed_str())
    }

    /// Applies one batch of actions, newer than every batch applied after it.
    pub fn apply(&mut self, location: &TableLocation, batch: &RecordBatch, is_checkpoint: bool) -> DeltaResult<()> {
        let n = batch.num_rows();
        if !is_checkpoint && !self.saw_newest {
            if let Some(ci) = action(batch, "commitInfo") {
                if let Some(row) = (0..n).find(|r| ci.is_valid(*r)) {
                    self.newest_in_commit_timestamp = i64_at(ci, "inCommitTimestamp", row);
                }
            }
        }
        if let Some(p) = action(batch, "protocol").filter(|_| self.protocol.is_none()) {
            if let Some(row) = (0..n).find(|r| p.is_valid(*r)) {
                self.protocol = Some(protocol_at(p, row)?);
            }
        }
        if let Some(m) = action(batch, "metaData").filter(|_| self.metadata.is_none()) {
            if let Some(row) = (0..n).find(|r| m.is_valid(*r)) {
                self.metadata = Some(metadata_at(m, row)?);
            }
        }
        if let Some(txn) = action(batch, "txn").filter(|t| t.null_count() < n) {
            for row in (0..n).filter(|r| txn.is_valid(*r)) {
                let Some(app_id) = str_at(txn, "appId", row) else { continue };
                if self.txn_seen.insert(app_id.to_string()) {
                    let version = i64_at(txn, "version", row).unwrap_or(-1);
                    let last_updated = i64_at(txn, "lastUpdated", row);
                    self.txns.insert(app_id.to_string(), AppTransaction { app_id: app_id.to_string(), version, last_updated });
                }
            }
        }
        if let Some(dm) = action(batch, "domainMetadata").filter(|d| d.null_count() < n) {
            for row in (0..n).filter(|r| dm.is_valid(*r)) {
                let Some(domain) = str_at(dm, "domain", row) else { continue };
                if !self.domains.contains_key(domain) {
                    self.domains.insert(
                        domain.to_string(),
                        DomainMetadata {
                            domain: domain.to_string(),
                            configuration: str_at(dm, "configuration", row).unwrap_or_default().to_string(),
                            removed: bool_at(dm, "removed", row).unwrap_or(false),
                        },
                    );
                }
            }
        }
        if let Some(remove) = action(batch, "remove").filter(|r| !is_checkpoint && r.null_count() < n) {
            let paths = remove.column(0).as_string::<i32>();
            let dvs = remove.column_by_name("deletionVector").and_then(|c| c.as_struct_opt());
            for row in (0..n).filter(|r| remove.is_valid(*r) && paths.is_valid(*r)) {
                let key = Self::file_key(location, paths.value(row), dvs.map(|d| (d, row)))?;
                self.seen.insert(key);
            }
        }
        if let Some(add) = action(batch, "add").filter(|a| a.null_count() < n) {
            let paths = add.column(add_col::PATH).as_string::<i32>();
            let dvs = add.column(add_col::DELETION_VECTOR).as_struct();
            let mut keep = vec![false; n];
            if !is_checkpoint {
                self.seen.reserve(n - add.null_count());
            }
            for row in (0..n).filter(|r| add.is_valid(*r) && paths.is_valid(*r)) {
                if is_checkpoint && self.seen.is_empty() {
                    // No newer commit removed or re-added anything: every checkpoint add lives,
                    // and its key is never needed.
                    keep[row] = true;
                    continue;
                }
                let key = Self::file_key(location, paths.value(row), Some((dvs, row)))?;
                if is_checkpoint {
                    // Nothing older than a checkpoint; its adds are already reconciled, but a
                    // newer commit may have removed them.
                    keep[row] = !self.seen.contains(&key);
                } else {
                    keep[row] = self.seen.insert(key);
                }
            }
            if keep.iter().all(|k| *k) {
                // Every row is a live add (an add-only batch): kept as it is, not copied.
                self.keep(add.clone())?;
            } else if keep.iter().any(|k| *k) {
                let mask = BooleanArray::from(keep);
                let kept = filter(add, &mask)?;
                self.keep(kept.as_struct().clone())?;
            }
        }
        if !is_checkpoint {
            self.saw_newest = true;
        }
        Ok(())
    }

    /// Keeps live adds. A log of many small commits would otherwise hold one array (and its
    /// two dozen buffers) per commit: runs under [`SMALL_RUN_ROWS`] rows are joined into arrays
    /// of about that size.
    fn keep(&mut self, adds: StructArray) -> DeltaResult<()> {
        if adds.len() >= SMALL_RUN_ROWS {
            self.join_small()?;
            self.files.push(adds);
            return Ok(());
        }
        self.small.push(adds);
        if self.small.iter().map(|a| a.len()).sum::<usize>() >= SMALL_RUN_ROWS {
            self.join_small()?;
        }
        Ok(())
    }

    fn join_small(&mut self) -> DeltaResult<()> {
        match self.small.len() {
            0 => {}
            1 => self.files.append(&mut self.small),
            _ => {
                let parts: Vec<&dyn Array> = self.small.iter().map(|a| a as &dyn Array).collect();
                let joined = arrow::compute::concat(&parts)?;
                self.small.clear();
                self.files.push(joined.as_struct().clone());
            }
        }
        Ok(())
    }

    /// Completes [`ReplayState::files`] once every batch is applied.
    pub fn finish(&mut self) -> DeltaResult<()> {
        self.join_small()
    }

    /// Number of live files.
    pub fn num_files(&self) -> usize {
        self.files.iter().chain(&self.small).map(|f| f.len()).sum()
    }
}

/// Replays a log segment into its live state.
pub async fn replay(location: &TableLocation, segment: &LogSegment) -> DeltaResult<ReplayState> {
    replay_with(location, segment, &ReplayContext::default()).await
}

/// [`replay`] with options (what to decode) and counters of what it read.
pub async fn replay_with(location: &TableLocation, segment: &LogSegment, ctx: &ReplayContext) -> DeltaResult<ReplayState> {
    let mut state = ReplayState::default();
    // Newest first: commits (with compactions standing in for the runs they cover), then the
    // checkpoint.
    let mut units: Vec<LogFile> = Vec::new();
    let mut i = 0;
    let commits = &segment.commits;
    while i < commits.len() {
        let v = commits[i].name.version;
        if let Some(c) = segment.compactions.iter().find(|c| c.name.version == v) {
            let end = compaction_end(c);
            units.push(c.clone());
            while i < commits.len() && commits[i].name.version <= end {
                i += 1;
            }
        } else {
            units.push(commits[i].clone());
            i += 1;
        }
    }
    units.reverse();
    // Newest first, applied batch by batch while the next files read and decode: up to
    // `io_concurrency` files and LOG_BYTES_AHEAD bytes ahead (always at least one file).
    let ahead = location.options().io_concurrency.max(1);
    let mut pending: std::collections::VecDeque<(u64, tokio::sync::mpsc::Receiver<DeltaResult<RecordBatch>>)> =
        std::collections::VecDeque::new();
    let mut pending_bytes = 0u64;
    let mut next = 0usize;
    for _ in 0..units.len() {
        while next < units.len() && pending.len() <= ahead && (pending.is_empty() || pending_bytes < LOG_BYTES_AHEAD) {
            let size = units[next].meta.size;
            pending.push_back((size, stream_log_file(location, &units[next], ctx)));
            pending_bytes += size;
            next += 1;
        }
        let Some((size, mut rx)) = pending.pop_front() else { break };
        pending_bytes -= size;
        while let Some(batch) = rx.recv().await {
            state.apply(location, &batch?, false)?;
        }
    }
    let concurrency = location.options().io_concurrency.max(1);
    if let Some(cp) = &segment.checkpoint {
        // Every part reads at once; each hands over its batches through its own bounded channel.
        let parts: Vec<_> = cp.parts.iter().map(|f| stream_log_file(location, f, ctx)).collect();
        let mut sidecars: Vec<String> = Vec::new();
        for mut rx in parts {
            while let Some(batch) = rx.recv().await {
                let batch = batch.map_err(|e| DeltaError::InvalidCheckpoint { version: cp.version, reason: e.to_string() })?;
                if let Some(sc) = action(&batch, "sidecar") {
                    let paths = sc.column(0).as_string::<i32>();
                    for row in (0..batch.num_rows()).filter(|r| sc.is_valid(*r) && paths.is_valid(*r)) {
                        sidecars.push(paths.value(row).to_string());
                    }
                }
                state.apply(location, &batch, true)?;
            }
        }
        let reads = sidecars.iter().map(|raw| sidecar_store_path(location, raw)).collect::<DeltaResult<Vec<_>>>()?;
        let mut sidecar_batches = futures::stream::iter(reads.into_iter().map(|p| {
            let location = location.clone();
            let ctx = ctx.clone();
            async move { read_checkpoint_parquet_with(&location, &p, None, &ctx).await }
        }))
        .buffered(concurrency);
        while let Some(batches) = sidecar_batches.next().await {
            for batch in batches.map_err(|e| DeltaError::InvalidCheckpoint { version: cp.version, reason: format!("sidecar: {e}") })? {
                state.apply(location, &batch, true)?;
            }
        }
    }
    state.finish()?;
    Ok(state)
}

/// Where a `sidecar` action's path (a file name under `_delta_log/_sidecars/`, or a URI) points.
pub(crate) fn sidecar_store_path(location: &TableLocation, raw: &str) -> DeltaResult<Path> {
    let sidecar_root = location.root_url().join("_delta_log/_sidecars/").map_err(|e| DeltaError::Internal(e.to_string()))?;
    let url = sidecar_root.join(raw).map_err(|e| DeltaError::InvalidPath {
        kind: PathKind::Sidecar,
        path: raw.to_string(),
        reason: e.to_string(),
    })?;
    Ok(location.resolve_url(PathKind::Sidecar, raw, url)?.store_path)
}

/// The store paths of the sidecars one checkpoint file references.
/// A parquet checkpoint is read for its `sidecar.path` column alone.
pub(crate) async fn sidecar_paths(location: &TableLocation, file: &LogFile) -> DeltaResult<Vec<Path>> {
    let mut raw: Vec<String> = Vec::new();
    if matches!(file.name.kind, LogFileKind::V2Checkpoint { parquet: false }) {
        let mut rx = stream_log_file(location, file, &ReplayContext::default());
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            let Some(sc) = action(&batch, "sidecar") else { continue };
            let paths = sc.column(0).as_string::<i32>();
            raw.extend((0..batch.num_rows()).filter(|r| sc.is_valid(*r) && paths.is_valid(*r)).map(|r| paths.value(r).to_string()));
        }
    } else {
        let path = &file.meta.location;
        let reader = crate::log::file_reader::StoreFileReader::new(location.store().clone(), path.clone(), Some(file.meta.size));
        let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| DeltaError::parquet(path, e))?;
        let descr = builder.parquet_schema();
        let leaves: Vec<usize> = (0..descr.num_columns()).filter(|i| descr.column(*i).path().parts() == ["sidecar", "path"]).collect();
        if leaves.is_empty() {
            return Ok(Vec::new());
        }
        let mask = ProjectionMask::leaves(descr, leaves);
        let batches: Vec<RecordBatch> = builder
            .with_projection(mask)
            .build()
            .map_err(|e| DeltaError::parquet(path, e))?
            .try_collect()
            .await
            .map_err(|e| DeltaError::parquet(path, e))?;
        for batch in batches {
            let sc = batch.column(0).as_struct();
            let paths = sc.column(0).as_string::<i32>();
            raw.extend((0..batch.num_rows()).filter(|r| sc.is_valid(*r) && paths.is_valid(*r)).map(|r| paths.value(r).to_string()));
        }
    }
    raw.iter().map(|r| sidecar_store_path(location, r)).collect()
}

/// Builds a `RecordBatch` from the live add columns (for inspection and the CLI).
pub fn files_batch(files: &[StructArray]) -> DeltaResult<RecordBatch> {
    let schema = Arc::new(Schema::new(add_fields()));
    let batches = files.iter().map(|s| RecordBatch::try_new(schema.clone(), s.columns().to_vec())).collect::<Result<Vec<_>, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_actions_and_ignores_unknown_ones() {
        let log = br#"{"commitInfo":{"timestamp":1,"operation":"WRITE","whatever":{"x":1}}}
{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],"configuration":{"a":"b"},"createdTime":1}}
{"unknownAction":{"a":1}}
{"add":{"path":"a.parquet","partitionValues":{"p":null,"q":1},"size":10,"modificationTime":1,"dataChange":true,"newField":3}}
"#;
        let batches = decode_commit_json("t", log, 100).unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 5);
    }

    /// The replay decoder hands over the non-add lines first (full layout), then the add lines
    /// in an add-only batch laid out as `add_fields`, with the same adds as the plain decoder;
    /// without statistics the `stats` column is null. Lines written with spaces still decode
    /// (through the full layout).
    #[test]
    fn replay_decoder_splits_adds_from_other_actions() {
        let log = br#"{"commitInfo":{"timestamp":1,"operation":"WRITE"}}
{"add":{"path":"a.parquet","partitionValues":{"p":"1"},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":3}"}}
{"remove":{"path":"old.parquet","deletionTimestamp":5,"dataChange":true}}
{"add":{"path":"b.parquet","partitionValues":{},"size":20,"modificationTime":2,"dataChange":true,"stats":"{\"numRecords\":4}"}}
{ "add": {"path":"c.parquet","partitionValues":{},"size":30,"modificationTime":3,"dataChange":true}}"#;
        for stats in [true, false] {
            let mut batches = Vec::new();
            decode_commit_for_replay("t", log, 100, ReplayOptions { stats }, |b| {
                batches.push(b);
                true
            })
            .unwrap();
            assert_eq!(batches[0].num_rows(), 3, "commitInfo, remove and the spaced add");
            assert!(batches[0].column_by_name("remove").is_some());
            // The add lines (two runs here), add-only.
            assert!(batches[1..].iter().all(|b| b.num_columns() == 1));
            let add_batch = arrow::compute::concat_batches(&batches[1].schema(), &batches[1..]).unwrap();
            let adds = add_batch.column(0).as_struct();
            assert_eq!(adds.fields(), &add_fields());
            let paths: Vec<&str> = adds.column(add_col::PATH).as_string::<i32>().iter().flatten().collect();
            assert_eq!(paths, ["a.parquet", "b.parquet"]);
            let stats_col = adds.column(add_col::STATS).as_string::<i32>();
            match stats {
                true => assert_eq!(stats_col.iter().collect::<Vec<_>>(), [Some(r#"{"numRecords":3}"#), Some(r#"{"numRecords":4}"#)]),
                false => assert_eq!(stats_col.null_count(), 2),
            }
        }
        // Optional fields are decoded when a line names them (however it spaces the key) and
        // are null elsewhere; a key written with a \u escape still decodes.
        let log = br#"{"add":{"path":"a","partitionValues":{},"size":1,"modificationTime":1,"dataChange":true}}
{"add":{"path":"b","partitionValues":{},"size":2,"modificationTime":1,"dataChange":true,"deletionVector" : {"storageType":"i","pathOrInlineDv":"wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L","offset":1,"sizeInBytes":36,"cardinality":2},"tags":{"k":"v"},"baseRowId":7}}"#;
        let escaped = br#"{"add":{"path":"c","partitionValues":{},"size":3,"modificationTime":1,"dataChange":true,"base\u0052owId":9}}"#;
        for (log, expect) in [(&log[..], [None, Some(7)]), (&escaped[..], [Some(9), None])] {
            let mut adds = Vec::new();
            decode_commit_for_replay("t", log, 100, ReplayOptions { stats: false }, |b| {
                adds.push(b);
                true
            })
            .unwrap();
            let add = adds[0].column(0).as_struct();
            assert_eq!(add.fields(), &add_fields());
            let row_ids: Vec<Option<i64>> = add.column_by_name("baseRowId").unwrap().as_primitive::<Int64Type>().iter().collect();
            assert_eq!(row_ids, expect[..add.len()].to_vec());
        }
        let mut adds = Vec::new();
        decode_commit_for_replay("t", log, 100, ReplayOptions::default(), |b| {
            adds.push(b);
            true
        })
        .unwrap();
        let add = adds[0].column(0).as_struct();
        let dvs = add.column(add_col::DELETION_VECTOR).as_struct();
        assert_eq!((dvs.is_valid(0), dvs.is_valid(1)), (false, true));
        assert_eq!(crate::read::dv::dv_at(dvs, 1).map(|d| d.cardinality), Some(2));
        assert!(map_cell(add.column_by_name("tags").unwrap().as_map(), 1).is_some_and(|t| t.len() == 1));

        // Corrupt add lines are still corrupt.
        let bad = b"{\"add\":{\"path\":\"a\",\"size\":\"big\"}}\n";
        assert!(matches!(
            decode_commit_for_replay("t", bad, 100, ReplayOptions::default(), |_| true),
            Err(DeltaError::CorruptLog { .. })
        ));
    }

    #[test]
    fn corrupt_json_is_a_typed_error() {
        for bad in [&b"{\"add\":"[..], b"not json", b"{\"add\":{\"size\":\"big\"}}"] {
            assert!(matches!(decode_commit_json("t", bad, 100), Err(DeltaError::CorruptLog { .. })));
        }
    }

    #[test]
    fn action_cap_applies() {
        let log = b"{}\n{}\n{}\n{}\n";
        assert!(matches!(decode_commit_json("t", log, 2), Err(DeltaError::LimitExceeded { .. })));
    }

    #[test]
    fn plain_relative_paths() {
        assert!(is_plain_relative("a=1/part-0000.snappy.parquet"));
        assert!(!is_plain_relative("a%20b/x"));
        assert!(!is_plain_relative("../x"));
        assert!(!is_plain_relative("/x"));
        assert!(!is_plain_relative("a//b"));
    }
}
