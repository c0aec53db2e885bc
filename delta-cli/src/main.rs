//! `delta`: inspect and read Delta tables from the command line.
//!
//! ```text
//! delta describe TABLE
//! delta history TABLE [--limit N]
//! delta cat TABLE [--version N | --timestamp T] [--columns a,b] [--where EXPR] [--limit N]
//!                 [--format table|csv|json|parquet] [--output FILE]
//! delta files TABLE [--version N] [--where EXPR]
//! ```
//! TABLE is a local path or an object-store URL. Errors are one line on stderr, exit code 1.

use std::io::Write;
use std::process::ExitCode;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use clap::{Parser, Subcommand, ValueEnum};
use delta_core::{DeltaError, Snapshot, Table};
use futures::TryStreamExt;

#[derive(Parser)]
#[command(name = "delta", version, about = "Read and inspect Delta Lake tables")]
struct Cli {
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

#[derive(Subcommand)]
enum Command {
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
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<String>,
    },
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
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, fmt) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or(0));
    }
    Err(CliError::Usage(format!("cannot parse timestamp `{text}`: use RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`")))
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
    let list = |v: &Option<Vec<String>>| v.as_ref().map(|f| if f.is_empty() { "(none)".to_string() } else { f.join(", ") }).unwrap_or_else(|| "(legacy versions)".into());
    out.push_str(&format!("reader features:   {}\n", list(&p.reader_features)));
    out.push_str(&format!("writer features:   {}\n", list(&p.writer_features)));
    let parts = snapshot.partition_columns();
    out.push_str(&format!("partition columns: {}\n", if parts.is_empty() { "(none)".into() } else { parts.join(", ") }));
    out.push_str(&format!("files:             {}\n", snapshot.num_files()));
    out.push_str(&format!("size:              {} bytes\n", snapshot.total_size_bytes()));
    if let Some(e) = snapshot.checksum_mismatch() {
        out.push_str(&format!("checksum:          MISMATCH: {e}\n"));
    }
    out.push_str("schema:\n");
    for f in &snapshot.schema().fields {
        out.push_str(&format!("  {}: {}{}\n", f.name, f.data_type, if f.nullable { "" } else { " NOT NULL" }));
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

fn write_batches(batches: Vec<RecordBatch>, schema: SchemaRef, format: Format, output: Option<&str>) -> Result<(), CliError> {
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
                w.write(&RecordBatch::new_empty(schema))?;
            }
            for b in &batches {
                w.write(b)?;
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
    match cli.command {
        Command::Describe { table } => {
            let snapshot = Table::open(&table)?.snapshot().await?;
            print!("{}", describe(&snapshot));
        }
        Command::History { table, limit } => {
            let history = Table::open(&table)?.history(limit).await?;
            println!("{:<8} {:<27} {:<24} {:<40} metrics", "version", "timestamp", "operation", "parameters");
            for c in history {
                let op = c.commit_info.get("operation").and_then(|v| v.as_str()).unwrap_or("-").to_string();
                let params = c.commit_info.get("operationParameters").map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                let metrics = c.commit_info.get("operationMetrics").map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                println!("{:<8} {:<27} {:<24} {:<40} {}", c.version, format_ms(c.timestamp_ms), op, params, metrics);
            }
        }
        Command::Cat { table, version, timestamp, columns, predicate, limit, format, output } => {
            let snapshot = snapshot_for(&Table::open(&table)?, version, timestamp.as_deref()).await?;
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
        Command::Files { table, version, predicate } => {
            let snapshot = snapshot_for(&Table::open(&table)?, version, None).await?;
            let mut scan = snapshot.scan();
            if let Some(p) = &predicate {
                scan = scan.with_filter(p)?;
            }
            let scan = scan.build()?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for f in scan.files() {
                let path = percent_decode(&f.path);
                writeln!(out, "{path}")?;
            }
            writeln!(out, "{} of {} files", scan.files().len(), scan.total_files())?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Log paths are URI-encoded; show them as file names.
fn percent_decode(s: &str) -> String {
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
    String::from_utf8_lossy(&out).into_owned()
}

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
