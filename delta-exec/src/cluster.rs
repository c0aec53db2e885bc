//! The same DataFrames and SQL on an Apache DataFusion Ballista cluster.
//!
//! ```text
//!  client: Session::remote("df://host:port")        scheduler (delta cluster scheduler)
//!   DataFrame ─► logical plan ──DeltaLogicalCodec──►  Delta tables arrive as (URL, version):
//!     (tables: URL + version, broadcast hints)         ClusterTableProvider loads the snapshot
//!                                                      there and plans the scan once (partition
//!                                                      and statistics pruning), with the
//!                                                      broadcast rule, into stages
//!                                                              │ DeltaPhysicalCodec
//!                                                              ▼
//!  executors (delta cluster executor): DeltaScanExec arrives with protocol, metadata and each
//!  partition's files (deletion-vector descriptors, partition values, byte ranges); the executor
//!  opens the table URL with its own storage options and reads only those files.
//! ```
//!
//! Writes go the same way ([`crate::write`]): a `DeltaWrite` node over the query carries the
//! write's task (table URL, metadata, file size) to the scheduler, `DeltaWriteExec` carries it to
//! the executors, which write the data files and return their `add` actions to the client, which
//! commits them once.
//!
//! We run no cluster runtime of our own: Ballista schedules stages, shuffles, retries tasks and
//! re-runs stages. What is ours is that Delta is first-class in it: the codecs (everything that is
//! not ours goes to Ballista's own codecs, inside), the scheduler's session (the same planner and
//! rules as a local [`Session`]), and the processes' setup ([`run_scheduler`], [`run_executor`],
//! [`cluster_status`]).
//!
//! The scheduler can also serve Arrow Flight SQL on its port (ballista-flight-sql, with
//! [`SchedulerOptions::flight_sql`]): standard Arrow clients (ADBC, JDBC) send SQL text, which the
//! scheduler plans in a session of its own with ``delta.`path` `` and, with
//! [`SchedulerOptions::tables`], a folder's tables by name — both resolved to the table's latest
//! version and planned as the cluster plans scans. Clients authenticate with HTTP Basic
//! credentials in the Flight handshake ([`FlightSqlAccess`]), over mutual TLS when the cluster
//! runs under it.
//!
//! Beyond loopback a cluster runs under mutual TLS ([`crate::tls`]: every client, the scheduler
//! and every executor present a certificate of the cluster's CA and accept only such peers).
//!
//! Storage credentials never travel in a plan: a process opens table URLs with the
//! [`TableOptions`] it was started with (its own environment and `--storage-option`s).
//! A plain parquet scan of a Delta table is never shipped: the only scan of Delta data in a plan
//! is [`DeltaScanExec`], and it carries the deletion vectors of its files.
//!
//! Executors pull work by default (Ballista's pull-staged policy): they need no port of the
//! scheduler's choosing, only the scheduler's address. With `push` (scheduler and executors
//! alike) the scheduler sends a stage's tasks as soon as it can run, to each executor's gRPC
//! port: less latency per stage, no TLS on that port yet. A lost executor is noticed by missed heartbeats
//! (`--heartbeat-secs` on the executor, `--executor-timeout-secs` on the scheduler); its tasks
//! run again elsewhere and stages whose shuffle output it held are re-run.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use ballista::extension::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::{MemTable, TableType};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Expr as DfExpr, Extension, LogicalPlan, ScalarUDF, TableProviderFilterPushDown, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use delta_core::storage::TableLocation;
use delta_core::{Snapshot, TableOptions};
use serde::{Deserialize, Serialize};

use crate::changes::{ChangeFeedExec, ChangeFeedProvider, ChangesWire};
use crate::file_source::DeltaFileSource;
use crate::hint::BroadcastHint;
use crate::map::{MapBatches, MapBatchesExec};
use crate::provider::{df_error, filters_pushdown, DeltaScanExec, DeltaTableProvider, ScanProgress, ScanWire};
use crate::session::{session_state, spark_defaults, Session};
use crate::tls::ClusterTls;
use crate::write::{DeltaWrite, DeltaWriteExec};

/// Prefixes of the bytes our codecs write. Ballista's codecs write protobuf messages, which
/// never start with these (a protobuf field key of 'D' would be field 8 with the deprecated
/// group wire type), so the two kinds of bytes cannot be confused.
const SCAN_TAG: &[u8] = b"DELTA-SCAN\x01";
const FILES_TAG: &[u8] = b"DELTA-FILES\x01";
const TABLE_TAG: &[u8] = b"DELTA-TABLE\x01";
const HINT_TAG: &[u8] = b"DELTA-HINT\x01";
const WRITE_TAG: &[u8] = b"DELTA-WRITE\x01";
const MEMORY_TAG: &[u8] = b"DELTA-MEMORY\x01";
const MAP_TAG: &[u8] = b"DELTA-MAP\x01";
const CHANGES_TAG: &[u8] = b"DELTA-CHANGES\x01";

fn codec_error(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("cannot decode {what} sent by the cluster: {e}"))
}

/// Opens table URLs with one process's options, once per URL.
#[derive(Debug, Default)]
struct Locations {
    options: TableOptions,
    open: Mutex<HashMap<String, TableLocation>>,
}

impl Locations {
    fn new(options: TableOptions) -> Self {
        Locations { options, open: Mutex::default() }
    }

    fn open(&self, url: &str) -> Result<TableLocation> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = open.get(url) {
            return Ok(l.clone());
        }
        let location = TableLocation::open(url, self.options.clone()).map_err(df_error)?;
        open.insert(url.to_string(), location.clone());
        Ok(location)
    }
}

/// A Delta table as a logical plan names it on the wire: where and which version.
#[derive(Debug, Serialize, Deserialize)]
struct TableWire {
    table: String,
    version: i64,
}

/// A frame of rows in this process (a change feed read, `read_batch`, a model's data) travels
/// with the plan, as Arrow IPC: per partition its byte length (u64, little-endian), then a
/// stream of its batches.
fn encode_memory(table: &MemTable, buf: &mut Vec<u8>) -> Result<()> {
    for partition in &table.batches {
        let batches = partition.try_read().map_err(|e| DataFusionError::Execution(format!("cannot send an in-memory table to the cluster while it is being written: {e}")))?;
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &table.schema())?;
        for b in batches.iter() {
            writer.write(b)?;
        }
        writer.finish()?;
        let bytes = writer.into_inner()?;
        buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        buf.extend_from_slice(&bytes);
    }
    Ok(())
}

fn decode_memory(mut bytes: &[u8], schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let mut partitions = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<8>().ok_or_else(|| codec_error("an in-memory table", "a partition's length is cut short"))?;
        let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|e| codec_error("an in-memory table", e))?;
        if rest.len() < len {
            return Err(codec_error("an in-memory table", "a partition is cut short"));
        }
        let (data, rest) = rest.split_at(len);
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(data), None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<_>, _>>()?);
        bytes = rest;
    }
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

/// Logical plans to and from the scheduler: Delta tables (by URL and version, resolved there),
/// the broadcast hint, distributed writes and in-memory tables; anything else goes to Ballista's codec.
#[derive(Debug)]
pub struct DeltaLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    locations: Arc<Locations>,
}

impl DeltaLogicalCodec {
    /// A codec whose decoded tables open with `options` (this process's storage options).
    pub fn new(options: TableOptions) -> Self {
        DeltaLogicalCodec { inner: BallistaLogicalExtensionCodec::default(), locations: Arc::new(Locations::new(options)) }
    }
}

impl LogicalExtensionCodec for DeltaLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        if buf.starts_with(HINT_TAG) {
            let input = inputs.first().cloned().ok_or_else(|| codec_error("a broadcast hint", "it has no input"))?;
            return Ok(Extension { node: Arc::new(BroadcastHint::node(input)) });
        }
        if let Some(json) = buf.strip_prefix(WRITE_TAG) {
            let input = inputs.first().cloned().ok_or_else(|| codec_error("a Delta write", "it has no input"))?;
            let task = DeltaWrite::decode_task(json)?;
            let location = self.locations.open(&task.task.table)?;
            return Ok(Extension { node: Arc::new(DeltaWrite::from_wire(input, task, location)?) });
        }
        if let Some(bytes) = buf.strip_prefix(MAP_TAG) {
            let input = inputs.first().cloned().ok_or_else(|| codec_error("a batch function", "it has no input"))?;
            return Ok(Extension { node: Arc::new(MapBatches::try_new(input, crate::map::decode(bytes)?)?) });
        }
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        if node.node.as_any().downcast_ref::<BroadcastHint>().is_some() {
            buf.extend_from_slice(HINT_TAG);
            return Ok(());
        }
        if let Some(write) = node.node.as_any().downcast_ref::<DeltaWrite>() {
            buf.extend_from_slice(WRITE_TAG);
            buf.extend_from_slice(write.wire().as_bytes());
            return Ok(());
        }
        if let Some(map) = node.node.as_any().downcast_ref::<MapBatches>() {
            buf.extend_from_slice(MAP_TAG);
            return crate::map::encode(map.map().as_ref(), buf);
        }
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(&self, buf: &[u8], table_ref: &TableReference, schema: SchemaRef, ctx: &TaskContext) -> Result<Arc<dyn TableProvider>> {
        if let Some(bytes) = buf.strip_prefix(MEMORY_TAG) {
            return decode_memory(bytes, schema);
        }
        if let Some(json) = buf.strip_prefix(CHANGES_TAG) {
            let wire: ChangesWire = serde_json::from_slice(json).map_err(|e| codec_error("a change feed", e))?;
            let location = self.locations.open(&wire.table)?;
            return Ok(Arc::new(ChangeFeedProvider::from_wire(wire, location)?));
        }
        match buf.strip_prefix(TABLE_TAG) {
            Some(json) => {
                let wire: TableWire = serde_json::from_slice(json).map_err(|e| codec_error("a Delta table", e))?;
                let location = self.locations.open(&wire.table)?;
                Ok(Arc::new(ClusterTableProvider::new(location, wire.version, schema)))
            }
            None => self.inner.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(&self, table_ref: &TableReference, node: Arc<dyn TableProvider>, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(memory) = node.downcast_ref::<MemTable>() {
            buf.extend_from_slice(MEMORY_TAG);
            return encode_memory(memory, buf);
        }
        if let Some(feed) = node.downcast_ref::<ChangeFeedProvider>() {
            buf.extend_from_slice(CHANGES_TAG);
            return serde_json::to_writer(&mut *buf, &feed.to_wire()).map_err(|e| DataFusionError::Internal(e.to_string()));
        }
        let wire = if let Some(p) = node.downcast_ref::<DeltaTableProvider>() {
            Some(TableWire { table: p.snapshot().location().root_url().to_string(), version: p.snapshot().version() })
        } else {
            node.downcast_ref::<ClusterTableProvider>()
                .map(|p| TableWire { table: p.location.root_url().to_string(), version: p.version })
        };
        match wire {
            Some(wire) => {
                buf.extend_from_slice(TABLE_TAG);
                serde_json::to_writer(&mut *buf, &wire).map_err(|e| DataFusionError::Internal(e.to_string()))
            }
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        match crate::window::decode_udwf(buf) {
            Some(f) => f,
            None => self.inner.try_decode_udwf(name, buf),
        }
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        if crate::window::encode_udwf(node, buf) {
            return Ok(());
        }
        self.inner.try_encode_udwf(node, buf)
    }
}

/// Physical plans to the executors: [`DeltaScanExec`] as [`ScanWire`], [`DeltaWriteExec`] as its
/// task; anything else goes to
/// Ballista's codec (its shuffle readers and writers among them).
#[derive(Debug)]
pub struct DeltaPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    locations: Arc<Locations>,
}

impl DeltaPhysicalCodec {
    /// A codec whose decoded scans open their tables with `options`.
    pub fn new(options: TableOptions) -> Self {
        DeltaPhysicalCodec { inner: BallistaPhysicalExtensionCodec::default(), locations: Arc::new(Locations::new(options)) }
    }
}

impl PhysicalExtensionCodec for DeltaPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(json) = buf.strip_prefix(SCAN_TAG) {
            let wire: ScanWire = serde_json::from_slice(json).map_err(|e| codec_error("a Delta scan", e))?;
            let location = self.locations.open(&wire.table)?;
            return Ok(Arc::new(DeltaScanExec::from_wire(wire, location)?));
        }
        if let Some(json) = buf.strip_prefix(FILES_TAG) {
            let wire: ScanWire = serde_json::from_slice(json).map_err(|e| codec_error("a Delta file scan", e))?;
            let location = self.locations.open(&wire.table)?;
            return DeltaScanExec::file_scan_from_wire(wire, location);
        }
        if let Some(json) = buf.strip_prefix(WRITE_TAG) {
            let input = inputs.first().cloned().ok_or_else(|| codec_error("a Delta write", "it has no input"))?;
            let task = DeltaWrite::decode_task(json)?;
            let location = self.locations.open(&task.task.table)?;
            return Ok(Arc::new(DeltaWriteExec::new(input, task, location)));
        }
        if let Some(bytes) = buf.strip_prefix(MAP_TAG) {
            let input = inputs.first().cloned().ok_or_else(|| codec_error("a batch function", "it has no input"))?;
            return Ok(Arc::new(MapBatchesExec::new(input, crate::map::decode(bytes)?)));
        }
        if let Some(json) = buf.strip_prefix(CHANGES_TAG) {
            let wire: ChangesWire = serde_json::from_slice(json).map_err(|e| codec_error("a change feed scan", e))?;
            let location = self.locations.open(&wire.table)?;
            return Ok(Arc::new(ChangeFeedExec::from_wire(wire, location)?));
        }
        self.inner.try_decode(buf, inputs, ctx, converter)
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>, converter: &dyn PhysicalProtoConverterExtension) -> Result<()> {
        if let Some(scan) = node.downcast_ref::<DeltaScanExec>() {
            buf.extend_from_slice(SCAN_TAG);
            return serde_json::to_writer(&mut *buf, &scan.to_wire()).map_err(|e| DataFusionError::Internal(e.to_string()));
        }
        if let Some((source, config)) = DeltaFileSource::of(node.as_ref()) {
            let wire = ScanWire::of_file_scan(source, config)?;
            buf.extend_from_slice(FILES_TAG);
            return serde_json::to_writer(&mut *buf, &wire).map_err(|e| DataFusionError::Internal(e.to_string()));
        }
        if let Some(write) = node.downcast_ref::<DeltaWriteExec>() {
            buf.extend_from_slice(WRITE_TAG);
            return serde_json::to_writer(&mut *buf, write.task()).map_err(|e| DataFusionError::Internal(e.to_string()));
        }
        if let Some(map) = node.downcast_ref::<MapBatchesExec>() {
            buf.extend_from_slice(MAP_TAG);
            return crate::map::encode(map.map().as_ref(), buf);
        }
        if let Some(feed) = node.downcast_ref::<ChangeFeedExec>() {
            buf.extend_from_slice(CHANGES_TAG);
            return serde_json::to_writer(&mut *buf, &feed.to_wire()).map_err(|e| DataFusionError::Internal(e.to_string()));
        }
        self.inner.try_encode(node, buf, converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        match crate::window::decode_udwf(buf) {
            Some(f) => f,
            None => self.inner.try_decode_udwf(name, buf),
        }
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        if crate::window::encode_udwf(node, buf) {
            return Ok(());
        }
        self.inner.try_encode_udwf(node, buf)
    }
}

/// A Delta table at a version, as the scheduler receives it: the snapshot is loaded when the
/// scan is planned (once per plan), then planning is [`DeltaTableProvider`]'s.
#[derive(Debug)]
pub struct ClusterTableProvider {
    location: TableLocation,
    version: i64,
    schema: SchemaRef,
    loaded: tokio::sync::OnceCell<DeltaTableProvider>,
}

impl ClusterTableProvider {
    fn new(location: TableLocation, version: i64, schema: SchemaRef) -> Self {
        ClusterTableProvider { location, version, schema, loaded: tokio::sync::OnceCell::new() }
    }

    /// The table's latest version (a name resolved on the scheduler, by a Flight SQL client).
    async fn latest(location: TableLocation) -> Result<Self> {
        let snapshot = Snapshot::load(&location, None).await.map_err(df_error)?;
        let version = snapshot.version();
        let provider = DeltaTableProvider::try_new(snapshot)?;
        let schema = provider.schema();
        Ok(ClusterTableProvider { location, version, schema, loaded: tokio::sync::OnceCell::new_with(Some(provider)) })
    }

    async fn provider(&self) -> Result<&DeltaTableProvider> {
        self.loaded
            .get_or_try_init(|| async {
                let snapshot = Snapshot::load(&self.location, Some(self.version)).await.map_err(df_error)?;
                let provider = DeltaTableProvider::try_new(snapshot)?;
                // The client planned against this version's schema; the same version has it.
                if provider.schema().fields() != self.schema.fields() {
                    return Err(DataFusionError::Plan(format!(
                        "the Delta table at {} version {} does not have the schema the query was planned with",
                        self.location.root_url(),
                        self.version
                    )));
                }
                Ok(provider)
            })
            .await
    }
}

#[async_trait]
impl TableProvider for ClusterTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&DfExpr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters_pushdown(filters))
    }

    /// The scan as a file scan (see [`crate::file_source`]): Ballista restricts it to each
    /// task's partitions.
    async fn scan(&self, state: &dyn CatalogSession, projection: Option<&Vec<usize>>, filters: &[DfExpr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.provider().await?.scan(state, projection, filters, limit).await?;
        match plan.downcast_ref::<DeltaScanExec>() {
            Some(scan) => Ok(scan.to_file_scan()),
            None => Ok(plan),
        }
    }
}

/// The session configuration of every process of a cluster: Ballista's, with our codecs.
///
/// A lost executor mid-query is not yet survived correctly by Ballista 55.0 (seen here, see
/// the ignored test `a_query_survives_a_killed_executor` in delta-cli): with its adaptive
/// planner (the default, kept) the job rolls back a running stage, then cannot place the
/// survivors' task updates ("Can't find active stage to update stage outputs") and never ends;
/// with the static planner the job ends but a re-run stage's partitions can be read twice
/// (duplicated rows). A hang is kept over a wrong answer.
pub fn cluster_config(options: &TableOptions) -> SessionConfig {
    cluster_config_with(options, None)
}

/// [`cluster_config`] for a cluster under mutual TLS: every gRPC client of the process
/// (to the scheduler, to executors' Flight services) presents `tls`'s certificate over https.
pub fn cluster_config_with(options: &TableOptions, tls: Option<&ClusterTls>) -> SessionConfig {
    let config = spark_defaults(SessionConfig::new_with_ballista())
        .with_ballista_logical_extension_codec(Arc::new(DeltaLogicalCodec::new(options.clone())))
        .with_ballista_physical_extension_codec(Arc::new(DeltaPhysicalCodec::new(options.clone())));
    match tls {
        Some(tls) => config.with_ballista_use_tls(true).with_ballista_override_create_grpc_client_endpoint(tls.endpoint_override()),
        None => config,
    }
}

/// Renames tables whose names do not survive DataFusion's plan serialization. A column's table
/// is sent as the text of its name and parsed back as SQL identifiers, unquoted: a path-named
/// table (``delta.`/data/events` ``) comes back as one different name and no column resolves.
/// Before a plan leaves the client (the query planner below, after DataFusion's optimizer, whose
/// rules may not change a plan's qualifiers), every such table gets a plain name
/// (`delta_table_N`) in its scan and in every column that refers to it, and a last projection
/// gives the result the names the query gave it. Names that survive are left alone.
#[derive(Debug)]
struct PlainTableNames {
    inner: Arc<dyn datafusion::execution::context::QueryPlanner + Send + Sync>,
}

#[async_trait]
impl datafusion::execution::context::QueryPlanner for PlainTableNames {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn CatalogSession) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = PlainTableNames::rename(plan.clone())?.data;
        self.inner.create_physical_plan(&plan, session).await
    }
}

impl PlainTableNames {
    fn survives(name: &TableReference) -> bool {
        TableReference::parse_str_normalized(&name.to_string(), true) == *name
    }

    fn rename(plan: LogicalPlan) -> Result<datafusion::common::tree_node::Transformed<LogicalPlan>> {
        use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
        use datafusion::logical_expr::TableScanBuilder;
        // Every name to replace, in plan order.
        let mut renames: Vec<(TableReference, TableReference)> = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if !Self::survives(&scan.table_name) && !renames.iter().any(|(old, _)| *old == scan.table_name) {
                    renames.push((scan.table_name.clone(), TableReference::bare(format!("delta_table_{}", renames.len()))));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if renames.is_empty() {
            return Ok(Transformed::no(plan));
        }
        let renamed = |r: &TableReference| renames.iter().find(|(old, _)| old == r).map(|(_, new)| new.clone());
        // A column's table, and the table's name inside a column named after an expression
        // (`sum(delta./data/events.amount)`: the output of an unaliased aggregate).
        let fix_column = |c: &datafusion::common::Column| -> Option<datafusion::common::Column> {
            let mut name = c.name.clone();
            for (old, new) in &renames {
                name = name.replace(&format!("{old}."), &format!("{new}."));
            }
            let relation = c.relation.as_ref().and_then(renamed);
            if relation.is_none() && name == c.name {
                return None;
            }
            Some(datafusion::common::Column::new(relation.or_else(|| c.relation.clone()), name))
        };
        let original = plan.schema().clone();
        let out = plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::TableScan(scan) => match renamed(&scan.table_name) {
                    Some(name) => LogicalPlan::TableScan(
                        TableScanBuilder::new(name, scan.source)
                            .with_projection(scan.projection)
                            .with_filters(scan.filters)
                            .with_fetch(scan.fetch)
                            .with_statistics_requests(scan.statistics_requests)
                            .build()?,
                    ),
                    None => LogicalPlan::TableScan(scan),
                },
                other => other,
            };
            let node = node
                .map_expressions(|e| {
                    e.transform_up(|e| match &e {
                        DfExpr::Column(c) => Ok(match fix_column(c) {
                            Some(c) => Transformed::yes(DfExpr::Column(c)),
                            None => Transformed::no(e),
                        }),
                        DfExpr::OuterReferenceColumn(f, c) => Ok(match fix_column(c) {
                            Some(c) => Transformed::yes(DfExpr::OuterReferenceColumn(f.clone(), c)),
                            None => Transformed::no(e),
                        }),
                        // An alias that keeps an expression's name (common subexpressions
                        // taken out of a window function keep its name this way).
                        DfExpr::Alias(a) => {
                            let probe = datafusion::common::Column::new(a.relation.clone(), a.name.clone());
                            Ok(match fix_column(&probe) {
                                Some(c) => {
                                    let mut a = a.clone();
                                    a.relation = c.relation;
                                    a.name = c.name;
                                    Transformed::yes(DfExpr::Alias(a))
                                }
                                None => Transformed::no(e),
                            })
                        }
                        _ => Ok(Transformed::no(e)),
                    })
                })?
                .data;
            Ok(Transformed::yes(node.recompute_schema()?))
        })?;
        // The result keeps the names the query gave its columns.
        let plan = out.data;
        let names_changed = plan.schema().fields().iter().zip(original.fields()).any(|(a, b)| a.name() != b.name());
        if !names_changed {
            return Ok(Transformed::yes(plan));
        }
        let exprs: Vec<DfExpr> = plan
            .schema()
            .iter()
            .zip(original.fields())
            .map(|((qualifier, field), want)| DfExpr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name())).alias(want.name()))
            .collect();
        Ok(Transformed::yes(datafusion::logical_expr::LogicalPlanBuilder::from(plan).project(exprs)?.build()?))
    }
}

/// A cluster client's context: Ballista's query planner (which sends plans to the scheduler)
/// behind [`PlainTableNames`].
fn client_context(ctx: SessionContext) -> SessionContext {
    let state = ctx.state();
    let inner = state.query_planner().clone();
    let state = datafusion::execution::SessionStateBuilder::new_from_existing(state).with_query_planner(Arc::new(PlainTableNames { inner })).build();
    SessionContext::new_with_state(state)
}

impl Session {
    /// A session whose queries run on an in-process Ballista cluster (a scheduler and an
    /// executor with `parallelism` task slots, on loopback): the distributed path end to end —
    /// codecs, stages, shuffles — without other processes.
    pub async fn standalone(parallelism: usize) -> Result<Session> {
        let config = cluster_config(&TableOptions::default()).with_ballista_standalone_parallelism(parallelism.max(1));
        let progress = Arc::new(ScanProgress::default());
        let state = session_state(config.with_extension(progress.clone()), Arc::new(RuntimeEnv::default()));
        let ctx = client_context(SessionContext::standalone_with_state(state).await?);
        Ok(Session::from_context(ctx, progress).distributed())
    }

    /// A session whose queries run on the cluster whose scheduler is at `url`
    /// (`df://host:port`). Tables are opened here (to plan against their schema) with
    /// `options`; the scheduler and executors open them with their own.
    pub async fn remote(url: &str, options: TableOptions) -> Result<Session> {
        Session::remote_with(url, options, None).await
    }

    /// [`Session::remote`] to a cluster under mutual TLS (`tls`: this client's certificate and
    /// the cluster's CA).
    pub async fn remote_with(url: &str, options: TableOptions, tls: Option<ClusterTls>) -> Result<Session> {
        let config = cluster_config_with(&options, tls.as_ref());
        let progress = Arc::new(ScanProgress::default());
        let state = session_state(config.with_extension(progress.clone()), Arc::new(RuntimeEnv::default()));
        let ctx = client_context(SessionContext::remote_with_state(url, state).await?);
        Ok(Session::from_context(ctx, progress).with_table_options(options).distributed())
    }
}

/// The `delta` schema of the scheduler's SQL (Flight SQL clients): ``delta.`/path/or/url` ``
/// is the Delta table there, at its latest version, planned as the cluster plans scans.
#[derive(Debug)]
struct ClusterPathSchema {
    locations: Arc<Locations>,
}

#[async_trait]
impl datafusion::catalog::SchemaProvider for ClusterPathSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let location = self.locations.open(name)?;
        Ok(Some(Arc::new(ClusterTableProvider::latest(location).await?)))
    }

    fn table_exist(&self, _name: &str) -> bool {
        true
    }
}

/// The scheduler's default schema with `--tables DIR`: every folder of DIR holding a Delta
/// table (`_delta_log`) is a table of that name, at its latest version when a query names it;
/// tables a session registers itself are kept beside them.
#[derive(Debug)]
struct TablesDirSchema {
    dir: std::path::PathBuf,
    locations: Arc<Locations>,
    own: datafusion::catalog::MemorySchemaProvider,
}

impl TablesDirSchema {
    fn folder(&self, name: &str) -> Option<std::path::PathBuf> {
        let plain = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
        let path = self.dir.join(name);
        (plain && path.join("_delta_log").is_dir()).then_some(path)
    }
}

#[async_trait]
impl datafusion::catalog::SchemaProvider for TablesDirSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries.filter_map(|e| e.ok()).filter(|e| e.path().join("_delta_log").is_dir()).filter_map(|e| e.file_name().into_string().ok()).collect()
            })
            .unwrap_or_default();
        names.extend(self.own.table_names());
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.own.table(name).await? {
            return Ok(Some(t));
        }
        let Some(path) = self.folder(name) else { return Ok(None) };
        let location = self.locations.open(&path.to_string_lossy())?;
        Ok(Some(Arc::new(ClusterTableProvider::latest(location).await?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.own.table_exist(name) || self.folder(name).is_some()
    }

    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        self.own.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.own.deregister_table(name)
    }
}

/// Who may use the scheduler's Flight SQL endpoint.
#[derive(Clone)]
pub enum FlightSqlAccess {
    /// Anyone who reaches the port (`--insecure` only).
    Anonymous,
    /// HTTP Basic credentials in the Flight handshake (what ADBC's `username`/`password` send).
    Basic { user: String, password: String },
}

impl std::fmt::Debug for FlightSqlAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlightSqlAccess::Anonymous => write!(f, "Anonymous"),
            FlightSqlAccess::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: <hidden> }}"),
        }
    }
}

/// Checks a Flight SQL handshake's Basic credentials.
struct BasicAuthenticator {
    user: String,
    password: String,
}

/// Equal bytes, compared in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[async_trait]
impl ballista_flight_sql::Authenticator for BasicAuthenticator {
    async fn authenticate(&self, headers: &tonic::metadata::MetadataMap) -> std::result::Result<ballista_flight_sql::Identity, tonic::Status> {
        use base64::Engine;
        let refused = || tonic::Status::unauthenticated("wrong or missing credentials (HTTP Basic in the Flight handshake)");
        let header = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
        let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic ")).ok_or_else(refused)?;
        // Padded or not: Go's Flight client (ADBC) sends it unpadded.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = lenient.decode(encoded.trim()).map_err(|_| refused())?;
        let text = String::from_utf8(decoded).map_err(|_| refused())?;
        let (user, password) = text.split_once(':').ok_or_else(refused)?;
        // Both compared, always: a wrong user takes as long as a wrong password.
        let user_ok = same_secret(user.as_bytes(), self.user.as_bytes());
        let password_ok = same_secret(password.as_bytes(), self.password.as_bytes());
        if user_ok && password_ok {
            Ok(ballista_flight_sql::Identity::user(user))
        } else {
            Err(refused())
        }
    }
}

/// The scheduler's session for one job or Flight SQL session: [`session_state`] with the
/// ``delta.`path` `` schema and, with `--tables DIR`, DIR's tables by name.
fn scheduler_session(config: SessionConfig, locations: Arc<Locations>, tables: Option<&std::path::Path>) -> Result<datafusion::execution::SessionState> {
    let state = session_state(config, Arc::new(RuntimeEnv::default()));
    let default_catalog = state.config().options().catalog.default_catalog.clone();
    let default_schema = state.config().options().catalog.default_schema.clone();
    if let Some(catalog) = state.catalog_list().catalog(&default_catalog) {
        catalog.register_schema("delta", Arc::new(ClusterPathSchema { locations: locations.clone() }))?;
        if let Some(dir) = tables {
            let schema = TablesDirSchema { dir: dir.to_path_buf(), locations, own: datafusion::catalog::MemorySchemaProvider::new() };
            catalog.register_schema(&default_schema, Arc::new(schema))?;
        }
    }
    Ok(state)
}

/// How a scheduler process runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Where to listen (port 0: any free port).
    pub bind: SocketAddr,
    /// Storage options for opening tables (this process's own).
    pub table_options: TableOptions,
    /// An executor missing heartbeats this long is lost; its tasks run again.
    pub executor_timeout_secs: u64,
    /// How often lost executors are looked for.
    pub expire_interval_secs: u64,
    /// Executors needed before `cluster_status` says ready.
    pub min_executors: usize,
    /// Serve Arrow Flight SQL on the scheduler's port, to these clients.
    pub flight_sql: Option<FlightSqlAccess>,
    /// A folder whose Delta tables SQL on the scheduler (Flight SQL) names by folder name.
    pub tables: Option<std::path::PathBuf>,
    /// Mutual TLS: only clients and executors with a certificate of the cluster's CA connect.
    pub tls: Option<ClusterTls>,
    /// Push tasks to executors as soon as a stage can run (executors serve a gRPC port for it)
    /// instead of executors polling for them; executors must be started the same way.
    pub push: bool,
}

impl SchedulerOptions {
    pub fn new(bind: SocketAddr) -> Self {
        SchedulerOptions {
            bind,
            table_options: TableOptions::default(),
            executor_timeout_secs: 60,
            expire_interval_secs: 5,
            min_executors: 1,
            flight_sql: None,
            tables: None,
            tls: None,
            push: false,
        }
    }
}

/// Runs a scheduler until the process ends. `listening` is told the address taken (with port 0,
/// the port chosen) once it accepts connections.
pub async fn run_scheduler(options: SchedulerOptions, listening: impl FnOnce(SocketAddr)) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

    if options.push && options.tls.is_some() {
        return Err(DataFusionError::Configuration("pushed tasks go to executors' gRPC port, which is not under TLS: use pulled tasks with TLS".into()));
    }
    let listener = tokio::net::TcpListener::bind(options.bind).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
    let addr = listener.local_addr().map_err(|e| DataFusionError::External(Box::new(e)))?;
    let table_options = options.table_options.clone();
    let producer_options = table_options.clone();
    let locations = Arc::new(Locations::new(table_options.clone()));
    let tables = options.tables.clone();
    let producer_tls = options.tls.clone();
    let authenticator = match &options.flight_sql {
        Some(FlightSqlAccess::Basic { user, password }) => {
            Some(Arc::new(BasicAuthenticator { user: user.clone(), password: password.clone() }) as Arc<dyn ballista_flight_sql::Authenticator>)
        }
        _ => None,
    };
    if let Some(dir) = &tables {
        if !dir.is_dir() {
            return Err(DataFusionError::Configuration(format!("--tables {}: not a folder", dir.display())));
        }
    }
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        external_host: addr.ip().to_string(),
        scheduling_policy: policy(options.push),
        executor_timeout_seconds: options.executor_timeout_secs,
        expire_dead_executor_interval_seconds: options.expire_interval_secs,
        min_ready_executors: options.min_executors,
        // The configuration of sessions the scheduler opens itself: Flight SQL clients'. Their
        // jobs use Ballista's static planner: with the adaptive one, Ballista 55.0's Flight SQL
        // frontend takes the result schema from whichever stage it finds first without output
        // links (every stage of an adaptive graph has none), and ADBC then refuses a result
        // whose schema is a partial aggregate's (seen here in .ci/run, not in every run).
        // Ballista clients' jobs keep their own configuration.
        override_config_producer: Some(Arc::new(move || {
            cluster_config_with(&producer_options, producer_tls.as_ref()).with_ballista_adaptive_query_planner(false)
        })),
        override_session_builder: Some(Arc::new(move |config: SessionConfig| scheduler_session(config, locations.clone(), tables.as_deref()))),
        override_logical_codec: Some(Arc::new(DeltaLogicalCodec::new(table_options.clone()))),
        override_physical_codec: Some(Arc::new(DeltaPhysicalCodec::new(table_options))),
        flight_sql: options.flight_sql.is_some(),
        override_flight_sql_authenticator: authenticator.clone(),
        use_tls: options.tls.is_some(),
        override_create_grpc_client_endpoint: options.tls.as_ref().map(ClusterTls::endpoint_override),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista_error)?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config)).await.map_err(ballista_error)?;
    listening(addr);
    match &options.tls {
        Some(tls) => crate::tls::serve_scheduler(listener, scheduler, tls, authenticator).await,
        None => start_grpc_service_with_listener(listener, scheduler).await.map_err(ballista_error),
    }
}

fn ballista_error(e: ballista_core::error::BallistaError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// How an executor process runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's address.
    pub scheduler: SocketAddr,
    /// Where the executor serves its shuffle output (port 0: any free port).
    pub bind: SocketAddr,
    /// The port of its gRPC service, where a pushing scheduler sends tasks, on `bind`'s host
    /// (Ballista binds both on one host); `None` or 0: any free port.
    pub grpc_port: Option<u16>,
    /// Shuffle files and spills (a temporary folder when `None`).
    pub work_dir: Option<String>,
    /// Tasks run at once.
    pub slots: usize,
    pub table_options: TableOptions,
    /// How often it tells the scheduler it is alive.
    pub heartbeat_secs: u64,
    /// Mutual TLS to the scheduler and between executors (its Flight service too).
    pub tls: Option<ClusterTls>,
    /// Take tasks pushed by the scheduler on the gRPC port (a scheduler started with `push`).
    pub push: bool,
}

fn policy(push: bool) -> ballista_core::config::TaskSchedulingPolicy {
    if push {
        ballista_core::config::TaskSchedulingPolicy::PushStaged
    } else {
        ballista_core::config::TaskSchedulingPolicy::PullStaged
    }
}

/// A free port on `host`'s interface (the OS's choice; released again for the executor to take).
fn free_port(host: std::net::IpAddr) -> Result<u16> {
    let l = StdListener::bind((host, 0)).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(l.local_addr().map_err(|e| DataFusionError::External(Box::new(e)))?.port())
}

/// Runs an executor until the process ends or the scheduler stops it. `started` is told the
/// ports taken (shuffle service, gRPC) before it connects to the scheduler.
pub async fn run_executor(options: ExecutorOptions, started: impl FnOnce(u16, u16)) -> Result<()> {
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
    if options.push && options.tls.is_some() {
        return Err(DataFusionError::Configuration("pushed tasks come to the executor's gRPC port, which is not under TLS: use pulled tasks with TLS".into()));
    }
    let host = options.bind.ip();
    if host.is_unspecified() {
        return Err(DataFusionError::Configuration(
            "an executor must bind a concrete address (the scheduler tells clients to fetch results from it)".into(),
        ));
    }
    let port = match options.bind.port() {
        0 => free_port(host)?,
        p => p,
    };
    let grpc_port = match options.grpc_port {
        None | Some(0) => free_port(host)?,
        Some(p) => p,
    };
    if let Some(dir) = &options.work_dir {
        std::fs::create_dir_all(dir).map_err(|e| DataFusionError::Configuration(format!("cannot create the work directory {dir}: {e}")))?;
    }
    let table_options = options.table_options.clone();
    let producer_options = table_options.clone();
    let producer_tls = options.tls.clone();
    let config = ExecutorProcessConfig {
        bind_host: host.to_string(),
        external_host: Some(host.to_string()),
        port,
        grpc_port,
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        scheduler_connect_timeout_seconds: 30,
        vcores: options.slots.max(1),
        task_scheduling_policy: policy(options.push),
        work_dir: options.work_dir.clone(),
        executor_heartbeat_interval_seconds: options.heartbeat_secs.max(1),
        override_config_producer: Some(Arc::new(move || cluster_config_with(&producer_options, producer_tls.as_ref()))),
        override_logical_codec: Some(Arc::new(DeltaLogicalCodec::new(table_options.clone()))),
        override_physical_codec: Some(Arc::new(DeltaPhysicalCodec::new(table_options))),
        override_arrow_flight_service: options.tls.clone().map(crate::tls::executor_flight_server),
        override_create_grpc_client_endpoint: options.tls.as_ref().map(ClusterTls::endpoint_override),
        ..Default::default()
    };
    started(port, grpc_port);
    start_executor_process(Arc::new(config)).await.map_err(ballista_error)
}

/// What a scheduler says of its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// At least the scheduler's `min_executors` are registered and alive.
    pub ready: bool,
    /// Executors registered and alive.
    pub executors: usize,
}

/// Asks the scheduler at `scheduler` how many executors it has (its `/readyz` endpoint on the
/// same port), within `timeout`.
pub async fn cluster_status(scheduler: SocketAddr, timeout: std::time::Duration) -> Result<ClusterStatus> {
    cluster_status_with(scheduler, timeout, None).await
}

/// [`cluster_status`] of a scheduler under mutual TLS.
pub async fn cluster_status_with(scheduler: SocketAddr, timeout: std::time::Duration, tls: Option<&ClusterTls>) -> Result<ClusterStatus> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |e: std::io::Error| DataFusionError::External(Box::new(e));
    let ask = async {
        if let Some(tls) = tls {
            return tls.get(scheduler, "/readyz").await;
        }
        let mut stream = tokio::net::TcpStream::connect(scheduler).await.map_err(io)?;
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {scheduler}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(io)?;
        Ok::<_, DataFusionError>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| DataFusionError::Execution(format!("the scheduler at {scheduler} did not answer within {timeout:?}")))??;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    // "ready: N executors registered" or "not ready: N/M executors registered"
    let parsed = body
        .lines()
        .find_map(|l| {
            let (ready, rest) = match l.trim().strip_prefix("not ready: ") {
                Some(rest) => (false, rest),
                None => (true, l.trim().strip_prefix("ready: ")?),
            };
            let count = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
            Some(ClusterStatus { ready, executors: count })
        })
        .ok_or_else(|| DataFusionError::Execution(format!("the scheduler at {scheduler} answered something else: {}", body.trim())))?;
    Ok(parsed)
}

/// Whether binding `addr` keeps a server on this machine only.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_not_protobuf_keys_of_valid_messages() {
        // Wire type 4 (end group) in the first byte: no valid protobuf message starts so.
        for tag in [SCAN_TAG, FILES_TAG, TABLE_TAG, HINT_TAG, WRITE_TAG, MEMORY_TAG] {
            assert_eq!(tag[0] & 0x7, 4);
        }
    }

    #[test]
    fn state_has_the_broadcast_rule() {
        let state: datafusion::execution::SessionState = session_state(cluster_config(&TableOptions::default()), Arc::new(RuntimeEnv::default()));
        assert!(state.physical_optimizers().iter().any(|r| r.name() == "broadcast_join_hint"));
    }
}
