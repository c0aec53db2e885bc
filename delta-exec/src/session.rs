//! Spark's vocabulary over DataFusion: a [`Session`] (SparkSession's role) and a lazy
//! [`DataFrame`] whose methods take Spark SQL text where Spark's do.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DataFusionError, JoinType, Result};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::prelude::{SessionConfig, SessionContext};
use delta_core::write::{PlannedWrite, SaveMode, WriteOptions, WriteResult};
use delta_core::{Table, TableOptions};
use futures::TryStreamExt;

use crate::hint::{BroadcastHint, BroadcastJoinRule, HintQueryPlanner};
use crate::provider::{df_error, DeltaTableProvider, ScanProgress};
use crate::statement::Registry;
use crate::window::WindowSpec;

/// Spark's default `spark.sql.autoBroadcastJoinThreshold`: 10 MiB.
pub const DEFAULT_BROADCAST_THRESHOLD: usize = 10 << 20;

/// Spark's defaults where DataFusion's differ: null ordering (ascending puts nulls first) and
/// the broadcast threshold. Applied once where a session is made; a cluster's scheduler gets
/// them (and any later `set_conf`) with the client's configuration.
pub fn spark_defaults(mut config: SessionConfig) -> SessionConfig {
    let options = config.options_mut();
    options.sql_parser.default_null_ordering = "nulls_min".into();
    options.optimizer.hash_join_single_partition_threshold = DEFAULT_BROADCAST_THRESHOLD;
    config
}

/// The session state every session plans with (a cluster's scheduler too), over `config` as
/// given: the broadcast hint's planner and rule, and the split of aggregates that mix DISTINCT
/// with plain ones ([`crate::distinct`]). Tables named ``delta.`/path/or/url` `` are
/// added by [`Session`].
pub fn session_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> datafusion::execution::SessionState {
    let mut rules = PhysicalOptimizer::new().rules;
    let at = rules.iter().position(|r| r.name() == "join_selection").map(|i| i + 1).unwrap_or(0);
    rules.insert(at, Arc::new(BroadcastJoinRule));
    SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_optimizer_rule(Arc::new(crate::distinct::MixedDistinctToJoin))
        .with_query_planner(Arc::new(HintQueryPlanner))
        .with_physical_optimizer_rules(rules)
        .build()
}

/// `broadcast(df)`: joins with `df` build from all of it, on every partition of the other side.
pub fn broadcast(df: &DataFrame) -> DataFrame {
    df.hint_broadcast()
}

/// Configuration and the table registry: where DataFrames come from.
#[derive(Clone)]
pub struct Session {
    ctx: SessionContext,
    registry: Arc<std::sync::Mutex<Registry>>,
    /// Options for opening tables (storage credentials, external paths), shared with the
    /// ``delta.`path` `` schema so path-named tables open with them too.
    table_options: Arc<std::sync::RwLock<TableOptions>>,
    progress: Arc<ScanProgress>,
    /// Queries run on a cluster: writes have the executors write the data files
    /// ([`crate::write`]).
    distributed: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// A session with DataFusion's defaults (one partition per core, no memory limit).
    pub fn new() -> Self {
        Session::from_parts(SessionConfig::new(), Arc::new(RuntimeEnv::default()))
    }

    /// The session state every session starts from: Spark's null ordering (ascending puts nulls
    /// first), Spark's broadcast threshold, the broadcast hint's planner and rule, and tables
    /// named ``delta.`/path/or/url` `` in SQL opening the Delta table there (latest version).
    fn from_parts(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Self {
        let progress = Arc::new(ScanProgress::default());
        let state = session_state(spark_defaults(config).with_extension(progress.clone()), runtime);
        Session::from_context(SessionContext::new_with_state(state), progress)
    }

    /// Wraps a context built from [`session_state`] (locally, or upgraded for a cluster by
    /// [`crate::cluster`]) and registers the path-named schemas on it.
    pub(crate) fn from_context(ctx: SessionContext, progress: Arc<ScanProgress>) -> Self {
        let table_options: Arc<std::sync::RwLock<TableOptions>> = Arc::default();
        let default_catalog = ctx.state().config().options().catalog.default_catalog.clone();
        if let Some(catalog) = ctx.catalog(&default_catalog) {
            // Only fails when a schema of that name cannot be registered; the session still works
            // without path-named tables then.
            let _ = catalog.register_schema("delta", Arc::new(DeltaPathSchema { options: table_options.clone() }));
            let _ = catalog.register_schema("parquet", Arc::new(crate::parquet_path::ParquetPathSchema));
        }
        Session { ctx, registry: Arc::default(), table_options, progress, distributed: false }
    }

    /// A session that plans `target_partitions` partitions (Spark's `spark.sql.shuffle.partitions`
    /// role) and runs under `memory_limit` bytes when given: sorts, aggregates and joins spill to
    /// disk where they can, and a query that cannot fit fails with a resources error.
    pub fn with_config(target_partitions: usize, memory_limit: Option<usize>) -> Result<Self> {
        let partitions = target_partitions.max(1);
        let mut config = SessionConfig::new().with_target_partitions(partitions);
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(bytes) = memory_limit {
            runtime = runtime.with_memory_limit(bytes, 1.0);
            // Each sorting partition sets aside memory for merging its spill files (10 MiB by
            // default); under a small limit that reserve alone would exhaust it, so it shrinks to
            // a quarter of each partition's share.
            let reserve = (bytes / (4 * partitions)).clamp(64 << 10, 10 << 20);
            config = config.with_sort_spill_reservation_bytes(reserve);
        }
        Ok(Session::from_parts(config, runtime.build_arc()?))
    }

    /// `spark.conf.set(key, value)`: `spark.sql.autoBroadcastJoinThreshold` (bytes; joins whose
    /// smaller side is estimated below it build from all of that side, -1 turns it off; default
    /// 10 MiB as in Spark), `spark.sql.shuffle.partitions`, or any `datafusion.*` option.
    pub fn set_conf(&self, key: &str, value: &str) -> Result<()> {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        match key {
            "spark.sql.autoBroadcastJoinThreshold" => {
                let bytes: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| DataFusionError::Plan(format!("spark.sql.autoBroadcastJoinThreshold `{value}` is not a number of bytes")))?;
                // Off means off: neither the byte nor DataFusion's row threshold may pick a
                // collect-left join.
                options.optimizer.hash_join_single_partition_threshold = bytes.max(0) as usize;
                if bytes < 0 {
                    options.optimizer.hash_join_single_partition_threshold_rows = 0;
                }
                // On a cluster Ballista's planners promote joins with their own thresholds.
                if self.distributed {
                    options.set("ballista.optimizer.broadcast_join_threshold_bytes", &bytes.max(0).to_string())?;
                    if bytes < 0 {
                        options.set("ballista.optimizer.broadcast_join_threshold_rows", "0")?;
                    }
                }
                Ok(())
            }
            "spark.sql.shuffle.partitions" => options.set("datafusion.execution.target_partitions", value),
            // Ballista's options on a cluster session, e.g. `ballista.planner.adaptive.enabled`.
            k if k.starts_with("datafusion.") || k.starts_with("ballista.") => options.set(k, value),
            other => Err(DataFusionError::Plan(format!("unknown configuration `{other}`"))),
        }
    }

    /// A session whose queries run on a cluster ([`crate::cluster`]).
    pub(crate) fn distributed(mut self) -> Self {
        self.distributed = true;
        self
    }

    /// Whether this session's queries run on a cluster.
    pub fn is_distributed(&self) -> bool {
        self.distributed
    }

    /// Options for opening tables by path in statements (credentials, external paths).
    pub fn with_table_options(self, options: TableOptions) -> Self {
        *self.table_options.write().unwrap_or_else(|p| p.into_inner()) = options;
        self
    }

    pub(crate) fn table_options(&self) -> TableOptions {
        self.table_options.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The location a name was registered with by [`Session::register_delta`].
    pub fn location_of(&self, name: &str) -> Option<String> {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.locations.get(name).or_else(|| registry.locations.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)).cloned()
    }

    pub(crate) fn frame(&self, df: datafusion::dataframe::DataFrame) -> DataFrame {
        DataFrame { session: self.clone(), df }
    }

    /// What this session's Delta scans have planned and opened (for a progress display).
    pub fn progress(&self) -> Arc<ScanProgress> {
        self.progress.clone()
    }

    /// The DataFusion context underneath (for anything this API does not cover).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// `spark.read`: a reader of Delta tables, at the latest version unless told otherwise.
    pub fn read(&self) -> DataFrameReader {
        DataFrameReader { session: self.clone(), version: None, timestamp_ms: None, change_feed: None }
    }

    /// Registers the latest version of the Delta table at `location` under `name` for SQL.
    pub async fn register_delta(&self, name: &str, location: &str) -> Result<()> {
        let snapshot = Table::open_with(location, self.table_options()).map_err(df_error)?.snapshot().await.map_err(df_error)?;
        self.ctx.register_table(name, Arc::new(DeltaTableProvider::try_new(snapshot)?))?;
        self.registry.lock().unwrap_or_else(|p| p.into_inner()).locations.insert(name.to_string(), location.to_string());
        Ok(())
    }

    /// Points a registered name at its table's latest version, when it has moved on.
    pub(crate) async fn refresh(&self, name: &str) -> Result<()> {
        let Some(location) = self.location_of(name) else { return Ok(()) };
        let current = self
            .ctx
            .table_provider(name)
            .await
            .ok()
            .and_then(|p| p.downcast_ref::<DeltaTableProvider>().map(|d| d.snapshot().version()));
        let table = Table::open_with(&location, self.table_options()).map_err(df_error)?;
        let snapshot = table.snapshot().await.map_err(df_error)?;
        if current == Some(snapshot.version()) {
            return Ok(());
        }
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, Arc::new(DeltaTableProvider::try_new(snapshot)?))?;
        Ok(())
    }

    /// `spark.sql(text)`: a query over registered tables and tables named by path, in Spark SQL
    /// (including `VERSION AS OF` / `TIMESTAMP AS OF`), lazily. A statement that writes (CTAS,
    /// INSERT, DELETE, UPDATE, MERGE) runs now, as in Spark, and its frame is one row: the
    /// committed `version` (null when nothing changed) and the operation's metrics.
    pub async fn sql(&self, text: &str) -> Result<DataFrame> {
        match self.execute(text).await? {
            crate::statement::Outcome::Rows(df) => Ok(*df),
            crate::statement::Outcome::Committed { version, metrics } => {
                use arrow::array::{ArrayRef, Int64Array, StringArray};
                use arrow::datatypes::{DataType, Field, Schema};
                let mut fields = vec![Field::new("version", DataType::Int64, true)];
                let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![version]))];
                for (k, v) in metrics {
                    match v.parse::<i64>() {
                        Ok(n) => {
                            fields.push(Field::new(k, DataType::Int64, false));
                            columns.push(Arc::new(Int64Array::from(vec![n])));
                        }
                        Err(_) => {
                            fields.push(Field::new(k, DataType::Utf8, false));
                            columns.push(Arc::new(StringArray::from(vec![v])));
                        }
                    }
                }
                let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
                Ok(self.frame(self.ctx.read_batch(batch)?))
            }
        }
    }
}

/// The `delta` schema of SQL: every table name is a Delta table's location.
#[derive(Debug)]
struct DeltaPathSchema {
    options: Arc<std::sync::RwLock<TableOptions>>,
}

#[async_trait::async_trait]
impl SchemaProvider for DeltaPathSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let options = self.options.read().unwrap_or_else(|p| p.into_inner()).clone();
        let snapshot = Table::open_with(name, options).map_err(df_error)?.snapshot().await.map_err(df_error)?;
        Ok(Some(Arc::new(DeltaTableProvider::try_new(snapshot)?)))
    }

    fn table_exist(&self, _name: &str) -> bool {
        true
    }
}

/// `spark.read` for Delta tables, with time travel.
pub struct DataFrameReader {
    session: Session,
    version: Option<i64>,
    timestamp_ms: Option<i64>,
    /// `readChangeFeed`: (startingVersion, endingVersion).
    change_feed: Option<(Option<i64>, Option<i64>)>,
}

impl DataFrameReader {
    /// Spark's reader options: `versionAsOf`, and the change data feed's `readChangeFeed`
    /// (`true`) with `startingVersion` and optionally `endingVersion`.
    pub fn option(mut self, key: &str, value: &str) -> Result<Self> {
        let version = || value.trim().parse::<i64>().map_err(|_| DataFusionError::Plan(format!("{key} `{value}` is not a version number")));
        match key {
            "versionAsOf" => self.version = Some(version()?),
            "readChangeFeed" => {
                if value.eq_ignore_ascii_case("true") {
                    self.change_feed.get_or_insert((None, None));
                } else {
                    self.change_feed = None;
                }
            }
            "startingVersion" => self.change_feed.get_or_insert((None, None)).0 = Some(version()?),
            "endingVersion" => self.change_feed.get_or_insert((None, None)).1 = Some(version()?),
            other => return Err(DataFusionError::Plan(format!("unknown Delta read option `{other}` (versionAsOf, readChangeFeed, startingVersion, endingVersion)"))),
        }
        Ok(self)
    }

    /// The change rows of versions `start..=end` (the latest when `None`) of the table at
    /// `location`: its columns, `_change_type`, `_commit_version`, `_commit_timestamp`. Read when
    /// the frame is made; the feed of a range of versions is fixed once they exist.
    pub async fn change_feed_of(session: &Session, location: &str, start: i64, end: Option<i64>) -> Result<DataFrame> {
        let table = Table::open_with(location, session.table_options()).map_err(df_error)?;
        let changes = table.table_changes(start, end, None).await.map_err(df_error)?;
        let feed = crate::changes::ChangeFeedProvider::new(changes);
        Ok(session.frame(session.ctx.read_table(Arc::new(feed))?))
    }

    /// `versionAsOf`.
    pub fn version_as_of(mut self, version: i64) -> Self {
        self.version = Some(version);
        self
    }

    /// `timestampAsOf`, in milliseconds since the epoch: the latest version committed at or before it.
    pub fn timestamp_as_of(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// The Delta table at `location` (a path or URL).
    pub async fn delta(self, location: &str) -> Result<DataFrame> {
        if let Some((start, end)) = self.change_feed {
            if self.version.is_some() || self.timestamp_ms.is_some() {
                return Err(DataFusionError::Plan("a change feed read takes startingVersion/endingVersion, not versionAsOf or timestampAsOf".into()));
            }
            let start = start.ok_or_else(|| DataFusionError::Plan("readChangeFeed needs startingVersion".into()))?;
            return Self::change_feed_of(&self.session, location, start, end).await;
        }
        let table = Table::open_with(location, self.session.table_options()).map_err(df_error)?;
        let snapshot = match (self.version, self.timestamp_ms) {
            (Some(_), Some(_)) => {
                return Err(DataFusionError::Plan("give versionAsOf or timestampAsOf, not both".into()));
            }
            (Some(v), None) => table.snapshot_at(v).await,
            (None, Some(ts)) => table.snapshot_at_timestamp(ts).await,
            (None, None) => table.snapshot().await,
        }
        .map_err(df_error)?;
        let df = self.session.ctx.read_table(Arc::new(DeltaTableProvider::try_new(snapshot)?))?;
        Ok(DataFrame { session: self.session, df })
    }
}

/// One Delta snapshot a frame reads ([`DataFrame::delta_sources`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSource {
    /// The table's root URL.
    pub location: String,
    pub version: i64,
    /// The commit time of that version, when the log has it.
    pub timestamp_ms: Option<i64>,
}

/// A lazy query: nothing runs until an action (`collect`, `count`, `show`, a write).
#[derive(Clone)]
pub struct DataFrame {
    session: Session,
    df: datafusion::dataframe::DataFrame,
}

/// How a join keeps rows, by Spark's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinHow {
    Inner,
    Left,
    Right,
    Full,
    LeftSemi,
    LeftAnti,
}

impl JoinHow {
    /// Spark's spellings: `inner`, `left`/`left_outer`, `right`/`right_outer`,
    /// `full`/`outer`/`full_outer`, `semi`/`left_semi`, `anti`/`left_anti`.
    pub fn parse(how: &str) -> Result<Self> {
        Ok(match how.to_ascii_lowercase().replace('_', "").as_str() {
            "inner" => JoinHow::Inner,
            "left" | "leftouter" => JoinHow::Left,
            "right" | "rightouter" => JoinHow::Right,
            "full" | "outer" | "fullouter" => JoinHow::Full,
            "semi" | "leftsemi" => JoinHow::LeftSemi,
            "anti" | "leftanti" => JoinHow::LeftAnti,
            other => return Err(DataFusionError::Plan(format!("unknown join type `{other}` (inner, left, right, full, semi, anti)"))),
        })
    }

    fn join_type(self) -> JoinType {
        match self {
            JoinHow::Inner => JoinType::Inner,
            JoinHow::Left => JoinType::Left,
            JoinHow::Right => JoinType::Right,
            JoinHow::Full => JoinType::Full,
            JoinHow::LeftSemi => JoinType::LeftSemi,
            JoinHow::LeftAnti => JoinType::LeftAnti,
        }
    }
}

impl DataFrame {
    pub(crate) fn with(&self, df: datafusion::dataframe::DataFrame) -> DataFrame {
        DataFrame { session: self.session.clone(), df }
    }

    /// A SQL expression over this frame's columns (`"amount * 2"`, `"upper(name)"`).
    pub fn expr(&self, text: &str) -> Result<Expr> {
        self.df.parse_sql_expr(text)
    }

    /// Wraps a DataFusion DataFrame planned in `session`'s context (a frame over any
    /// `TableProvider`, e.g. a transformed stream).
    pub fn from_datafusion(session: &Session, df: datafusion::dataframe::DataFrame) -> DataFrame {
        DataFrame { session: session.clone(), df }
    }

    /// The session this frame was made in.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Runs the query once and keeps its rows in memory (Spark's `cache()` followed by an action):
    /// later actions read the memory, not the tables.
    pub async fn cache(&self) -> Result<DataFrame> {
        Ok(self.with(self.live().cache().await?))
    }

    /// The Delta snapshots this frame reads: each table's location and version, in plan order.
    /// This is what a model records as the data it was trained on.
    pub fn delta_sources(&self) -> Vec<DeltaSource> {
        let mut out: Vec<DeltaSource> = Vec::new();
        let _ = self.df.logical_plan().apply(|node| {
            if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
                if let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source) {
                    if let Some(delta) = provider.downcast_ref::<DeltaTableProvider>() {
                        let snapshot = delta.snapshot();
                        let source = DeltaSource {
                            location: snapshot.location().root_url().to_string(),
                            version: snapshot.version(),
                            timestamp_ms: snapshot.timestamp_ms(),
                        };
                        if !out.contains(&source) {
                            out.push(source);
                        }
                    }
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        out
    }

    /// The DataFusion DataFrame underneath.
    pub fn inner(&self) -> &datafusion::dataframe::DataFrame {
        &self.df
    }

    /// `filter("amount > 10 AND day = '2024-01-01'")`.
    pub fn filter(&self, condition: &str) -> Result<DataFrame> {
        self.filter_expr(self.expr(condition)?)
    }

    pub fn filter_expr(&self, condition: Expr) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().filter(condition)?))
    }

    /// `select("id", "amount * 2 AS double")`: columns or SQL expressions.
    pub fn select(&self, columns: &[&str]) -> Result<DataFrame> {
        let exprs = columns.iter().map(|c| self.expr(c)).collect::<Result<Vec<_>>>()?;
        self.select_exprs(exprs)
    }

    pub fn select_exprs(&self, exprs: Vec<Expr>) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().select(exprs)?))
    }

    /// `withColumn(name, expr)`: adds or replaces a column.
    pub fn with_column(&self, name: &str, expr: &str) -> Result<DataFrame> {
        let e = self.expr(expr)?;
        Ok(self.with(self.df.clone().with_column(name, e)?))
    }

    /// `function.over(window)`: a window function (`"lag(amount, 1)"`, `"row_number()"`,
    /// `"sum(amount)"`) over a [`WindowSpec`], as an expression of this frame.
    pub fn over(&self, function: &str, window: &WindowSpec) -> Result<Expr> {
        self.expr(&format!("{function} {}", window.to_sql()))
    }

    /// `withColumn(name, function.over(window))`.
    pub fn with_column_over(&self, name: &str, function: &str, window: &WindowSpec) -> Result<DataFrame> {
        let e = self.over(function, window)?;
        Ok(self.with(self.df.clone().with_column(name, e)?))
    }

    /// `withColumn(name, expr)` with a built expression.
    pub fn with_column_expr(&self, name: &str, expr: Expr) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().with_column(name, expr)?))
    }

    /// `withColumnRenamed(old, new)`; an unknown `old` leaves the frame as it is (as Spark).
    pub fn with_column_renamed(&self, old: &str, new: &str) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().with_column_renamed(old, new)?))
    }

    /// `drop(columns)`.
    pub fn drop(&self, columns: &[&str]) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().drop_columns(columns)?))
    }

    /// `groupBy(columns)`, then [`GroupedData::agg`].
    pub fn group_by(&self, columns: &[&str]) -> Result<GroupedData> {
        let keys = columns.iter().map(|c| self.expr(c)).collect::<Result<Vec<_>>>()?;
        Ok(GroupedData { frame: self.clone(), keys })
    }

    /// `join(other, on, how)` on equally named columns (kept once for an inner join, as Spark's
    /// `join(other, Seq(cols))` does for every join type).
    pub fn join(&self, other: &DataFrame, on: &[&str], how: &str) -> Result<DataFrame> {
        let how = JoinHow::parse(how)?;
        let right_alias = "__right";
        let right = other.df.clone().alias(right_alias)?;
        let left_alias = "__left";
        let left = self.df.clone().alias(left_alias)?;
        let left_cols: Vec<String> = on.iter().map(|c| format!("{left_alias}.{c}")).collect();
        let right_cols: Vec<String> = on.iter().map(|c| format!("{right_alias}.{c}")).collect();
        let lc: Vec<&str> = left_cols.iter().map(String::as_str).collect();
        let rc: Vec<&str> = right_cols.iter().map(String::as_str).collect();
        let joined = left.join(right, how.join_type(), &lc, &rc, None)?;
        if matches!(how, JoinHow::LeftSemi | JoinHow::LeftAnti) {
            return Ok(self.with(joined));
        }
        // One column per key, as Spark: the left's, or the right's where only it has a value.
        let schema = joined.schema().clone();
        let mut exprs = Vec::new();
        for (qualifier, field) in schema.iter() {
            let name = field.name();
            let is_key = on.iter().any(|k| k == name);
            let from_right = qualifier.is_some_and(|q| q.table() == right_alias);
            if is_key && from_right {
                continue;
            }
            let col = Expr::Column(datafusion::common::Column::new(qualifier.cloned(), name));
            // Other columns keep their side: a name both sides have appears twice, and naming it
            // afterwards is ambiguous, as in Spark.
            exprs.push(match (is_key, how) {
                (true, JoinHow::Right | JoinHow::Full) => {
                    let right_col = Expr::Column(datafusion::common::Column::new(Some(right_alias), name));
                    datafusion::functions::core::expr_fn::coalesce(vec![col, right_col]).alias(name)
                }
                (true, _) => col.alias(name),
                (false, _) => col,
            });
        }
        Ok(self.with(joined.select(exprs)?))
    }

    /// `orderBy("day", "amount DESC")`: each a column or expression with an optional
    /// `ASC`/`DESC` and `NULLS FIRST`/`NULLS LAST` (Spark's default: ascending, nulls first).
    pub fn order_by(&self, keys: &[&str]) -> Result<DataFrame> {
        let sorts = keys.iter().map(|k| self.sort_key(k)).collect::<Result<Vec<_>>>()?;
        Ok(self.with(self.df.clone().sort(sorts)?))
    }

    fn sort_key(&self, key: &str) -> Result<SortExpr> {
        let mut text = key.trim().to_string();
        let upper = |s: &str| s.to_ascii_uppercase();
        let mut nulls_first: Option<bool> = None;
        for (suffix, first) in [(" NULLS FIRST", true), (" NULLS LAST", false)] {
            if upper(&text).ends_with(suffix) {
                text.truncate(text.len() - suffix.len());
                nulls_first = Some(first);
            }
        }
        let mut asc = true;
        for (suffix, a) in [(" DESC", false), (" ASC", true)] {
            if upper(&text).ends_with(suffix) {
                text.truncate(text.len() - suffix.len());
                asc = a;
            }
        }
        // Spark: NULLS FIRST for ascending, NULLS LAST for descending.
        Ok(self.expr(&text)?.sort(asc, nulls_first.unwrap_or(asc)))
    }

    /// The frame marked for broadcast (see [`broadcast`]).
    pub fn hint_broadcast(&self) -> DataFrame {
        let (state, plan) = self.df.clone().into_parts();
        self.with(datafusion::dataframe::DataFrame::new(state, BroadcastHint::plan(plan)))
    }

    /// `hint(name)`: `broadcast` (also `broadcastjoin`, `mapjoin`); other hints are ignored, as
    /// Spark ignores hints it does not know.
    pub fn hint(&self, name: &str) -> DataFrame {
        match name.to_ascii_lowercase().as_str() {
            "broadcast" | "broadcastjoin" | "mapjoin" => self.hint_broadcast(),
            _ => self.clone(),
        }
    }

    /// `limit(n)`.
    pub fn limit(&self, n: usize) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().limit(0, Some(n))?))
    }

    /// `distinct()`.
    pub fn distinct(&self) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().distinct()?))
    }

    /// `union(other)`: by position, keeping duplicates (Spark's `union`).
    pub fn union(&self, other: &DataFrame) -> Result<DataFrame> {
        Ok(self.with(self.df.clone().union(other.df.clone())?))
    }

    /// The query under the session's configuration as it is now: an action plans with the
    /// settings current when it runs (as Spark reads its conf), not those of when the frame
    /// was built.
    fn live(&self) -> datafusion::dataframe::DataFrame {
        let (_, plan) = self.df.clone().into_parts();
        datafusion::dataframe::DataFrame::new(self.session.ctx.state(), plan)
    }

    /// The physical plan DataFusion would run.
    pub async fn physical_plan(&self) -> Result<Arc<dyn ExecutionPlan>> {
        self.live().create_physical_plan().await
    }

    /// Runs the query, all batches in memory.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        self.live().collect().await
    }

    /// Runs the query, the batches of each output partition apart, in partition order. Unlike
    /// [`Self::collect`] (which merges partitions as they finish), the row order is the same on
    /// every run: what a model fit needs to be reproducible.
    pub async fn collect_partitioned(&self) -> Result<Vec<Vec<RecordBatch>>> {
        self.live().collect_partitioned().await
    }

    /// One stream per output partition, in partition order.
    pub async fn execute_stream_partitioned(&self) -> Result<Vec<SendableRecordBatchStream>> {
        self.live().execute_stream_partitioned().await
    }

    /// Runs the query as a stream of batches.
    pub async fn execute_stream(&self) -> Result<SendableRecordBatchStream> {
        self.live().execute_stream().await
    }

    /// The number of rows.
    pub async fn count(&self) -> Result<usize> {
        self.live().count().await
    }

    /// The first `n` rows as a text table (what `show(n)` prints).
    pub async fn show_string(&self, n: usize) -> Result<String> {
        let batches = self.live().limit(0, Some(n))?.collect().await?;
        Ok(pretty_format_batches(&batches)?.to_string())
    }

    /// `explain()` / `explain(analyze)`: the plan as text.
    pub async fn explain(&self, analyze: bool) -> Result<String> {
        let batches = self.live().explain(false, analyze)?.collect().await?;
        Ok(pretty_format_batches(&batches)?.to_string())
    }

    /// `df.write.format("delta")`.
    pub fn write(&self) -> DataFrameWriter {
        self.write_with(WriteOptions::default())
    }

    /// A writer starting from delta-core's options.
    pub fn write_with(&self, options: WriteOptions) -> DataFrameWriter {
        DataFrameWriter { frame: self.clone(), options }
    }
}

/// `groupBy(..)` waiting for its aggregates.
pub struct GroupedData {
    frame: DataFrame,
    keys: Vec<Expr>,
}

impl GroupedData {
    /// `agg("sum(amount) AS total", "count(*) AS n")`: aggregate expressions as SQL text.
    pub fn agg(self, aggregates: &[&str]) -> Result<DataFrame> {
        let aggs = aggregates.iter().map(|a| self.frame.expr(a)).collect::<Result<Vec<_>>>()?;
        self.agg_exprs(aggs)
    }

    pub fn agg_exprs(self, aggregates: Vec<Expr>) -> Result<DataFrame> {
        let df = self.frame.df.clone().aggregate(self.keys, aggregates)?;
        Ok(self.frame.with(df))
    }
}

/// `df.write.format("delta").mode(..).partitionBy(..).option(..).save(path)`.
pub struct DataFrameWriter {
    frame: DataFrame,
    options: WriteOptions,
}

impl DataFrameWriter {
    /// `append` (default), `overwrite`, `errorIfExists`, `ignore`.
    pub fn mode(mut self, mode: &str) -> Result<Self> {
        self.options.mode = match mode.to_ascii_lowercase().as_str() {
            "append" => SaveMode::Append,
            "overwrite" => SaveMode::Overwrite,
            "errorifexists" | "error" | "default" => SaveMode::ErrorIfExists,
            "ignore" => SaveMode::Ignore,
            other => return Err(DataFusionError::Plan(format!("unknown save mode `{other}` (append, overwrite, errorIfExists, ignore)"))),
        };
        Ok(self)
    }

    pub fn partition_by(mut self, columns: &[&str]) -> Self {
        self.options.partition_by = Some(columns.iter().map(|c| c.to_string()).collect());
        self
    }

    /// Delta's writer options: `mergeSchema`, `overwriteSchema`, `replaceWhere`,
    /// `partitionOverwriteMode` (`dynamic`), `userMetadata`, `targetFileSize`, `txnAppId` with
    /// `txnVersion`; any `delta.*` key is a table property for a new table.
    pub fn option(mut self, key: &str, value: &str) -> Result<Self> {
        let flag = || value.eq_ignore_ascii_case("true");
        match key {
            "mergeSchema" => self.options.merge_schema = flag(),
            "overwriteSchema" => self.options.overwrite_schema = flag(),
            "replaceWhere" => self.options.replace_where = Some(delta_core::Expr::parse(value).map_err(df_error)?),
            "partitionOverwriteMode" => self.options.dynamic_partition_overwrite = value.eq_ignore_ascii_case("dynamic"),
            "userMetadata" => {
                self.options.commit_info.insert("userMetadata".into(), value.into());
            }
            "targetFileSize" => {
                self.options.target_file_size =
                    Some(value.parse().map_err(|_| DataFusionError::Plan(format!("targetFileSize `{value}` is not a number of bytes")))?)
            }
            "txnAppId" => {
                let version = self.options.app_transaction.as_ref().map(|(_, v)| *v).unwrap_or(0);
                self.options.app_transaction = Some((value.to_string(), version));
            }
            "txnVersion" => {
                let v = value.parse().map_err(|_| DataFusionError::Plan(format!("txnVersion `{value}` is not a number")))?;
                let app = self.options.app_transaction.take().map(|(a, _)| a).unwrap_or_default();
                self.options.app_transaction = Some((app, v));
            }
            k if k.starts_with("delta.") => {
                self.options.properties.insert(k.to_string(), value.to_string());
            }
            other => return Err(DataFusionError::Plan(format!("unknown Delta write option `{other}`"))),
        }
        Ok(self)
    }

    /// Runs the query and writes its batches as they arrive into the table at `location`, as one
    /// commit (a new table's version 0 holds its protocol, metadata and data). On a cluster the
    /// executors write the data files and this process commits them ([`crate::write`]).
    pub async fn save(self, location: &str) -> Result<WriteResult> {
        let table = Table::open_with(location, self.frame.session.table_options()).map_err(df_error)?;
        if !self.frame.session.distributed {
            let stream = self.frame.execute_stream().await?;
            return table.write_stream(query_failed(stream), self.options).await.map_err(df_error);
        }
        let schema = Arc::new(self.frame.df.schema().as_arrow().clone());
        let write = match table.begin_write(schema, self.options).await.map_err(df_error)? {
            PlannedWrite::Done(result) => return Ok(result),
            PlannedWrite::Files(write) => write,
        };
        let Some(task) = write.task() else {
            // Not splittable (identity columns, replaceWhere): the rows come here.
            let stream = self.frame.execute_stream().await?;
            return write.write_stream(query_failed(stream)).await.map_err(df_error);
        };
        let plan = crate::write::DeltaWrite::try_new(self.frame.df.logical_plan().clone(), task, table.location().clone())?.plan();
        let state = self.frame.session.ctx.state();
        let batches = datafusion::dataframe::DataFrame::new(state, plan).collect().await?;
        let adds = crate::write::adds_of(&batches)?;
        write.commit_files(adds).await.map_err(df_error)
    }
}

/// A query's stream as a write's input: its failure is the write's refusal.
fn query_failed(stream: datafusion::execution::SendableRecordBatchStream) -> impl futures::Stream<Item = delta_core::DeltaResult<arrow::array::RecordBatch>> + Send + Unpin {
    stream.map_err(|e| delta_core::DeltaError::WriteRefused { reason: format!("the query being written failed: {e}") })
}
