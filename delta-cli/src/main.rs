//! `delta`: inspect and read Delta tables from the command line.
//!
//! ```text
//! delta describe TABLE
//! delta history TABLE [--limit N]
//! delta cat TABLE [--version N | --timestamp T] [--columns a,b] [--where EXPR] [--limit N]
//!                 [--format table|csv|json|parquet] [--output FILE]
//! delta files TABLE [--version N] [--where EXPR]
//! delta create TABLE --schema "id long NOT NULL, name string" [--partition-by c] [--property k=v]
//! delta write TABLE FILE... [--mode append|overwrite] [--replace-where EXPR] [--partition-by c]
//!                           [--merge-schema] [--overwrite-schema]
//! delta checkpoint TABLE
//! delta property TABLE k=v...
//! delta constraint TABLE add NAME EXPR | drop NAME
//! delta sql "SELECT … FROM delta.`/t` [VERSION AS OF n] …" [--table NAME=PATH] [--tables DIR] [--format table|csv|json|parquet] [--memory-limit 2GB]
//! delta sql "CREATE TABLE delta.`/t` [PARTITIONED BY (c)] AS SELECT …" | "INSERT INTO|OVERWRITE t SELECT …" | "MERGE INTO … USING (SELECT …) s …"
//!           [--output FILE]
//! delta sql "DELETE FROM delta.`/t` WHERE …" | "UPDATE …" | "MERGE INTO … USING … ON … WHEN …"
//! delta changes TABLE --from V [--to V] [--where EXPR] [--format table|csv|json|parquet]
//! delta restore TABLE --version N | --timestamp T
//! delta optimize TABLE [--where PARTITION_PREDICATE] [--zorder-by a,b] [--target-size BYTES]
//!                      [--min-file-size BYTES] [--purge-deletion-vectors]
//! delta vacuum TABLE [--retain HOURS] [--dry-run] [--force]
//! delta clone SOURCE TARGET [--version N]            (shallow: the target references SOURCE's files)
//! delta alter TABLE add-columns "a.b int, c string" | rename-column PATH NEW | drop-columns PATH...
//!                   | change-type PATH TYPE | set k=v... | unset k... | enable-features NAME...
//! ```
//! `--allow-external PREFIX` (any command, repeatable) lets a table's log name files under PREFIX
//! outside its root, as a shallow clone's does; without it such paths are refused.
//! TABLE is a local path or an object-store URL. Errors are one line on stderr, exit code 1.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use clap::{Parser, Subcommand, ValueEnum};
use delta_core::schema::{DataType, StructField, StructType};
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::{DeltaError, Snapshot, Table};
use delta_exec::Outcome;
use futures::TryStreamExt;

mod ml;

#[derive(Parser)]
#[command(name = "delta", version, about = "Read and inspect Delta Lake tables")]
struct Cli {
    /// Allow files under this location outside the table (e.g. a shallow clone's source); repeatable.
    #[arg(long = "allow-external", global = true)]
    allow_external: Vec<String>,
    /// Object store option `KEY=VALUE` (repeatable; any command): `AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP`, `AZURE_STORAGE_ACCOUNT_NAME`, … as delta-rs and object_store name them.
    /// The standard environment variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`) are read too; these win.
    #[arg(long = "storage-option", global = true)]
    storage_options: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Clone, Copy, ValueEnum)]
enum WriteMode {
    Append,
    Overwrite,
}

#[derive(Clone, Copy, ValueEnum)]
enum ConstraintAction {
    Add,
    Drop,
}

/// Mutual TLS between a cluster's processes: this process's certificate and key, and the CA that
/// signed every process's certificate (PEM files; all three or none).
#[derive(clap::Args, Clone, Default)]
struct TlsArgs {
    #[arg(long = "tls-cert", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<String>,
    #[arg(long = "tls-key", requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<String>,
    #[arg(long = "tls-ca", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<String>,
}

impl TlsArgs {
    fn load(&self) -> Result<Option<delta_exec::tls::ClusterTls>, CliError> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(c), Some(k), Some(a)) => delta_exec::tls::ClusterTls::from_files(c, k, a).map(Some).map_err(|e| CliError::Usage(e.to_string())),
            _ => Ok(None),
        }
    }
}

#[derive(Subcommand)]
enum ClusterAction {
    /// The scheduler: plans queries (Delta tables are opened here with this process's storage
    /// options), splits them into stages and hands tasks to executors. Prints the address it
    /// listens on.
    Scheduler {
        /// HOST:PORT (port 0: any free port). Loopback unless --insecure.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: String,
        /// Allow listening beyond loopback without TLS (anyone who can reach the port can run
        /// queries with this process's storage access).
        #[arg(long)]
        insecure: bool,
        /// An executor silent this long is lost; its tasks run again elsewhere.
        #[arg(long = "executor-timeout-secs", default_value_t = 60)]
        executor_timeout_secs: u64,
        /// Executors needed before `delta cluster status` reports ready.
        #[arg(long = "min-executors", default_value_t = 1)]
        min_executors: usize,
        /// Serve Arrow Flight SQL on the same port (ADBC, JDBC and other Arrow clients), to
        /// clients giving --flight-sql-user and the password in DELTA_FLIGHT_SQL_PASSWORD
        /// (HTTP Basic in the Flight handshake); without a user only with --insecure.
        #[arg(long = "flight-sql")]
        flight_sql: bool,
        #[arg(long = "flight-sql-user")]
        flight_sql_user: Option<String>,
        /// A folder whose Delta tables Flight SQL clients name by folder name
        /// (``delta.`/path` `` names any table).
        #[arg(long)]
        tables: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
        /// Push each stage's tasks to executors as soon as it can run (executors started with
        /// --push serve a gRPC port for them) instead of executors polling; not with TLS.
        #[arg(long)]
        push: bool,
    },
    /// An executor: pulls tasks from the scheduler, reads Delta files with this process's storage
    /// options, serves its shuffle output. Prints the ports it took.
    Executor {
        /// The scheduler's HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// HOST:PORT for the shuffle service (port 0: any free port). Loopback unless --insecure.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        /// HOST:PORT of the gRPC service that takes pushed tasks (--push); the host must be
        /// --bind's (default: --bind's host, any free port).
        #[arg(long = "grpc-bind")]
        grpc_bind: Option<String>,
        /// Shuffle files and spills (default: a temporary folder).
        #[arg(long = "work-dir")]
        work_dir: Option<String>,
        /// Tasks run at once (default: the machine's cores).
        #[arg(long)]
        slots: Option<usize>,
        /// How often the executor tells the scheduler it is alive.
        #[arg(long = "heartbeat-secs", default_value_t = 5)]
        heartbeat_secs: u64,
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        tls: TlsArgs,
        /// Take tasks the scheduler pushes (a scheduler started with --push).
        #[arg(long)]
        push: bool,
    },
    /// Print whether the scheduler is ready and how many executors it has.
    Status {
        #[arg(long)]
        scheduler: String,
        /// Wait until at least this many executors are registered (up to --timeout-secs).
        #[arg(long = "wait-for")]
        wait_for: Option<usize>,
        #[arg(long = "timeout-secs", default_value_t = 10)]
        timeout_secs: u64,
        #[command(flatten)]
        tls: TlsArgs,
    },
}

#[derive(Subcommand)]
enum AlterAction {
    /// Add nullable columns: "name type, struct.name type" (nested paths add struct fields).
    AddColumns { columns: String },
    /// Rename a column (needs column mapping: `set delta.columnMapping.mode=name`).
    RenameColumn { column: String, new_name: String },
    /// Drop columns (needs column mapping); their data stays in old files, unread.
    DropColumns {
        #[arg(required = true)]
        columns: Vec<String>,
    },
    /// Widen a column's type (needs `set delta.enableTypeWidening=true`).
    ChangeType { column: String, data_type: String },
    /// Set table properties (`delta.feature.NAME=supported` enables a feature).
    Set {
        #[arg(required = true)]
        properties: Vec<String>,
    },
    /// Remove table properties.
    Unset {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Add table features to the protocol (e.g. deletionVectors, changeDataFeed).
    EnableFeatures {
        #[arg(required = true)]
        features: Vec<String>,
    },
    /// Set the clustering columns (liquid clustering; none given = CLUSTER BY NONE). OPTIMIZE
    /// then clusters the files not yet clustered.
    ClusterBy { columns: Vec<String> },
}

#[derive(Subcommand)]
enum Command {
    /// Change the table's schema, properties or features (one metadata commit, no data rewritten).
    Alter {
        table: String,
        #[command(subcommand)]
        action: AlterAction,
    },
    /// Version, protocol and features, schema, partition columns, properties, files and size.
    Describe { table: String },
    /// Commits, newest first: version, timestamp, operation, parameters, metrics.
    History {
        table: String,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print the table's rows.
    Cat {
        table: String,
        #[arg(long, conflicts_with = "timestamp")]
        version: Option<i64>,
        /// RFC 3339 (`2024-01-01T00:00:00Z`), `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYY-MM-DD`.
        #[arg(long)]
        timestamp: Option<String>,
        /// Comma-separated column names.
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// A Spark SQL predicate, e.g. "date > '2024-01-01' AND country IN ('UK','FR')".
        #[arg(long = "where")]
        predicate: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        /// table, csv, json or parquet; default: by --output's extension, else table.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<String>,
    },
    /// Create a table: `--schema "id long NOT NULL, name string, day date"` (or Delta schema JSON).
    Create {
        table: String,
        #[arg(long)]
        schema: String,
        #[arg(long = "partition-by", value_delimiter = ',')]
        partition_by: Vec<String>,
        /// Clustering columns (liquid clustering; instead of partitioning).
        #[arg(long = "cluster-by", value_delimiter = ',', conflicts_with = "partition_by")]
        cluster_by: Vec<String>,
        /// `key=value`, repeatable.
        #[arg(long = "property")]
        properties: Vec<String>,
    },
    /// Write parquet, CSV or JSON-lines files into a table (created from the input if missing).
    Write {
        table: String,
        #[arg(required = true)]
        files: Vec<String>,
        #[arg(long, value_enum, default_value = "append")]
        mode: WriteMode,
        #[arg(long = "replace-where")]
        replace_where: Option<String>,
        #[arg(long = "partition-by", value_delimiter = ',')]
        partition_by: Option<Vec<String>>,
        /// Clustering columns when the write creates the table (liquid clustering).
        #[arg(long = "cluster-by", value_delimiter = ',', conflicts_with = "partition_by")]
        cluster_by: Option<Vec<String>>,
        #[arg(long = "merge-schema")]
        merge_schema: bool,
        #[arg(long = "overwrite-schema")]
        overwrite_schema: bool,
    },
    /// Write a checkpoint of the latest version.
    Checkpoint { table: String },
    /// Set table properties: `delta property TABLE key=value ...`.
    Property {
        table: String,
        #[arg(required = true)]
        properties: Vec<String>,
    },
    /// `delta constraint TABLE add NAME EXPR` or `delta constraint TABLE drop NAME`.
    Constraint { table: String, action: ConstraintAction, name: String, expr: Option<String> },
    /// Run a Spark SQL statement; tables are named delta.`/path` (parquet.`/file-or-dir` to read
    /// plain parquet), or by `--table NAME=PATH` /
    /// `--tables DIR`, with `VERSION AS OF n` / `TIMESTAMP AS OF '…'`. Queries (SELECT, WITH,
    /// EXPLAIN [ANALYZE], VALUES) run on DataFusion and print their rows; CREATE TABLE … AS
    /// SELECT, INSERT INTO|OVERWRITE … SELECT|VALUES, DELETE, UPDATE and MERGE (sources also
    /// `(SELECT …)` or parquet.`/path/file.parquet`) print the commit's metrics.
    Sql {
        statement: String,
        /// A table name for queries: NAME=PATH (repeatable; wins over --tables).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Every Delta table directly under DIR, named by its folder, for queries.
        #[arg(long = "tables")]
        tables_dir: Option<String>,
        /// table, csv, json or parquet; default: by --output's extension, else table.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Write the rows to this file instead of stdout.
        #[arg(long)]
        output: Option<String>,
        /// Memory for sorts, aggregates and joins (e.g. 2GB, 512MiB; default three quarters of
        /// the machine's); they spill to disk beyond it, and a query that cannot fit fails with
        /// a resources error.
        #[arg(long = "memory-limit")]
        memory_limit: Option<String>,
        /// Print each run's wall time (planning and execution, rows collected) on stderr.
        #[arg(long)]
        timing: bool,
        /// Run a query this many times in this process (the first run opens the tables; later
        /// runs show warm times); the rows of the last run are printed.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Run queries on the Ballista cluster whose scheduler is at df://HOST:PORT (tables are
        /// planned there; --memory-limit is the executors' business then).
        #[arg(long)]
        cluster: Option<String>,
        /// With --cluster: this client's certificate for a cluster under mutual TLS.
        #[command(flatten)]
        tls: TlsArgs,
        /// Session configuration, KEY=VALUE (repeatable): spark.sql.shuffle.partitions,
        /// spark.sql.autoBroadcastJoinThreshold, datafusion.* and, on a cluster, ballista.*
        /// (e.g. ballista.planner.adaptive.enabled=false).
        #[arg(long = "conf")]
        conf: Vec<String>,
    },
    /// Restore the table to an earlier version (one new commit; history is kept).
    Restore {
        table: String,
        #[arg(long, conflicts_with = "timestamp")]
        version: Option<i64>,
        /// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYY-MM-DD`.
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// Compact small files (bin-packing), Z-order, or purge deletion vectors; changes no data.
    Optimize {
        table: String,
        /// Only partitions matching this predicate over partition columns.
        #[arg(long = "where")]
        predicate: Option<String>,
        /// Cluster rows by these columns (Z-order).
        #[arg(long = "zorder-by", value_delimiter = ',')]
        zorder_by: Vec<String>,
        /// Size of the files written, in bytes (default: delta.targetFileSize or 128 MiB).
        #[arg(long = "target-size")]
        target_size: Option<u64>,
        /// Files at least this large are left alone (default: the target size).
        #[arg(long = "min-file-size")]
        min_file_size: Option<u64>,
        /// REORG … APPLY (PURGE): rewrite every file that has a deletion vector.
        #[arg(long = "purge-deletion-vectors", conflicts_with = "zorder_by")]
        purge: bool,
    },
    /// Delete files no version within the retention period references.
    Vacuum {
        table: String,
        /// Retention in hours (default: delta.deletedFileRetentionDuration, one week).
        #[arg(long)]
        retain: Option<f64>,
        /// List the files that would be deleted; delete nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
        /// Allow a retention shorter than the table's (older versions may become unreadable).
        #[arg(long)]
        force: bool,
    },
    /// Shallow clone: a new table at TARGET whose files are SOURCE's (nothing is copied).
    Clone {
        source: String,
        target: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// The change data feed of versions FROM..=TO (delta.enableChangeDataFeed).
    Changes {
        table: String,
        #[arg(long)]
        from: i64,
        #[arg(long)]
        to: Option<i64>,
        /// A Spark SQL predicate over the table's columns.
        #[arg(long = "where")]
        predicate: Option<String>,
        /// table, csv, json or parquet; default: by --output's extension, else table.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(long)]
        output: Option<String>,
    },
    /// Machine learning on Delta tables (delta-ml): fit, transform, evaluate.
    Ml {
        #[command(subcommand)]
        action: ml::MlCommand,
    },
    /// A Ballista cluster: run a scheduler or an executor here, or ask a scheduler how many
    /// executors it has. Queries reach it with `delta sql --cluster df://HOST:PORT`.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// The feature pipeline end to end: ingest day by day, features with DataFrames, MERGE
    /// into a feature table incrementally from the change feed, a point-in-time training set,
    /// train and evaluate with lineage, reproduce, and an HTML report.
    Pipeline(delta_cli::pipeline::PipelineArgs),
    /// The files a scan would read after pruning, then `N of M files`.
    Files {
        table: String,
        #[arg(long)]
        version: Option<i64>,
        #[arg(long = "where")]
        predicate: Option<String>,
    },
}

#[derive(Debug)]
enum CliError {
    Delta(DeltaError),
    Usage(String),
    Io(std::io::Error),
    Output(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Delta(e) => write!(f, "{e}"),
            CliError::Usage(e) => write!(f, "{e}"),
            CliError::Io(e) => write!(f, "{e}"),
            CliError::Output(e) => write!(f, "{e}"),
        }
    }
}

/// On a terminal, once a statement has run for a second: files and bytes its Delta scans have
/// opened of those planned, redrawn on one stderr line until the returned task is aborted.
fn show_progress(session: &delta_exec::Session) -> tokio::task::JoinHandle<()> {
    let progress = session.progress();
    progress.reset();
    tokio::spawn(async move {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        loop {
            let (files, files_total, bytes, bytes_total) = progress.snapshot();
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            eprint!("\r\x1b[2Kscanning: {files}/{files_total} files, {:.1}/{:.1} MiB", mib(bytes), mib(bytes_total));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
}

/// Physical memory in bytes (Linux `/proc/meminfo`), when known.
fn physical_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `2GB`, `512MiB`, `1.5g`, `1000000` (bytes): decimal units for KB/MB/GB/TB, binary for
/// KiB/MiB/GiB/TiB and the one-letter forms, as memory sizes are usually meant.
fn parse_bytes(text: &str) -> Result<usize, CliError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| CliError::Usage(format!("`{text}` is not a size (e.g. 2GB, 512MiB)")))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(CliError::Usage(format!("unknown size unit `{other}` in `{text}` (KB, MB, GB, KiB, MiB, GiB)"))),
    };
    Ok((n * scale) as usize)
}

/// A query's error: delta-core's own when it is one (a missing table, a bad version …).
/// `HOST:PORT` (a name is looked up; the first address is taken).
fn socket_addr(text: &str) -> Result<std::net::SocketAddr, CliError> {
    use std::net::ToSocketAddrs;
    let trimmed = text.trim().trim_start_matches("df://").trim_end_matches('/');
    trimmed
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| CliError::Usage(format!("`{text}` is not HOST:PORT")))
}

fn refuse_open_bind(addr: &std::net::SocketAddr, insecure: bool, tls: bool, what: &str) -> Result<(), CliError> {
    if delta_exec::cluster::is_loopback(addr) || tls {
        return Ok(());
    }
    if !insecure {
        return Err(CliError::Usage(format!(
            "the {what} would listen on {addr}, beyond this machine, without TLS; pass --insecure to do so anyway"
        )));
    }
    eprintln!("warning: the {what} listens on {addr} without TLS: anyone who reaches it can run queries with its storage access");
    Ok(())
}

async fn cluster(action: ClusterAction, options: delta_core::TableOptions) -> Result<(), CliError> {
    use delta_exec::cluster::{cluster_status_with, run_executor, run_scheduler, ExecutorOptions, SchedulerOptions};
    use std::io::Write;
    if !matches!(action, ClusterAction::Status { .. }) {
        let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
        // Plans may apply ML stages (a model scoring rows): the scheduler and executors rebuild them.
        delta_ml::stage::register_cluster_codec();
    }
    match action {
        ClusterAction::Scheduler { bind, insecure, executor_timeout_secs, min_executors, flight_sql, flight_sql_user, tables, tls, push } => {
            use delta_exec::cluster::FlightSqlAccess;
            let addr = socket_addr(&bind)?;
            let tls = tls.load()?;
            refuse_open_bind(&addr, insecure, tls.is_some(), "scheduler")?;
            let mut o = SchedulerOptions::new(addr);
            o.table_options = options;
            o.executor_timeout_secs = executor_timeout_secs.max(1);
            o.expire_interval_secs = (executor_timeout_secs / 4).clamp(1, 15);
            o.min_executors = min_executors;
            o.tables = tables.map(std::path::PathBuf::from);
            o.tls = tls;
            o.push = push;
            o.flight_sql = match (flight_sql, flight_sql_user) {
                (false, None) => None,
                (false, Some(_)) => return Err(CliError::Usage("--flight-sql-user needs --flight-sql".into())),
                (true, Some(user)) => {
                    let password = std::env::var("DELTA_FLIGHT_SQL_PASSWORD").ok().filter(|p| !p.is_empty()).ok_or_else(|| {
                        CliError::Usage("--flight-sql-user needs the password in the environment variable DELTA_FLIGHT_SQL_PASSWORD".into())
                    })?;
                    Some(FlightSqlAccess::Basic { user, password })
                }
                (true, None) if insecure => {
                    eprintln!("warning: Flight SQL without credentials: anyone who reaches {addr} can query every table this process can read");
                    Some(FlightSqlAccess::Anonymous)
                }
                (true, None) => {
                    return Err(CliError::Usage(
                        "--flight-sql needs --flight-sql-user (password in DELTA_FLIGHT_SQL_PASSWORD), or --insecure for anonymous clients".into(),
                    ))
                }
            };
            let flight = if o.flight_sql.is_some() { " (Flight SQL on the same port)" } else { "" };
            run_scheduler(o, |addr| {
                println!("scheduler listening on {addr}{flight}");
                let _ = std::io::stdout().flush();
            })
            .await
            .map_err(query_error)
        }
        ClusterAction::Executor { scheduler, bind, grpc_bind, work_dir, slots, heartbeat_secs, insecure, tls, push } => {
            let bind = socket_addr(&bind)?;
            let grpc_port = match grpc_bind.as_deref().map(socket_addr).transpose()? {
                Some(g) if g.ip() != bind.ip() => {
                    return Err(CliError::Usage(format!("--grpc-bind {g} must be on --bind's host {} (Ballista binds both on one host)", bind.ip())))
                }
                g => g.map(|g| g.port()),
            };
            let tls = tls.load()?;
            refuse_open_bind(&bind, insecure, tls.is_some(), "executor")?;
            let scheduler = socket_addr(&scheduler)?;
            let slots = slots.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
            let o = ExecutorOptions { scheduler, bind, grpc_port, work_dir, slots, table_options: options, heartbeat_secs, tls, push };
            let host = bind.ip();
            run_executor(o, |port, grpc| {
                println!("executor on {host}:{port} (shuffle service), {host}:{grpc} (gRPC), {slots} slots, scheduler {scheduler}");
                let _ = std::io::stdout().flush();
            })
            .await
            .map_err(query_error)
        }
        ClusterAction::Status { scheduler, wait_for, timeout_secs, tls } => {
            let addr = socket_addr(&scheduler)?;
            let tls = tls.load()?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now()).max(std::time::Duration::from_millis(100));
                let status = cluster_status_with(addr, left, tls.as_ref()).await;
                match (&status, wait_for) {
                    (Ok(s), Some(n)) if s.executors < n && std::time::Instant::now() < deadline => {}
                    (Err(_), Some(_)) if std::time::Instant::now() < deadline => {}
                    (Ok(s), Some(n)) if s.executors < n => {
                        return Err(CliError::Output(format!("{} executors registered at {addr}, not {n}, after {timeout_secs} s", s.executors)));
                    }
                    (Ok(s), _) => {
                        println!("{}: {} executors registered", if s.ready { "ready" } else { "not ready" }, s.executors);
                        return Ok(());
                    }
                    (Err(_), _) => return status.map(|_| ()).map_err(query_error),
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

fn query_error(e: datafusion::common::DataFusionError) -> CliError {
    match e.find_root() {
        datafusion::common::DataFusionError::External(inner) => match inner.downcast_ref::<DeltaError>() {
            Some(d) => CliError::Output(d.to_string()),
            None => CliError::Output(inner.to_string()),
        },
        other => CliError::Output(other.to_string()),
    }
}

impl From<DeltaError> for CliError {
    fn from(e: DeltaError) -> Self {
        CliError::Delta(e)
    }
}
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e)
    }
}
impl From<arrow::error::ArrowError> for CliError {
    fn from(e: arrow::error::ArrowError) -> Self {
        CliError::Output(e.to_string())
    }
}
impl From<parquet::errors::ParquetError> for CliError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        CliError::Output(e.to_string())
    }
}

fn parse_timestamp(text: &str) -> Result<i64, CliError> {
    delta_core::sql::parse_timestamp(text)
        .ok_or_else(|| CliError::Usage(format!("cannot parse timestamp `{text}`: use RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`")))
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()).unwrap_or_else(|| ms.to_string())
}

async fn snapshot_for(table: &Table, version: Option<i64>, timestamp: Option<&str>) -> Result<Snapshot, CliError> {
    Ok(match (version, timestamp) {
        (Some(v), _) => table.snapshot_at(v).await?,
        (None, Some(t)) => table.snapshot_at_timestamp(parse_timestamp(t)?).await?,
        (None, None) => table.snapshot().await?,
    })
}

fn describe(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let p = snapshot.protocol();
    let m = snapshot.metadata();
    out.push_str(&format!("location:          {}\n", snapshot.location().root_url()));
    out.push_str(&format!("version:           {}\n", snapshot.version()));
    if let Some(ts) = snapshot.timestamp_ms() {
        out.push_str(&format!("timestamp:         {}\n", format_ms(ts)));
    }
    out.push_str(&format!("table id:          {}\n", m.id));
    if let Some(name) = &m.name {
        out.push_str(&format!("name:              {name}\n"));
    }
    out.push_str(&format!("protocol:          reader {} / writer {}\n", p.min_reader_version, p.min_writer_version));
    let list = |v: &Option<Vec<String>>| {
        v.as_ref().map(|f| if f.is_empty() { "(none)".to_string() } else { f.join(", ") }).unwrap_or_else(|| "(legacy versions)".into())
    };
    out.push_str(&format!("reader features:   {}\n", list(&p.reader_features)));
    out.push_str(&format!("writer features:   {}\n", list(&p.writer_features)));
    let parts = snapshot.partition_columns();
    out.push_str(&format!("partition columns: {}\n", if parts.is_empty() { "(none)".into() } else { parts.join(", ") }));
    if let Ok(clustering) = snapshot.clustering_columns() {
        if !clustering.is_empty() {
            let names: Vec<String> = clustering.iter().map(|c| c.join(".")).collect();
            out.push_str(&format!("clustering columns: {}\n", names.join(", ")));
        }
    }
    out.push_str(&format!("files:             {}\n", snapshot.num_files()));
    out.push_str(&format!("size:              {} bytes\n", snapshot.total_size_bytes()));
    if let Some(e) = snapshot.checksum_mismatch() {
        out.push_str(&format!("checksum:          MISMATCH: {e}\n"));
    }
    out.push_str("schema:\n");
    for f in &snapshot.schema().fields {
        let generated = f
            .metadata
            .get("delta.generationExpression")
            .and_then(|v| v.as_str())
            .map(|e| format!(" GENERATED ALWAYS AS ({e})"))
            .unwrap_or_default();
        out.push_str(&format!("  {}: {}{}{generated}\n", f.name, f.data_type, if f.nullable { "" } else { " NOT NULL" }));
    }
    let mut props: Vec<(&String, &Option<String>)> = m.configuration.iter().collect();
    props.sort();
    out.push_str("properties:\n");
    if props.is_empty() {
        out.push_str("  (none)\n");
    }
    for (k, v) in props {
        out.push_str(&format!("  {k} = {}\n", v.as_deref().unwrap_or("null")));
    }
    out
}

fn write_batches(batches: Vec<RecordBatch>, schema: SchemaRef, format: Option<Format>, output: Option<&str>) -> Result<(), CliError> {
    // Without --format, the output file's extension names it (`rows.parquet`, `rows.csv`,
    // `rows.json`); otherwise a table.
    let by_extension = || {
        let ext = std::path::Path::new(output?).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            "json" | "jsonl" | "ndjson" => Some(Format::Json),
            _ => None,
        }
    };
    let format = format.or_else(by_extension).unwrap_or(Format::Table);
    if let Format::Parquet = format {
        // Parquet keeps the exact Arrow types (the schema is embedded in the file).
        let path = output.ok_or_else(|| CliError::Usage("--format parquet needs --output FILE".into()))?;
        let file = std::fs::File::create(path)?;
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
        for b in &batches {
            w.write(b)?;
        }
        w.close()?;
        return Ok(());
    }
    let mut sink: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match format {
        Format::Table => {
            let text = arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)?;
            writeln!(sink, "{text}")?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut sink);
            if batches.is_empty() {
                w.write(&flat_for_csv(&RecordBatch::new_empty(schema))?)?;
            }
            for b in &batches {
                w.write(&flat_for_csv(b)?)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut sink);
            for b in &batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {}
    }
    sink.flush()?;
    Ok(())
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let mut options = delta_core::TableOptions::default();
    for prefix in &cli.allow_external {
        options.allowed_external_prefixes.push(delta_core::storage::location_url(prefix)?);
    }
    for kv in &cli.storage_options {
        let (k, v) = kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--storage-option takes KEY=VALUE, not `{kv}`")))?;
        options.storage_options.push((k.trim().to_string(), v.trim().to_string()));
    }
    let open = |location: &str| Table::open_with(location, options.clone());
    match cli.command {
        Command::Ml { action } => ml::run(action).await?,
        Command::Pipeline(args) => {
            use delta_cli::pipeline::{run as run_pipeline, summary_text, PipelineError};
            let summary = run_pipeline(&args.config(options.clone())).await.map_err(|e| match e {
                PipelineError::Usage(m) => CliError::Usage(m),
                PipelineError::Delta(d) => CliError::Delta(d),
                PipelineError::Io(io) => CliError::Io(io),
                other => CliError::Output(other.to_string()),
            })?;
            print!("{}", summary_text(&summary));
        }
        Command::Optimize { table, predicate, zorder_by, target_size, min_file_size, purge } => {
            let t = open(&table)?;
            let result = if purge {
                if target_size.is_some() || min_file_size.is_some() {
                    return Err(CliError::Usage("--purge-deletion-vectors takes no sizes".into()));
                }
                t.purge_deletion_vectors(predicate.as_deref()).await?
            } else {
                let mut b = t.optimize().z_order(&zorder_by);
                if let Some(p) = &predicate {
                    b = b.with_filter(p)?;
                }
                if let Some(n) = target_size {
                    b = b.target_size(n);
                }
                if let Some(n) = min_file_size {
                    b = b.min_file_size(n);
                }
                b.execute().await?
            };
            match result.version {
                Some(v) => println!(
                    "version {v}: {} files rewritten into {} ({} partitions)",
                    result.metric("numRemovedFiles"),
                    result.metric("numAddedFiles"),
                    result.metric("partitionsOptimized")
                ),
                None => println!("nothing to optimize ({} files considered)", result.metric("totalConsideredFiles")),
            }
            if let Some(e) = result.post_commit_error {
                eprintln!("warning: after the commit: {e}");
            }
        }
        Command::Alter { table, action } => {
            let t = open(&table)?;
            let v = match action {
                AlterAction::AddColumns { columns } => {
                    let schema = parse_schema(&columns)?;
                    // Dotted names are paths here (parse_schema keeps them whole).
                    let cols: Vec<(&str, DataType)> = schema.fields.iter().map(|f| (f.name.as_str(), f.data_type.clone())).collect();
                    t.add_columns(&cols).await?
                }
                AlterAction::RenameColumn { column, new_name } => t.rename_column(&column, &new_name).await?,
                AlterAction::DropColumns { columns } => t.drop_columns(&columns.iter().map(String::as_str).collect::<Vec<_>>()).await?,
                AlterAction::ChangeType { column, data_type } => t.change_column_type(&column, parse_type(&data_type)?).await?,
                AlterAction::Set { properties } => t.set_properties(parse_properties(&properties)?).await?,
                AlterAction::Unset { keys } => t.unset_properties(&keys).await?,
                AlterAction::EnableFeatures { features } => {
                    t.enable_features(&features.iter().map(String::as_str).collect::<Vec<_>>()).await?
                }
                AlterAction::ClusterBy { columns } => {
                    let columns: Vec<&str> = columns.iter().flat_map(|c| c.split(',')).map(str::trim).filter(|c| !c.is_empty()).collect();
                    t.cluster_by(&columns).await?
                }
            };
            println!("altered at version {v}");
        }
        Command::Vacuum { table, retain, dry_run, force } => {
            let t = open(&table)?;
            let mut b = t.vacuum().dry_run(dry_run).enforce_retention(!force);
            if let Some(h) = retain {
                b = b.retain_hours(h);
            }
            let result = b.execute().await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if result.dry_run {
                for f in &result.files {
                    writeln!(out, "{f}")?;
                }
                writeln!(out, "{} files ({} bytes) would be deleted", result.files.len(), result.bytes)?;
            } else {
                writeln!(out, "deleted {} files ({} bytes)", result.files.len(), result.bytes)?;
            }
            out.flush()?;
        }
        Command::Clone { source, target, version } => {
            let src = open(&source)?;
            let dst = open(&target)?;
            src.shallow_clone(&dst, version).await?;
            let s = dst.snapshot().await?;
            println!(
                "cloned {} files into {target} (version 0); read it with --allow-external {}",
                s.num_files(),
                src.location().root_url()
            );
        }
        Command::Describe { table } => {
            let snapshot = open(&table)?.snapshot().await?;
            print!("{}", describe(&snapshot));
        }
        Command::Cluster { action } => cluster(action, options).await?,
        Command::Sql { statement, tables, tables_dir, format, output, memory_limit, timing, repeat, cluster, tls, conf } => {
            let started = std::time::Instant::now();
            // Without --memory-limit, three quarters of the machine's memory: a query beyond it
            // spills or fails with a resources error instead of meeting the OS's OOM killer.
            let limit = match memory_limit.as_deref() {
                Some(text) => Some(parse_bytes(text)?),
                None => physical_memory().map(|total| total / 4 * 3),
            };
            let partitions = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let session = match &cluster {
                Some(url) => delta_exec::Session::remote_with(url, options.clone(), tls.load()?).await.map_err(query_error)?,
                None if tls.tls_cert.is_some() => return Err(CliError::Usage("--tls-cert/--tls-key/--tls-ca go with --cluster".into())),
                None => delta_exec::Session::with_config(partitions, limit).map_err(query_error)?.with_table_options(options.clone()),
            };
            for c in &conf {
                let (k, v) = c.split_once('=').ok_or_else(|| CliError::Usage(format!("--conf takes KEY=VALUE, not `{c}`")))?;
                session.set_conf(k.trim(), v.trim()).map_err(|e| CliError::Usage(format!("--conf {c}: {e}")))?;
            }
            let named: Vec<&str> = tables.iter().filter_map(|t| t.split_once('=').map(|(n, _)| n.trim())).collect();
            if let Some(dir) = &tables_dir {
                for entry in std::fs::read_dir(dir)? {
                    let path = entry?.path();
                    let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
                    if path.join("_delta_log").is_dir() && !named.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                        session.register_delta(&name, &path.to_string_lossy()).await.map_err(query_error)?;
                    }
                }
            }
            for t in &tables {
                let (name, path) = t.split_once('=').ok_or_else(|| CliError::Usage(format!("--table takes NAME=PATH, not `{t}`")))?;
                session.register_delta(name.trim(), path.trim()).await.map_err(query_error)?;
            }
            let progress = show_progress(&session);
            let outcome = session.execute(&statement).await;
            let outcome = match outcome {
                Ok(Outcome::Rows(df)) => {
                    let schema: SchemaRef = Arc::new(df.inner().schema().as_arrow().clone());
                    df.collect().await.map(|b| (Some((schema, b)), None))
                }
                Ok(Outcome::Committed { version, metrics }) => Ok((None, Some((version, metrics)))),
                Err(e) => Err(e),
            };
            progress.abort();
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) && started.elapsed().as_secs_f64() >= 1.0 {
                eprint!("\r\x1b[2K");
            }
            // On a cluster, say where a failure happened (a scheduler gone shows as a transport error).
            let on_cluster = |e: CliError| match (&cluster, e) {
                (Some(url), CliError::Output(m)) => CliError::Output(format!("on the cluster at {url}: {m}")),
                (_, e) => e,
            };
            match outcome.map_err(query_error).map_err(on_cluster)? {
                (Some((schema, first)), _) => {
                    let mut batches = first;
                    if timing {
                        eprintln!("run 1: {:.1} ms (with opening the tables)", started.elapsed().as_secs_f64() * 1e3);
                    }
                    for run in 2..=repeat.max(1) {
                        let t0 = std::time::Instant::now();
                        let Outcome::Rows(df) = session.execute(&statement).await.map_err(query_error)? else { break };
                        batches = df.collect().await.map_err(query_error)?;
                        if timing {
                            eprintln!("run {run}: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    write_batches(batches, schema, format, output.as_deref())?;
                }
                (None, Some((version, metrics))) => {
                    match version {
                        Some(v) => println!("committed version {v}"),
                        None => println!("nothing changed; nothing committed"),
                    }
                    for (k, v) in &metrics {
                        if k == "post_commit_error" {
                            eprintln!("warning: after the commit: {v}");
                        } else {
                            println!("{k}: {v}");
                        }
                    }
                }
                (None, None) => {}
            }
        }
        Command::Restore { table, version, timestamp } => {
            let table = open(&table)?;
            let result = match (version, timestamp) {
                (Some(v), _) => table.restore(v).await?,
                (None, Some(t)) => table.restore_to_timestamp(parse_timestamp(&t)?).await?,
                (None, None) => return Err(CliError::Usage("restore needs --version or --timestamp".into())),
            };
            match result.version {
                Some(v) => println!(
                    "restored as version {v}: {} files re-added, {} removed",
                    result.metric("numRestoredFiles"),
                    result.metric("numRemovedFiles")
                ),
                None => println!("the table already has that version's files; nothing committed"),
            }
        }
        Command::Changes { table, from, to, predicate, format, output } => {
            let predicate = predicate.as_deref().map(delta_core::Expr::parse).transpose()?;
            let changes = open(&table)?.table_changes(from, to, predicate).await?;
            let schema = changes.schema();
            let batches = changes.collect().await?;
            write_batches(batches, schema, format, output.as_deref())?;
        }
        Command::History { table, limit } => {
            let history = open(&table)?.history(limit).await?;
            println!("{:<8} {:<27} {:<24} {:<40} metrics", "version", "timestamp", "operation", "parameters");
            for c in history {
                let op = c.commit_info.get("operation").and_then(|v| v.as_str()).unwrap_or("-").to_string();
                let params = c.commit_info.get("operationParameters").map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                let metrics = c.commit_info.get("operationMetrics").map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                println!("{:<8} {:<27} {:<24} {:<40} {}", c.version, format_ms(c.timestamp_ms), op, params, metrics);
            }
        }
        Command::Cat { table, version, timestamp, columns, predicate, limit, format, output } => {
            let snapshot = snapshot_for(&open(&table)?, version, timestamp.as_deref()).await?;
            let mut scan = snapshot.scan();
            if let Some(cols) = &columns {
                scan = scan.with_columns(cols);
            }
            if let Some(p) = &predicate {
                scan = scan.with_filter(p)?;
            }
            let scan = scan.build()?;
            let schema = scan.schema();
            let mut stream = scan.execute();
            let mut batches = Vec::new();
            let mut remaining = limit.unwrap_or(usize::MAX);
            while remaining > 0 {
                let Some(batch) = stream.try_next().await? else { break };
                let take = batch.num_rows().min(remaining);
                remaining -= take;
                batches.push(batch.slice(0, take));
            }
            drop(stream);
            write_batches(batches, schema, format, output.as_deref())?;
        }
        Command::Create { table, schema, partition_by, cluster_by, properties } => {
            // Spark's column syntax, as in SQL's CREATE TABLE (identity, generated, DEFAULT,
            // COMMENT, NOT NULL, CONSTRAINT … CHECK), or a Delta schema JSON document.
            let mut properties = parse_properties(&properties)?;
            let schema = if schema.trim_start().starts_with('{') {
                StructType::parse(&schema)?
            } else {
                let elements = delta_core::sql::parse_table_elements(&schema)?;
                for (name, expr) in elements.constraints {
                    properties.insert(format!("delta.constraints.{}", name.to_ascii_lowercase()), expr);
                }
                elements.schema
            };
            let clustering = delta_core::features::parse_columns(&cluster_by)?;
            let version = open(&table)?.create_clustered(schema, &partition_by, &clustering, properties).await?;
            println!("created {table} at version {version}");
        }
        Command::Write { table, files, mode, replace_where, partition_by, cluster_by, merge_schema, overwrite_schema } => {
            let t = open(&table)?;
            let mut options = WriteOptions {
                mode: match mode {
                    WriteMode::Append => SaveMode::Append,
                    WriteMode::Overwrite => SaveMode::Overwrite,
                },
                partition_by,
                cluster_by,
                merge_schema,
                overwrite_schema,
                ..Default::default()
            };
            if let Some(p) = &replace_where {
                options.replace_where = Some(delta_core::Expr::parse(p)?);
                options.mode = SaveMode::Overwrite;
            }
            // Text inputs parse as the table's types; parquet carries its own (the writer
            // reads the snapshot once, for the commit).
            let text_input = files.iter().any(|f| !f.to_ascii_lowercase().ends_with(".parquet"));
            let hint = match text_input {
                true => t.snapshot_with(None, delta_core::ReplayOptions { stats: false }).await.ok().map(|s| s.arrow_schema()),
                false => None,
            };
            let inputs = open_inputs(&files, hint)?;
            let result = t.write_stream(stream_inputs(inputs), options).await?;
            match result.version {
                Some(v) => println!(
                    "version {v}: {} rows in {} files added, {} files removed",
                    result.rows_written, result.files_added, result.files_removed
                ),
                None => println!("nothing to write"),
            }
        }
        Command::Checkpoint { table } => {
            let v = open(&table)?.checkpoint().await?;
            println!("checkpoint written at version {v}");
        }
        Command::Property { table, properties } => {
            let v = open(&table)?.set_properties(parse_properties(&properties)?).await?;
            println!("properties set at version {v}");
        }
        Command::Constraint { table, action, name, expr } => {
            let t = open(&table)?;
            let v = match action {
                ConstraintAction::Add => {
                    let expr = expr.ok_or_else(|| CliError::Usage("constraint add needs NAME and EXPR".into()))?;
                    t.add_constraint(&name, &expr).await?
                }
                ConstraintAction::Drop => t.drop_constraint(&name).await?,
            };
            println!(
                "constraint {name} {} at version {v}",
                match action {
                    ConstraintAction::Add => "added",
                    ConstraintAction::Drop => "dropped",
                }
            );
        }
        Command::Files { table, version, predicate } => {
            let t = open(&table)?;
            // A listing without a filter needs no statistics: the log is read without them.
            let snapshot = match &predicate {
                Some(_) => snapshot_for(&t, version, None).await?,
                None => t.snapshot_with(version, delta_core::ReplayOptions { stats: false }).await?,
            };
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            match &predicate {
                Some(p) => {
                    let scan = snapshot.scan().with_filter(p)?.build()?;
                    for f in scan.files() {
                        writeln!(out, "{}", percent_decode(&f.path))?;
                    }
                    writeln!(out, "{} of {} files", scan.files().len(), scan.total_files())?;
                }
                None => {
                    // Every file, read in place from the snapshot's file index.
                    for f in snapshot.files() {
                        writeln!(out, "{}", percent_decode(f.path()))?;
                    }
                    writeln!(out, "{n} of {n} files", n = snapshot.num_files())?;
                }
            }
            out.flush()?;
        }
    }
    Ok(())
}

fn parse_properties(items: &[String]) -> Result<std::collections::HashMap<String, String>, CliError> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| CliError::Usage(format!("property `{kv}` is not key=value")))
        })
        .collect()
}

/// CSV has no nested values: lists, structs and maps (DESCRIBE HISTORY's operationParameters,
/// …) are written as their display text, as Spark's CSV output of `to_json` would show them.
fn flat_for_csv(batch: &RecordBatch) -> Result<RecordBatch, CliError> {
    use arrow::datatypes::DataType as A;
    if !batch.schema().fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let opts = arrow::util::display::FormatOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<arrow::array::ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.data_type().is_nested() {
            let fmt = arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &opts)?;
            let text: arrow::array::StringArray =
                (0..c.len()).map(|i| (!arrow::array::Array::is_null(c.as_ref(), i)).then(|| fmt.value(i).to_string())).collect();
            fields.push(arrow::datatypes::Field::new(f.name(), A::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)?)
}

/// Parses `name type [NOT NULL], ...` (Spark DDL types; dotted names are paths) or a Delta schema
/// JSON document: the columns of `delta alter add-columns`.
fn parse_schema(text: &str) -> Result<StructType, CliError> {
    if text.trim_start().starts_with('{') {
        return Ok(StructType::parse(text)?);
    }
    let mut fields = Vec::new();
    for part in delta_core::schema::split_top_level(text, ',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, rest) = part.split_once(char::is_whitespace).ok_or_else(|| CliError::Usage(format!("column `{part}` has no type")))?;
        let mut rest = rest.trim().to_string();
        let mut metadata = serde_json::Map::new();
        // `name type GENERATED ALWAYS AS (expr)`
        if let Some(at) = rest.to_ascii_uppercase().find("GENERATED ALWAYS AS") {
            let expr = rest[at + "GENERATED ALWAYS AS".len()..].trim().to_string();
            let expr = expr
                .strip_prefix('(')
                .and_then(|e| e.strip_suffix(')'))
                .ok_or_else(|| CliError::Usage(format!("column `{name}`: GENERATED ALWAYS AS needs (expression)")))?;
            delta_core::Expr::parse(expr)?;
            metadata.insert("delta.generationExpression".into(), serde_json::Value::String(expr.to_string()));
            rest.truncate(at);
        }
        let mut rest = rest.trim().to_string();
        let mut nullable = true;
        if rest.to_ascii_uppercase().ends_with("NOT NULL") {
            nullable = false;
            rest.truncate(rest.len() - "NOT NULL".len());
        }
        fields.push(StructField { name: name.trim_matches('`').to_string(), data_type: parse_type(rest.trim())?, nullable, metadata });
    }
    if fields.is_empty() {
        return Err(CliError::Usage("the schema has no columns".into()));
    }
    Ok(StructType { fields })
}

fn parse_type(t: &str) -> Result<DataType, CliError> {
    delta_core::schema::parse_sql_type(t).map_err(|_| CliError::Usage(format!("unknown type `{t}`")))
}

/// One input file opened for reading: its path and its batches.
type InputBatches = (String, Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>> + Send>);

/// Rows per batch read from a parquet input: large enough that per-batch work (conforming,
/// handing the batch to an encoder) stays small beside the encoding itself.
const INPUT_BATCH_ROWS: usize = 64 * 1024;

/// Opens every input (parquet, CSV with a header, JSON lines) before anything is written, so a
/// missing file or an unknown format is a usage error with nothing done. CSV and JSON are read
/// with the table's types for the columns it has (`table_schema`), else with inferred ones.
fn open_inputs(files: &[String], table_schema: Option<arrow::datatypes::SchemaRef>) -> Result<Vec<InputBatches>, CliError> {
    let mut out: Vec<InputBatches> = Vec::with_capacity(files.len());
    for path in files {
        let lower = path.to_ascii_lowercase();
        let file = std::fs::File::open(path).map_err(|e| CliError::Usage(format!("{path}: {e}")))?;
        let batches: Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>> + Send> = if lower.ends_with(".parquet") {
            Box::new(
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.with_batch_size(INPUT_BATCH_ROWS).build()?,
            )
        } else if lower.ends_with(".csv") {
            let mut f = std::fs::File::open(path)?;
            let (inferred, _) = arrow::csv::reader::Format::default().with_header(true).infer_schema(&mut f, Some(10_000))?;
            let schema = with_table_types(&inferred, table_schema.as_deref());
            Box::new(arrow::csv::ReaderBuilder::new(schema).with_header(true).with_batch_size(INPUT_BATCH_ROWS).build(file)?)
        } else if lower.ends_with(".json") || lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            let f = std::io::BufReader::new(std::fs::File::open(path)?);
            let (inferred, _) = arrow::json::reader::infer_json_schema(f, Some(10_000))?;
            let schema = with_table_types(&inferred, table_schema.as_deref());
            Box::new(arrow::json::ReaderBuilder::new(schema).with_batch_size(INPUT_BATCH_ROWS).build(std::io::BufReader::new(file))?)
        } else {
            return Err(CliError::Usage(format!("{path}: unknown input format (use .parquet, .csv or .json/.jsonl)")));
        };
        out.push((path.clone(), batches));
    }
    Ok(out)
}

/// Decodes the inputs on their own thread while the table's encoders take the batches already
/// decoded: reading and writing overlap, and memory holds a few batches, not the whole input.
/// A batch that fails to decode ends the stream with an error, so nothing is committed.
fn stream_inputs(inputs: Vec<InputBatches>) -> impl futures::Stream<Item = Result<RecordBatch, DeltaError>> + Send + Unpin {
    use std::io::IsTerminal;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DeltaError>>(4);
    std::thread::spawn(move || {
        let progress = std::io::stderr().is_terminal();
        let files = inputs.len();
        let mut rows = 0usize;
        for (i, (path, batches)) in inputs.into_iter().enumerate() {
            for b in batches {
                let item = b.map_err(|e| DeltaError::WriteRefused { reason: format!("reading {path}: {e}") });
                let failed = item.is_err();
                if let Ok(b) = &item {
                    rows += b.num_rows();
                }
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
            if progress {
                eprint!("\rread {}/{files} files, {rows} rows", i + 1);
            }
        }
        if progress {
            eprintln!();
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// The inferred schema of a text input, with the table's type for every column the table has (so
/// dates, timestamps and decimals parse as the table declares them).
fn with_table_types(inferred: &arrow::datatypes::Schema, table: Option<&arrow::datatypes::Schema>) -> arrow::datatypes::SchemaRef {
    let fields: Vec<arrow::datatypes::Field> = inferred
        .fields()
        .iter()
        .map(|f| match table.and_then(|t| t.fields().iter().find(|tf| tf.name().eq_ignore_ascii_case(f.name()))) {
            Some(tf) => f.as_ref().clone().with_data_type(tf.data_type().clone()),
            None => f.as_ref().clone(),
        })
        .collect();
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}

/// Log paths are URI-encoded; show them as file names.
fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
