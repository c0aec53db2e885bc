//! Transactions: optimistic concurrency with delta-spark's conflict rules.
//!
//! ```text
//!  read snapshot v ─► stage actions, record reads ─► put_if_absent(v+1.json)
//!        ▲                                              │ AlreadyExists / error
//!        │                              read winner ◄───┘
//!        │             own txnId? ─► Committed(v+1)   (a lost acknowledgement)
//!        └── no conflict: rebase, try v+2 …           conflict ─► Conflict(reason)
//!                                                      unreachable ─► Indeterminate(txnId)
//! ```
//!
//! The only thing that makes a version visible is `put_if_absent(_delta_log/<v>.json)`. Every
//! commit carries a `txnId` in `commitInfo`, so an ambiguous outcome (an error after the store
//! may have applied the write) is resolved by reading the winner of that version.
//!
//! The checks run in delta-spark's order (`ConflictChecker.scala`): protocol changed, metadata
//! changed, domain metadata, application transaction ids, files added that the transaction should
//! have read (its read predicates; Serializable counts every winning add, WriteSerializable skips
//! blind appends), files deleted that it read, files deleted by both. Then the in-commit timestamp
//! is rebased past the winner's.
//!
//! One resolution goes beyond delta-spark: when both this transaction and the winner only
//! replaced a file's deletion vector (`remove(F, dv0)` + `add(F, dv)`, from the same `dv0`) and
//! the rows they newly deleted are disjoint, the file is not a conflict: this transaction is
//! rebased onto the union of the two vectors (a new vector file is written) and the other
//! checks ignore that file. Overlapping rows still conflict (two UPDATEs of one row, or the
//! change feed recording one delete twice).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult};
use crate::log::storage::TableLocation;
use crate::read::skipping::FilePruner;
use crate::read::snapshot::Snapshot;
use crate::table::actions::{commit_bytes, parse_commit, Action, AddFile, RemoveFile};
use crate::table::expr::Expr;
use crate::table::protocol::{CommitInfo, Metadata, Protocol};

/// Isolation levels of delta-spark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Every concurrent add matching the read predicates conflicts.
    Serializable,
    /// Concurrent blind appends do not conflict (delta-spark's default), unless this transaction
    /// changes the metadata.
    WriteSerializable,
    /// No concurrent append conflicts: what delta-spark uses for commits that change no data
    /// (every file action has `dataChange = false`, e.g. OPTIMIZE).
    SnapshotIsolation,
}

impl IsolationLevel {
    fn name(self) -> &'static str {
        match self {
            IsolationLevel::Serializable => "Serializable",
            IsolationLevel::WriteSerializable => "WriteSerializable",
            IsolationLevel::SnapshotIsolation => "SnapshotIsolation",
        }
    }
}

/// Why a commit could not be rebased over a concurrent winner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictReason {
    ProtocolChanged {
        version: i64,
    },
    MetadataChanged {
        version: i64,
    },
    ConcurrentDomainMetadata {
        version: i64,
        domain: String,
    },
    ConcurrentTransaction {
        version: i64,
        app_id: String,
    },
    ConcurrentAppend {
        version: i64,
        path: String,
    },
    ConcurrentDeleteRead {
        version: i64,
        path: String,
    },
    ConcurrentDeleteDelete {
        version: i64,
        path: String,
    },
    /// The retry budget ran out while other writers kept winning.
    TooManyRetries {
        attempts: u32,
    },
}

impl fmt::Display for ConflictReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConflictReason::ProtocolChanged { version } => write!(f, "the protocol changed in concurrent commit {version}"),
            ConflictReason::MetadataChanged { version } => write!(f, "the metadata changed in concurrent commit {version}"),
            ConflictReason::ConcurrentDomainMetadata { version, domain } => {
                write!(f, "domain `{domain}` changed in concurrent commit {version}")
            }
            ConflictReason::ConcurrentTransaction { version, app_id } => {
                write!(f, "application `{app_id}` committed concurrently in version {version}")
            }
            ConflictReason::ConcurrentAppend { version, path } => {
                write!(f, "concurrent commit {version} added `{path}`, which this transaction's read would have seen")
            }
            ConflictReason::ConcurrentDeleteRead { version, path } => {
                write!(f, "concurrent commit {version} removed `{path}`, which this transaction read")
            }
            ConflictReason::ConcurrentDeleteDelete { version, path } => write!(f, "concurrent commit {version} also removed `{path}`"),
            ConflictReason::TooManyRetries { attempts } => write!(f, "gave up after {attempts} attempts"),
        }
    }
}

/// The outcome of a commit. Expected races are outcomes, not errors.
#[must_use]
#[derive(Debug)]
pub enum CommitOutcome {
    /// The commit is visible at this version.
    Committed { version: i64 },
    /// A concurrent commit conflicts; nothing of this transaction is visible.
    Conflict(ConflictReason),
    /// The store could not be reached to learn whether the commit landed. Resolve later with
    /// [`resolve_txn`] and this `txn_id`.
    Indeterminate { txn_id: String, last_version_tried: i64, error: String },
}

impl CommitOutcome {
    /// The version, or an error describing the conflict / uncertainty.
    pub fn version(self) -> DeltaResult<i64> {
        match self {
            CommitOutcome::Committed { version } => Ok(version),
            CommitOutcome::Conflict(reason) => Err(DeltaError::CommitConflict { reason: reason.to_string() }),
            CommitOutcome::Indeterminate { txn_id, error, .. } => Err(DeltaError::CommitIndeterminate { txn_id, reason: error }),
        }
    }
}

/// Retry and backoff settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Versions tried when concurrent winners do not conflict.
    pub max_rebases: u32,
    /// Attempts at one version after transient store errors.
    pub max_transient_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_rebases: 1000,
            max_transient_retries: 6,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// A transaction against one snapshot.
pub struct Transaction {
    snapshot: Snapshot,
    actions: Vec<Action>,
    metadata: Option<Metadata>,
    protocol: Option<Protocol>,
    isolation: IsolationLevel,
    read_predicates: Vec<Expr>,
    read_whole_table: bool,
    read_files: HashSet<String>,
    read_app_ids: HashSet<String>,
    operation: String,
    operation_parameters: Value,
    operation_metrics: Value,
    extra_commit_info: serde_json::Map<String, Value>,
    txn_id: String,
    retry: RetryPolicy,
    /// The version the table had before this transaction (−1 for a new table).
    read_version: i64,
    creates_table: bool,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("read_version", &self.read_version)
            .field("txn_id", &self.txn_id)
            .field("actions", &self.actions.len())
            .finish()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Transaction {
    /// A transaction reading `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        let read_version = snapshot.version();
        Transaction {
            snapshot,
            actions: Vec::new(),
            metadata: None,
            protocol: None,
            isolation: IsolationLevel::WriteSerializable,
            read_predicates: Vec::new(),
            read_whole_table: false,
            read_files: HashSet::new(),
            read_app_ids: HashSet::new(),
            operation: "WRITE".into(),
            operation_parameters: json!({}),
            operation_metrics: json!({}),
            extra_commit_info: serde_json::Map::new(),
            txn_id: uuid::Uuid::new_v4().to_string(),
            retry: RetryPolicy::default(),
            read_version,
            creates_table: false,
        }
    }

    /// A transaction that creates the table at version 0 (its `snapshot` is only a placeholder
    /// for the location and must carry the new protocol and metadata).
    pub(crate) fn create(snapshot: Snapshot) -> Self {
        let mut t = Transaction::new(snapshot);
        t.read_version = -1;
        t.creates_table = true;
        t
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
    pub fn txn_id(&self) -> &str {
        &self.txn_id
    }
    pub fn with_isolation(mut self, isolation: IsolationLevel) -> Self {
        self.isolation = isolation;
        self
    }
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    pub fn with_operation(mut self, operation: &str, parameters: Value) -> Self {
        self.operation = operation.to_string();
        self.operation_parameters = parameters;
        self
    }
    /// Extra `commitInfo` entries; they cannot replace the ones the transaction sets.
    pub fn with_commit_info(mut self, entries: serde_json::Map<String, Value>) -> Self {
        self.extra_commit_info = entries;
        self
    }
    pub fn with_metrics(mut self, metrics: Value) -> Self {
        self.operation_metrics = metrics;
        self
    }
    /// Records that the transaction read rows matching `predicate`.
    pub fn read_predicate(&mut self, predicate: Expr) {
        self.read_predicates.push(predicate);
    }
    /// Records that the transaction read the whole table.
    pub fn read_whole_table(&mut self) {
        self.read_whole_table = true;
    }
    /// Records that the transaction read this file (its `add.path`).
    pub fn read_file(&mut self, path: &str) {
        self.read_files.insert(path.to_string());
    }
    /// Records that the transaction read the last version of application `app_id`.
    pub fn read_app_transaction(&mut self, app_id: &str) {
        self.read_app_ids.insert(app_id.to_string());
    }
    pub fn add_action(&mut self, action: Action) {
        match action {
            Action::Metadata(m) => self.metadata = Some(m),
            Action::Protocol(p) => self.protocol = Some(p),
            other => self.actions.push(other),
        }
    }
    pub fn add_actions(&mut self, actions: impl IntoIterator<Item = Action>) {
        for a in actions {
            self.add_action(a);
        }
    }

    fn is_blind_append(&self) -> bool {
        !self.read_whole_table
            && self.read_predicates.is_empty()
            && self.read_files.is_empty()
            && self
                .actions
                .iter()
                .all(|a| matches!(a, Action::Add(add) if add.data_change) || matches!(a, Action::Txn(_) | Action::CommitInfo(_)))
            && self.metadata.is_none()
            && self.protocol.is_none()
    }

    fn in_commit_timestamps(&self) -> bool {
        let m = self.metadata.as_ref().unwrap_or(self.snapshot.metadata());
        m.bool_property("delta.enableInCommitTimestamps", false)
    }

    /// Row tracking: when the table supports it, every new file gets `baseRowId` (fresh ids above
    /// the high-water mark in the `delta.rowTracking` domain) and `defaultRowCommitVersion` (the
    /// version being attempted), and the commit moves the high-water mark. Recomputed on every
    /// attempt, so a rebase over a concurrent winner never reuses its ids.
    fn assign_row_ids(&self, actions: &mut Vec<Action>, version: i64, high_water_mark: i64) -> DeltaResult<()> {
        if !self.snapshot.protocol().has_feature(&crate::table::protocol::TableFeature::RowTracking) {
            return Ok(());
        }
        let mut next = high_water_mark + 1;
        let mut assigned = false;
        for a in actions.iter_mut() {
            let Action::Add(add) = a else { continue };
            if add.base_row_id.is_none() {
                let records = add
                    .stats
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|v| v.get("numRecords").and_then(Value::as_i64))
                    .ok_or_else(|| DeltaError::WriteRefused {
                        reason: format!("row tracking needs numRecords in the stats of {}", add.path),
                    })?;
                add.base_row_id = Some(next);
                next += records;
                assigned = true;
            }
            if add.default_row_commit_version.is_none() {
                add.default_row_commit_version = Some(version);
            }
        }
        if assigned {
            actions.push(Action::DomainMetadata(crate::table::protocol::DomainMetadata {
                domain: ROW_TRACKING_DOMAIN.into(),
                configuration: json!({ "rowIdHighWaterMark": next - 1 }).to_string(),
                removed: false,
            }));
        }
        Ok(())
    }

    fn build_actions(&self, ict: Option<i64>) -> Vec<Action> {
        let mut info = CommitInfo::new();
        if let Some(t) = ict {
            info.insert("inCommitTimestamp".into(), json!(t));
        }
        info.insert("timestamp".into(), json!(now_ms()));
        info.insert("operation".into(), json!(self.operation));
        info.insert("operationParameters".into(), self.operation_parameters.clone());
        if self.read_version >= 0 {
            info.insert("readVersion".into(), json!(self.read_version));
        }
        info.insert("isolationLevel".into(), json!(self.isolation.name()));
        info.insert("isBlindAppend".into(), json!(self.is_blind_append()));
        if self.operation_metrics.as_object().is_some_and(|m| !m.is_empty()) {
            info.insert("operationMetrics".into(), self.operation_metrics.clone());
        }
        info.insert("engineInfo".into(), json!(concat!("delta-core/", env!("CARGO_PKG_VERSION"))));
        info.insert("txnId".into(), json!(self.txn_id));
        for (k, v) in &self.extra_commit_info {
            info.entry(k.clone()).or_insert_with(|| v.clone());
        }
        // commitInfo first: required when in-commit timestamps are enabled.
        let mut out = vec![Action::CommitInfo(info)];
        if let Some(p) = &self.protocol {
            out.push(Action::Protocol(p.clone()));
        }
        if let Some(m) = &self.metadata {
            out.push(Action::Metadata(m.clone()));
        }
        out.extend(self.actions.iter().cloned());
        out
    }

    /// Files whose deletion vector both this transaction and `winner` replaced, from the same
    /// starting vector, with disjoint new rows: rebases this transaction's `remove`/`add` of each
    /// onto the union (writing one new vector file) and returns their paths, which the conflict
    /// checks then ignore. Anything that cannot be resolved is left for the checks to report.
    async fn resolve_deletion_vector_unions(&mut self, winner: &[Action]) -> DeltaResult<HashSet<String>> {
        let ours = dv_replacements(&self.actions);
        if ours.is_empty() {
            return Ok(HashSet::new());
        }
        let theirs = dv_replacements(winner);
        let location = self.snapshot.location().clone();
        let mut merged: HashMap<String, (RemoveFile, crate::table::protocol::DeletionVectorDescriptor)> = HashMap::new();
        let mut writer = crate::read::dv::DvFileWriter::new();
        for (path, (our_remove, our_add)) in &ours {
            let Some((their_remove, their_add)) = theirs.get(path) else { continue };
            let same_start =
                our_remove.deletion_vector.as_ref().map(|d| d.unique_id()) == their_remove.deletion_vector.as_ref().map(|d| d.unique_id());
            let (Some(our_dv), Some(their_dv)) = (&our_add.deletion_vector, &their_add.deletion_vector) else { continue };
            if !same_start {
                continue;
            }
            let records = our_add.num_records();
            let base = match &our_remove.deletion_vector {
                Some(d) => d.load(&location, records).await?,
                None => roaring::RoaringTreemap::new(),
            };
            let mine = our_dv.load(&location, records).await?;
            let other = their_dv.load(&location, records).await?;
            if !(&(&mine - &base) & &(&other - &base)).is_empty() {
                continue;
            }
            let union = &mine | &other;
            let descriptor = writer.add(&union)?;
            let mut removed = (*their_add).clone().to_remove(our_remove.deletion_timestamp.unwrap_or_else(now_ms), true);
            removed.stats = None;
            merged.insert(path.clone(), (removed, descriptor));
        }
        if merged.is_empty() {
            return Ok(HashSet::new());
        }
        writer.finish(&location).await?;
        for action in &mut self.actions {
            match action {
                Action::Remove(r) => {
                    if let Some((removed, _)) = merged.get(&r.path) {
                        *r = removed.clone();
                    }
                }
                Action::Add(a) => {
                    if let Some((_, descriptor)) = merged.get(&a.path) {
                        a.deletion_vector = Some(descriptor.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(merged.into_keys().collect())
    }

    /// Commits: tries `read_version + 1`, rebasing over concurrent winners that do not conflict.
    pub async fn commit(mut self) -> DeltaResult<CommitOutcome> {
        let location = self.snapshot.location().clone();
        // The table this commit leaves must keep its features' writer requirements.
        {
            let protocol = self.protocol.as_ref().unwrap_or(self.snapshot.protocol());
            let metadata = self.metadata.as_ref().unwrap_or(self.snapshot.metadata());
            let own_domains: Vec<&crate::table::protocol::DomainMetadata> =
                self.actions.iter().rev().filter_map(|a| if let Action::DomainMetadata(d) = a { Some(d) } else { None }).collect();
            let changes_shape = self.creates_table || self.metadata.is_some() || self.protocol.is_some() || !own_domains.is_empty();
            // Read only where checked: a plain append never fails on the domain's content.
            let clustering = if changes_shape && protocol.has_feature(&crate::table::protocol::TableFeature::Clustering) {
                crate::table::features::clustering_paths(own_domains.iter().copied().chain(self.snapshot.domain_metadata()))?
            } else {
                Vec::new()
            };
            let before = (!self.creates_table).then(|| (self.snapshot.protocol(), self.snapshot.metadata()));
            crate::table::features::validate(before, protocol, metadata, &clustering, changes_shape, &self.actions)?;
        }
        let pruner = if self.creates_table { None } else { Some(FilePruner::new(&self.snapshot)?) };
        let mut version = self.read_version + 1;
        let mut ict =
            if self.in_commit_timestamps() { Some(now_ms().max(self.snapshot.timestamp_ms().map(|t| t + 1).unwrap_or(0))) } else { None };
        let mut rebases = 0u32;
        let mut row_id_high_water_mark = self
            .snapshot
            .domain_metadata()
            .find(|d| d.domain == ROW_TRACKING_DOMAIN)
            .map(|d| high_water_mark(&d.configuration))
            .unwrap_or(-1);
        loop {
            let mut actions = self.build_actions(ict);
            self.assign_row_ids(&mut actions, version, row_id_high_water_mark)?;
            let body = commit_bytes(&actions)?;
            let path = location.log_path(&format!("{version:020}.json"));
            let mut transient = 0u32;
            let mut backoff = self.retry.initial_backoff;
            let winner: Vec<Action> = loop {
                match location.put_if_absent(&path, body.clone()).await {
                    Ok(()) => return Ok(CommitOutcome::Committed { version }),
                    Err(DeltaError::ObjectStore { source: object_store::Error::AlreadyExists { .. } }) => {}
                    // Refused before the commit was sent: nothing of it can be visible.
                    Err(e @ DeltaError::UnsafeStore { .. }) => return Err(e),
                    Err(e) => {
                        // The store may or may not have applied the write: look before retrying.
                        transient += 1;
                        if transient > self.retry.max_transient_retries {
                            return Ok(match self.lookup(&location, version).await {
                                Lookup::Ours => CommitOutcome::Committed { version },
                                Lookup::Other(_) | Lookup::Absent => {
                                    // Absent after the budget: nothing of ours is visible at this
                                    // version, but an in-flight write could still land.
                                    CommitOutcome::Indeterminate {
                                        txn_id: self.txn_id.clone(),
                                        last_version_tried: version,
                                        error: e.to_string(),
                                    }
                                }
                                Lookup::Unreachable(err) => {
                                    CommitOutcome::Indeterminate { txn_id: self.txn_id.clone(), last_version_tried: version, error: err }
                                }
                            });
                        }
                        tokio::time::sleep(jitter(backoff, &self.txn_id, transient)).await;
                        backoff = (backoff * 2).min(self.retry.max_backoff);
                        continue;
                    }
                }
                match self.lookup(&location, version).await {
                    Lookup::Ours => return Ok(CommitOutcome::Committed { version }),
                    Lookup::Other(actions) => break actions,
                    Lookup::Absent => {
                        // "Already exists" but not readable yet (a lagging store): retry, bounded.
                        transient += 1;
                        if transient > self.retry.max_transient_retries {
                            return Ok(CommitOutcome::Indeterminate {
                                txn_id: self.txn_id.clone(),
                                last_version_tried: version,
                                error: "version exists but cannot be read".into(),
                            });
                        }
                        tokio::time::sleep(jitter(backoff, &self.txn_id, transient)).await;
                        backoff = (backoff * 2).min(self.retry.max_backoff);
                    }
                    Lookup::Unreachable(err) => {
                        transient += 1;
                        if transient > self.retry.max_transient_retries {
                            return Ok(CommitOutcome::Indeterminate {
                                txn_id: self.txn_id.clone(),
                                last_version_tried: version,
                                error: err,
                            });
                        }
                        tokio::time::sleep(jitter(backoff, &self.txn_id, transient)).await;
                        backoff = (backoff * 2).min(self.retry.max_backoff);
                    }
                }
            };
            if self.creates_table {
                return Ok(CommitOutcome::Conflict(ConflictReason::ProtocolChanged { version }));
            }
            let unioned = self.resolve_deletion_vector_unions(&winner).await?;
            if let Some(reason) = self.check_conflicts(version, &winner, pruner.as_ref(), &unioned)? {
                return Ok(CommitOutcome::Conflict(reason));
            }
            // Rebase row ids past the winner's.
            for a in &winner {
                if let Action::DomainMetadata(d) = a {
                    if d.domain == ROW_TRACKING_DOMAIN {
                        row_id_high_water_mark = row_id_high_water_mark.max(high_water_mark(&d.configuration));
                    }
                }
            }
            // Rebase the in-commit timestamp past the winner's.
            if let Some(t) = ict {
                let winner_ict = winner.iter().find_map(|a| match a {
                    Action::CommitInfo(ci) => ci.get("inCommitTimestamp").and_then(Value::as_i64),
                    _ => None,
                });
                ict = Some(winner_ict.map_or(t, |w| t.max(w + 1)));
            }
            rebases += 1;
            if rebases > self.retry.max_rebases {
                return Ok(CommitOutcome::Conflict(ConflictReason::TooManyRetries { attempts: rebases }));
            }
            version += 1;
        }
    }

    async fn lookup(&self, location: &TableLocation, version: i64) -> Lookup {
        let path = location.log_path(&format!("{version:020}.json"));
        match location.read_optional(&path).await {
            Ok(None) => Lookup::Absent,
            Ok(Some(bytes)) => {
                match parse_commit(path.as_ref(), &bytes) {
                    Ok(actions) => {
                        let ours = actions.iter().any(|a| matches!(a, Action::CommitInfo(ci) if ci.get("txnId").and_then(Value::as_str) == Some(self.txn_id.as_str())));
                        if ours {
                            Lookup::Ours
                        } else {
                            Lookup::Other(actions)
                        }
                    }
                    Err(e) => Lookup::Unreachable(e.to_string()),
                }
            }
            Err(e) => Lookup::Unreachable(e.to_string()),
        }
    }

    /// delta-spark's checks, in its order, of this transaction against one winning commit.
    fn check_conflicts(
        &self,
        version: i64,
        winner: &[Action],
        pruner: Option<&FilePruner>,
        unioned: &HashSet<String>,
    ) -> DeltaResult<Option<ConflictReason>> {
        // 1. Protocol.
        if winner.iter().any(|a| matches!(a, Action::Protocol(_))) {
            return Ok(Some(ConflictReason::ProtocolChanged { version }));
        }
        // 2. Metadata.
        if winner.iter().any(|a| matches!(a, Action::Metadata(_))) {
            return Ok(Some(ConflictReason::MetadataChanged { version }));
        }
        // 3. Domain metadata touched by both.
        let ours: HashSet<&str> =
            self.actions.iter().filter_map(|a| if let Action::DomainMetadata(d) = a { Some(d.domain.as_str()) } else { None }).collect();
        for a in winner {
            if let Action::DomainMetadata(d) = a {
                if ours.contains(d.domain.as_str()) && d.domain != ROW_TRACKING_DOMAIN {
                    return Ok(Some(ConflictReason::ConcurrentDomainMetadata { version, domain: d.domain.clone() }));
                }
            }
        }
        // 4. Application transaction ids this transaction depends on (read or writes).
        let our_apps: HashSet<&str> = self
            .actions
            .iter()
            .filter_map(|a| if let Action::Txn(t) = a { Some(t.app_id.as_str()) } else { None })
            .chain(self.read_app_ids.iter().map(String::as_str))
            .collect();
        for a in winner {
            if let Action::Txn(t) = a {
                if our_apps.contains(t.app_id.as_str()) {
                    return Ok(Some(ConflictReason::ConcurrentTransaction { version, app_id: t.app_id.clone() }));
                }
            }
        }
        // 5. Files added that this transaction should have read.
        let winner_blind =
            winner.iter().any(|a| matches!(a, Action::CommitInfo(ci) if ci.get("isBlindAppend").and_then(Value::as_bool) == Some(true)));
        let adds_count = match self.isolation {
            IsolationLevel::Serializable => true,
            IsolationLevel::WriteSerializable => !winner_blind || self.metadata.is_some(),
            IsolationLevel::SnapshotIsolation => false,
        };
        if adds_count && (self.read_whole_table || !self.read_predicates.is_empty()) {
            for a in winner {
                let Action::Add(add) = a else { continue };
                if !add.data_change || unioned.contains(&add.path) {
                    continue;
                }
                if self.read_whole_table || self.add_matches_reads(add, pruner)? {
                    return Ok(Some(ConflictReason::ConcurrentAppend { version, path: add.path.clone() }));
                }
            }
        }
        // 6. Files deleted that this transaction read. As in delta-spark, removes with
        // `dataChange = false` count too: a file compacted away by OPTIMIZE can no longer take
        // the deletion vector or rewrite this transaction planned for it.
        for a in winner {
            let Action::Remove(r) = a else { continue };
            if unioned.contains(&r.path) {
                continue;
            }
            if self.read_whole_table || self.read_files.contains(&r.path) || self.remove_matches_reads(r, pruner)? {
                return Ok(Some(ConflictReason::ConcurrentDeleteRead { version, path: r.path.clone() }));
            }
        }
        // 7. Files deleted by both.
        let our_removes: HashSet<&str> =
            self.actions.iter().filter_map(|a| if let Action::Remove(r) = a { Some(r.path.as_str()) } else { None }).collect();
        for a in winner {
            if let Action::Remove(r) = a {
                if our_removes.contains(r.path.as_str()) && !unioned.contains(&r.path) {
                    return Ok(Some(ConflictReason::ConcurrentDeleteDelete { version, path: r.path.clone() }));
                }
            }
        }
        Ok(None)
    }

    fn add_matches_reads(&self, add: &AddFile, pruner: Option<&FilePruner>) -> DeltaResult<bool> {
        self.file_matches_reads(&add.partition_values, add.stats.as_deref(), pruner)
    }

    fn remove_matches_reads(&self, r: &RemoveFile, pruner: Option<&FilePruner>) -> DeltaResult<bool> {
        if self.read_predicates.is_empty() {
            return Ok(false);
        }
        // A remove without partition values could have held anything.
        match &r.partition_values {
            Some(raw) => self.file_matches_reads(raw, r.stats.as_deref(), pruner),
            None => Ok(true),
        }
    }

    /// Whether a file with these partition values and stats can hold rows of any read predicate.
    fn file_matches_reads(
        &self,
        raw_partition_values: &HashMap<String, Option<String>>,
        stats: Option<&str>,
        pruner: Option<&FilePruner>,
    ) -> DeltaResult<bool> {
        let Some(pruner) = pruner else { return Ok(true) };
        let pv = pruner.logical_partition_values(raw_partition_values);
        let stats: Option<Value> = stats.and_then(|s| serde_json::from_str(s).ok());
        for p in &self.read_predicates {
            if pruner.may_match(p, &pv, stats.clone())? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Files a commit's actions only give a new deletion vector: `path → (remove, add)` for every
/// path that is both removed and re-added (with a deletion vector) by the same commit.
fn dv_replacements(actions: &[Action]) -> HashMap<String, (&RemoveFile, &AddFile)> {
    let removes: HashMap<&str, &RemoveFile> =
        actions.iter().filter_map(|a| if let Action::Remove(r) = a { Some((r.path.as_str(), r)) } else { None }).collect();
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Add(add) if add.deletion_vector.is_some() => removes.get(add.path.as_str()).map(|r| (add.path.clone(), (*r, add))),
            _ => None,
        })
        .collect()
}

/// The domain holding the row id high-water mark.
pub const ROW_TRACKING_DOMAIN: &str = "delta.rowTracking";

fn high_water_mark(configuration: &str) -> i64 {
    serde_json::from_str::<Value>(configuration).ok().and_then(|v| v.get("rowIdHighWaterMark").and_then(Value::as_i64)).unwrap_or(-1)
}

enum Lookup {
    Ours,
    Other(Vec<Action>),
    Absent,
    Unreachable(String),
}

/// Full jitter: a pseudo-random duration in `[0, backoff]`, seeded by the transaction and attempt.
fn jitter(backoff: Duration, txn_id: &str, attempt: u32) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in txn_id.bytes().chain(attempt.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let nanos = backoff.as_nanos().max(1) as u64;
    Duration::from_nanos(h % nanos)
}

/// Looks a transaction up by its `txnId` in versions `from..`: the version it committed at, if any.
pub async fn resolve_txn(location: &TableLocation, txn_id: &str, from: i64) -> DeltaResult<Option<i64>> {
    let listing = crate::log::segment::LogSegment::full_listing(location).await?;
    for (v, file) in listing.commits.range(from.max(0)..) {
        let info = crate::read::snapshot::read_commit_info(location, file).await?;
        if info.get("txnId").and_then(Value::as_str) == Some(txn_id) {
            return Ok(Some(*v));
        }
    }
    Ok(None)
}
