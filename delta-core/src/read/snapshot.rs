//! Immutable snapshots of a table at a version, and the [`Table`] handle that makes them.
//!
//! A [`Snapshot`] holds the protocol, metadata, parsed schema and the live file index (Arrow
//! columns, see [`crate::log::replay`]). Snapshots are opened at the latest version, at a version, or at
//! a timestamp. Timestamps follow the protocol: once in-commit timestamps are enabled, a commit's
//! time is its `commitInfo.inCommitTimestamp`; before that, commit-file modification times made
//! monotonic (a commit is never earlier than its predecessor + 1 ms).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::{Int64Type, SchemaRef};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{DeltaError, DeltaResult};
use crate::log::replay::{replay_with, ReplayContext, ReplayMetrics, ReplayOptions, ReplayState};
use crate::log::segment::{LogFile, LogListing, LogSegment};
use crate::log::storage::{TableLocation, TableOptions};
use crate::table::protocol::{add_col, AppTransaction, CommitInfo, DomainMetadata, Metadata, Protocol, TableFeature};
use crate::table::schema::{ColumnMappingMode, StructType};

/// A Delta table at a location. Cheap to clone; clones share the latest snapshot.
///
/// [`Table::snapshot`] keeps the latest snapshot it loaded (and so its file index, as long as the
/// handle lives) and brings it up to date by replaying only the commits added since, as long as
/// no newer checkpoint or compacted log file appeared and the commit it ended at is unchanged;
/// otherwise it loads from the newest checkpoint. An ingestion service appending through one
/// handle no longer re-reads the log since the last checkpoint before every commit.
#[derive(Debug, Clone)]
pub struct Table {
    location: TableLocation,
    latest: Arc<std::sync::Mutex<Option<Snapshot>>>,
}

/// One entry of [`Table::history`].
#[derive(Debug, Clone)]
pub struct CommitRecord {
    pub version: i64,
    /// Commit time in ms since the epoch (in-commit timestamp when enabled).
    pub timestamp_ms: i64,
    /// The commit's `commitInfo`, or an empty map when it has none.
    pub commit_info: CommitInfo,
}

impl Table {
    /// Opens a table at a local path or URL with default options. Does no I/O.
    pub fn open(location: &str) -> DeltaResult<Self> {
        Self::open_with(location, TableOptions::default())
    }

    /// Opens a table with options. Does no I/O.
    pub fn open_with(location: &str, options: TableOptions) -> DeltaResult<Self> {
        Ok(Table { location: TableLocation::open(location, options)?, latest: Arc::default() })
    }

    /// A table over an existing location.
    pub fn from_location(location: TableLocation) -> Self {
        Table { location, latest: Arc::default() }
    }

    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// The latest snapshot (see the type's docs for how it is kept up to date).
    pub async fn snapshot(&self) -> DeltaResult<Snapshot> {
        let previous = self.latest.lock().ok().and_then(|c| c.clone());
        let snapshot = match previous {
            Some(p) => Snapshot::load_after(&self.location, &p, None).await?,
            None => Snapshot::load(&self.location, None).await?,
        };
        self.keep(&snapshot);
        Ok(snapshot)
    }

    /// Keeps `snapshot` as the base of later loads unless a newer one is kept already (another
    /// task may have stored one meanwhile).
    fn keep(&self, snapshot: &Snapshot) {
        if let Ok(mut kept) = self.latest.lock() {
            if snapshot.stats && kept.as_ref().is_none_or(|k| k.version() <= snapshot.version()) {
                *kept = Some(snapshot.clone());
            }
        }
    }

    /// The snapshot at `version` (latest when `None`), decoding what `options` ask for: a file
    /// listing can skip statistics ([`ReplayOptions::stats`] `false`), which is most of a
    /// checkpoint's bytes.
    pub async fn snapshot_with(&self, version: Option<i64>, options: ReplayOptions) -> DeltaResult<Snapshot> {
        Snapshot::load_with(&self.location, version, options).await
    }

    /// The snapshot at `version`; built on the kept snapshot when that is not newer (as after
    /// this handle's own commit: the checksum of the new version replays one commit).
    pub async fn snapshot_at(&self, version: i64) -> DeltaResult<Snapshot> {
        let previous = self.latest.lock().ok().and_then(|c| c.clone()).filter(|p| p.version() <= version);
        let Some(previous) = previous else { return Snapshot::load(&self.location, Some(version)).await };
        let snapshot = Snapshot::load_after(&self.location, &previous, Some(version)).await?;
        self.keep(&snapshot);
        Ok(snapshot)
    }

    /// The snapshot of the newest commit at or before `timestamp_ms` (ms since the epoch).
    pub async fn snapshot_at_timestamp(&self, timestamp_ms: i64) -> DeltaResult<Snapshot> {
        let version = self.version_at_timestamp(timestamp_ms).await?;
        self.snapshot_at(version).await
    }

    /// Resolves a timestamp to a version, as delta-spark does for `timestampAsOf`: the newest commit
    /// whose timestamp is at or before it; an error when it is before the first retained commit or
    /// after the latest one.
    pub async fn version_at_timestamp(&self, timestamp_ms: i64) -> DeltaResult<i64> {
        let listing = LogSegment::full_listing(&self.location).await?;
        let timestamps = self.commit_timestamps(&listing).await?;
        let Some((first_v, first_ts)) = timestamps.first().copied() else {
            return Err(DeltaError::NoCommits { location: self.location.root_url().to_string() });
        };
        let _ = first_v;
        if timestamp_ms < first_ts {
            return Err(DeltaError::TimestampTooEarly { timestamp_ms, earliest_ms: first_ts });
        }
        if let Some((_, last_ts)) = timestamps.last() {
            if timestamp_ms > *last_ts {
                return Err(DeltaError::TimestampAfterLatest { timestamp_ms, latest_ms: *last_ts });
            }
        }
        let idx = timestamps.partition_point(|(_, ts)| *ts <= timestamp_ms);
        Ok(timestamps[idx - 1].0)
    }

    /// `(version, timestamp)` of every retained commit, ascending, with the protocol's rules.
    pub async fn commit_timestamps(&self, listing: &LogListing) -> DeltaResult<Vec<(i64, i64)>> {
        let latest = Snapshot::load(&self.location, None).await?;
        self.commit_timestamps_with(&latest, listing).await
    }

    /// [`Table::commit_timestamps`] for a caller that already holds the latest snapshot.
    pub(crate) async fn commit_timestamps_with(&self, latest: &Snapshot, listing: &LogListing) -> DeltaResult<Vec<(i64, i64)>> {
        let ict_from = latest.in_commit_timestamps_from();
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(listing.commits.len());
        let mut previous: Option<i64> = None;
        for (v, file) in &listing.commits {
            let ts = match ict_from {
                Some(from) if *v >= from => {
                    let info = read_commit_info(&self.location, file).await?;
                    info.get("inCommitTimestamp").and_then(Value::as_i64).ok_or_else(|| {
                        DeltaError::corrupt(
                            &file.meta.location,
                            "in-commit timestamps are enabled but commitInfo.inCommitTimestamp is missing",
                        )
                    })?
                }
                _ => {
                    let file_ts = file.meta.last_modified.timestamp_millis();
                    match previous {
                        Some(p) if file_ts <= p => p + 1,
                        _ => file_ts,
                    }
                }
            };
            previous = Some(ts);
            out.push((*v, ts));
        }
        Ok(out)
    }

    /// Every retained commit's `commitInfo`, newest first, at most `limit`.
    pub async fn history(&self, limit: Option<usize>) -> DeltaResult<Vec<CommitRecord>> {
        let listing = LogSegment::full_listing(&self.location).await?;
        if listing.latest_version().is_none() {
            return Err(if listing.any_object {
                DeltaError::NoCommits { location: self.location.root_url().to_string() }
            } else {
                DeltaError::NotATable { location: self.location.root_url().to_string() }
            });
        }
        let timestamps: HashMap<i64, i64> = self.commit_timestamps(&listing).await?.into_iter().collect();
        let mut out = Vec::new();
        for (v, file) in listing.commits.iter().rev().take(limit.unwrap_or(usize::MAX)) {
            let info = read_commit_info(&self.location, file).await?;
            out.push(CommitRecord { version: *v, timestamp_ms: timestamps.get(v).copied().unwrap_or(0), commit_info: info });
        }
        Ok(out)
    }
}

/// Reads the `commitInfo` of one commit file (an empty map if it has none).
pub async fn read_commit_info(location: &TableLocation, file: &LogFile) -> DeltaResult<CommitInfo> {
    let bytes = location.read_bounded(&file.meta.location, Some(file.meta.size)).await?;
    for line in bytes.split(|b| *b == b'\n') {
        if line.is_empty() || !line.windows(13).any(|w| w == b"\"commitInfo\":") {
            continue;
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| DeltaError::corrupt(&file.meta.location, e))?;
        if let Some(Value::Object(info)) = v.get("commitInfo") {
            return Ok(info.clone());
        }
    }
    Ok(CommitInfo::new())
}

/// The checksum (`.crc`) fields used for validation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionChecksum {
    table_size_bytes: i64,
    num_files: i64,
    protocol: Option<Protocol>,
}

/// One live file of a [`Snapshot`], a row of its file index ([`Snapshot::files`]).
#[derive(Debug, Clone, Copy)]
pub struct FileEntry<'a> {
    column: &'a StructArray,
    row: usize,
}

impl<'a> FileEntry<'a> {
    /// The path as the log names it (relative paths are URI-encoded).
    pub fn path(&self) -> &'a str {
        self.column.column(add_col::PATH).as_string::<i32>().value(self.row)
    }
    pub fn size(&self) -> i64 {
        self.column.column(add_col::SIZE).as_primitive::<Int64Type>().value(self.row)
    }
    pub fn modification_time(&self) -> Option<i64> {
        let c = self.column.column(add_col::MODIFICATION_TIME).as_primitive::<Int64Type>();
        c.is_valid(self.row).then(|| c.value(self.row))
    }
    /// The stats JSON (always `None` in a snapshot loaded without statistics).
    pub fn stats(&self) -> Option<&'a str> {
        let c = self.column.column(add_col::STATS).as_string::<i32>();
        c.is_valid(self.row).then(|| c.value(self.row))
    }
    /// `numRecords` from the stats.
    pub fn num_records(&self) -> Option<u64> {
        self.stats().and_then(crate::table::actions::num_records_of)
    }
    /// Partition values keyed by physical column name, as the log keys them.
    pub fn partition_values(&self) -> HashMap<String, Option<String>> {
        crate::log::replay::map_cell(self.column.column(add_col::PARTITION_VALUES).as_map(), self.row).unwrap_or_default()
    }
    pub fn deletion_vector(&self) -> Option<crate::table::protocol::DeletionVectorDescriptor> {
        crate::read::dv::dv_at(self.column.column(add_col::DELETION_VECTOR).as_struct(), self.row)
    }
}

/// An immutable view of a table at one version.
#[derive(Debug, Clone)]
pub struct Snapshot {
    location: TableLocation,
    version: i64,
    protocol: Protocol,
    metadata: Metadata,
    schema: Arc<StructType>,
    arrow_schema: SchemaRef,
    column_mapping: ColumnMappingMode,
    files: Arc<Vec<StructArray>>,
    txns: Arc<HashMap<String, AppTransaction>>,
    domains: Arc<HashMap<String, DomainMetadata>>,
    segment: Arc<LogSegment>,
    in_commit_timestamp: Option<i64>,
    checksum_mismatch: Option<Arc<DeltaError>>,
    /// Whether `add.stats` was decoded (see [`ReplayOptions::stats`]).
    stats: bool,
    replay_metrics: Arc<ReplayMetrics>,
}

impl Snapshot {
    /// Loads the snapshot at `version` (latest when `None`).
    ///
    /// A checkpoint that cannot be read (torn, or removed while being read) is never used: the
    /// snapshot is rebuilt from an older checkpoint, or from commit 0, when the listing proves the
    /// log contiguous from there; otherwise the checkpoint's error is returned.
    pub async fn load(location: &TableLocation, version: Option<i64>) -> DeltaResult<Snapshot> {
        Self::load_with(location, version, ReplayOptions::default()).await
    }

    /// [`Snapshot::load`] decoding what `options` ask for. A snapshot loaded without statistics
    /// lists files (paths, sizes, partition values, deletion vectors) but cannot skip data by
    /// statistics, report them, or be checkpointed (that is refused, not written without them).
    pub async fn load_with(location: &TableLocation, version: Option<i64>, options: ReplayOptions) -> DeltaResult<Snapshot> {
        let segment = LogSegment::build(location, version).await?;
        let ctx = ReplayContext::new(options);
        match replay_with(location, &segment, &ctx).await {
            Ok(state) => Self::from_state(location.clone(), segment, state, &ctx).await,
            Err(DeltaError::InvalidCheckpoint { version: bad, reason }) => {
                let mut listing = LogSegment::full_listing(location).await?;
                let mut bad_versions = vec![bad];
                loop {
                    for b in &bad_versions {
                        listing.checkpoints.remove(b);
                    }
                    let segment = listing
                        .segment(location.root_url().as_str(), version)
                        .map_err(|_| DeltaError::InvalidCheckpoint { version: bad, reason: reason.clone() })?;
                    match replay_with(location, &segment, &ctx).await {
                        Ok(state) => return Self::from_state(location.clone(), segment, state, &ctx).await,
                        Err(DeltaError::InvalidCheckpoint { version: b, .. }) if !bad_versions.contains(&b) => bad_versions.push(b),
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The snapshot at `version` (latest when `None`), built on `previous` (an older snapshot of
    /// the same table, with statistics): when the log still starts from the same checkpoint, has no compacted files
    /// and still holds `previous`'s own commit file unchanged, only the commits after it are
    /// replayed, newest first, and `previous`'s files are then kept unless one of them removed or
    /// re-added them (exactly as a checkpoint's files are); anything else is a full load.
    pub(crate) async fn load_after(location: &TableLocation, previous: &Snapshot, version: Option<i64>) -> DeltaResult<Snapshot> {
        // One listing from `previous`'s last commit when nothing but commits came after it;
        // otherwise the full segment (and its checks below) decides.
        let segment = match LogSegment::after(location, &previous.segment, version).await? {
            Some(s) => s,
            None => LogSegment::build(location, version).await?,
        };
        let same_start = match (&segment.checkpoint, &previous.segment.checkpoint) {
            (None, None) => true,
            (Some(a), Some(b)) => a.version == b.version,
            _ => false,
        };
        let same_file = |a: &LogFile, b: &LogFile| a.meta.size == b.meta.size && a.meta.last_modified == b.meta.last_modified && a.meta.e_tag == b.meta.e_tag;
        let at = |s: &LogSegment, v: i64| s.all_commits.iter().find(|c| c.name.version == v).cloned();
        let unchanged = match (at(&segment, previous.version), at(&previous.segment, previous.version)) {
            (Some(a), Some(b)) => same_file(&a, &b),
            _ => false,
        };
        if !(previous.stats && same_start && unchanged && segment.compactions.is_empty() && segment.end_version >= previous.version) {
            return Self::load(location, version).await;
        }
        if segment.end_version == previous.version {
            return Ok(previous.clone());
        }
        let newer: Vec<LogFile> = segment.commits.iter().filter(|c| c.name.version > previous.version).cloned().collect();
        let partial = LogSegment {
            end_version: segment.end_version,
            checkpoint: None,
            commits: newer,
            compactions: Vec::new(),
            checksum: None,
            all_commits: Vec::new(),
        };
        let ctx = ReplayContext::new(ReplayOptions::default());
        let mut state = replay_with(location, &partial, &ctx).await?;
        let add_schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "add",
            arrow::datatypes::DataType::Struct(crate::table::protocol::add_fields()),
            true,
        )]));
        for files in previous.files.iter() {
            let batch = arrow::array::RecordBatch::try_new(add_schema.clone(), vec![Arc::new(files.clone())])?;
            state.apply(location, &batch, true)?;
        }
        state.finish()?;
        if state.protocol.is_none() {
            state.protocol = Some(previous.protocol.clone());
        }
        if state.metadata.is_none() {
            state.metadata = Some(previous.metadata.clone());
        }
        for (app, txn) in previous.txns.iter() {
            state.txns.entry(app.clone()).or_insert_with(|| txn.clone());
        }
        for (name, domain) in previous.domains.iter() {
            state.domains.entry(name.clone()).or_insert_with(|| domain.clone());
        }
        Self::from_state(location.clone(), segment, state, &ctx).await
    }

    /// A table's definition at `version` without its files: the protocol and metadata a scan of
    /// files chosen elsewhere needs (schema, column mapping, partition columns, features). An
    /// engine that plans a scan in one process and reads its files in others (a cluster's
    /// executors) sends these two actions and the files, not the log: the reading side builds
    /// this and scans exactly the files it was given ([`crate::ScanBuilder::with_files`]).
    /// Listing it yields no files. The protocol's reader gate applies as for a loaded snapshot.
    pub fn definition(location: TableLocation, version: i64, protocol: Protocol, metadata: Metadata) -> DeltaResult<Snapshot> {
        protocol.ensure_readable()?;
        let schema = if metadata.schema_string.is_empty() { StructType::default() } else { StructType::parse(&metadata.schema_string)? };
        let column_mapping = if protocol.has_feature(&TableFeature::ColumnMapping) || protocol.min_reader_version >= 2 {
            ColumnMappingMode::from_config(metadata.property("delta.columnMapping.mode"))?
        } else {
            ColumnMappingMode::None
        };
        Ok(Snapshot {
            arrow_schema: schema.to_arrow()?,
            location,
            version,
            protocol,
            metadata,
            schema: Arc::new(schema),
            column_mapping,
            files: Arc::new(Vec::new()),
            txns: Arc::new(HashMap::new()),
            domains: Arc::new(HashMap::new()),
            segment: Arc::new(LogSegment {
                end_version: version,
                checkpoint: None,
                commits: vec![],
                compactions: vec![],
                checksum: None,
                all_commits: vec![],
            }),
            in_commit_timestamp: None,
            checksum_mismatch: None,
            stats: false,
            replay_metrics: Arc::default(),
        })
    }

    /// An empty snapshot "before version 0", carrying the protocol and metadata a create commits.
    pub(crate) fn new_table(location: TableLocation, protocol: Protocol, metadata: Metadata) -> DeltaResult<Snapshot> {
        let schema = StructType::parse(&metadata.schema_string)?;
        let column_mapping = ColumnMappingMode::from_config(metadata.property("delta.columnMapping.mode"))?;
        Ok(Snapshot {
            arrow_schema: schema.to_arrow()?,
            location,
            version: -1,
            protocol,
            metadata,
            schema: Arc::new(schema),
            column_mapping,
            files: Arc::new(Vec::new()),
            txns: Arc::new(HashMap::new()),
            domains: Arc::new(HashMap::new()),
            segment: Arc::new(LogSegment {
                end_version: -1,
                checkpoint: None,
                commits: vec![],
                compactions: vec![],
                checksum: None,
                all_commits: vec![],
            }),
            in_commit_timestamp: None,
            checksum_mismatch: None,
            stats: true,
            replay_metrics: Arc::default(),
        })
    }

    /// The live files as `add` actions (materialised one struct per file: for writers that remove
    /// or rewrite files, not for scans).
    pub fn add_files(&self) -> DeltaResult<Vec<crate::table::actions::AddFile>> {
        use arrow::array::Array;
        let mut out = Vec::with_capacity(self.num_files());
        for column in self.files.iter() {
            let paths = column.column(add_col::PATH).as_string::<i32>();
            let pvs = column.column(add_col::PARTITION_VALUES).as_map();
            let sizes = column.column(add_col::SIZE).as_primitive::<Int64Type>();
            let mtimes = column.column(add_col::MODIFICATION_TIME).as_primitive::<Int64Type>();
            let stats = column.column(add_col::STATS).as_string::<i32>();
            let dvs = column.column(add_col::DELETION_VECTOR).as_struct();
            let i64_col = |name: &str, row: usize| {
                column
                    .column_by_name(name)
                    .and_then(|c| c.as_primitive_opt::<Int64Type>().filter(|a| a.is_valid(row)).map(|a| a.value(row)))
            };
            for row in 0..column.len() {
                out.push(crate::table::actions::AddFile {
                    path: paths.value(row).to_string(),
                    partition_values: crate::log::replay::map_cell(pvs, row).unwrap_or_default(),
                    size: sizes.value(row),
                    modification_time: if mtimes.is_valid(row) { mtimes.value(row) } else { 0 },
                    data_change: true,
                    stats: stats.is_valid(row).then(|| stats.value(row).to_string()),
                    tags: None,
                    deletion_vector: crate::read::dv::dv_at(dvs, row),
                    base_row_id: i64_col("baseRowId", row),
                    default_row_commit_version: i64_col("defaultRowCommitVersion", row),
                    clustering_provider: column
                        .column_by_name("clusteringProvider")
                        .and_then(|c| c.as_string_opt::<i32>().filter(|a| a.is_valid(row)).map(|a| a.value(row).to_string())),
                });
            }
        }
        Ok(out)
    }

    async fn from_state(location: TableLocation, segment: LogSegment, state: ReplayState, ctx: &ReplayContext) -> DeltaResult<Snapshot> {
        let version = segment.end_version;
        let protocol = state.protocol.clone().ok_or(DeltaError::MissingProtocol { version })?;
        // The reader gate runs before the metadata (and so the schema) is interpreted.
        protocol.ensure_readable()?;
        let metadata = state.metadata.clone().ok_or(DeltaError::MissingMetadata { version })?;
        let schema = if metadata.schema_string.is_empty() { StructType::default() } else { StructType::parse(&metadata.schema_string)? };
        let column_mapping = if protocol.has_feature(&TableFeature::ColumnMapping) || protocol.min_reader_version >= 2 {
            ColumnMappingMode::from_config(metadata.property("delta.columnMapping.mode"))?
        } else {
            ColumnMappingMode::None
        };
        let arrow_schema = schema.to_arrow()?;
        let snapshot = Snapshot {
            location,
            version,
            protocol,
            metadata,
            schema: Arc::new(schema),
            arrow_schema,
            column_mapping,
            files: Arc::new(state.files),
            txns: Arc::new(state.txns),
            domains: Arc::new(state.domains),
            segment: Arc::new(segment),
            in_commit_timestamp: state.newest_in_commit_timestamp,
            checksum_mismatch: None,
            stats: ctx.options.stats,
            replay_metrics: ctx.metrics.clone(),
        };
        let mut snapshot = snapshot;
        if let Err(e) = snapshot.validate_checksum().await {
            if snapshot.location.options().strict_checksums {
                return Err(e);
            }
            snapshot.checksum_mismatch = Some(Arc::new(e));
        }
        Ok(snapshot)
    }

    /// Compares the replayed state with the version's `.crc` file when one exists and parses.
    /// An unparsable checksum is ignored (it is an optimisation file); a parsable one that
    /// disagrees means the log or the checksum is corrupt, and the snapshot is refused.
    async fn validate_checksum(&self) -> DeltaResult<()> {
        let Some(file) = &self.segment.checksum else { return Ok(()) };
        let Ok(Some(bytes)) = self.location.read_optional(&file.meta.location).await else { return Ok(()) };
        let Ok(crc) = serde_json::from_slice::<VersionChecksum>(&bytes) else { return Ok(()) };
        let num_files = self.num_files() as i64;
        if crc.num_files != num_files {
            return Err(DeltaError::ChecksumMismatch {
                version: self.version,
                field: "numFiles",
                expected: crc.num_files.to_string(),
                actual: num_files.to_string(),
            });
        }
        let size = self.total_size_bytes();
        if crc.table_size_bytes != size {
            return Err(DeltaError::ChecksumMismatch {
                version: self.version,
                field: "tableSizeBytes",
                expected: crc.table_size_bytes.to_string(),
                actual: size.to_string(),
            });
        }
        if let Some(p) = crc.protocol {
            if p.min_reader_version != self.protocol.min_reader_version || p.min_writer_version != self.protocol.min_writer_version {
                return Err(DeltaError::ChecksumMismatch {
                    version: self.version,
                    field: "protocol",
                    expected: format!("{}/{}", p.min_reader_version, p.min_writer_version),
                    actual: format!("{}/{}", self.protocol.min_reader_version, self.protocol.min_writer_version),
                });
            }
        }
        Ok(())
    }

    /// Whether the file index holds `add.stats` (false for a snapshot loaded without them).
    pub fn has_stats(&self) -> bool {
        self.stats
    }

    /// What loading this snapshot read (log files, JSON bytes, checkpoint columns).
    pub fn replay_metrics(&self) -> &ReplayMetrics {
        &self.replay_metrics
    }

    /// How the version's `.crc` file disagreed with the replayed state, if it did.
    pub fn checksum_mismatch(&self) -> Option<&DeltaError> {
        self.checksum_mismatch.as_deref()
    }

    /// The clustering columns of the table as logical paths (empty when it is not clustered).
    pub fn clustering_columns(&self) -> DeltaResult<Vec<Vec<String>>> {
        crate::table::features::logical_clustering_columns(
            self.protocol(),
            self.schema(),
            self.column_mapping_mode(),
            self.domain_metadata(),
        )
    }

    pub fn version(&self) -> i64 {
        self.version
    }
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    pub fn schema(&self) -> &StructType {
        &self.schema
    }
    /// The table schema in Arrow, with logical names.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.arrow_schema.clone()
    }
    pub fn column_mapping_mode(&self) -> ColumnMappingMode {
        self.column_mapping
    }
    pub fn partition_columns(&self) -> &[String] {
        &self.metadata.partition_columns
    }
    pub fn location(&self) -> &TableLocation {
        &self.location
    }
    /// Live `add` actions, as struct columns of [`crate::table::protocol::add_fields`].
    pub fn file_columns(&self) -> &[StructArray] {
        &self.files
    }

    /// The live files, read in place from the file index (nothing is copied until asked for).
    pub fn files(&self) -> impl Iterator<Item = FileEntry<'_>> + '_ {
        self.files.iter().flat_map(|column| (0..column.len()).map(move |row| FileEntry { column, row }))
    }
    pub fn app_transactions(&self) -> &HashMap<String, AppTransaction> {
        &self.txns
    }
    /// Domain metadata that is not removed.
    pub fn domain_metadata(&self) -> impl Iterator<Item = &DomainMetadata> {
        self.domains.values().filter(|d| !d.removed)
    }
    pub fn log_segment(&self) -> &LogSegment {
        &self.segment
    }
    pub fn num_files(&self) -> usize {
        self.files.iter().map(|f| f.len()).sum()
    }
    /// Sum of `add.size` of live files.
    pub fn total_size_bytes(&self) -> i64 {
        self.files.iter().map(|f| f.column(add_col::SIZE).as_primitive::<Int64Type>().iter().flatten().sum::<i64>()).sum()
    }

    /// The version from which commits carry in-commit timestamps, when the feature is enabled.
    pub fn in_commit_timestamps_from(&self) -> Option<i64> {
        if !self.metadata.bool_property("delta.enableInCommitTimestamps", false)
            && !self.metadata.bool_property("delta.enableInCommitTimestamps-preview", false)
        {
            return None;
        }
        Some(self.metadata.property("delta.inCommitTimestampEnablementVersion").and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// The commit time of this version: the in-commit timestamp when enabled, else the commit file's
    /// modification time (not made monotonic; use [`Table::commit_timestamps`] for that).
    pub fn timestamp_ms(&self) -> Option<i64> {
        if self.in_commit_timestamps_from().is_some_and(|v| self.version >= v) {
            if let Some(ts) = self.in_commit_timestamp {
                return Some(ts);
            }
        }
        self.segment.all_commits.last().filter(|c| c.name.version == self.version).map(|c| c.meta.last_modified.timestamp_millis())
    }

    /// Whether a file has a deletion vector.
    pub fn has_deletion_vectors(&self) -> bool {
        self.files.iter().any(|f| {
            let dv = f.column(add_col::DELETION_VECTOR);
            dv.null_count() < dv.len()
        })
    }
}
