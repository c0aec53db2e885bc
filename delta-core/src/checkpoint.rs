//! Writing checkpoints, `_last_checkpoint` and version checksum (`.crc`) files.
//!
//! A classic checkpoint at version v holds the protocol, metadata, application transactions,
//! domain metadata and every live `add` of the snapshot at v (the adds are the snapshot's Arrow
//! columns, written as they are). It is written with one atomic `put` under its final name, so a
//! reader never sees a torn file from this writer; a torn file from elsewhere is skipped by
//! [`crate::Snapshot::load`]. `_last_checkpoint` is written after the checkpoint and is only ever a
//! hint. Tables with the v2Checkpoint feature get UUID-named V2 checkpoints holding every action
//! inline plus their `checkpointMetadata` (no sidecars yet), so two racing writers never collide.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StructArray};
use arrow::datatypes::{Field, Schema};
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use serde_json::json;

use crate::actions::{commit_bytes, Action};
use crate::error::{DeltaError, DeltaResult};
use crate::protocol::{action_col, action_schema, TableFeature};
use crate::replay::decode_commit_json;
use crate::snapshot::{Snapshot, Table};

/// Columns of a classic checkpoint (a subset of the replay layout).
const CHECKPOINT_COLUMNS: [usize; 6] =
    [action_col::ADD, action_col::REMOVE, action_col::METADATA, action_col::PROTOCOL, action_col::TXN, action_col::DOMAIN_METADATA];

/// The `stats_parsed` struct type: numRecords, and min/max/nullCount over the data columns
/// (physical names), for checkpoints with `delta.checkpoint.writeStatsAsStruct`.
fn stats_struct_type(snapshot: &Snapshot) -> DeltaResult<arrow::datatypes::DataType> {
    use crate::schema::{DataType, StructType};
    use arrow::datatypes::{DataType as A, Fields};
    let mode = snapshot.column_mapping_mode();
    let parts = snapshot.partition_columns();
    fn bounds(s: &StructType, mode: crate::schema::ColumnMappingMode) -> DeltaResult<Vec<Field>> {
        let mut out = Vec::new();
        for f in &s.fields {
            let t = match &f.data_type {
                DataType::Struct(inner) => A::Struct(Fields::from(bounds(inner, mode)?)),
                DataType::Primitive(p) if !matches!(p, crate::schema::PrimitiveType::Binary | crate::schema::PrimitiveType::Boolean) => {
                    f.data_type.to_arrow(false)?
                }
                _ => continue,
            };
            out.push(Field::new(f.physical_name(mode), t, true));
        }
        Ok(out)
    }
    fn counts(s: &StructType, mode: crate::schema::ColumnMappingMode) -> Vec<Field> {
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

/// The checkpoint's batches: one for the small actions, one per file column of the snapshot.
pub fn checkpoint_batches(snapshot: &Snapshot) -> DeltaResult<Vec<RecordBatch>> {
    use arrow::array::AsArray;
    let full = action_schema();
    // V2 checkpoints (tables with v2Checkpoint) carry exactly one checkpointMetadata action.
    let v2 = snapshot.protocol().has_feature(&TableFeature::V2Checkpoint);
    let mut columns_kept: Vec<usize> = CHECKPOINT_COLUMNS.to_vec();
    if v2 {
        columns_kept.push(action_col::CHECKPOINT_METADATA);
    }
    let meta = snapshot.metadata();
    let as_struct = meta.bool_property("delta.checkpoint.writeStatsAsStruct", false);
    let as_json = meta.bool_property("delta.checkpoint.writeStatsAsJson", true);
    let mut schema = full.project(&columns_kept)?;
    let stats_type = if as_struct { Some(stats_struct_type(snapshot)?) } else { None };
    if let Some(t) = &stats_type {
        let arrow::datatypes::DataType::Struct(add_fields) = schema.field(0).data_type().clone() else {
            return Err(DeltaError::Internal("add is a struct".into()));
        };
        let mut fields: Vec<Field> = add_fields.iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("stats_parsed", t.clone(), true));
        let mut all: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        all[0] = Field::new("add", arrow::datatypes::DataType::Struct(fields.into()), true);
        schema = Schema::new(all);
    }
    let schema = Arc::new(schema);
    let mut small = vec![Action::Protocol(snapshot.protocol().clone()), Action::Metadata(snapshot.metadata().clone())];
    let mut txns: Vec<_> = snapshot.app_transactions().values().cloned().collect();
    txns.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    small.extend(txns.into_iter().map(Action::Txn));
    let mut domains: Vec<_> = snapshot.domain_metadata().cloned().collect();
    domains.sort_by(|a, b| a.domain.cmp(&b.domain));
    small.extend(domains.into_iter().map(Action::DomainMetadata));
    let mut bytes = commit_bytes(&small)?;
    if v2 {
        bytes.extend_from_slice(json!({"checkpointMetadata": {"version": snapshot.version()}}).to_string().as_bytes());
        bytes.push(b'\n');
    }
    let mut out = Vec::new();
    for b in decode_commit_json("checkpoint", &bytes, u64::MAX)? {
        let b = b.project(&columns_kept)?;
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| if c.data_type() == f.data_type() { c.clone() } else { new_null_array(f.data_type(), b.num_rows()) })
            .collect();
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    for files in snapshot.file_columns() {
        let n = files.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(columns_kept.len());
        for (i, f) in schema.fields().iter().enumerate() {
            if i == 0 {
                let mut add_columns = files.columns().to_vec();
                if !as_json {
                    add_columns[crate::protocol::add_col::STATS] = new_null_array(&arrow::datatypes::DataType::Utf8, n);
                }
                if let Some(t) = &stats_type {
                    add_columns.push(parse_stats(files.column(crate::protocol::add_col::STATS).as_string::<i32>(), t)?);
                }
                let add: ArrayRef = Arc::new(StructArray::try_new(
                    match f.data_type() {
                        arrow::datatypes::DataType::Struct(fs) => fs.clone(),
                        _ => return Err(DeltaError::Internal("add is a struct".into())),
                    },
                    add_columns,
                    None,
                )?);
                columns.push(add);
            } else {
                columns.push(new_null_array(f.data_type(), n));
            }
        }
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// Writes a checkpoint of `snapshot` — classic, or a UUID-named V2 checkpoint (all actions
/// inline, no sidecars) when the table has v2Checkpoint — and then `_last_checkpoint`.
pub async fn write_checkpoint(snapshot: &Snapshot) -> DeltaResult<()> {
    let v2 = snapshot.protocol().has_feature(&TableFeature::V2Checkpoint);
    let batches = checkpoint_batches(snapshot)?;
    let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(Schema::new(Vec::<Field>::new())));
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| DeltaError::parquet("checkpoint", e))?;
    let mut rows = 0usize;
    for b in &batches {
        rows += b.num_rows();
        writer.write(b).map_err(|e| DeltaError::parquet("checkpoint", e))?;
    }
    let bytes = writer.into_inner().map_err(|e| DeltaError::parquet("checkpoint", e))?;
    let size = bytes.len();
    let location = snapshot.location();
    let name = if v2 {
        format!("{:020}.checkpoint.{}.parquet", snapshot.version(), uuid::Uuid::new_v4())
    } else {
        format!("{:020}.checkpoint.parquet", snapshot.version())
    };
    location.put(&location.log_path(&name), bytes).await?;
    let hint = json!({"version": snapshot.version(), "size": rows, "sizeInBytes": size, "numOfAddFiles": snapshot.num_files()});
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
    let listing = crate::log::LogSegment::full_listing(location).await?;
    let expired = |f: &crate::log::LogFile| f.meta.last_modified.timestamp_millis() <= cutoff;
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
        listing.compactions.iter().filter(|f| crate::log::compaction_end(f) < keep_from && expired(f)).map(|f| f.meta.location.clone()),
    );
    // Oldest first: a crash part-way leaves a log that still starts at a readable point.
    doomed.sort();
    let n = doomed.len();
    for path in doomed {
        match location.store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
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
