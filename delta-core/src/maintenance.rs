//! Table maintenance: RESTORE (OPTIMIZE, VACUUM and CLONE are still to come).
//!
//! RESTORE makes the latest version's files those of an earlier version, in one commit: files of
//! the old version that are no longer live are re-added, live files the old version lacked are
//! removed (both with `dataChange = true`, as delta-spark writes them), and the old version's
//! metadata comes back when it differs. The protocol is never downgraded. Files that the old
//! version needs but that no longer exist (vacuumed) make RESTORE fail before anything is written.

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use crate::actions::{Action, AddFile};
use crate::dml::DmlResult;
use crate::error::{DeltaError, DeltaResult, PathKind};
use crate::snapshot::Table;
use crate::txn::{IsolationLevel, Transaction};
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
        crate::write::ensure_writable(current.protocol())?;
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
        let post_commit_error = crate::checkpoint::post_commit(self, committed).await.err().map(|e| e.to_string());
        Ok(DmlResult { version: Some(committed), metrics, post_commit_error })
    }
}
