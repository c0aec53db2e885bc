//! Table maintenance: RESTORE, VACUUM and shallow CLONE (OPTIMIZE is in [`crate::ops::optimize`]).
//!
//! RESTORE makes the latest version's files those of an earlier version, in one commit: files of
//! the old version that are no longer live are re-added, live files the old version lacked are
//! removed (both with `dataChange = true`, as delta-spark writes them), and the old version's
//! metadata comes back when it differs. The protocol is never downgraded. Files that the old
//! version needs but that no longer exist (vacuumed) make RESTORE fail before anything is written.

//!
//! VACUUM deletes files under the table root that no retained version references. The retained
//! versions are those a reader may still time-travel to: every version committed after the
//! cutoff (`now - retention`) and the newest one at or before it. A file is kept when it is live
//! in that oldest retained version or added (data, deletion vector or change data) by any later
//! commit; of the rest, only files last modified before the cutoff are deleted, so files that
//! concurrent writers have not committed yet are safe. Hidden paths (`_delta_log`, names
//! starting with `_` or `.`) are never touched, except `_change_data` and partition directories.
//! Nothing outside the table root is listed or deleted. Like delta-spark, a run that deletes
//! writes a `VACUUM START` and a `VACUUM END` commit (commitInfo only); a run with nothing to
//! delete commits nothing.
//!
//! Shallow CLONE writes a new table whose version 0 names the source's files by absolute URL
//! (deletion vectors too), so nothing is copied. Readers of the clone must allow the source's
//! location ([`crate::log::storage::TableOptions::allowed_external_prefixes`]); VACUUM of the source does not
//! know about clones (as in delta-spark).

use std::collections::{BTreeMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::log::storage::TableLocation;
use crate::read::dv::DvLocation;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::{parse_commit, Action, AddFile};
use crate::table::protocol::DeletionVectorDescriptor;
use crate::write::rewrite::DmlResult;
use crate::write::txn::{IsolationLevel, Transaction};
use object_store::ObjectStoreExt;

fn key(a: &AddFile) -> (String, Option<String>) {
    (a.path.clone(), a.deletion_vector.as_ref().map(|d| d.unique_id()))
}

impl Table {
    /// `RESTORE TABLE … TO VERSION AS OF version`.
    pub async fn restore(&self, version: i64) -> DeltaResult<DmlResult> {
        self.restore_inner(version, None).await
    }

    /// `RESTORE TABLE … TO TIMESTAMP AS OF timestamp_ms` (the newest version at or before it).
    pub async fn restore_to_timestamp(&self, timestamp_ms: i64) -> DeltaResult<DmlResult> {
        let version = self.version_at_timestamp(timestamp_ms).await?;
        self.restore_inner(version, Some(timestamp_ms)).await
    }

    async fn restore_inner(&self, version: i64, timestamp_ms: Option<i64>) -> DeltaResult<DmlResult> {
        let current = self.snapshot().await?;
        crate::write::enforce::ensure_writable(current.protocol())?;
        if version > current.version() || version < 0 {
            return Err(DeltaError::VersionNotFound { requested: version, earliest: 0, latest: current.version() });
        }
        let old = self.snapshot_at(version).await?;
        let live = current.add_files()?;
        let wanted = old.add_files()?;
        let live_keys: HashSet<_> = live.iter().map(key).collect();
        let wanted_keys: HashSet<_> = wanted.iter().map(key).collect();
        let to_add: Vec<AddFile> = wanted.into_iter().filter(|a| !live_keys.contains(&key(a))).collect();
        let to_remove: Vec<AddFile> = live.into_iter().filter(|a| !wanted_keys.contains(&key(a))).collect();
        // Every file (and deletion vector) to bring back must still exist.
        for a in &to_add {
            let path = self.location().resolve(PathKind::Data, &a.path)?;
            if let Err(e) = self.location().store().head(&path.store_path).await {
                return Err(match e {
                    object_store::Error::NotFound { .. } => DeltaError::DataFileNotFound { path: path.url.to_string() },
                    other => other.into(),
                });
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut metrics = BTreeMap::new();
        metrics.insert("numRestoredFiles".to_string(), to_add.len() as u64);
        metrics.insert("restoredFilesSize".to_string(), to_add.iter().map(|a| a.size.max(0) as u64).sum());
        metrics.insert("numRemovedFiles".to_string(), to_remove.len() as u64);
        metrics.insert("removedFilesSize".to_string(), to_remove.iter().map(|a| a.size.max(0) as u64).sum());
        metrics.insert("numOfFilesAfterRestore".to_string(), old.num_files() as u64);
        metrics.insert("tableSizeAfterRestore".to_string(), old.total_size_bytes().max(0) as u64);
        let metadata_changed = old.metadata() != current.metadata();
        if to_add.is_empty() && to_remove.is_empty() && !metadata_changed {
            return Ok(DmlResult { version: None, metrics, post_commit_error: None });
        }
        let mut txn = Transaction::new(current.clone()).with_isolation(IsolationLevel::Serializable);
        txn.read_whole_table();
        if metadata_changed {
            txn.add_action(Action::Metadata(old.metadata().clone()));
        }
        for r in &to_remove {
            txn.add_action(Action::Remove(r.to_remove(now, true)));
        }
        for mut a in to_add {
            a.data_change = true;
            a.modification_time = now;
            txn.add_action(Action::Add(a));
        }
        let mut params = json!({ "version": version });
        if let Some(t) = timestamp_ms {
            params["timestamp"] = json!(t);
        }
        let shown: serde_json::Map<String, serde_json::Value> = metrics.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect();
        let txn = txn.with_operation("RESTORE", params).with_metrics(serde_json::Value::Object(shown));
        let committed = txn.commit().await?.version()?;
        let post_commit_error = crate::write::checkpoint::post_commit(self, committed).await.err().map(|e| e.to_string());
        Ok(DmlResult { version: Some(committed), metrics, post_commit_error })
    }
}

/// delta-spark's default `delta.deletedFileRetentionDuration`.
pub const DEFAULT_DELETED_FILE_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// Builds a VACUUM; see the module docs.
pub struct VacuumBuilder<'a> {
    table: &'a Table,
    retain_hours: Option<f64>,
    enforce_retention: bool,
    dry_run: bool,
}

/// What VACUUM deleted (or, in a dry run, would delete).
#[derive(Debug, Clone)]
pub struct VacuumResult {
    /// Paths relative to the table root, sorted.
    pub files: Vec<String>,
    pub bytes: u64,
    pub dry_run: bool,
    /// The retention applied, in milliseconds.
    pub retention_ms: i64,
}

impl Table {
    /// `VACUUM table [RETAIN n HOURS] [DRY RUN]`.
    pub fn vacuum(&self) -> VacuumBuilder<'_> {
        VacuumBuilder { table: self, retain_hours: None, enforce_retention: true, dry_run: false }
    }
}

impl VacuumBuilder<'_> {
    /// Keep files needed by versions of the last `hours` (default: the table's
    /// `delta.deletedFileRetentionDuration`, one week if unset).
    pub fn retain_hours(mut self, hours: f64) -> Self {
        self.retain_hours = Some(hours);
        self
    }

    /// `false` allows a retention shorter than the table's (delta-spark's
    /// `retentionDurationCheck.enabled = false`): readers of older versions may then fail.
    pub fn enforce_retention(mut self, enforce: bool) -> Self {
        self.enforce_retention = enforce;
        self
    }

    /// List what would be deleted, delete nothing, commit nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub async fn execute(self) -> DeltaResult<VacuumResult> {
        let table = self.table;
        let location = table.location();
        let snapshot = table.snapshot().await?;
        // vacuumProtocolCheck: VACUUM must understand the reader features as well as the writer's.
        snapshot.protocol().ensure_readable()?;
        crate::write::enforce::ensure_writable(snapshot.protocol())?;
        let table_ms = snapshot
            .metadata()
            .property("delta.deletedFileRetentionDuration")
            .and_then(crate::write::checkpoint::parse_interval_ms)
            .unwrap_or(DEFAULT_DELETED_FILE_RETENTION_MS);
        let retention_ms = match self.retain_hours {
            Some(h) if !h.is_finite() || h < 0.0 => {
                return Err(DeltaError::WriteRefused {
                    reason: format!("VACUUM retention must be a non-negative number of hours, not {h}"),
                })
            }
            Some(h) => (h * 3_600_000.0) as i64,
            None => table_ms,
        };
        if self.enforce_retention && retention_ms < table_ms {
            return Err(DeltaError::RetentionTooShort {
                requested_hours: retention_ms as f64 / 3_600_000.0,
                table_hours: table_ms as f64 / 3_600_000.0,
            });
        }
        let now = chrono::Utc::now().timestamp_millis();
        let cutoff = now - retention_ms;
        let valid = referenced_files(table, &snapshot, cutoff).await?;

        // Everything under the root that is not hidden, not referenced, and older than the cutoff.
        let partition_columns: Vec<String> = snapshot.partition_columns().to_vec();
        let mut doomed: Vec<(Path, String, u64)> = Vec::new();
        let mut listing = location.store().list(Some(location.root()));
        while let Some(meta) = listing.try_next().await? {
            let Some(rel) = relative(location.root(), &meta.location) else { continue };
            if is_hidden(&rel, &partition_columns) || valid.contains(meta.location.as_ref()) {
                continue;
            }
            if meta.last_modified.timestamp_millis() >= cutoff {
                continue;
            }
            doomed.push((meta.location, rel, meta.size));
        }
        doomed.sort_by(|a, b| a.1.cmp(&b.1));
        let bytes: u64 = doomed.iter().map(|d| d.2).sum();
        let files: Vec<String> = doomed.iter().map(|d| d.1.clone()).collect();
        // Nothing to delete: nothing to log either (as delta-rs; delta-spark logs empty runs too).
        if self.dry_run || files.is_empty() {
            return Ok(VacuumResult { files, bytes, dry_run: self.dry_run, retention_ms });
        }
        let log = |operation: &str, parameters: Value, metrics: Value| {
            Transaction::new(snapshot.clone()).with_operation(operation, parameters).with_metrics(metrics)
        };
        let started = log(
            "VACUUM START",
            json!({ "retentionCheckEnabled": self.enforce_retention, "specifiedRetentionMillis": retention_ms, "defaultRetentionMillis": table_ms }),
            json!({ "numFilesToDelete": files.len().to_string(), "sizeOfDataToDelete": bytes.to_string() }),
        )
        .commit()
        .await?
        .version()?;
        let _ = crate::write::checkpoint::post_commit(table, started).await;
        let deleted: Vec<bool> = futures::stream::iter(doomed.into_iter().map(|d| d.0))
            .map(|path| {
                let location = location.clone();
                async move { location.delete(&path).await }
            })
            .buffer_unordered(location.options().io_concurrency.max(1))
            .try_collect()
            .await?;
        let n = deleted.iter().filter(|d| **d).count();
        // Reads nothing: rebases over VACUUM START (and anything else) without conflict.
        let ended =
            log("VACUUM END", json!({ "status": "COMPLETED" }), json!({ "numDeletedFiles": n.to_string(), "numVacuumedDirectories": "0" }))
                .commit()
                .await?
                .version()?;
        let _ = crate::write::checkpoint::post_commit(table, ended).await;
        Ok(VacuumResult { files, bytes, dry_run: false, retention_ms })
    }
}

/// Store paths of every file a retained version references (see the module docs).
async fn referenced_files(table: &Table, latest: &Snapshot, cutoff: i64) -> DeltaResult<HashSet<String>> {
    let location = table.location();
    let listing = crate::log::segment::LogSegment::full_listing(location).await?;
    let timestamps = table.commit_timestamps_with(latest, &listing).await?;
    // The oldest retained version: the newest at or before the cutoff, else the earliest.
    let oldest = timestamps
        .iter()
        .rev()
        .find(|(_, ts)| *ts <= cutoff)
        .or(timestamps.first())
        .map(|(v, _)| *v)
        .unwrap_or(latest.version())
        .min(latest.version());
    let mut valid = HashSet::new();
    let base = if oldest == latest.version() { latest.clone() } else { table.snapshot_at(oldest).await? };
    for add in base.add_files()? {
        keep(location, &mut valid, &add.path, add.deletion_vector.as_ref())?;
    }
    for file in listing.commits.range(oldest + 1..).take_while(|(v, _)| **v <= latest.version()).map(|(_, f)| f) {
        let bytes = location.read_bounded(&file.meta.location, Some(file.meta.size)).await?;
        for action in parse_commit(file.meta.location.as_ref(), &bytes)? {
            match action {
                Action::Add(a) => keep(location, &mut valid, &a.path, a.deletion_vector.as_ref())?,
                Action::Remove(r) => keep(location, &mut valid, &r.path, r.deletion_vector.as_ref())?,
                Action::Cdc(c) => keep(location, &mut valid, &c.path, None)?,
                _ => {}
            }
        }
    }
    Ok(valid)
}

/// Adds a file (and its deletion vector file) to `valid`, when it lies inside the table.
fn keep(location: &TableLocation, valid: &mut HashSet<String>, path: &str, dv: Option<&DeletionVectorDescriptor>) -> DeltaResult<()> {
    match location.resolve(PathKind::Data, path) {
        Ok(p) => {
            valid.insert(p.store_path.to_string());
        }
        // Files outside the root (shallow clones) are never vacuumed.
        Err(DeltaError::PathOutsideTable { .. }) => {}
        Err(e) => return Err(e),
    }
    if let Some(dv) = dv {
        match dv.location(location) {
            Ok(DvLocation::File { path, .. }) => {
                valid.insert(path.store_path.to_string());
            }
            Ok(DvLocation::Inline(_)) | Err(DeltaError::PathOutsideTable { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let root = root.as_ref();
    let p = path.as_ref();
    if root.is_empty() {
        return Some(p.to_string());
    }
    p.strip_prefix(root)?.strip_prefix('/').map(str::to_string)
}

/// delta-spark's rule: names starting with `_` or `.` are hidden, except `_change_data` and
/// partition directories (`column=value`) at any level but the file name.
fn is_hidden(rel: &str, partition_columns: &[String]) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let Some((file, dirs)) = parts.split_last() else { return true };
    if file.starts_with('_') || file.starts_with('.') {
        return true;
    }
    dirs.iter().any(|d| {
        (d.starts_with('_') || d.starts_with('.'))
            && *d != "_change_data"
            && !partition_columns.iter().any(|c| d.starts_with(&format!("{}=", crate::write::files::encode_path(c))))
    })
}

impl Table {
    /// Shallow CLONE: a new table at `target` whose version 0 references this table's files at
    /// `version` (the latest when `None`) by absolute URL. Returns the clone's version (0).
    pub async fn shallow_clone(&self, target: &Table, version: Option<i64>) -> DeltaResult<i64> {
        target.ensure_no_table().await?;
        let source = match version {
            Some(v) => self.snapshot_at(v).await?,
            None => self.snapshot().await?,
        };
        source.protocol().ensure_readable()?;
        crate::write::enforce::ensure_writable(source.protocol())?;
        let mut metadata = source.metadata().clone();
        metadata.id = uuid::Uuid::new_v4().to_string();
        metadata.created_time = Some(chrono::Utc::now().timestamp_millis());
        // In-commit timestamps, if on, are on from the clone's version 0: the source's enablement
        // version and timestamp name versions the clone does not have.
        metadata.configuration.remove("delta.inCommitTimestampEnablementVersion");
        metadata.configuration.remove("delta.inCommitTimestampEnablementTimestamp");
        let fresh = Snapshot::new_table(target.location().clone(), source.protocol().clone(), metadata.clone())?;
        let mut txn = Transaction::create(fresh);
        txn.add_action(Action::Protocol(source.protocol().clone()));
        txn.add_action(Action::Metadata(metadata));
        for d in source.domain_metadata() {
            txn.add_action(Action::DomainMetadata(d.clone()));
        }
        let mut size = 0i64;
        let files = source.add_files()?;
        let n = files.len();
        for mut add in files {
            add.path = self.location().canonical_url(PathKind::Data, &add.path)?.to_string();
            if let Some(dv) = &mut add.deletion_vector {
                if let DvLocation::File { path, .. } = dv.location(self.location())? {
                    if dv.storage_type == "u" {
                        dv.storage_type = "p".into();
                        dv.path_or_inline_dv = path.url.to_string();
                    }
                }
            }
            add.data_change = true;
            size += add.size.max(0);
            txn.add_action(Action::Add(add));
        }
        let txn = txn
            .with_operation(
                "CLONE",
                json!({ "source": self.location().root_url().to_string(), "sourceVersion": source.version(), "isShallow": true }),
            )
            .with_metrics(json!({
                "sourceTableSize": size.to_string(), "sourceNumOfFiles": n.to_string(), "numRemovedFiles": "0",
                "numCopiedFiles": "0", "removedFilesSize": "0", "copiedFilesSize": "0"
            }));
        target.commit_new_table(txn).await
    }
}
