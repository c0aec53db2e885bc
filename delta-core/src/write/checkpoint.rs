//! Writing checkpoints, `_last_checkpoint` and version checksum (`.crc`) files.
//!
//! A classic checkpoint at version v holds the protocol, metadata, application transactions,
//! domain metadata and every live `add` of the snapshot at v (the adds are the snapshot's Arrow
//! columns, written as they are). It is written with one atomic `put` under its final name, so a
//! reader never sees a torn file from this writer; a torn file from elsewhere is skipped by
//! [`crate::read::snapshot::Snapshot::load`]. `_last_checkpoint` is written after the checkpoint and is only ever a
//! hint. Tables with the v2Checkpoint feature get UUID-named V2 spec checkpoints whose file actions
//! live in sidecar files (see [`write_checkpoint`]); log cleanup deletes the sidecars no kept
//! checkpoint references once they are a day old.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StructArray};
use arrow::datatypes::{Field, Schema};
use parquet::arrow::ArrowWriter;
use serde_json::json;

use crate::error::{DeltaError, DeltaResult};
use crate::log::replay::decode_commit_json;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::{commit_bytes, Action};
use crate::table::protocol::{action_col, action_schema, TableFeature};

/// Columns of a classic checkpoint (a subset of the replay layout).
const CHECKPOINT_COLUMNS: [usize; 6] =
    [action_col::ADD, action_col::REMOVE, action_col::METADATA, action_col::PROTOCOL, action_col::TXN, action_col::DOMAIN_METADATA];

/// The `stats_parsed` struct type: numRecords, and min/max/nullCount over the data columns
/// (physical names), for checkpoints with `delta.checkpoint.writeStatsAsStruct`.
fn stats_struct_type(snapshot: &Snapshot) -> DeltaResult<arrow::datatypes::DataType> {
    use crate::table::schema::{DataType, StructType};
    use arrow::datatypes::{DataType as A, Fields};
    let mode = snapshot.column_mapping_mode();
    let parts = snapshot.partition_columns();
    fn bounds(s: &StructType, mode: crate::table::schema::ColumnMappingMode) -> DeltaResult<Vec<Field>> {
        let mut out = Vec::new();
        for f in &s.fields {
            let t = match &f.data_type {
                DataType::Struct(inner) => A::Struct(Fields::from(bounds(inner, mode)?)),
                DataType::Primitive(p)
                    if !matches!(p, crate::table::schema::PrimitiveType::Binary | crate::table::schema::PrimitiveType::Boolean) =>
                {
                    f.data_type.to_arrow(false)?
                }
                _ => continue,
            };
            out.push(Field::new(f.physical_name(mode), t, true));
        }
        Ok(out)
    }
    fn counts(s: &StructType, mode: crate::table::schema::ColumnMappingMode) -> Vec<Field> {
        s.fields
            .iter()
            .map(|f| match &f.data_type {
                DataType::Struct(inner) => Field::new(f.physical_name(mode), A::Struct(Fields::from(counts(inner, mode))), true),
                _ => Field::new(f.physical_name(mode), A::Int64, true),
            })
            .collect()
    }
    let data = StructType {
        fields: snapshot.schema().fields.iter().filter(|f| !parts.iter().any(|p| p.eq_ignore_ascii_case(&f.name))).cloned().collect(),
    };
    Ok(A::Struct(Fields::from(vec![
        Field::new("numRecords", A::Int64, true),
        Field::new("minValues", A::Struct(Fields::from(bounds(&data, mode)?)), true),
        Field::new("maxValues", A::Struct(Fields::from(bounds(&data, mode)?)), true),
        Field::new("nullCount", A::Struct(Fields::from(counts(&data, mode))), true),
    ])))
}

/// Decodes each file's JSON statistics into the `stats_parsed` struct (null where absent or
/// unreadable).
fn parse_stats(stats: &arrow::array::StringArray, t: &arrow::datatypes::DataType) -> DeltaResult<ArrayRef> {
    let field = Arc::new(Field::new("stats_parsed", t.clone(), true));
    let mut decoder = arrow::json::ReaderBuilder::new_with_field(field)
        .with_coerce_primitive(true)
        .with_batch_size(stats.len().max(1))
        .build_decoder()?;
    let mut lines = Vec::with_capacity(stats.len() * 64);
    for i in 0..stats.len() {
        let v = if stats.is_valid(i) { stats.value(i) } else { "null" };
        // A corrupt stats string must not fail the checkpoint: write null for it.
        let v = if serde_json::from_str::<serde_json::Value>(v).is_ok_and(|j| j.is_object()) { v } else { "null" };
        lines.extend_from_slice(v.as_bytes());
        lines.push(b'\n');
    }
    decoder.decode(&lines)?;
    let batch = decoder.flush()?.ok_or_else(|| DeltaError::Internal("no stats decoded".into()))?;
    Ok(batch.column(0).clone())
}

/// Most file actions one sidecar of a V2 checkpoint holds (a million adds make a sidecar of
/// roughly 100 MiB of parquet; readers fetch sidecars in parallel).
const SIDECAR_FILE_ACTIONS: usize = 1_000_000;

/// How a checkpoint lays out the `add` column: JSON stats kept or nulled, parsed stats added.
struct AddLayout {
    as_json: bool,
    stats_type: Option<arrow::datatypes::DataType>,
}

impl AddLayout {
    fn of(snapshot: &Snapshot) -> DeltaResult<Self> {
        if !snapshot.has_stats() {
            // Written from it, the checkpoint would silently drop every file's statistics.
            return Err(DeltaError::WriteRefused { reason: "a snapshot loaded without statistics cannot be checkpointed".into() });
        }
        let meta = snapshot.metadata();
        let as_struct = meta.bool_property("delta.checkpoint.writeStatsAsStruct", false);
        Ok(AddLayout {
            as_json: meta.bool_property("delta.checkpoint.writeStatsAsJson", true),
            stats_type: if as_struct { Some(stats_struct_type(snapshot)?) } else { None },
        })
    }

    /// The action schema projected to `columns`, with `stats_parsed` inside `add` when asked.
    fn schema(&self, columns: &[usize]) -> DeltaResult<Arc<Schema>> {
        let mut fields: Vec<Field> = action_schema().project(columns)?.fields().iter().map(|f| f.as_ref().clone()).collect();
        if let Some(t) = &self.stats_type {
            for f in fields.iter_mut().filter(|f| f.name() == "add") {
                let arrow::datatypes::DataType::Struct(add_fields) = f.data_type() else {
                    return Err(DeltaError::Internal("add is a struct".into()));
                };
                let mut inner: Vec<Field> = add_fields.iter().map(|f| f.as_ref().clone()).collect();
                inner.push(Field::new("stats_parsed", t.clone(), true));
                *f = Field::new("add", arrow::datatypes::DataType::Struct(inner.into()), true);
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// One batch of `schema` whose `add` column holds `files` (every other column null).
    fn file_batch(&self, schema: &Arc<Schema>, files: &StructArray) -> DeltaResult<RecordBatch> {
        use arrow::array::AsArray;
        let n = files.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            if f.name() != "add" {
                columns.push(new_null_array(f.data_type(), n));
                continue;
            }
            let mut add_columns = files.columns().to_vec();
            if !self.as_json {
                add_columns[crate::table::protocol::add_col::STATS] = new_null_array(&arrow::datatypes::DataType::Utf8, n);
            }
            if let Some(t) = &self.stats_type {
                add_columns.push(parse_stats(files.column(crate::table::protocol::add_col::STATS).as_string::<i32>(), t)?);
            }
            let arrow::datatypes::DataType::Struct(fs) = f.data_type() else {
                return Err(DeltaError::Internal("add is a struct".into()));
            };
            columns.push(Arc::new(StructArray::try_new(fs.clone(), add_columns, None)?));
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// The snapshot's non-file actions (protocol, metadata, application transactions, domain
/// metadata) plus `extra` action lines, as batches of `schema` (`columns` of the action schema).
fn small_action_batches(
    snapshot: &Snapshot,
    schema: &Arc<Schema>,
    columns: &[usize],
    extra: &[serde_json::Value],
) -> DeltaResult<Vec<RecordBatch>> {
    let mut small = vec![Action::Protocol(snapshot.protocol().clone()), Action::Metadata(snapshot.metadata().clone())];
    let mut txns: Vec<_> = snapshot.app_transactions().values().cloned().collect();
    txns.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    small.extend(txns.into_iter().map(Action::Txn));
    let mut domains: Vec<_> = snapshot.domain_metadata().cloned().collect();
    domains.sort_by(|a, b| a.domain.cmp(&b.domain));
    small.extend(domains.into_iter().map(Action::DomainMetadata));
    let mut bytes = commit_bytes(&small)?;
    for line in extra {
        bytes.extend_from_slice(line.to_string().as_bytes());
        bytes.push(b'\n');
    }
    let mut out = Vec::new();
    for b in decode_commit_json("checkpoint", &bytes, u64::MAX)? {
        let b = b.project(columns)?;
        let cols: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| if c.data_type() == f.data_type() { c.clone() } else { new_null_array(f.data_type(), b.num_rows()) })
            .collect();
        out.push(RecordBatch::try_new(schema.clone(), cols)?);
    }
    Ok(out)
}

/// The batches of a classic (V1 spec) checkpoint: one for the small actions, one per file column
/// of the snapshot.
pub fn checkpoint_batches(snapshot: &Snapshot) -> DeltaResult<Vec<RecordBatch>> {
    let layout = AddLayout::of(snapshot)?;
    let schema = layout.schema(&CHECKPOINT_COLUMNS)?;
    let mut out = small_action_batches(snapshot, &schema, &CHECKPOINT_COLUMNS, &[])?;
    for files in snapshot.file_columns() {
        out.push(layout.file_batch(&schema, files)?);
    }
    Ok(out)
}

fn encode_parquet(schema: Arc<Schema>, batches: &[RecordBatch]) -> DeltaResult<Vec<u8>> {
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| DeltaError::parquet("checkpoint", e))?;
    for b in batches {
        writer.write(b).map_err(|e| DeltaError::parquet("checkpoint", e))?;
    }
    writer.into_inner().map_err(|e| DeltaError::parquet("checkpoint", e))
}

/// The snapshot's file actions cut into groups of at most `max` (slices, no copies).
fn sidecar_groups(snapshot: &Snapshot, max: usize) -> Vec<Vec<StructArray>> {
    let max = max.max(1);
    let mut groups = Vec::new();
    let mut current: Vec<StructArray> = Vec::new();
    let mut rows = 0usize;
    for files in snapshot.file_columns() {
        let mut offset = 0;
        while offset < files.len() {
            let take = (max - rows).min(files.len() - offset);
            current.push(files.slice(offset, take));
            rows += take;
            offset += take;
            if rows == max {
                groups.push(std::mem::take(&mut current));
                rows = 0;
            }
        }
    }
    if rows > 0 {
        groups.push(current);
    }
    groups
}

/// Writes a checkpoint of `snapshot`, then `_last_checkpoint`.
///
/// A table without v2Checkpoint gets a classic checkpoint. A table with it gets a UUID-named
/// V2 spec checkpoint: the file actions go to sidecar parquet files under `_delta_log/_sidecars`
/// (at most `SIDECAR_FILE_ACTIONS` each), written first; the top-level parquet file holds the
/// protocol, metadata, transactions, domain metadata, its `checkpointMetadata` and one `sidecar`
/// action per sidecar. Until the top-level file exists no reader sees the sidecars, and racing
/// writers never share a name.
pub async fn write_checkpoint(snapshot: &Snapshot) -> DeltaResult<()> {
    write_checkpoint_with(snapshot, SIDECAR_FILE_ACTIONS).await
}

async fn write_checkpoint_with(snapshot: &Snapshot, sidecar_file_actions: usize) -> DeltaResult<()> {
    let location = snapshot.location();
    let v2 = snapshot.protocol().has_feature(&TableFeature::V2Checkpoint);
    let (bytes, actions, name) = if v2 {
        let layout = AddLayout::of(snapshot)?;
        let file_schema = layout.schema(&[action_col::ADD, action_col::REMOVE])?;
        let mut extra = vec![json!({"checkpointMetadata": {"version": snapshot.version(), "tags": {}}})];
        let mut actions = 0usize;
        for group in sidecar_groups(snapshot, sidecar_file_actions) {
            let batches = group.iter().map(|files| layout.file_batch(&file_schema, files)).collect::<DeltaResult<Vec<_>>>()?;
            actions += batches.iter().map(|b| b.num_rows()).sum::<usize>();
            let bytes = encode_parquet(file_schema.clone(), &batches)?;
            let name = format!("{}.parquet", uuid::Uuid::new_v4());
            let size = bytes.len();
            location.put(&location.log_dir().join("_sidecars").join(name.as_str()), bytes).await?;
            extra.push(json!({"sidecar": {
                "path": name,
                "sizeInBytes": size,
                "modificationTime": chrono::Utc::now().timestamp_millis(),
                "tags": {},
            }}));
        }
        let columns = [
            action_col::METADATA,
            action_col::PROTOCOL,
            action_col::TXN,
            action_col::DOMAIN_METADATA,
            action_col::CHECKPOINT_METADATA,
            action_col::SIDECAR,
        ];
        let schema = layout.schema(&columns)?;
        let batches = small_action_batches(snapshot, &schema, &columns, &extra)?;
        actions += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        (encode_parquet(schema, &batches)?, actions, format!("{:020}.checkpoint.{}.parquet", snapshot.version(), uuid::Uuid::new_v4()))
    } else {
        let batches = checkpoint_batches(snapshot)?;
        let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(Schema::new(Vec::<Field>::new())));
        let rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
        (encode_parquet(schema, &batches)?, rows, format!("{:020}.checkpoint.parquet", snapshot.version()))
    };
    let size = bytes.len();
    location.put(&location.log_path(&name), bytes).await?;
    let hint = json!({"version": snapshot.version(), "size": actions, "sizeInBytes": size, "numOfAddFiles": snapshot.num_files()});
    location.put(&location.log_path("_last_checkpoint"), hint.to_string().into_bytes()).await?;
    Ok(())
}

/// Writes the version checksum file of `snapshot` (if none exists).
pub async fn write_checksum(snapshot: &Snapshot, txn_id: Option<&str>) -> DeltaResult<()> {
    let mut crc = json!({
        "tableSizeBytes": snapshot.total_size_bytes(),
        "numFiles": snapshot.num_files(),
        "numMetadata": 1,
        "numProtocol": 1,
        "metadata": snapshot.metadata(),
        "protocol": snapshot.protocol(),
        "setTransactions": snapshot.app_transactions().values().collect::<Vec<_>>(),
        "domainMetadata": snapshot.domain_metadata().collect::<Vec<_>>(),
    });
    if let Some(t) = txn_id {
        crc["txnId"] = json!(t);
    }
    let location = snapshot.location();
    let path = location.log_path(&format!("{:020}.crc", snapshot.version()));
    match location.put_if_absent(&path, crc.to_string().into_bytes()).await {
        Ok(()) | Err(DeltaError::ObjectStore { source: object_store::Error::AlreadyExists { .. } }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// After a commit at `version`: the checksum file, and a checkpoint every
/// `delta.checkpointInterval` (default 10) versions. Failures here never undo the commit: callers
/// report them beside the committed version, never instead of it.
pub async fn post_commit(table: &Table, version: i64) -> DeltaResult<()> {
    let snapshot = table.snapshot_at(version).await?;
    write_checksum(&snapshot, None).await?;
    let interval: i64 =
        snapshot.metadata().property("delta.checkpointInterval").and_then(|v| v.parse().ok()).filter(|v| *v > 0).unwrap_or(10);
    if version > 0 && version % interval == 0 {
        write_checkpoint(&snapshot).await?;
        if snapshot.metadata().bool_property("delta.enableExpiredLogCleanup", true) {
            cleanup_expired_logs(&snapshot, chrono::Utc::now().timestamp_millis()).await?;
        }
    }
    Ok(())
}

impl Table {
    /// Writes a checkpoint of the latest version now.
    pub async fn checkpoint(&self) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        write_checkpoint(&snapshot).await?;
        Ok(snapshot.version())
    }
}

/// Parses a Delta interval property (`interval 30 days`, `1 hour`, `0 seconds`) to milliseconds.
pub fn parse_interval_ms(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("interval").unwrap_or(&lower).trim();
    let mut parts = rest.split_whitespace();
    let n: i64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("days");
    if parts.next().is_some() || n < 0 {
        return None;
    }
    let ms = match unit.trim_end_matches('s') {
        "millisecond" => 1,
        "second" => 1_000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms)
}

/// Removes expired log files (`delta.logRetentionDuration`, default 30 days): commits, checksums,
/// compactions and checkpoints of versions before the newest checkpoint that is itself older than
/// the cutoff, so the table stays readable from that checkpoint. Tables with
/// checkpointProtection are left alone. Returns the number of files deleted.
pub async fn cleanup_expired_logs(snapshot: &Snapshot, now_ms: i64) -> DeltaResult<usize> {
    if snapshot.protocol().has_feature(&TableFeature::CheckpointProtection) {
        return Ok(0);
    }
    let retention = snapshot.metadata().property("delta.logRetentionDuration").and_then(parse_interval_ms).unwrap_or(30 * 86_400_000);
    let cutoff = now_ms.saturating_sub(retention);
    let location = snapshot.location();
    let listing = crate::log::segment::LogSegment::full_listing(location).await?;
    let expired = |f: &crate::log::segment::LogFile| f.meta.last_modified.timestamp_millis() <= cutoff;
    // The newest complete checkpoint, at or before this snapshot, that is past the cutoff.
    let Some(keep_from) = listing
        .checkpoints
        .range(..=snapshot.version())
        .rev()
        .filter(|(v, files)| files.iter().all(expired) && listing.complete_checkpoint(**v).is_some())
        .map(|(v, _)| *v)
        .next()
    else {
        return Ok(0);
    };
    let mut doomed = Vec::new();
    doomed.extend(listing.commits.range(..keep_from).map(|(_, f)| f).filter(|f| expired(f)).map(|f| f.meta.location.clone()));
    doomed.extend(listing.checksums.range(..keep_from).map(|(_, f)| f).filter(|f| expired(f)).map(|f| f.meta.location.clone()));
    doomed.extend(
        listing.checkpoints.range(..keep_from).flat_map(|(_, fs)| fs.iter()).filter(|f| expired(f)).map(|f| f.meta.location.clone()),
    );
    doomed.extend(
        listing
            .compactions
            .iter()
            .filter(|f| crate::log::segment::compaction_end(f) < keep_from && expired(f))
            .map(|f| f.meta.location.clone()),
    );
    // Oldest first: a crash part-way leaves a log that still starts at a readable point.
    doomed.sort();
    let mut n = doomed.len();
    for path in doomed {
        location.delete(&path).await?;
    }
    let kept: Vec<&crate::log::segment::LogFile> = listing.checkpoints.range(keep_from..).flat_map(|(_, fs)| fs.iter()).collect();
    n += cleanup_sidecars(location, &kept, now_ms).await?;
    Ok(n)
}

/// Deletes the sidecar files that none of the `kept` checkpoints references and that are at
/// least a day old (younger ones may belong to a checkpoint being written). When a kept V2
/// checkpoint cannot be read, its references are unknown and nothing is deleted.
async fn cleanup_sidecars(
    location: &crate::log::storage::TableLocation,
    kept: &[&crate::log::segment::LogFile],
    now_ms: i64,
) -> DeltaResult<usize> {
    use futures::TryStreamExt;
    let dir = location.log_dir().join("_sidecars");
    let listed: Vec<object_store::ObjectMeta> = location.store().list(Some(&dir)).try_collect().await?;
    if listed.is_empty() {
        return Ok(0);
    }
    let mut referenced = std::collections::HashSet::new();
    for file in kept.iter().filter(|f| {
        matches!(
            f.name.kind,
            crate::log::segment::LogFileKind::V2Checkpoint { .. } | crate::log::segment::LogFileKind::SinglePartCheckpoint
        )
    }) {
        let Ok(paths) = crate::log::replay::sidecar_paths(location, file).await else {
            return Ok(0);
        };
        referenced.extend(paths);
    }
    let old = now_ms.saturating_sub(86_400_000);
    let mut n = 0;
    for meta in listed {
        if referenced.contains(&meta.location) || meta.last_modified.timestamp_millis() > old {
            continue;
        }
        if location.delete(&meta.location).await? {
            n += 1;
        }
    }
    Ok(n)
}

impl Table {
    /// Removes expired log files now (see [`cleanup_expired_logs`]).
    pub async fn cleanup_log(&self) -> DeltaResult<usize> {
        let snapshot = self.snapshot().await?;
        cleanup_expired_logs(&snapshot, chrono::Utc::now().timestamp_millis()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::writer::WriteOptions;
    use arrow::array::Int64Array;
    use arrow::datatypes::DataType as ArrowType;
    use std::collections::HashMap;

    fn ids_batch(ids: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", ArrowType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
    }

    async fn ids(table: &Table) -> Vec<i64> {
        let batches = table.snapshot().await.unwrap().scan().build().unwrap().collect().await.unwrap();
        let mut out: Vec<i64> =
            batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect();
        out.sort();
        out
    }

    fn sidecars(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("_delta_log/_sidecars"))
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A V2 checkpoint keeps its file actions in sidecars (cut at the given size), the snapshot
    /// read from it equals the one read from the commits, a missing sidecar makes readers fall
    /// back to the commits, and log cleanup deletes only the sidecars no kept checkpoint names.
    #[tokio::test]
    async fn v2_checkpoints_keep_file_actions_in_sidecars() {
        let dir = std::env::temp_dir().join(format!("delta-v2-sidecars-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let table = Table::open(dir.to_str().unwrap()).unwrap();
        let props: HashMap<String, String> = [
            ("delta.checkpointPolicy".to_string(), "v2".to_string()),
            ("delta.checkpointInterval".to_string(), "1000".to_string()),
            ("delta.checkpoint.writeStatsAsStruct".to_string(), "true".to_string()),
            ("delta.logRetentionDuration".to_string(), "interval 0 seconds".to_string()),
        ]
        .into();
        table.write(vec![ids_batch(&[0])], WriteOptions { properties: props, ..Default::default() }).await.unwrap();
        for i in 1..10 {
            table.write(vec![ids_batch(&[i])], WriteOptions::default()).await.unwrap();
        }
        let snapshot = table.snapshot().await.unwrap();
        write_checkpoint_with(&snapshot, 3).await.unwrap();
        let first = sidecars(&dir);
        assert_eq!(first.len(), 4, "10 files in sidecars of 3: {first:?}");
        let loaded = table.snapshot().await.unwrap();
        let cp = loaded.log_segment().checkpoint.clone().expect("the V2 checkpoint");
        assert!(matches!(cp.parts[0].name.kind, crate::log::segment::LogFileKind::V2Checkpoint { parquet: true }));
        assert_eq!(loaded.num_files(), 10);
        assert_eq!(ids(&table).await, (0..10).collect::<Vec<_>>());
        // Skipping works from the sidecars' parsed statistics.
        let scan = loaded.scan().with_filter("id >= 8").unwrap().build().unwrap();
        assert_eq!((scan.files().len(), scan.total_files()), (2, 10));

        // A sidecar gone missing: the checkpoint is not used, the commits still are.
        let moved = dir.join("moved.parquet");
        std::fs::rename(dir.join("_delta_log/_sidecars").join(&first[0]), &moved).unwrap();
        assert_eq!(ids(&table).await, (0..10).collect::<Vec<_>>());
        std::fs::rename(&moved, dir.join("_delta_log/_sidecars").join(&first[0])).unwrap();

        // A newer checkpoint with other sidecars; cleanup two days on keeps only the newer ones.
        table.write(vec![ids_batch(&[10])], WriteOptions::default()).await.unwrap();
        write_checkpoint_with(&table.snapshot().await.unwrap(), 5).await.unwrap();
        let both = sidecars(&dir);
        assert_eq!(both.len(), 4 + 3);
        // Within a day nothing is deleted (a checkpoint may be in progress).
        let latest = table.snapshot().await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let deleted = cleanup_expired_logs(&latest, now).await.unwrap();
        assert_eq!(sidecars(&dir).len(), 7, "young sidecars deleted ({deleted} files)");
        cleanup_expired_logs(&latest, now + 2 * 86_400_000).await.unwrap();
        let kept = sidecars(&dir);
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|k| !first.contains(k)));
        assert_eq!(ids(&table).await, (0..11).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
