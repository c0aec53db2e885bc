//! Writes: data files with statistics, then one commit.
//!
//! ```text
//!  RecordBatch stream ─► enforce schema (cast safe widenings, fill missing nullable columns,
//!        │               mergeSchema / overwriteSchema) ─► NOT NULL, invariants, CHECK constraints
//!        ▼
//!  split by partition values ─► parquet files at a target size (physical names and field ids under
//!        │                      column mapping) ─► add actions with numRecords/min/max/nullCount
//!        ▼
//!  Transaction: adds (+ removes for overwrite / dynamic partition overwrite; replaceWhere
//!               deletes as DELETE does: deletion vectors or copied rows keeping their row ids,
//!               change data on CDF tables; + metaData when the schema changes, + txn for
//!               idempotent writes) ─► commit
//!        ▼
//!  post-commit: checkpoint every `delta.checkpointInterval` commits, `.crc` file
//! ```
//!
//! The decisions come first and need only the input's schema ([`Table::begin_write`] →
//! [`FileWrite`]); the data files can then be written here or by other processes from a
//! serializable [`WriteTask`] (a cluster's executors), whose `add`s [`FileWrite::commit_files`]
//! commits. [`Table::write_stream`] is the two halves in one process.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::enforce::{
    check_rules, conform_without_generated, ensure_writable, fill_generated_columns, fill_identity_columns, identity_columns,
    merge_schemas, schema_from_arrow, table_rules,
};
use super::files::{DeltaWriter, ParallelWriter};
use crate::error::{DeltaError, DeltaResult};
use crate::log::storage::TableLocation;
use crate::read::skipping::FilePruner;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::{Action, AddFile};
use crate::table::column_mapping::{assign_column_mapping, assign_new_column_ids};
use crate::table::expr::{evaluate_predicate, Expr};
use crate::table::features::min_protocol;
use crate::table::protocol::{AppTransaction, Format, Metadata, Protocol, TableFeature};
use crate::table::schema::{ColumnMappingMode, StructType};
use crate::write::txn::{CommitOutcome, IsolationLevel, Transaction};

/// A table's first version, prepared but not committed (see `Table::new_table`).
struct NewTable {
    snapshot: Snapshot,
    protocol: Protocol,
    metadata: Metadata,
    domain: Option<crate::table::protocol::DomainMetadata>,
    parameters: Value,
}

/// What CREATE TABLE does when a table is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// `CREATE TABLE`: refused.
    Create,
    /// `CREATE TABLE IF NOT EXISTS`: left alone.
    IfNotExists,
    /// `REPLACE TABLE`: replaced; refused when there is no table.
    Replace,
    /// `CREATE OR REPLACE TABLE`: replaced, or created.
    CreateOrReplace,
}

/// A table as CREATE TABLE declares it.
#[derive(Debug, Clone, Default)]
pub struct TableSpec {
    pub schema: StructType,
    pub partition_columns: Vec<String>,
    pub clustering_columns: Vec<Vec<String>>,
    pub properties: HashMap<String, String>,
    /// `COMMENT '…'`: the metadata's description.
    pub description: Option<String>,
}

fn properties_mode(s: &Snapshot) -> Option<String> {
    s.metadata().property("delta.columnMapping.mode").map(str::to_string)
}

/// How a write treats existing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveMode {
    #[default]
    Append,
    Overwrite,
    /// Fail if the table exists.
    ErrorIfExists,
    /// Do nothing if the table exists.
    Ignore,
}

/// Options of [`Table::write`].
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub mode: SaveMode,
    /// Overwrite only rows matching this predicate; every written row must match it.
    pub replace_where: Option<Expr>,
    /// Overwrite only the partitions present in the written data.
    pub dynamic_partition_overwrite: bool,
    /// Partition columns when the write creates the table (must match an existing table's).
    pub partition_by: Option<Vec<String>>,
    /// Add new columns (nested too) found in the data; widen types where typeWidening is on.
    pub merge_schema: bool,
    /// Replace the schema (and partitioning) on overwrite.
    pub overwrite_schema: bool,
    /// Table properties when the write creates the table.
    pub properties: HashMap<String, String>,
    /// Clustering columns (`CLUSTER BY`, liquid clustering) when the write creates the table;
    /// dotted paths for nested fields. An existing table is reclustered with
    /// [`Table::cluster_by`].
    pub cluster_by: Option<Vec<String>>,
    /// Target size of data files in bytes (default `delta.targetFileSize` or 128 MiB).
    pub target_file_size: Option<u64>,
    /// Rows per parquet row group at most (default 1 Mi rows, or 128 MiB).
    pub row_group_rows: Option<usize>,
    /// Idempotent write: application id and version. A version not above the table's last
    /// recorded one for the application is skipped.
    pub app_transaction: Option<(String, i64)>,
    pub isolation: Option<IsolationLevel>,
    /// Extra `commitInfo` entries (e.g. `userMetadata`), as Spark's `userMetadata` option.
    pub commit_info: serde_json::Map<String, Value>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// The committed version; `None` when nothing was committed (Ignore mode on an existing
    /// table, or an idempotent write already applied).
    pub version: Option<i64>,
    pub files_added: usize,
    pub files_removed: usize,
    pub rows_written: u64,
    /// A failure after the commit (checksum or checkpoint writing). The commit stands; the next
    /// commit or an explicit checkpoint repairs what is missing.
    pub post_commit_error: Option<String>,
}

pub(crate) fn new_metadata(schema: &StructType, partition_columns: Vec<String>, properties: &HashMap<String, String>) -> Metadata {
    Metadata {
        id: uuid::Uuid::new_v4().to_string(),
        name: None,
        description: None,
        format: Format { provider: "parquet".into(), options: HashMap::new() },
        schema_string: schema.to_json().to_string(),
        partition_columns,
        created_time: Some(chrono::Utc::now().timestamp_millis()),
        configuration: properties.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect(),
    }
}

impl Table {
    /// Creates the table at version 0 with this schema, partitioning and properties.
    pub async fn create(&self, schema: StructType, partition_columns: &[String], properties: HashMap<String, String>) -> DeltaResult<i64> {
        self.create_clustered(schema, partition_columns, &[], properties).await
    }

    /// Creates the table at version 0, clustered by `clustering_columns` when any are given
    /// (`CLUSTER BY`: the `clustering` and `domainMetadata` features and the `delta.clustering`
    /// domain; a clustered table cannot be partitioned). Properties that enable IcebergCompat
    /// turn column mapping on where they leave it off.
    pub async fn create_clustered(
        &self,
        schema: StructType,
        partition_columns: &[String],
        clustering_columns: &[Vec<String>],
        properties: HashMap<String, String>,
    ) -> DeltaResult<i64> {
        self.ensure_no_table().await?;
        let new = self.new_table(schema, partition_columns, clustering_columns, properties)?;
        let mut txn = Transaction::create(new.snapshot).with_operation("CREATE TABLE", new.parameters);
        txn.add_action(Action::Protocol(new.protocol));
        txn.add_action(Action::Metadata(new.metadata));
        if let Some(d) = new.domain {
            txn.add_action(Action::DomainMetadata(d));
        }
        self.commit_new_table(txn).await
    }

    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS]` / `REPLACE TABLE` with a declared schema:
    /// `None` when `IfNotExists` found a table and left it alone. Replacing keeps the table's id
    /// and history, writes the new schema, partitioning, properties and description, removes
    /// every file, and never downgrades the protocol (one commit, as delta-spark does).
    pub async fn create_table(&self, spec: TableSpec, mode: CreateMode) -> DeltaResult<Option<i64>> {
        let existing = match self.snapshot().await {
            Ok(s) => Some(s),
            Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. }) => None,
            Err(e) => return Err(e),
        };
        let TableSpec { schema, partition_columns, clustering_columns, properties, description } = spec;
        let current = match (existing, mode) {
            (None, CreateMode::Replace) => {
                return Err(DeltaError::WriteRefused {
                    reason: format!("REPLACE TABLE: there is no table at {}; use CREATE OR REPLACE TABLE", self.location().root_url()),
                })
            }
            (None, _) => {
                let mut new = self.new_table(schema, &partition_columns, &clustering_columns, properties)?;
                if let Some(d) = &description {
                    new.parameters["description"] = json!(d);
                }
                new.metadata.description = description;
                let mut txn = Transaction::create(new.snapshot).with_operation("CREATE TABLE", new.parameters);
                txn.add_action(Action::Protocol(new.protocol));
                txn.add_action(Action::Metadata(new.metadata));
                if let Some(d) = new.domain {
                    txn.add_action(Action::DomainMetadata(d));
                }
                return self.commit_new_table(txn).await.map(Some);
            }
            (Some(_), CreateMode::IfNotExists) => return Ok(None),
            (Some(s), CreateMode::Create) => {
                return Err(DeltaError::WriteRefused {
                    reason: format!("a table already exists at {} (version {})", self.location().root_url(), s.version()),
                })
            }
            (Some(s), CreateMode::Replace | CreateMode::CreateOrReplace) => s,
        };
        ensure_writable(current.protocol())?;
        let new = self.new_table(schema, &partition_columns, &clustering_columns, properties)?;
        let mut metadata = new.metadata;
        metadata.id = current.metadata().id.clone();
        let mut parameters = new.parameters;
        if let Some(d) = &description {
            parameters["description"] = json!(d);
        }
        metadata.description = description;
        let operation = if mode == CreateMode::Replace { "REPLACE TABLE" } else { "CREATE OR REPLACE TABLE" };
        let mut txn = Transaction::new(current.clone()).with_isolation(IsolationLevel::Serializable).with_operation(operation, parameters);
        txn.read_whole_table();
        if let Some(upgraded) = current.protocol().upgraded_with(&new.protocol) {
            ensure_writable(&upgraded)?;
            txn.add_action(Action::Protocol(upgraded));
        }
        txn.add_action(Action::Metadata(metadata));
        match new.domain {
            Some(d) => txn.add_action(Action::DomainMetadata(d)),
            None if current.protocol().has_feature(&TableFeature::Clustering) => {
                // The replaced table is not clustered: its clustering columns are cleared.
                let mode = ColumnMappingMode::from_config(properties_mode(&current).as_deref())?;
                let schema = current.schema().clone();
                txn.add_action(Action::DomainMetadata(crate::table::features::clustering_domain(&schema, mode, &[])?));
            }
            None => {}
        }
        let now = chrono::Utc::now().timestamp_millis();
        for add in current.add_files()? {
            txn.add_action(Action::Remove(add.to_remove(now, true)));
        }
        let version = txn.commit().await?.version()?;
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(Some(version))
    }

    /// The first version of a table not yet committed: its protocol, metadata and clustering
    /// domain, and a snapshot at version -1 to build its first transaction on.
    fn new_table(
        &self,
        schema: StructType,
        partition_columns: &[String],
        clustering_columns: &[Vec<String>],
        properties: HashMap<String, String>,
    ) -> DeltaResult<NewTable> {
        for p in partition_columns {
            if schema.field(p).is_none() {
                return Err(DeltaError::WriteRefused { reason: format!("partition column `{p}` is not in the schema") });
            }
        }
        if !clustering_columns.is_empty() && !partition_columns.is_empty() {
            return Err(DeltaError::FeatureRequirement {
                feature: "clustering".into(),
                reason: "a table cannot be both partitioned and clustered".into(),
            });
        }
        let mut schema = schema;
        let mut properties = properties;
        crate::table::features::prepare_properties(&mut properties);
        if properties.get("delta.columnMapping.mode").is_some_and(|m| m != "none") {
            let mut next = 1;
            assign_column_mapping(&mut schema, &mut next);
            if crate::table::features::iceberg_compat_in(&properties) == Some(2) {
                crate::table::features::assign_nested_ids(&mut schema, &mut next);
            }
            properties.insert("delta.columnMapping.maxColumnId".into(), (next - 1).to_string());
        }
        if properties.get("delta.enableRowTracking").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            // As delta-spark does at enablement: the names rewrites will materialise row ids under.
            for (key, name) in crate::read::row_tracking::missing_names(|k| properties.contains_key(k)) {
                properties.insert(key.to_string(), name);
            }
        }
        let mut protocol = min_protocol(&schema, &properties);
        let mut domain = None;
        if !clustering_columns.is_empty() {
            let mode = ColumnMappingMode::from_config(properties.get("delta.columnMapping.mode").map(String::as_str))?;
            domain = Some(crate::table::features::clustering_domain(&schema, mode, clustering_columns)?);
            // `clustering` brings `domainMetadata` with it.
            if let Some(p) = crate::table::features::feature_protocol(&["clustering"])?.and_then(|p| protocol.upgraded_with(&p)) {
                protocol = p;
            }
        }
        let metadata = new_metadata(&schema, partition_columns.to_vec(), &properties);
        let snapshot = Snapshot::new_table(self.location().clone(), protocol.clone(), metadata.clone())?;
        let cluster_by: Vec<String> = clustering_columns.iter().map(|c| c.join(".")).collect();
        // delta-spark's parameters of CREATE TABLE (a path-named table is not managed).
        let mut parameters = json!({"isManaged": "false", "partitionBy": serde_json::to_string(partition_columns).unwrap_or_default(), "properties": serde_json::to_string(&properties).unwrap_or_default()});
        if !cluster_by.is_empty() {
            parameters["clusterBy"] = json!(serde_json::to_string(&cluster_by).unwrap_or_default());
        }
        Ok(NewTable { snapshot, protocol, metadata, domain, parameters })
    }

    /// Refuses when a table already exists here (creating and cloning need an empty location).
    pub(crate) async fn ensure_no_table(&self) -> DeltaResult<()> {
        match self.snapshot().await {
            Ok(s) => Err(DeltaError::WriteRefused {
                reason: format!("a table already exists at {} (version {})", self.location().root_url(), s.version()),
            }),
            Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Commits version 0; losing the race to another creator is a refusal, not a conflict.
    pub(crate) async fn commit_new_table(&self, txn: Transaction) -> DeltaResult<i64> {
        match txn.commit().await? {
            CommitOutcome::Committed { version } => Ok(version),
            CommitOutcome::Conflict(_) => {
                Err(DeltaError::WriteRefused { reason: format!("a table was created concurrently at {}", self.location().root_url()) })
            }
            other => other.version(),
        }
    }

    /// Writes batches (any stream of them) with `options`; creates the table from the first
    /// batch's schema when it does not exist.
    pub async fn write_stream<S>(&self, batches: S, options: WriteOptions) -> DeltaResult<WriteResult>
    where
        S: Stream<Item = DeltaResult<RecordBatch>> + Send + Unpin,
    {
        let mut batches = batches.peekable();
        let existing = self.existing_snapshot().await?;
        let first_schema = match std::pin::Pin::new(&mut batches).peek().await {
            Some(Ok(b)) => Some(b.schema()),
            Some(Err(_)) => match batches.next().await {
                // The input failed before producing anything: that error, not "empty input".
                Some(Err(e)) => return Err(e),
                _ => None,
            },
            None => None,
        };
        match self.plan_write(existing, first_schema, options).await? {
            PlannedWrite::Done(result) => Ok(result),
            // Boxed: a write's state is large, and callers' futures hold this one.
            PlannedWrite::Files(write) => Box::pin(write.write_stream(batches)).await,
        }
    }

    /// Writes in-memory batches; see [`Table::write_stream`].
    pub async fn write(&self, batches: Vec<RecordBatch>, options: WriteOptions) -> DeltaResult<WriteResult> {
        self.write_stream(futures::stream::iter(batches.into_iter().map(Ok)), options).await
    }

    /// A write whose input has `schema`, decided before any row is read: what
    /// [`Table::write_stream`] decides from its first batch (save mode, table creation, schema
    /// evolution, partitioning). Its data files may then be written here
    /// ([`FileWrite::write_stream`]) or by other processes ([`FileWrite::task`], then
    /// [`FileWrite::commit_files`] with the files they wrote): an engine running the query on a
    /// cluster has its executors write the files and commits them here, once.
    pub async fn begin_write(&self, schema: SchemaRef, options: WriteOptions) -> DeltaResult<PlannedWrite> {
        let existing = self.existing_snapshot().await?;
        self.plan_write(existing, Some(schema), options).await
    }

    async fn existing_snapshot(&self) -> DeltaResult<Option<Snapshot>> {
        match self.snapshot().await {
            Ok(s) => Ok(Some(s)),
            Err(DeltaError::NotATable { .. } | DeltaError::NoCommits { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn plan_write(&self, existing: Option<Snapshot>, first_schema: Option<SchemaRef>, options: WriteOptions) -> DeltaResult<PlannedWrite> {
        let snapshot = match existing {
            Some(s) => {
                match options.mode {
                    SaveMode::ErrorIfExists => {
                        return Err(DeltaError::WriteRefused { reason: format!("table exists at version {}", s.version()) })
                    }
                    SaveMode::Ignore => return Ok(PlannedWrite::Done(WriteResult::nothing())),
                    _ => {}
                }
                s
            }
            None => {
                let schema = match &first_schema {
                    Some(s) => schema_from_arrow(s)?,
                    None => {
                        return Err(DeltaError::WriteRefused {
                            reason: "cannot create a table from an empty input without a schema".into(),
                        })
                    }
                };
                let parts = options.partition_by.clone().unwrap_or_default();
                let clustering = crate::table::features::parse_columns(options.cluster_by.as_deref().unwrap_or_default())?;
                if options.replace_where.is_some() {
                    // A replaceWhere on a new table deletes nothing but still checks every row
                    // against its predicate, which the rewriter does over a committed table.
                    self.create_clustered(schema, &parts, &clustering, options.properties.clone()).await?;
                    self.snapshot().await?
                } else {
                    // Version 0 holds the protocol, metadata and the data files, as in Spark: a
                    // failed first write leaves no empty table behind.
                    let new = self.new_table(schema, &parts, &clustering, options.properties.clone())?;
                    return FileWrite::prepare(self, new.snapshot.clone(), options, first_schema, Some(new));
                }
            }
        };
        if let Some(parts) = &options.partition_by {
            let same = parts.len() == snapshot.partition_columns().len()
                && parts.iter().zip(snapshot.partition_columns()).all(|(a, b)| a.eq_ignore_ascii_case(b));
            let replacing = options.overwrite_schema && options.mode == SaveMode::Overwrite;
            if !same && !replacing {
                return Err(DeltaError::WriteRefused {
                    reason: format!("partitioning {:?} differs from the table's {:?}", parts, snapshot.partition_columns()),
                });
            }
        }
        if let Some(cols) = &options.cluster_by {
            let wanted = crate::table::features::parse_columns(cols)?;
            let current = snapshot.clustering_columns()?;
            let same = wanted.len() == current.len() && wanted.iter().zip(&current).all(|(a, b)| crate::table::schema::same_path(a, b));
            if !same {
                let show = |c: &[Vec<String>]| c.iter().map(|p| p.join(".")).collect::<Vec<_>>();
                return Err(DeltaError::WriteRefused {
                    reason: format!(
                        "clustering {:?} differs from the table's {:?} (change it with Table::cluster_by)",
                        show(&wanted),
                        show(&current)
                    ),
                });
            }
        }
        FileWrite::prepare(self, snapshot, options, first_schema, None)
    }
}

impl WriteResult {
    /// Nothing committed (Ignore mode on an existing table, an idempotent write already applied).
    fn nothing() -> Self {
        WriteResult { version: None, files_added: 0, files_removed: 0, rows_written: 0, post_commit_error: None }
    }
}

/// What a write does, decided before its rows are read ([`Table::begin_write`]).
pub enum PlannedWrite {
    /// Nothing to write: Ignore mode on an existing table, or an idempotent write
    /// (`app_transaction`) the table already has.
    Done(WriteResult),
    /// Data files to write, then one commit.
    Files(Box<FileWrite>),
}

/// A write after its decisions (schema, protocol, partitioning, what an overwrite removes) and
/// before its data files: written here by [`FileWrite::write_stream`], or elsewhere from
/// [`FileWrite::task`] and committed by [`FileWrite::commit_files`].
pub struct FileWrite {
    table: Table,
    snapshot: Snapshot,
    options: WriteOptions,
    new_table: Option<NewTable>,
    metadata: Metadata,
    protocol: Protocol,
    schema: StructType,
    schema_changed: bool,
    metadata_changed: bool,
    identities: Vec<super::enforce::Identity>,
    rewriter: Option<crate::write::rewrite::Rewriter>,
    insert_changes: bool,
    checks: WriteChecks,
    target_size: u64,
}

/// What every written batch goes through before it is encoded: conformed to the table's schema
/// (safe casts, missing nullable columns), generated columns filled, NOT NULL, invariants and
/// CHECK constraints, and replaceWhere's predicate.
struct WriteChecks {
    target: SchemaRef,
    schema: StructType,
    rules: Vec<(String, Expr)>,
    replace_where: Option<Expr>,
}

impl WriteChecks {
    fn new(metadata: &Metadata, schema: &StructType, replace_where: Option<Expr>) -> DeltaResult<Self> {
        // Nullability is enforced by the checks, not by Arrow: generated and identity columns are
        // null until they are filled in.
        let target =
            Arc::new(Schema::new(schema.to_arrow()?.fields().iter().map(|f| crate::table::schema::all_nullable(f)).collect::<Vec<_>>()));
        Ok(WriteChecks { target, schema: schema.clone(), rules: table_rules(metadata, schema)?, replace_where })
    }

    fn check(&self, batch: &RecordBatch, identities: &mut [super::enforce::Identity]) -> DeltaResult<RecordBatch> {
        let (batch, provided) = conform_without_generated(batch, &self.target, &self.schema)?;
        let batch = fill_identity_columns(batch, &provided, identities)?;
        let batch = fill_generated_columns((batch, provided), &self.schema)?;
        check_rules(&batch, &self.rules)?;
        if let Some(pred) = &self.replace_where {
            let outside = batch.num_rows() - evaluate_predicate(pred, &batch)?.true_count();
            if outside > 0 {
                return Err(DeltaError::WriteRefused { reason: format!("{outside} written row(s) do not match replaceWhere `{pred}`") });
            }
        }
        Ok(batch)
    }
}

/// The data-file half of a write, sent to another process (a cluster's executor): the table's
/// location and metadata as this write commits it (schema evolution included), and the file
/// sizes. [`WriteTask::writer`] checks and encodes rows exactly as a local write does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteTask {
    /// The table's root URL (each process opens it with its own storage options).
    pub table: String,
    pub metadata: Metadata,
    pub target_file_size: u64,
    pub row_group_rows: Option<usize>,
}

impl WriteTask {
    /// A writer of this task's data files at `location` (the table's, opened by this process).
    pub fn writer(&self, location: TableLocation) -> DeltaResult<TaskWriter> {
        let schema = StructType::parse(&self.metadata.schema_string)?;
        let mode = ColumnMappingMode::from_config(self.metadata.property("delta.columnMapping.mode"))?;
        let checks = WriteChecks::new(&self.metadata, &schema, None)?;
        if !identity_columns(&schema)?.is_empty() {
            return Err(DeltaError::Internal("a write with identity columns cannot be split across processes".into()));
        }
        let files = DeltaWriter::new(location, &self.metadata, &schema, mode, self.target_file_size)?;
        let files = match self.row_group_rows {
            Some(n) => files.with_row_group_rows(n),
            None => files,
        };
        Ok(TaskWriter { checks, files })
    }
}

/// Writes one task's rows into data files ([`WriteTask::writer`]).
pub struct TaskWriter {
    checks: WriteChecks,
    files: DeltaWriter,
}

impl TaskWriter {
    /// Checks and writes one batch (files are cut at the target size as rows arrive).
    pub async fn write(&mut self, batch: &RecordBatch) -> DeltaResult<()> {
        let batch = self.checks.check(batch, &mut [])?;
        self.files.write(&batch).await
    }

    /// Closes the open files: their `add` actions (with statistics) and the rows written.
    pub async fn finish(self) -> DeltaResult<(Vec<AddFile>, u64)> {
        self.files.finish().await
    }
}

impl FileWrite {
    fn prepare(
        table: &Table,
        snapshot: Snapshot,
        options: WriteOptions,
        first_schema: Option<SchemaRef>,
        new_table: Option<NewTable>,
    ) -> DeltaResult<PlannedWrite> {
        let mut metadata = snapshot.metadata().clone();
        let mut protocol = snapshot.protocol().clone();
        let mut schema = snapshot.schema().clone();
        ensure_writable(&protocol)?;
        if let Some((app, v)) = &options.app_transaction {
            if snapshot.app_transactions().get(app).is_some_and(|t| t.version >= *v) {
                return Ok(PlannedWrite::Done(WriteResult::nothing()));
            }
        }
        let removes_data = options.mode == SaveMode::Overwrite;
        if removes_data && metadata.bool_property("delta.appendOnly", false) {
            return Err(DeltaError::WriteRefused {
                reason: "the table is append-only (delta.appendOnly=true); overwrite is not allowed".into(),
            });
        }
        // Schema evolution.
        let mut schema_changed = false;
        let mut metadata_changed = false;
        if let Some(input) = &first_schema {
            let data_schema = schema_from_arrow(input)?;
            if options.overwrite_schema && options.mode == SaveMode::Overwrite && options.replace_where.is_none() {
                if data_schema != schema {
                    schema = data_schema;
                    schema_changed = true;
                    if let Some(parts) = &options.partition_by {
                        metadata.partition_columns = parts.clone();
                    }
                }
            } else if options.merge_schema {
                let widen = protocol.has_feature(&TableFeature::TypeWidening) || protocol.has_feature(&TableFeature::TypeWideningPreview);
                let merged = merge_schemas(&schema, &data_schema, widen)?;
                if merged != schema {
                    schema = merged;
                    schema_changed = true;
                }
            }
        }
        let mode = snapshot.column_mapping_mode();
        if schema_changed {
            if mode != ColumnMappingMode::None {
                assign_new_column_ids(&mut schema, &mut metadata);
            }
            metadata.schema_string = schema.to_json().to_string();
            let props: HashMap<String, String> =
                metadata.configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
            let needed = min_protocol(&schema, &props);
            if needed.min_writer_version > protocol.min_writer_version || needed.min_reader_version > protocol.min_reader_version {
                protocol = needed;
            }
        }
        let checks = WriteChecks::new(&metadata, &schema, options.replace_where.clone())?;
        let identities = identity_columns(&schema)?;
        let target_size = options
            .target_file_size
            .or_else(|| metadata.property("delta.targetFileSize").and_then(|v| v.parse().ok()))
            .unwrap_or(128 * 1024 * 1024);
        // replaceWhere deletes what its predicate selects as DELETE does (whole files for a
        // partition predicate; otherwise deletion vectors or copied rows that keep their row ids,
        // and change data for the deleted and the written rows on a CDF table).
        let mut rewriter = None;
        let mut insert_changes = false;
        if let (SaveMode::Overwrite, Some(pred)) = (options.mode, &options.replace_where) {
            let mut rw = crate::write::rewrite::Rewriter::new(snapshot.clone(), "WRITE")?;
            if schema_changed {
                rw.evolve(schema.clone())?;
            }
            // A row-tracking table that never declared its materialised column names gets them.
            for (k, v) in &rw.metadata.configuration {
                if k.starts_with("delta.rowTracking.") && !metadata.configuration.contains_key(k) {
                    metadata.configuration.insert(k.clone(), v.clone());
                    metadata_changed = true;
                }
            }
            // Once a commit has change data files readers use only those: with rows deleted from
            // inside files (change data written for them), the written rows get theirs too.
            insert_changes = rw.cdf && !rw.is_partition_only(pred);
            rewriter = Some(rw);
        }
        Ok(PlannedWrite::Files(Box::new(FileWrite {
            table: table.clone(),
            snapshot,
            options,
            new_table,
            metadata,
            protocol,
            schema,
            schema_changed,
            metadata_changed,
            identities,
            rewriter,
            insert_changes,
            checks,
            target_size,
        })))
    }

    /// The schema the written rows take (the table's, after this write's evolution).
    pub fn schema(&self) -> &StructType {
        &self.schema
    }

    /// The data-file half of this write for other processes, when it can be split: not when the
    /// table has identity columns (one process hands out their values) or the write is a
    /// replaceWhere overwrite (its rows are checked against rows it deletes, and change data is
    /// written beside them).
    pub fn task(&self) -> Option<WriteTask> {
        if !self.identities.is_empty() || self.rewriter.is_some() || self.options.replace_where.is_some() {
            return None;
        }
        Some(WriteTask {
            table: self.snapshot.location().root_url().to_string(),
            metadata: self.metadata.clone(),
            target_file_size: self.target_size,
            row_group_rows: self.options.row_group_rows,
        })
    }

    /// Writes the batches here (encoders on both cores), then commits.
    pub async fn write_stream<S>(mut self, mut batches: S) -> DeltaResult<WriteResult>
    where
        S: Stream<Item = DeltaResult<RecordBatch>> + Send + Unpin,
    {
        let location = self.snapshot.location().clone();
        let mode = self.snapshot.column_mapping_mode();
        let row_group_rows = self.options.row_group_rows;
        let (metadata, schema, target_size) = (&self.metadata, &self.schema, self.target_size);
        let mut writers = ParallelWriter::new(|| {
            let w = DeltaWriter::new(location.clone(), metadata, schema, mode, target_size)?;
            Ok(match row_group_rows {
                Some(n) => w.with_row_group_rows(n),
                None => w,
            })
        })?;
        let mut input_error = None;
        while let Some(batch) = batches.next().await {
            let checked = batch.and_then(|b| self.checks.check(&b, &mut self.identities));
            let checked = match (checked, self.rewriter.as_mut()) {
                (Ok(b), Some(rw)) if self.insert_changes => {
                    rw.write_changes(&b, crate::write::rewrite::ChangeType::Insert).await.map(|()| b)
                }
                (checked, _) => checked,
            };
            match checked {
                Ok(b) => {
                    if !writers.write(b).await {
                        break;
                    }
                }
                Err(e) => {
                    input_error = Some(e);
                    break;
                }
            }
        }
        let written = writers.finish().await;
        // Nothing is committed on error; files already written stay unreferenced (VACUUM removes them).
        let (adds, rows) = match (input_error, written) {
            (Some(e), _) | (None, Err(e)) => return Err(e),
            (None, Ok(w)) => w,
        };
        Box::pin(self.commit(adds, rows)).await
    }

    /// Commits data files written elsewhere from [`FileWrite::task`] (their `add` actions, as
    /// [`TaskWriter::finish`] returned them), with this write's removes, metadata and conflict
    /// checks, as one commit. Files of failed or repeated tasks that are not given here stay
    /// unreferenced (VACUUM removes them).
    pub async fn commit_files(self, adds: Vec<AddFile>) -> DeltaResult<WriteResult> {
        if self.task().is_none() {
            return Err(DeltaError::Internal("this write cannot take files written elsewhere".into()));
        }
        let partitions = &self.metadata.partition_columns;
        let mut rows = 0u64;
        for add in &adds {
            let foreign = add.path.contains("://") || add.path.starts_with('/') || add.path.split('/').any(|p| p == "..");
            let keys_match =
                add.partition_values.len() == partitions.len() && partitions.iter().all(|p| add.partition_values.contains_key(p));
            if foreign || !keys_match || !add.data_change || add.deletion_vector.is_some() {
                return Err(DeltaError::WriteRefused {
                    reason: format!("`{}` is not a new data file of this write (path, partition values or flags differ)", add.path),
                });
            }
            rows += add.num_records().unwrap_or(0);
        }
        Box::pin(self.commit(adds, rows)).await
    }

    async fn commit(self, adds: Vec<AddFile>, rows: u64) -> DeltaResult<WriteResult> {
        let FileWrite {
            table,
            snapshot,
            options,
            new_table,
            mut metadata,
            protocol,
            mut schema,
            mut schema_changed,
            metadata_changed,
            identities,
            mut rewriter,
            ..
        } = self;
        let written_partitions: Vec<HashMap<String, Option<String>>> = adds.iter().map(|a| a.partition_values.clone()).collect();


        let isolation = options.isolation.unwrap_or(IsolationLevel::WriteSerializable);
        let mut txn = match &new_table {
            Some(_) => Transaction::create(snapshot.clone()),
            None => Transaction::new(snapshot.clone()),
        }
        .with_isolation(isolation);
        let now = chrono::Utc::now().timestamp_millis();
        let mut removed = 0usize;
        let mut extra_adds: Vec<AddFile> = Vec::new();
        let mut rewritten = 0usize;
        let mut rewrite_metrics = serde_json::Map::new();
        let op_mode = if options.mode == SaveMode::Overwrite { "Overwrite" } else { "Append" };
        let mut params = json!({"mode": op_mode, "partitionBy": serde_json::to_string(&metadata.partition_columns).unwrap_or_default()});
        if options.mode == SaveMode::Overwrite {
            let current = snapshot.add_files()?;
            if let Some(pred) = &options.replace_where {
                params["predicate"] = json!(pred.to_string());
                txn.read_predicate(pred.clone());
                let mut rw = rewriter.take().ok_or_else(|| DeltaError::Internal("replaceWhere without its rewriter".into()))?;
                rw.delete_rows(Some(pred)).await?;
                for f in &rw.read {
                    txn.read_file(f);
                }
                let (actions, rw_metrics, _) = rw.finish().await?;
                for action in actions {
                    match action {
                        // This commit's own metadata carries the schema and row tracking names.
                        Action::Metadata(_) | Action::Protocol(_) => {}
                        Action::Add(a) => extra_adds.push(a),
                        other => txn.add_action(other),
                    }
                }
                removed += rw_metrics.get("numRemovedFiles").copied().unwrap_or(0) as usize;
                rewritten = rw_metrics.get("numAddedFiles").copied().unwrap_or(0) as usize;
                for m in ["numDeletedRows", "numCopiedRows", "numDeletionVectorsAdded", "numDeletionVectorsUpdated", "numAddedChangeFiles"] {
                    if let Some(v) = rw_metrics.get(m) {
                        rewrite_metrics.insert(m.to_string(), json!(v.to_string()));
                    }
                }
            } else if options.dynamic_partition_overwrite && !metadata.partition_columns.is_empty() {
                params["partitionOverwriteMode"] = json!("dynamic");
                let pruner = FilePruner::new(&snapshot)?;
                for add in current {
                    let pv = pruner.logical_partition_values(&add.partition_values);
                    let written = written_partitions.iter().any(|w| pruner.logical_partition_values(w) == pv);
                    if written {
                        txn.read_file(&add.path);
                        txn.add_action(Action::Remove(add.to_remove(now, true)));
                        removed += 1;
                    }
                }
                // The transaction read the partitions it replaced.
                for w in &written_partitions {
                    let pv = pruner.logical_partition_values(w);
                    let mut pred: Option<Expr> = None;
                    for (col, v) in pv {
                        let term = match v {
                            Some(v) => Expr::Cmp(
                                crate::table::expr::CmpOp::Eq,
                                Box::new(Expr::col(&col)),
                                Box::new(Expr::Literal(crate::table::expr::Scalar::String(v))),
                            ),
                            None => Expr::IsNull(Box::new(Expr::col(&col))),
                        };
                        pred = Some(match pred {
                            None => term,
                            Some(p) => Expr::And(Box::new(p), Box::new(term)),
                        });
                    }
                    if let Some(p) = pred {
                        txn.read_predicate(p);
                    }
                }
            } else {
                txn.read_whole_table();
                for add in current {
                    txn.add_action(Action::Remove(add.to_remove(now, true)));
                    removed += 1;
                }
            }
        }
        // Identity values assigned: the high-water marks move, which is a metadata change (so that
        // concurrent writers cannot hand out the same values).
        for id in &identities {
            if let Some(last) = id.assigned {
                schema.fields[id.index].metadata.insert("delta.identity.highWaterMark".into(), json!(last));
                schema_changed = true;
            }
        }
        if let Some(new) = &new_table {
            // The table's first commit: protocol, metadata (with whatever this write changed) and
            // the clustering domain.
            metadata.schema_string = schema.to_json().to_string();
            txn.add_action(Action::Protocol(protocol.clone()));
            txn.add_action(Action::Metadata(metadata.clone()));
            if let Some(d) = &new.domain {
                txn.add_action(Action::DomainMetadata(d.clone()));
            }
        } else if schema_changed || metadata_changed {
            metadata.schema_string = schema.to_json().to_string();
            txn.add_action(Action::Metadata(metadata.clone()));
            if &protocol != snapshot.protocol() {
                txn.add_action(Action::Protocol(protocol.clone()));
            }
        }
        // Files re-added with a deletion vector are not new files.
        let files_added = adds.len() + rewritten;
        for a in adds.into_iter().chain(extra_adds) {
            txn.add_action(Action::Add(a));
        }
        if let Some((app, v)) = &options.app_transaction {
            txn.read_app_transaction(app);
            txn.add_action(Action::Txn(AppTransaction { app_id: app.clone(), version: *v, last_updated: Some(now) }));
        }
        let mut metrics =
            json!({"numFiles": files_added.to_string(), "numOutputRows": rows.to_string(), "numRemovedFiles": removed.to_string()});
        if let Value::Object(m) = &mut metrics {
            m.extend(rewrite_metrics);
        }
        let txn = txn.with_operation("WRITE", params).with_metrics(metrics).with_commit_info(options.commit_info.clone());
        let version = match new_table {
            Some(_) => table.commit_new_table(txn).await?,
            None => txn.commit().await?.version()?,
        };
        let post_commit_error = crate::write::checkpoint::post_commit(&table, version).await.err().map(|e| e.to_string());
        Ok(WriteResult { version: Some(version), files_added, files_removed: removed, rows_written: rows, post_commit_error })
    }
}

impl Table {
    /// Sets table properties (`ALTER TABLE … SET TBLPROPERTIES`), upgrading the protocol when a
    /// property needs a feature.
    pub async fn set_properties(&self, properties: HashMap<String, String>) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let mut metadata = snapshot.metadata().clone();
        ensure_writable(snapshot.protocol())?;
        if properties.keys().any(|k| k.starts_with("delta.constraints.")) {
            return Err(DeltaError::WriteRefused {
                reason: "use add_constraint to add CHECK constraints (existing rows must be validated)".into(),
            });
        }
        let shown = serde_json::to_string(&properties).unwrap_or_default();
        let mut properties = properties;
        if let Some(mode) = properties.get("delta.columnMapping.mode").map(|m| m.to_ascii_lowercase()) {
            match (snapshot.column_mapping_mode(), mode.as_str()) {
                (ColumnMappingMode::None, "name") => {
                    // Existing files name columns by their logical names: those become the
                    // physical names.
                    let mut schema = snapshot.schema().clone();
                    let mut next = crate::table::column_mapping::max_column_id(&schema) + 1;
                    crate::table::column_mapping::enable_column_mapping(&mut schema, &mut next);
                    metadata.schema_string = schema.to_json().to_string();
                    properties.insert("delta.columnMapping.maxColumnId".into(), (next - 1).to_string());
                }
                (ColumnMappingMode::None, "none") => {}
                (current, m) if format!("{current:?}").eq_ignore_ascii_case(m) => {}
                (current, m) => {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("cannot change column mapping from {current:?} to `{m}` (only none → name is supported)"),
                    })
                }
            }
        }
        // `delta.feature.<name> = supported` enables features; it is not a stored property.
        let features: Vec<String> = properties.keys().filter_map(|k| k.strip_prefix("delta.feature.")).map(str::to_string).collect();
        for f in &features {
            let v = properties.remove(&format!("delta.feature.{f}")).unwrap_or_default();
            if !v.eq_ignore_ascii_case("supported") && !v.eq_ignore_ascii_case("enabled") {
                return Err(DeltaError::WriteRefused { reason: format!("delta.feature.{f} can only be set to 'supported', not '{v}'") });
            }
        }
        for (k, v) in &properties {
            metadata.configuration.insert(k.clone(), Some(v.clone()));
        }
        // IcebergCompat on an existing table: the files already there must be what the feature
        // asks of new ones; array elements and map keys and values get their ids (V2).
        if let Some(v) = crate::table::features::iceberg_compat(&metadata)
            .filter(|v| crate::table::features::iceberg_compat(snapshot.metadata()) != Some(*v))
        {
            crate::table::features::check_files_for_iceberg(!snapshot.partition_columns().is_empty(), &snapshot.add_files()?, v)?;
            let mut schema = StructType::parse(&metadata.schema_string)?;
            if snapshot.column_mapping_mode() != ColumnMappingMode::None || metadata.property("delta.columnMapping.mode").is_some() {
                assign_new_column_ids(&mut schema, &mut metadata);
            }
            metadata.schema_string = schema.to_json().to_string();
        }
        let mut txn = Transaction::new(snapshot.clone()).with_operation("SET TBLPROPERTIES", json!({"properties": shown}));
        let names: Vec<&str> = features.iter().map(String::as_str).collect();
        let extra = crate::table::features::feature_protocol(&names)?;
        self.commit_metadata_with(&snapshot, metadata, extra.as_ref(), &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Removes table properties (`UNSET TBLPROPERTIES`).
    pub async fn unset_properties(&self, keys: &[String]) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let mut metadata = snapshot.metadata().clone();
        for k in keys {
            metadata.configuration.remove(k);
        }
        let mut txn = Transaction::new(snapshot.clone())
            .with_operation("UNSET TBLPROPERTIES", json!({"properties": serde_json::to_string(keys).unwrap_or_default()}));
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Adds a CHECK constraint after validating every existing row.
    pub async fn add_constraint(&self, name: &str, expression: &str) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let key = format!("delta.constraints.{}", name.to_ascii_lowercase());
        if snapshot.metadata().configuration.contains_key(&key) {
            return Err(DeltaError::WriteRefused { reason: format!("constraint `{name}` already exists") });
        }
        let expr = Expr::parse(expression)?;
        let violating = Expr::Not(Box::new(expr.clone()));
        let bad = snapshot.scan().with_predicate(violating).build()?.count().await?;
        if bad > 0 {
            return Err(DeltaError::WriteRefused {
                reason: format!("{bad} existing row(s) violate CHECK constraint {name} ({expression})"),
            });
        }
        let mut metadata = snapshot.metadata().clone();
        metadata.configuration.insert(key, Some(expression.to_string()));
        let mut txn = Transaction::new(snapshot.clone()).with_operation("ADD CONSTRAINT", json!({"name": name, "expr": expression}));
        // The validation read every row: a concurrent append must conflict.
        txn.read_whole_table();
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Drops a CHECK constraint.
    pub async fn drop_constraint(&self, name: &str) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        let key = format!("delta.constraints.{}", name.to_ascii_lowercase());
        let mut metadata = snapshot.metadata().clone();
        if metadata.configuration.remove(&key).is_none() {
            return Err(DeltaError::WriteRefused { reason: format!("constraint `{name}` does not exist") });
        }
        let mut txn = Transaction::new(snapshot.clone()).with_operation("DROP CONSTRAINT", json!({"name": name}));
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Stages a metadata change (and any protocol upgrade it needs: the features the new schema
    /// and properties use are added to the table's, never taken away).
    pub(crate) fn commit_metadata(&self, snapshot: &Snapshot, metadata: Metadata, txn: &mut Transaction) -> DeltaResult<()> {
        self.commit_metadata_with(snapshot, metadata, None, txn)
    }

    /// [`Table::commit_metadata`], also adding the features of `extra`.
    pub(crate) fn commit_metadata_with(
        &self,
        snapshot: &Snapshot,
        metadata: Metadata,
        extra: Option<&Protocol>,
        txn: &mut Transaction,
    ) -> DeltaResult<()> {
        let schema = StructType::parse(&metadata.schema_string)?;
        let props: HashMap<String, String> = metadata.configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        let needed = min_protocol(&schema, &props);
        let mut upgrade = snapshot.protocol().upgraded_with(&needed);
        if let Some(extra) = extra {
            let base = upgrade.clone().unwrap_or_else(|| snapshot.protocol().clone());
            if let Some(more) = base.upgraded_with(extra) {
                upgrade = Some(more);
            }
        }
        if let Some(upgraded) = upgrade {
            ensure_writable(&upgraded)?;
            txn.add_action(Action::Protocol(upgraded));
        }
        txn.add_action(Action::Metadata(metadata));
        Ok(())
    }
}
