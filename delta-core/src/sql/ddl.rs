//! CREATE / REPLACE TABLE (declared columns, `AS SELECT`, `SHALLOW CLONE`), INSERT (`VALUES`,
//! `REPLACE WHERE … SELECT`) and ALTER TABLE.
//!
//! Column definitions are Spark's: `name type [NOT NULL] [GENERATED ALWAYS AS (expr)]
//! [GENERATED {ALWAYS | BY DEFAULT} AS IDENTITY [(START WITH n INCREMENT BY m)]] [DEFAULT expr]
//! [COMMENT '…']`, stored as delta-spark stores them: `delta.generationExpression`,
//! `delta.identity.start/step/allowExplicitInsert`, `CURRENT_DEFAULT` and `comment` in the
//! field's metadata; `CONSTRAINT name CHECK (expr)` becomes `delta.constraints.name`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{new_empty_array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema};
use futures::StreamExt;
use serde_json::Value;
use sqlparser::tokenizer::Token;

use super::cursor::{Cursor, TableName};
use super::{Context, SqlOutput};
use crate::error::{DeltaError, DeltaResult};
use crate::read::snapshot::Table;
use crate::write::rewrite::DmlResult;
use crate::ops::alter::ColumnChange;
use crate::table::expr::{evaluate, from_sql, Expr};
use crate::table::schema::{DataType, PrimitiveType, StructField, StructType};
use crate::write::writer::{CreateMode, SaveMode, TableSpec, WriteOptions};

/// Column definitions and CHECK constraints, as between the parentheses of CREATE TABLE.
#[derive(Debug, Clone, Default)]
pub struct TableElements {
    pub schema: StructType,
    /// `(name, expression text)`.
    pub constraints: Vec<(String, String)>,
}

/// Parses `col type [options…], …, [CONSTRAINT name CHECK (expr)]` — the column syntax of
/// CREATE TABLE, also what `delta create --schema` takes.
pub fn parse_table_elements(text: &str) -> DeltaResult<TableElements> {
    let mut c = Cursor::new(text)?;
    let elements = elements(&mut c)?;
    c.end()?;
    Ok(elements)
}

fn elements(c: &mut Cursor<'_>) -> DeltaResult<TableElements> {
    let mut out = TableElements::default();
    loop {
        if c.word("CONSTRAINT") {
            out.constraints.push(check_constraint(c)?);
        } else {
            let at = c.position();
            let (name, field) = column_definition(c, false)?;
            if out.schema.fields.iter().any(|f| f.name.eq_ignore_ascii_case(&name)) {
                return Err(c.error_at(at, format!("column `{name}` is declared twice")));
            }
            out.schema.fields.push(field);
        }
        if !c.token(&Token::Comma) {
            break;
        }
    }
    Ok(out)
}

/// `name CHECK (expr)` after CONSTRAINT: the name and the expression's text.
fn check_constraint(c: &mut Cursor<'_>) -> DeltaResult<(String, String)> {
    let name = c.ident("a constraint name")?;
    c.expect_word("CHECK")?;
    c.expect_token(&Token::LParen)?;
    let (_, text) = c.delta_expr()?;
    c.expect_token(&Token::RParen)?;
    Ok((name, text))
}

const COLUMN_OPTIONS: &[&str] = &["NOT", "GENERATED", "DEFAULT", "COMMENT", "FIRST", "AFTER"];

/// `name type [options]`: the name (a path when `path` is set, for ADD COLUMNS) and its field.
fn column_definition(c: &mut Cursor<'_>, path: bool) -> DeltaResult<(String, StructField)> {
    let name = if path { c.column_path()? } else { c.ident("a column name")? };
    let data_type = c.data_type(COLUMN_OPTIONS)?;
    let mut field = StructField::new(name.clone(), data_type, true);
    loop {
        let at = c.position();
        if c.words(&["NOT", "NULL"]) {
            field.nullable = false;
        } else if c.word("COMMENT") {
            field.metadata.insert("comment".into(), Value::String(c.string("a comment")?));
        } else if c.word("DEFAULT") {
            let (e, text) = c.delta_expr()?;
            if !e.columns().is_empty() {
                return Err(c.error_at(at, format!("a DEFAULT must be a constant, not `{text}`")));
            }
            field.metadata.insert("CURRENT_DEFAULT".into(), Value::String(text));
        } else if c.word("GENERATED") {
            let by_default = if c.word("ALWAYS") {
                false
            } else if c.words(&["BY", "DEFAULT"]) {
                true
            } else {
                return Err(c.error(format!("expected ALWAYS or BY DEFAULT, found {}", c.found())));
            };
            c.expect_word("AS")?;
            if c.word("IDENTITY") {
                if field.data_type != DataType::Primitive(PrimitiveType::Long) {
                    return Err(c.error_at(at, format!("identity column `{name}` must be BIGINT, not {}", field.data_type)));
                }
                let (mut start, mut step) = (1i64, 1i64);
                if c.token(&Token::LParen) {
                    loop {
                        if c.words(&["START", "WITH"]) {
                            start = c.integer("a start value")?;
                        } else if c.words(&["INCREMENT", "BY"]) {
                            let at = c.position();
                            step = c.integer("a step")?;
                            if step == 0 {
                                return Err(c.error_at(at, "an identity column's INCREMENT BY cannot be 0"));
                            }
                        } else {
                            break;
                        }
                    }
                    c.expect_token(&Token::RParen)?;
                }
                field.metadata.insert("delta.identity.start".into(), Value::from(start));
                field.metadata.insert("delta.identity.step".into(), Value::from(step));
                field.metadata.insert("delta.identity.allowExplicitInsert".into(), Value::Bool(by_default));
            } else {
                if by_default {
                    return Err(c.error_at(at, "GENERATED BY DEFAULT is for identity columns: GENERATED BY DEFAULT AS IDENTITY"));
                }
                c.expect_token(&Token::LParen)?;
                let (_, text) = c.delta_expr()?;
                c.expect_token(&Token::RParen)?;
                field.metadata.insert("delta.generationExpression".into(), Value::String(text));
            }
        } else if c.is_word("FIRST") || c.is_word("AFTER") {
            return Err(c.error("column positions (FIRST / AFTER) are not supported; new columns go last"));
        } else {
            break;
        }
    }
    let kinds = ["delta.generationExpression", "delta.identity.start", "CURRENT_DEFAULT"];
    if kinds.iter().filter(|k| field.metadata.contains_key(**k)).count() > 1 {
        return Err(c.error(format!("column `{name}` can be one of generated, identity or with a DEFAULT, not several")));
    }
    Ok((name, field))
}

/// A clause of CREATE TABLE after the columns.
#[derive(Default)]
struct CreateClauses {
    partition_by: Vec<String>,
    /// Partition columns declared with a type (`PARTITIONED BY (d DATE)`).
    partition_fields: Vec<StructField>,
    cluster_by: Option<Vec<String>>,
    location: Option<String>,
    comment: Option<String>,
    properties: Vec<(String, String)>,
}

fn create_clauses(c: &mut Cursor<'_>) -> DeltaResult<CreateClauses> {
    let mut out = CreateClauses::default();
    loop {
        if c.word("USING") {
            let at = c.position();
            let format = c.ident("a format")?;
            if !format.eq_ignore_ascii_case("delta") {
                return Err(c.error_at(at, format!("USING {format}: this engine creates Delta tables only (USING delta)")));
            }
        } else if c.words(&["PARTITIONED", "BY"]) {
            c.expect_token(&Token::LParen)?;
            loop {
                let name = c.ident("a partition column")?;
                if !c.is_token(&Token::Comma) && !c.is_token(&Token::RParen) {
                    let data_type = c.data_type(&[])?;
                    out.partition_fields.push(StructField::new(name.clone(), data_type, true));
                }
                out.partition_by.push(name);
                if !c.token(&Token::Comma) {
                    break;
                }
            }
            c.expect_token(&Token::RParen)?;
        } else if c.words(&["CLUSTER", "BY"]) {
            out.cluster_by = Some(if c.word("NONE") { Vec::new() } else { c.column_list()? });
        } else if c.word("LOCATION") {
            out.location = Some(c.string("a location")?);
        } else if c.word("COMMENT") {
            out.comment = Some(c.string("a comment")?);
        } else if c.word("TBLPROPERTIES") {
            out.properties.extend(c.properties()?);
        } else {
            return Ok(out);
        }
    }
}

/// A table's version as a statement names it.
pub(super) enum VersionSpec {
    Latest,
    Version(i64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

/// `VERSION AS OF n` / `TIMESTAMP AS OF '…'`, when next.
pub(super) fn version_spec(c: &mut Cursor<'_>) -> DeltaResult<VersionSpec> {
    if c.words(&["VERSION", "AS", "OF"]) {
        return Ok(VersionSpec::Version(c.integer("a version")?));
    }
    if c.words(&["TIMESTAMP", "AS", "OF"]) {
        let at = c.position();
        let text = c.string("a timestamp")?;
        let ms = parse_timestamp(&text).ok_or_else(|| c.error_at(at, format!("'{text}' is not a timestamp (YYYY-MM-DD[ HH:MM:SS] or RFC 3339)")))?;
        return Ok(VersionSpec::Timestamp(ms));
    }
    Ok(VersionSpec::Latest)
}

/// A parsed CREATE / REPLACE TABLE.
pub(super) enum Create {
    Declared { table: Table, mode: CreateMode, spec: TableSpec },
    AsSelect { table: Table, options: WriteOptions, query: String, at: (u64, u64) },
    Clone { target: Table, source: Table, version: VersionSpec, mode: CreateMode, at: (u64, u64) },
}

/// CREATE [OR REPLACE] TABLE [IF NOT EXISTS] / REPLACE TABLE.
pub(super) fn parse_create(c: &mut Cursor<'_>, ctx: &Context<'_>) -> DeltaResult<Create> {
    let mode = if c.word("REPLACE") {
        CreateMode::Replace
    } else {
        c.expect_word("CREATE")?;
        if c.words(&["OR", "REPLACE"]) {
            CreateMode::CreateOrReplace
        } else {
            CreateMode::Create
        }
    };
    if !c.word("TABLE") {
        return Err(c.error(format!("expected TABLE, found {} (CREATE TABLE, CREATE OR REPLACE TABLE, REPLACE TABLE)", c.found())));
    }
    let mode = if mode == CreateMode::Create && c.words(&["IF", "NOT", "EXISTS"]) { CreateMode::IfNotExists } else { mode };
    let name = c.table()?;
    let name_at = c.table_at;
    let located = |c: &Cursor<'_>, location: &Option<String>| -> DeltaResult<Table> {
        let location = match (&name, location) {
            (TableName::Path(p), Some(l)) if p != l => {
                return Err(c.error_at(name_at, format!("the table is named by path `{p}` and LOCATION '{l}'; give one")));
            }
            (TableName::Name(_), Some(l)) => l.clone(),
            _ => ctx.location(&name, c)?,
        };
        ctx.open_location(&location)
    };
    if c.words(&["SHALLOW", "CLONE"]) {
        let source = c.table()?;
        let source = ctx.open(&source, c)?;
        let version = version_spec(c)?;
        let clauses = create_clauses(c)?;
        c.end()?;
        if !clauses.partition_by.is_empty() || clauses.cluster_by.is_some() || !clauses.properties.is_empty() || clauses.comment.is_some() {
            return Err(c.error_at(name_at, "a SHALLOW CLONE takes the source's partitioning, clustering and properties; leave those clauses out"));
        }
        let target = located(c, &clauses.location)?;
        return Ok(Create::Clone { target, source, version, mode, at: name_at });
    }
    let columns_at = c.position();
    let elements = if c.token(&Token::LParen) {
        let e = elements(c)?;
        c.expect_token(&Token::RParen)?;
        Some(e)
    } else {
        None
    };
    let clauses = create_clauses(c)?;
    let table = located(c, &clauses.location)?;
    let mut properties: HashMap<String, String> = clauses.properties.into_iter().collect();
    if c.word("AS") {
        if elements.is_some() {
            return Err(c.error_at(columns_at, "CREATE TABLE … AS SELECT takes its columns from the query; leave out the column list"));
        }
        if clauses.comment.is_some() {
            return Err(c.error("COMMENT with AS SELECT is not supported; leave it out"));
        }
        let at = c.position();
        let query = c.rest().to_string();
        if ctx.queries.is_none() {
            return Err(c.error_at(at, "CREATE TABLE … AS SELECT needs a query engine (delta sql / delta-exec)"));
        }
        let options = WriteOptions {
            mode: match mode {
                CreateMode::Create => SaveMode::ErrorIfExists,
                CreateMode::IfNotExists => SaveMode::Ignore,
                CreateMode::Replace | CreateMode::CreateOrReplace => SaveMode::Overwrite,
            },
            overwrite_schema: matches!(mode, CreateMode::Replace | CreateMode::CreateOrReplace),
            partition_by: (!clauses.partition_by.is_empty()).then_some(clauses.partition_by),
            cluster_by: clauses.cluster_by.filter(|c| !c.is_empty()),
            properties,
            ..Default::default()
        };
        return Ok(Create::AsSelect { table, options, query, at });
    }
    c.end()?;
    let Some(elements) = elements else {
        return Err(c.error_at(columns_at, "CREATE TABLE needs its columns: (name type, …) or AS SELECT …"));
    };
    let mut schema = elements.schema;
    for p in clauses.partition_fields {
        if schema.field(&p.name).is_some() {
            return Err(c.error_at(columns_at, format!("partition column `{}` is declared with a type twice", p.name)));
        }
        schema.fields.push(p);
    }
    for p in &clauses.partition_by {
        if schema.field(p).is_none() {
            return Err(c.error_at(columns_at, format!("partition column `{p}` is not a column of the table")));
        }
    }
    for (n, text) in elements.constraints {
        properties.insert(format!("delta.constraints.{}", n.to_ascii_lowercase()), text);
    }
    let clustering = crate::table::features::parse_columns(&clauses.cluster_by.unwrap_or_default())?;
    let spec = TableSpec { schema, partition_columns: clauses.partition_by, clustering_columns: clustering, properties, description: clauses.comment };
    Ok(Create::Declared { table, mode, spec })
}

pub(super) async fn run_create(create: Create, ctx: &Context<'_>) -> DeltaResult<SqlOutput> {
    match create {
        Create::Declared { table, mode, spec } => Ok(SqlOutput::committed(table.create_table(spec, mode).await?)),
        Create::AsSelect { table, options, query, at } => {
            let runner = ctx.queries.ok_or_else(|| sql_error(at, "CREATE TABLE … AS SELECT needs a query engine"))?;
            let result = runner.write(&query, &table, options).await?;
            Ok(write_output(&result))
        }
        Create::Clone { target, source, version, mode, at } => {
            let exists = target.snapshot().await.is_ok();
            match (exists, mode) {
                (true, CreateMode::IfNotExists) => return Ok(SqlOutput::committed(None)),
                (true, CreateMode::Replace | CreateMode::CreateOrReplace) => {
                    return Err(sql_error(at, "replacing an existing table with a SHALLOW CLONE is not supported; clone into a new location"));
                }
                _ => {}
            }
            let version = match version {
                VersionSpec::Latest => None,
                VersionSpec::Version(v) => Some(v),
                VersionSpec::Timestamp(ms) => Some(source.version_at_timestamp(ms).await?),
            };
            Ok(SqlOutput::committed(Some(source.shallow_clone(&target, version).await?)))
        }
    }
}

pub(super) fn sql_error(at: (u64, u64), message: impl Into<String>) -> DeltaError {
    DeltaError::Sql { message: message.into(), line: at.0, column: at.1 }
}

fn write_output(result: &crate::write::WriteResult) -> SqlOutput {
    let mut out = DmlResult { version: result.version, metrics: Default::default(), post_commit_error: result.post_commit_error.clone() };
    out.metrics.insert("numFiles".into(), result.files_added as u64);
    out.metrics.insert("numOutputRows".into(), result.rows_written);
    out.metrics.insert("numRemovedFiles".into(), result.files_removed as u64);
    SqlOutput::Committed(out)
}

/// `YYYY-MM-DD[ HH:MM:SS[.fff]]` or RFC 3339, UTC unless it says otherwise, as milliseconds:
/// the timestamps of `TIMESTAMP AS OF` and `table_changes`.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|dt| dt.and_utc().timestamp_millis())
}

/// Whether an INSERT is `INSERT INTO t REPLACE WHERE …` (which `sqlparser` does not parse).
pub(super) fn is_insert_replace_where(text: &str) -> bool {
    let Ok(mut c) = Cursor::new(text) else { return false };
    c.word("INSERT");
    if !c.word("INTO") {
        return false;
    }
    c.word("TABLE");
    c.table().is_ok() && c.words(&["REPLACE", "WHERE"])
}

/// A value of INSERT … VALUES: the expression, its text and where it is.
type InsertValue = (Expr, String, (u64, u64));

pub(super) enum InsertBody {
    /// Rows of values, each with its position.
    Values(Vec<(Vec<InsertValue>, (u64, u64))>),
    Query(String, (u64, u64)),
}

pub(super) struct Insert {
    table: Table,
    overwrite: bool,
    replace_where: Option<Expr>,
    columns: Option<(Vec<String>, (u64, u64))>,
    body: InsertBody,
}

/// INSERT INTO/OVERWRITE t [(cols)] VALUES … | REPLACE WHERE pred query | query.
pub(super) fn parse_insert(c: &mut Cursor<'_>, ctx: &Context<'_>) -> DeltaResult<Insert> {
    c.expect_word("INSERT")?;
    let overwrite = if c.word("OVERWRITE") {
        true
    } else if c.word("INTO") {
        false
    } else {
        return Err(c.error(format!("expected INTO or OVERWRITE, found {}", c.found())));
    };
    c.word("TABLE");
    let name = c.table()?;
    let table = ctx.open(&name, c)?;
    let mut replace_where = None;
    if !overwrite && c.words(&["REPLACE", "WHERE"]) {
        replace_where = Some(c.delta_expr()?.0);
    }
    let columns = if c.is_token(&Token::LParen) && replace_where.is_none() && !matches!(c.peek_word_n(1).as_deref(), Some("SELECT" | "WITH")) {
        let at = c.position();
        Some((c.column_list()?, at))
    } else {
        None
    };
    let body = if c.word("VALUES") {
        let mut rows = Vec::new();
        loop {
            let row_at = c.position();
            c.expect_token(&Token::LParen)?;
            let mut row = Vec::new();
            loop {
                let at = c.position();
                let (e, text) = c.expr()?;
                let e: Expr = from_sql(&text, e).map_err(|err| c.error_at(at, err.to_string()))?;
                if !e.columns().is_empty() {
                    return Err(c.error_at(at, format!("VALUES takes constants, not `{text}`")));
                }
                row.push((e, text, at));
                if !c.token(&Token::Comma) {
                    break;
                }
            }
            c.expect_token(&Token::RParen)?;
            rows.push((row, row_at));
            if !c.token(&Token::Comma) {
                break;
            }
        }
        c.end()?;
        InsertBody::Values(rows)
    } else {
        let at = c.position();
        let query = c.rest().to_string();
        if query.is_empty() {
            return Err(c.error("expected VALUES or a query"));
        }
        if ctx.queries.is_none() {
            return Err(c.error_at(at, "INSERT … SELECT needs a query engine (delta sql / delta-exec); VALUES works without one"));
        }
        InsertBody::Query(query, at)
    };
    Ok(Insert { table, overwrite, replace_where, columns, body })
}

pub(super) async fn run_insert(insert: Insert, ctx: &Context<'_>) -> DeltaResult<SqlOutput> {
    let Insert { table, overwrite, replace_where, columns, body } = insert;
    let snapshot = table.snapshot().await?;
    let columns: Vec<String> = match columns {
        Some((cols, at)) => {
            for col in &cols {
                if snapshot.schema().field(col).is_none() {
                    return Err(sql_error(at, format!("`{col}` is not a column of the table (columns: {})", names(snapshot.schema()))));
                }
            }
            cols
        }
        None => snapshot.schema().fields.iter().map(|f| f.name.clone()).collect(),
    };
    let target = snapshot.arrow_schema();
    let fields: Vec<Field> = columns
        .iter()
        .filter_map(|n| target.fields().iter().find(|f| f.name().eq_ignore_ascii_case(n)))
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batches: Vec<RecordBatch> = match body {
        InsertBody::Values(rows) => vec![values(rows, &schema)?],
        InsertBody::Query(query, at) => {
            let runner = ctx.queries.ok_or_else(|| sql_error(at, "INSERT … SELECT needs a query engine"))?;
            let (_, mut stream) = runner.run(&query).await?;
            let mut out = Vec::new();
            while let Some(b) = stream.next().await {
                let b = b?;
                if b.num_columns() != schema.fields().len() {
                    return Err(sql_error(
                        at,
                        format!("the query has {} column(s) and the INSERT names {} ({})", b.num_columns(), schema.fields().len(), columns.join(", ")),
                    ));
                }
                // By position, as Spark: the query's columns take the table's names and types.
                let cols: Vec<ArrayRef> =
                    b.columns().iter().zip(schema.fields()).map(|(a, f)| arrow::compute::cast(a, f.data_type())).collect::<Result<_, _>>()?;
                out.push(RecordBatch::try_new(schema.clone(), cols)?);
            }
            out
        }
    };
    let options = WriteOptions {
        mode: if overwrite || replace_where.is_some() { SaveMode::Overwrite } else { SaveMode::Append },
        replace_where,
        ..Default::default()
    };
    Ok(write_output(&table.write(batches, options).await?))
}

fn names(schema: &StructType) -> String {
    schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Rows of constants, each evaluated and cast to its column's type.
fn values(rows: Vec<(Vec<InsertValue>, (u64, u64))>, schema: &Arc<Schema>) -> DeltaResult<RecordBatch> {
    let width = schema.fields().len();
    let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); width];
    let one_row = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &RecordBatchOptions::new().with_row_count(Some(1)))?;
    for (row, row_at) in rows {
        if row.len() != width {
            return Err(sql_error(row_at, format!("a row has {} value(s) for {width} column(s)", row.len())));
        }
        for (n, ((e, text, at), field)) in row.into_iter().zip(schema.fields()).enumerate() {
            let v = evaluate(&e, &one_row).map_err(|err| sql_error(at, err.to_string()))?;
            let v = arrow::compute::cast(&v, field.data_type())
                .map_err(|err| sql_error(at, format!("`{text}` is not a value of `{}` ({}): {err}", field.name(), field.data_type())))?;
            columns[n].push(v);
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .zip(schema.fields())
        .map(|(parts, f)| {
            if parts.is_empty() {
                return Ok(new_empty_array(f.data_type()));
            }
            let refs: Vec<&dyn arrow::array::Array> = parts.iter().map(|a| a.as_ref()).collect();
            arrow::compute::concat(&refs)
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// What an ALTER TABLE does.
pub(super) enum AlterAction {
    AddConstraint { name: String, expr: String },
    AddColumns(Vec<(String, StructField)>),
    RenameColumn { from: String, to: String },
    DropConstraint { name: String, if_exists: bool },
    DropFeature(String),
    DropColumns { columns: Vec<String>, if_exists: bool },
    ChangeType { column: String, to: DataType },
    AlterColumn { column: String, change: ColumnChange },
    SetProperties(Vec<(String, String)>),
    UnsetProperties { keys: Vec<String>, if_exists: bool, at: (u64, u64) },
    ClusterBy(Vec<String>),
}

pub(super) struct Alter {
    table: Table,
    action: AlterAction,
}

/// ALTER TABLE t ….
pub(super) fn parse_alter(c: &mut Cursor<'_>, ctx: &Context<'_>) -> DeltaResult<Alter> {
    c.expect_words(&["ALTER", "TABLE"])?;
    let name = c.table()?;
    let table = ctx.open(&name, c)?;
    let action = if c.word("ADD") {
        if c.word("CONSTRAINT") {
            let (name, expr) = check_constraint(c)?;
            AlterAction::AddConstraint { name, expr }
        } else {
            if !c.word("COLUMNS") {
                c.expect_word("COLUMN")?;
            }
            let parens = c.token(&Token::LParen);
            let mut defs = Vec::new();
            loop {
                let at = c.position();
                let (name, field) = column_definition(c, true)?;
                if field.metadata.contains_key("delta.generationExpression") || field.metadata.contains_key("delta.identity.start") {
                    return Err(c.error_at(at, format!("cannot add `{name}` as a generated or identity column to an existing table")));
                }
                defs.push((name, field));
                if !c.token(&Token::Comma) {
                    break;
                }
            }
            if parens {
                c.expect_token(&Token::RParen)?;
            }
            AlterAction::AddColumns(defs)
        }
    } else if c.word("RENAME") {
        if c.word("TO") {
            return Err(c.error("RENAME TO: a table is named by its location here; there is no catalog to rename it in"));
        }
        c.expect_word("COLUMN")?;
        let from = c.column_path()?;
        c.expect_word("TO")?;
        let to = c.ident("the new column name")?;
        AlterAction::RenameColumn { from, to }
    } else if c.word("DROP") {
        if c.word("CONSTRAINT") {
            let if_exists = c.words(&["IF", "EXISTS"]);
            AlterAction::DropConstraint { name: c.ident("a constraint name")?, if_exists }
        } else if c.word("FEATURE") {
            let feature = c.ident("a feature name")?;
            if c.words(&["TRUNCATE", "HISTORY"]) {
                return Err(c.error("TRUNCATE HISTORY is not supported: this engine drops writer features only, which need no history truncation"));
            }
            AlterAction::DropFeature(feature)
        } else {
            if !c.word("COLUMNS") {
                c.expect_word("COLUMN")?;
            }
            let if_exists = c.words(&["IF", "EXISTS"]);
            let columns = if c.is_token(&Token::LParen) { c.column_list()? } else { vec![c.column_path()?] };
            AlterAction::DropColumns { columns, if_exists }
        }
    } else if c.word("ALTER") || c.word("CHANGE") {
        c.word("COLUMN");
        let column = c.column_path()?;
        if c.word("TYPE") {
            AlterAction::ChangeType { column, to: c.data_type(&[])? }
        } else {
            let change = if c.words(&["SET", "NOT", "NULL"]) {
                ColumnChange::SetNotNull
            } else if c.words(&["DROP", "NOT", "NULL"]) {
                ColumnChange::DropNotNull
            } else if c.word("COMMENT") {
                ColumnChange::Comment(c.string("a comment")?)
            } else if c.words(&["SET", "DEFAULT"]) {
                ColumnChange::SetDefault(c.delta_expr()?.1)
            } else if c.words(&["DROP", "DEFAULT"]) {
                ColumnChange::DropDefault
            } else {
                return Err(c.error(format!(
                    "expected TYPE, SET NOT NULL, DROP NOT NULL, COMMENT, SET DEFAULT or DROP DEFAULT, found {}",
                    c.found()
                )));
            };
            AlterAction::AlterColumn { column, change }
        }
    } else if c.words(&["SET", "TBLPROPERTIES"]) {
        AlterAction::SetProperties(c.properties()?)
    } else if c.words(&["UNSET", "TBLPROPERTIES"]) {
        let if_exists = c.words(&["IF", "EXISTS"]);
        let at = c.position();
        AlterAction::UnsetProperties { keys: c.property_keys()?, if_exists, at }
    } else if c.words(&["CLUSTER", "BY"]) {
        AlterAction::ClusterBy(if c.word("NONE") { Vec::new() } else { c.column_list()? })
    } else {
        return Err(c.error(format!(
            "expected ADD, RENAME, DROP, ALTER COLUMN, SET TBLPROPERTIES, UNSET TBLPROPERTIES or CLUSTER BY, found {}",
            c.found()
        )));
    };
    c.end()?;
    Ok(Alter { table, action })
}

pub(super) async fn run_alter(alter: Alter) -> DeltaResult<SqlOutput> {
    let Alter { table, action } = alter;
    let version = match action {
        AlterAction::AddConstraint { name, expr } => table.add_constraint(&name, &expr).await?,
        AlterAction::AddColumns(defs) => table.add_column_definitions(defs).await?,
        AlterAction::RenameColumn { from, to } => table.rename_column(&from, &to).await?,
        AlterAction::DropConstraint { name, if_exists } => {
            let key = format!("delta.constraints.{}", name.to_ascii_lowercase());
            if if_exists && !table.snapshot().await?.metadata().configuration.contains_key(&key) {
                return Ok(SqlOutput::committed(None));
            }
            table.drop_constraint(&name).await?
        }
        AlterAction::DropFeature(feature) => table.drop_feature(&feature).await?,
        AlterAction::DropColumns { mut columns, if_exists } => {
            if if_exists {
                let snapshot = table.snapshot().await?;
                columns.retain(|col| crate::table::schema::split_path(col).ok().is_some_and(|p| snapshot.schema().field_at(&p).is_some()));
                if columns.is_empty() {
                    return Ok(SqlOutput::committed(None));
                }
            }
            table.drop_columns(&columns.iter().map(String::as_str).collect::<Vec<_>>()).await?
        }
        AlterAction::ChangeType { column, to } => table.change_column_type(&column, to).await?,
        AlterAction::AlterColumn { column, change } => table.alter_column(&column, change).await?,
        AlterAction::SetProperties(props) => table.set_properties(props.into_iter().collect()).await?,
        AlterAction::UnsetProperties { keys, if_exists, at } => {
            let snapshot = table.snapshot().await?;
            let config = &snapshot.metadata().configuration;
            if let Some(missing) = keys.iter().find(|k| !config.contains_key(*k)) {
                if !if_exists {
                    return Err(sql_error(at, format!("the table has no property {missing}; UNSET TBLPROPERTIES IF EXISTS ignores missing ones")));
                }
            }
            let keys: Vec<String> = keys.into_iter().filter(|k| config.contains_key(k)).collect();
            if keys.is_empty() {
                return Ok(SqlOutput::committed(None));
            }
            table.unset_properties(&keys).await?
        }
        AlterAction::ClusterBy(columns) => table.cluster_by(&columns).await?,
    };
    Ok(SqlOutput::committed(Some(version)))
}
