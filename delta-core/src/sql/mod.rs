//! Spark / Delta SQL text, run on delta-core's operations: the top layer.
//!
//! | statement | runs |
//! | --- | --- |
//! | `DELETE`, `UPDATE`, `MERGE` | [`crate::ops::dml`], [`crate::ops::merge`] (`dml.rs`) |
//! | `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t (cols…) USING delta …`, `REPLACE TABLE`, `… AS SELECT` | [`Table::create_table`], the writer (`ddl.rs`) |
//! | `INSERT INTO/OVERWRITE t [(cols)] VALUES …`, `INSERT INTO t REPLACE WHERE p SELECT …` | the writer (`ddl.rs`) |
//! | `ALTER TABLE t ADD/RENAME/DROP COLUMN…, ALTER COLUMN…, SET/UNSET TBLPROPERTIES, ADD/DROP CONSTRAINT, CLUSTER BY, DROP FEATURE` | [`crate::ops::alter`], the writer's property and constraint changes (`ddl.rs`) |
//! | `OPTIMIZE`, `REORG TABLE … APPLY (PURGE)`, `VACUUM`, `RESTORE`, `CREATE TABLE … SHALLOW CLONE`, `CONVERT TO DELTA`, `GENERATE symlink_format_manifest` | [`crate::ops::optimize`], [`crate::ops::maintenance`], [`crate::ops::convert`] (`commands.rs`) |
//! | `DESCRIBE HISTORY/DETAIL/[TABLE]`, `SHOW TBLPROPERTIES/COLUMNS` | result sets with Spark's column names (`commands.rs`) |
//!
//! DML parses with `sqlparser`'s Databricks dialect, which covers it. The rest is Delta's own
//! grammar, parsed word by word by [`cursor::Cursor`] on `sqlparser`'s tokenizer, handing
//! expressions to `sqlparser`'s expression parser and types to the schema's type parser. The CLI
//! subcommands call the same `Table` operations, so SQL and the CLI share one code path.
//!
//! Tables are ``delta.`/path` `` (or a bare path in back-ticks); a plain name is resolved by the
//! engine's catalog through [`QueryRunner::locate`] (delta-core itself has none). Queries inside
//! a statement (`CREATE … AS SELECT`, `INSERT … REPLACE WHERE … SELECT`, MERGE sources) run on
//! the engine passed as [`QueryRunner`]; without one they are refused, while everything else
//! works with delta-core alone.

mod commands;
mod cursor;
mod ddl;
mod dml;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

pub use ddl::{parse_table_elements, parse_timestamp, TableElements};
pub use dml::{QueryRunner, QuerySource};

use crate::error::{DeltaError, DeltaResult};
use crate::log::storage::TableOptions;
use crate::read::snapshot::Table;
use crate::write::rewrite::DmlResult;
use cursor::{Cursor, TableName};

/// What a statement did.
#[derive(Debug)]
pub enum SqlOutput {
    /// A change: the version committed (`None` when nothing changed) and its metrics.
    Committed(DmlResult),
    /// A result set (DESCRIBE, SHOW, VACUUM).
    Rows { schema: SchemaRef, batches: Vec<RecordBatch> },
}

impl SqlOutput {
    fn committed(version: Option<i64>) -> Self {
        SqlOutput::Committed(DmlResult { version, metrics: Default::default(), post_commit_error: None })
    }
}

/// Parses and runs one DML statement (DELETE, UPDATE, MERGE).
pub async fn execute_sql(text: &str, options: &TableOptions) -> DeltaResult<DmlResult> {
    execute_sql_with(text, options, None).await
}

/// [`execute_sql`], with `queries` answering MERGE sources that are subqueries or tables named
/// in an engine's catalog.
pub async fn execute_sql_with(text: &str, options: &TableOptions, queries: Option<&dyn QueryRunner>) -> DeltaResult<DmlResult> {
    match execute(text, options, queries).await? {
        SqlOutput::Committed(r) => Ok(r),
        SqlOutput::Rows { .. } => Err(DeltaError::Sql { message: "the statement returns rows, not a change".into(), line: 1, column: 1 }),
    }
}

/// Whether `text` is a statement this module runs (see the table above), judged by its first
/// words. An engine sends these here and keeps the rest (queries, `INSERT … SELECT`, views).
pub fn is_delta_statement(text: &str) -> bool {
    let Ok(c) = Cursor::new(text) else { return false };
    let w = |n: usize| c.peek_word_n(n).unwrap_or_default();
    match w(0).as_str() {
        "DELETE" | "UPDATE" | "MERGE" | "ALTER" | "OPTIMIZE" | "REORG" | "VACUUM" | "RESTORE" | "CONVERT" | "GENERATE" => true,
        "CREATE" => w(1) == "TABLE" || (w(1) == "OR" && w(3) == "TABLE"),
        "REPLACE" => w(1) == "TABLE",
        "DESCRIBE" | "DESC" => true,
        "SHOW" => matches!(w(1).as_str(), "TBLPROPERTIES" | "COLUMNS"),
        "INSERT" => ddl::is_insert_replace_where(text),
        _ => false,
    }
}

/// A statement, parsed (the parser holds no state across the awaits of running it, so the
/// future of [`execute`] is `Send`).
enum Parsed {
    Dml,
    Create(ddl::Create),
    Insert(ddl::Insert),
    Alter(ddl::Alter),
    Utility(commands::Utility),
    Describe(commands::Describe),
}

fn parse(text: &str, ctx: &Context<'_>) -> DeltaResult<Parsed> {
    let mut c = Cursor::new(text)?;
    Ok(match c.peek_word().as_deref() {
        Some("DELETE" | "UPDATE" | "MERGE") => Parsed::Dml,
        Some("CREATE" | "REPLACE") => Parsed::Create(ddl::parse_create(&mut c, ctx)?),
        Some("ALTER") => Parsed::Alter(ddl::parse_alter(&mut c, ctx)?),
        Some("INSERT") => Parsed::Insert(ddl::parse_insert(&mut c, ctx)?),
        Some("DESCRIBE" | "DESC" | "SHOW") => Parsed::Describe(commands::parse_describe(&mut c, ctx)?),
        Some("OPTIMIZE" | "REORG" | "VACUUM" | "RESTORE" | "CONVERT" | "GENERATE") => Parsed::Utility(commands::parse_utility(&mut c, ctx)?),
        _ => {
            return Err(c.error(format!(
                "expected a Delta statement (CREATE/REPLACE/ALTER TABLE, INSERT, DELETE, UPDATE, MERGE, OPTIMIZE, REORG, VACUUM, RESTORE, CONVERT TO DELTA, DESCRIBE, SHOW), found {}",
                c.found()
            )))
        }
    })
}

/// Parses and runs one statement (see the module docs).
pub async fn execute(text: &str, options: &TableOptions, queries: Option<&dyn QueryRunner>) -> DeltaResult<SqlOutput> {
    let ctx = Context { options, queries };
    match parse(text, &ctx)? {
        Parsed::Dml => Ok(SqlOutput::Committed(dml::execute(text, options, queries).await?)),
        Parsed::Create(c) => ddl::run_create(c, &ctx).await,
        Parsed::Insert(i) => ddl::run_insert(i, &ctx).await,
        Parsed::Alter(a) => ddl::run_alter(a).await,
        Parsed::Utility(u) => commands::run_utility(u).await,
        Parsed::Describe(d) => commands::run_describe(d).await,
    }
}

/// What a statement runs with.
pub(crate) struct Context<'a> {
    options: &'a TableOptions,
    queries: Option<&'a dyn QueryRunner>,
}

impl Context<'_> {
    /// The table a name denotes; `at` places the error of an unknown name.
    fn open(&self, name: &TableName, c: &Cursor<'_>) -> DeltaResult<Table> {
        self.open_location(&self.location(name, c)?)
    }

    fn location(&self, name: &TableName, c: &Cursor<'_>) -> DeltaResult<String> {
        match name {
            TableName::Path(p) => Ok(p.clone()),
            TableName::Parquet(p) => Err(c.error_at(c.table_at, format!("parquet.`{p}` is not a Delta table; CONVERT TO DELTA turns it into one"))),
            TableName::Name(n) => self.queries.and_then(|q| q.locate(n)).ok_or_else(|| {
                c.error_at(c.table_at, format!("unknown table `{n}`: name a table by path, delta.`/path/to/table`, or register the name with the engine"))
            }),
        }
    }

    fn open_location(&self, location: &str) -> DeltaResult<Table> {
        Table::open_with(location, self.options.clone())
    }
}
