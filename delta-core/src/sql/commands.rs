//! Delta's utility commands (OPTIMIZE, REORG, VACUUM, RESTORE, CONVERT TO DELTA, GENERATE) and
//! the inspecting statements (DESCRIBE HISTORY / DETAIL / TABLE, SHOW TBLPROPERTIES / COLUMNS),
//! whose result sets carry Spark's column names and types.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Array, Int64Array, Int64Builder, ListBuilder, MapBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;
use sqlparser::tokenizer::Token;

use super::cursor::{Cursor, TableName};
use super::ddl::{version_spec, VersionSpec};
use super::{Context, SqlOutput};
use crate::error::DeltaResult;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::schema::StructField;

fn rows(schema: SchemaRef, columns: Vec<ArrayRef>) -> DeltaResult<SqlOutput> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(SqlOutput::Rows { schema, batches: vec![batch] })
}

fn utf8(name: &str) -> Field {
    Field::new(name, ArrowType::Utf8, true)
}

fn timestamp(name: &str) -> Field {
    Field::new(name, ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true)
}

fn string_list(name: &str) -> Field {
    Field::new(name, ArrowType::List(Arc::new(Field::new("element", ArrowType::Utf8, true))), true)
}

fn string_map(name: &str) -> Field {
    let entries = Field::new(
        "entries",
        ArrowType::Struct(vec![Field::new("keys", ArrowType::Utf8, false), Field::new("values", ArrowType::Utf8, true)].into()),
        false,
    );
    Field::new(name, ArrowType::Map(Arc::new(entries), false), true)
}

/// A JSON value as Spark shows it in a string map: strings bare, the rest as JSON.
fn shown(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn map_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

fn push_map(b: &mut MapBuilder<StringBuilder, StringBuilder>, entries: Option<&serde_json::Map<String, Value>>) -> DeltaResult<()> {
    match entries {
        Some(m) => {
            let mut sorted: Vec<(&String, &Value)> = m.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in sorted {
                b.keys().append_value(k);
                b.values().append_option(shown(v));
            }
            b.append(true)?;
        }
        None => b.append(false)?,
    }
    Ok(())
}

/// A parsed utility command.
pub(super) enum Utility {
    Optimize { table: Table, filter: Option<crate::table::expr::Expr>, zorder: Vec<String> },
    Reorg { table: Table, predicate: Option<String> },
    Vacuum { table: Table, retain_hours: Option<f64>, dry_run: bool },
    Restore { table: Table, to: VersionSpec, at: (u64, u64) },
    Convert { dir: Table, partition: Vec<StructField> },
    Generate { table: Table },
}

/// OPTIMIZE, REORG, VACUUM, RESTORE, CONVERT TO DELTA, GENERATE.
pub(super) fn parse_utility(c: &mut Cursor<'_>, ctx: &Context<'_>) -> DeltaResult<Utility> {
    let command = if c.word("OPTIMIZE") {
        let name = c.table()?;
        let table = ctx.open(&name, c)?;
        let filter = if c.word("WHERE") { Some(c.delta_expr()?.0) } else { None };
        let mut zorder = Vec::new();
        if c.words(&["ZORDER", "BY"]) {
            zorder = if c.is_token(&Token::LParen) {
                c.column_list()?
            } else {
                let mut cols = vec![c.column_path()?];
                while c.token(&Token::Comma) {
                    cols.push(c.column_path()?);
                }
                cols
            };
        }
        Utility::Optimize { table, filter, zorder }
    } else if c.word("REORG") {
        c.expect_word("TABLE")?;
        let name = c.table()?;
        let table = ctx.open(&name, c)?;
        let predicate = if c.word("WHERE") { Some(c.delta_expr()?.1) } else { None };
        c.expect_word("APPLY")?;
        c.expect_token(&Token::LParen)?;
        if !c.word("PURGE") {
            return Err(c.error(format!("expected PURGE, found {} (REORG TABLE … APPLY (PURGE); UPGRADE UNIFORM is not supported)", c.found())));
        }
        c.expect_token(&Token::RParen)?;
        Utility::Reorg { table, predicate }
    } else if c.word("VACUUM") {
        let name = c.table()?;
        let table = ctx.open(&name, c)?;
        let (mut retain_hours, mut dry_run) = (None, false);
        loop {
            if c.word("RETAIN") {
                retain_hours = Some(c.number("a number of hours")?);
                c.expect_word("HOURS")?;
            } else if c.words(&["DRY", "RUN"]) {
                dry_run = true;
            } else {
                break;
            }
        }
        Utility::Vacuum { table, retain_hours, dry_run }
    } else if c.word("RESTORE") {
        c.word("TABLE");
        let name = c.table()?;
        let table = ctx.open(&name, c)?;
        c.word("TO");
        let at = c.position();
        let to = version_spec(c)?;
        if matches!(to, VersionSpec::Latest) {
            return Err(c.error(format!("expected VERSION AS OF or TIMESTAMP AS OF, found {}", c.found())));
        }
        Utility::Restore { table, to, at }
    } else if c.word("CONVERT") {
        c.expect_words(&["TO", "DELTA"])?;
        let name = c.table()?;
        let TableName::Parquet(dir) = name else {
            return Err(c.error_at(c.table_at, "CONVERT TO DELTA converts a parquet directory: parquet.`/path/to/dir`"));
        };
        c.words(&["NO", "STATISTICS"]);
        let mut partition = Vec::new();
        if c.words(&["PARTITIONED", "BY"]) {
            c.expect_token(&Token::LParen)?;
            loop {
                let col = c.ident("a partition column")?;
                let t = c.data_type(&[])?;
                partition.push(StructField::new(col, t, true));
                if !c.token(&Token::Comma) {
                    break;
                }
            }
            c.expect_token(&Token::RParen)?;
        }
        Utility::Convert { dir: ctx.open_location(&dir)?, partition }
    } else {
        c.expect_word("GENERATE")?;
        let at = c.position();
        let mode = c.ident("a manifest mode")?;
        if !mode.eq_ignore_ascii_case("symlink_format_manifest") {
            return Err(c.error_at(at, format!("GENERATE {mode}: the only mode is symlink_format_manifest")));
        }
        c.expect_words(&["FOR", "TABLE"])?;
        let name = c.table()?;
        Utility::Generate { table: ctx.open(&name, c)? }
    };
    c.end()?;
    Ok(command)
}

pub(super) async fn run_utility(command: Utility) -> DeltaResult<SqlOutput> {
    match command {
        Utility::Optimize { table, filter, zorder } => {
            let mut b = table.optimize().z_order(&zorder);
            if let Some(f) = filter {
                b = b.with_filter_expr(f);
            }
            Ok(SqlOutput::Committed(b.execute().await?))
        }
        Utility::Reorg { table, predicate } => Ok(SqlOutput::Committed(table.purge_deletion_vectors(predicate.as_deref()).await?)),
        Utility::Vacuum { table, retain_hours, dry_run } => {
            let mut b = table.vacuum().dry_run(dry_run);
            if let Some(h) = retain_hours {
                b = b.retain_hours(h);
            }
            let result = b.execute().await?;
            let root = table.location().root_url().to_string();
            let paths: Vec<String> =
                if dry_run { result.files.iter().map(|f| format!("{}/{f}", root.trim_end_matches('/'))).collect() } else { vec![root] };
            let schema = Arc::new(Schema::new(vec![utf8("path")]));
            rows(schema, vec![Arc::new(StringArray::from(paths))])
        }
        Utility::Restore { table, to, at } => Ok(SqlOutput::Committed(match to {
            VersionSpec::Version(v) => table.restore(v).await?,
            VersionSpec::Timestamp(ms) => table.restore_to_timestamp(ms).await?,
            VersionSpec::Latest => return Err(super::ddl::sql_error(at, "RESTORE needs VERSION AS OF or TIMESTAMP AS OF")),
        })),
        Utility::Convert { dir, partition } => Ok(SqlOutput::committed(Some(dir.convert_to_delta(partition).await?))),
        Utility::Generate { table } => {
            let n = table.generate_symlink_manifest().await?;
            let schema = Arc::new(Schema::new(vec![utf8("path"), Field::new("numManifests", ArrowType::Int64, false)]));
            let path = format!("{}/_symlink_format_manifest", table.location().root_url().as_str().trim_end_matches('/'));
            rows(schema, vec![Arc::new(StringArray::from(vec![path])), Arc::new(Int64Array::from(vec![n as i64]))])
        }
    }
}

/// A parsed DESCRIBE or SHOW.
pub(super) enum Describe {
    History { table: Table, limit: Option<usize> },
    Detail(Table),
    Columns(Table),
    Properties { table: Table, key: Option<String> },
    ColumnNames(Table),
}

/// DESCRIBE HISTORY / DETAIL / [TABLE] [EXTENDED], SHOW TBLPROPERTIES / COLUMNS.
pub(super) fn parse_describe(c: &mut Cursor<'_>, ctx: &Context<'_>) -> DeltaResult<Describe> {
    let describe = if c.word("SHOW") {
        if c.word("TBLPROPERTIES") {
            let name = c.table()?;
            let table = ctx.open(&name, c)?;
            let key = if c.token(&Token::LParen) {
                let k = c.property_key()?;
                c.expect_token(&Token::RParen)?;
                Some(k)
            } else {
                None
            };
            Describe::Properties { table, key }
        } else {
            c.expect_word("COLUMNS")?;
            if !c.word("IN") {
                c.expect_word("FROM")?;
            }
            let name = c.table()?;
            Describe::ColumnNames(ctx.open(&name, c)?)
        }
    } else {
        if !c.word("DESCRIBE") {
            c.expect_word("DESC")?;
        }
        if c.word("HISTORY") {
            let name = c.table()?;
            let table = ctx.open(&name, c)?;
            let limit = if c.word("LIMIT") { Some(c.integer("a row count")?.max(0) as usize) } else { None };
            Describe::History { table, limit }
        } else if c.word("DETAIL") {
            let name = c.table()?;
            Describe::Detail(ctx.open(&name, c)?)
        } else {
            c.word("TABLE");
            c.word("EXTENDED");
            let name = c.table()?;
            Describe::Columns(ctx.open(&name, c)?)
        }
    };
    c.end()?;
    Ok(describe)
}

pub(super) async fn run_describe(describe: Describe) -> DeltaResult<SqlOutput> {
    match describe {
        Describe::History { table, limit } => history(&table.history(limit).await?),
        Describe::Detail(table) => detail(&table.snapshot().await?),
        Describe::Properties { table, key } => {
            let mut props = table_properties(&table.snapshot().await?);
            if let Some(k) = key {
                props.retain(|(name, _)| *name == k);
            }
            let schema = Arc::new(Schema::new(vec![utf8("key"), utf8("value")]));
            let (keys, values): (Vec<String>, Vec<String>) = props.into_iter().unzip();
            rows(schema, vec![Arc::new(StringArray::from(keys)), Arc::new(StringArray::from(values))])
        }
        Describe::ColumnNames(table) => {
            let snapshot = table.snapshot().await?;
            let names: Vec<String> = snapshot.schema().fields.iter().map(|f| f.name.clone()).collect();
            let schema = Arc::new(Schema::new(vec![Field::new("col_name", ArrowType::Utf8, false)]));
            rows(schema, vec![Arc::new(StringArray::from(names))])
        }
        Describe::Columns(table) => columns(&table.snapshot().await?),
    }
}

fn columns(snapshot: &Snapshot) -> DeltaResult<SqlOutput> {
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut comments = Vec::new();
    for f in &snapshot.schema().fields {
        names.push(f.name.clone());
        types.push(Some(crate::table::expr::sql_type_name(&f.data_type)));
        comments.push(f.metadata.get("comment").and_then(Value::as_str).map(str::to_string));
    }
    let parts = snapshot.partition_columns();
    if !parts.is_empty() {
        // Spark's layout: a section naming the partition columns after the columns.
        names.extend(["# Partition Information".to_string(), "# col_name".to_string()]);
        types.extend([Some(String::new()), Some("data_type".to_string())]);
        comments.extend([Some(String::new()), Some("comment".to_string())]);
        for p in parts {
            let f = snapshot.schema().field(p);
            names.push(p.clone());
            types.push(f.map(|f| crate::table::expr::sql_type_name(&f.data_type)));
            comments.push(f.and_then(|f| f.metadata.get("comment").and_then(Value::as_str).map(str::to_string)));
        }
    }
    let schema = Arc::new(Schema::new(vec![Field::new("col_name", ArrowType::Utf8, false), utf8("data_type"), utf8("comment")]));
    rows(schema, vec![Arc::new(StringArray::from(names)), Arc::new(StringArray::from(types)), Arc::new(StringArray::from(comments))])
}

/// The properties SHOW TBLPROPERTIES lists: the metadata's configuration, the protocol versions
/// and `delta.feature.<name> = supported` for each table feature, as delta-spark shows them.
fn table_properties(snapshot: &Snapshot) -> Vec<(String, String)> {
    let mut props: Vec<(String, String)> =
        snapshot.metadata().configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
    let p = snapshot.protocol();
    props.push(("delta.minReaderVersion".into(), p.min_reader_version.to_string()));
    props.push(("delta.minWriterVersion".into(), p.min_writer_version.to_string()));
    if p.min_writer_version >= 7 {
        let mut features = p.effective_writer_features();
        for r in p.effective_reader_features() {
            if !features.contains(&r) {
                features.push(r);
            }
        }
        props.extend(features.into_iter().map(|f| (format!("delta.feature.{f}"), "supported".to_string())));
    }
    props.sort();
    props
}

fn history(commits: &[crate::read::snapshot::CommitRecord]) -> DeltaResult<SqlOutput> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", ArrowType::Int64, false),
        timestamp("timestamp"),
        utf8("userId"),
        utf8("userName"),
        utf8("operation"),
        string_map("operationParameters"),
        utf8("clusterId"),
        Field::new("readVersion", ArrowType::Int64, true),
        utf8("isolationLevel"),
        Field::new("isBlindAppend", ArrowType::Boolean, true),
        string_map("operationMetrics"),
        utf8("userMetadata"),
        utf8("engineInfo"),
    ]));
    let text = |key: &str| -> StringArray { commits.iter().map(|c| c.commit_info.get(key).and_then(shown)).collect() };
    let mut params = map_builder();
    let mut metrics = map_builder();
    let mut read_version = Int64Builder::new();
    let mut blind = BooleanBuilder::new();
    let mut ts = TimestampMicrosecondBuilder::new();
    for c in commits {
        push_map(&mut params, c.commit_info.get("operationParameters").and_then(Value::as_object))?;
        push_map(&mut metrics, c.commit_info.get("operationMetrics").and_then(Value::as_object))?;
        read_version.append_option(c.commit_info.get("readVersion").and_then(Value::as_i64));
        blind.append_option(c.commit_info.get("isBlindAppend").and_then(Value::as_bool));
        ts.append_value(c.timestamp_ms * 1000);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(commits.iter().map(|c| c.version).collect::<Vec<_>>())),
        Arc::new(ts.finish().with_timezone("UTC")),
        Arc::new(text("userId")),
        Arc::new(text("userName")),
        Arc::new(text("operation")),
        Arc::new(params.finish()),
        Arc::new(text("clusterId")),
        Arc::new(read_version.finish()),
        Arc::new(text("isolationLevel")),
        Arc::new(blind.finish()),
        Arc::new(metrics.finish()),
        Arc::new(text("userMetadata")),
        Arc::new(text("engineInfo")),
    ];
    rows(schema, columns)
}

fn detail(snapshot: &Snapshot) -> DeltaResult<SqlOutput> {
    let schema = Arc::new(Schema::new(vec![
        utf8("format"),
        utf8("id"),
        utf8("name"),
        utf8("description"),
        utf8("location"),
        timestamp("createdAt"),
        timestamp("lastModified"),
        string_list("partitionColumns"),
        string_list("clusteringColumns"),
        Field::new("numFiles", ArrowType::Int64, false),
        Field::new("sizeInBytes", ArrowType::Int64, false),
        string_map("properties"),
        Field::new("minReaderVersion", ArrowType::Int32, false),
        Field::new("minWriterVersion", ArrowType::Int32, false),
        string_list("tableFeatures"),
    ]));
    let m = snapshot.metadata();
    let p = snapshot.protocol();
    let list = |items: Vec<String>| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new("element", ArrowType::Utf8, true)));
        for i in items {
            b.values().append_value(i);
        }
        b.append(true);
        Arc::new(b.finish())
    };
    let mut props = map_builder();
    let config: serde_json::Map<String, Value> =
        m.configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), Value::String(v)))).collect();
    push_map(&mut props, Some(&config))?;
    let mut features = p.effective_writer_features();
    for r in p.effective_reader_features() {
        if !features.contains(&r) {
            features.push(r);
        }
    }
    features.sort();
    let clustering: Vec<String> = snapshot.clustering_columns().unwrap_or_default().iter().map(|c| c.join(".")).collect();
    let micros = |ms: Option<i64>| TimestampMicrosecondArray::from(vec![ms.map(|t| t * 1000)]).with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["delta"])),
        Arc::new(StringArray::from(vec![m.id.clone()])),
        Arc::new(StringArray::from(vec![m.name.clone()])),
        Arc::new(StringArray::from(vec![m.description.clone()])),
        Arc::new(StringArray::from(vec![snapshot.location().root_url().to_string()])),
        Arc::new(micros(m.created_time)),
        Arc::new(micros(snapshot.timestamp_ms())),
        list(snapshot.partition_columns().to_vec()),
        list(clustering),
        Arc::new(Int64Array::from(vec![snapshot.num_files() as i64])),
        Arc::new(Int64Array::from(vec![snapshot.total_size_bytes()])),
        Arc::new(props.finish()),
        Arc::new(Int32Array::from(vec![p.min_reader_version])),
        Arc::new(Int32Array::from(vec![p.min_writer_version])),
        list(features),
    ];
    rows(schema, columns)
}
