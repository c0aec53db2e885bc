//! Spark SQL statements beyond queries: [`Session::execute`] runs any one statement.
//!
//! | statement | how |
//! | --- | --- |
//! | `SELECT`, `WITH`, `VALUES`, `EXPLAIN [ANALYZE]` | DataFusion, after time travel and `table_changes(…)` are resolved |
//! | `INSERT INTO / INSERT OVERWRITE [TABLE] t [(cols)] SELECT … / VALUES …` | delta-core's writer, append or overwrite; columns by position, as Spark |
//! | DDL (`CREATE [OR REPLACE] TABLE`, `… AS SELECT`, `ALTER TABLE`), DML (`DELETE`, `UPDATE`, `MERGE`), `INSERT … REPLACE WHERE`, `OPTIMIZE`, `REORG`, `VACUUM`, `RESTORE`, `CONVERT TO DELTA`, `DESCRIBE`, `SHOW TBLPROPERTIES/COLUMNS` | delta-core's `sql` module, with this session running the queries inside them (CTAS, MERGE sources) |
//!
//! `table_changes('path or name', start [, end])` in a FROM clause reads the change data feed
//! (versions, or timestamps as strings), as Databricks SQL does: the feed is read before
//! planning and registered under a fresh name.
//!
//! Tables are registered names, ``delta.`/path` `` or a path. `VERSION AS OF n` and
//! `TIMESTAMP AS OF '…'` after a table name read that snapshot: the statement is parsed with
//! Spark's (Databricks) dialect, each versioned table is opened at its version and registered
//! under a fresh name, and the rewritten statement goes to DataFusion (whose planner would
//! otherwise ignore the clause).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    self, Expr as SqlExpr, ObjectName, ObjectNamePart, Statement, TableFactor, TableObject,
    TableVersion, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::DatabricksDialect;
use datafusion::sql::sqlparser::parser::Parser;
use delta_core::write::{SaveMode, WriteOptions};
use delta_core::Table;
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::provider::{df_error, DeltaTableProvider};
use crate::session::{DataFrame, Session};

/// What a statement did.
pub enum Outcome {
    /// A query: its rows, lazily.
    Rows(Box<DataFrame>),
    /// A write or DML: the version it committed (none when nothing changed) and its metrics.
    Committed { version: Option<i64>, metrics: Vec<(String, String)> },
}

fn plan_error(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(message.into())
}

fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0.iter().filter_map(ObjectNamePart::as_ident).map(|i| i.value.clone()).collect()
}

/// A table's location: ``delta.`/p` `` or a path, else a registered name.
fn location_of(session: &Session, name: &ObjectName) -> Option<String> {
    match name_parts(name).as_slice() {
        [fmt, path] if fmt.eq_ignore_ascii_case("delta") => Some(path.clone()),
        [one] if one.contains('/') || one.contains(':') => Some(one.clone()),
        [one] => session.location_of(one),
        _ => None,
    }
}

/// Versioned table references of a statement, collected, then renamed.
struct TimeTravel<'a> {
    session: &'a Session,
    /// Registered names read at their latest version.
    latest: Vec<String>,
    found: Vec<(String, TableVersion)>,
    renames: Vec<String>,
    next: usize,
    error: Option<DataFusionError>,
}

impl VisitorMut for TimeTravel<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, version, .. } = factor {
            if version.is_none() && self.renames.is_empty() {
                if let [one] = name_parts(name).as_slice() {
                    self.latest.push(one.clone());
                }
            }
            if let Some(v) = version.take() {
                if self.renames.is_empty() {
                    match location_of(self.session, name) {
                        Some(loc) => self.found.push((loc, v)),
                        None => {
                            self.error = Some(plan_error(format!("`{name}` is not a Delta table; VERSION/TIMESTAMP AS OF reads Delta tables")));
                            return ControlFlow::Break(());
                        }
                    }
                } else if let Some(new) = self.renames.get(self.next) {
                    *name = ObjectName::from(vec![ast::Ident::new(new.clone())]);
                    self.next += 1;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Milliseconds since the epoch of a `TIMESTAMP AS OF` value: `'2024-01-01'`,
/// `'2024-01-01 12:00:00[.fff]'` or RFC 3339, UTC unless it says otherwise.
fn timestamp_ms(e: &SqlExpr) -> Result<i64> {
    let text = match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => return Err(plan_error(format!("TIMESTAMP AS OF takes a timestamp string, not `{other}`"))),
        },
        SqlExpr::TypedString(t) => match &t.value.value {
            Value::SingleQuotedString(s) => s.clone(),
            other => return Err(plan_error(format!("TIMESTAMP AS OF takes a timestamp string, not `{other}`"))),
        },
        other => return Err(plan_error(format!("TIMESTAMP AS OF takes a timestamp string, not `{other}`"))),
    };
    let t = text.trim();
    if let Some(ms) = delta_core::sql::parse_timestamp(t) {
        return Ok(ms);
    }
    Err(plan_error(format!("TIMESTAMP AS OF '{t}' is not a timestamp (YYYY-MM-DD[ HH:MM:SS] or RFC 3339)")))
}

static TIME_TRAVEL_NAMES: AtomicUsize = AtomicUsize::new(0);

/// `table_changes(…)` calls of a statement, collected, then renamed.
#[derive(Default)]
struct ChangeFeeds {
    found: Vec<Vec<ast::FunctionArg>>,
    renames: Vec<String>,
    next: usize,
}

impl VisitorMut for ChangeFeeds {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args, .. } = factor {
            let is_feed = args.is_some() && name_parts(name).last().is_some_and(|n| n.eq_ignore_ascii_case("table_changes"));
            if is_feed {
                if self.renames.is_empty() {
                    self.found.push(args.as_ref().map(|a| a.args.clone()).unwrap_or_default());
                } else if let Some(new) = self.renames.get(self.next) {
                    *name = ObjectName::from(vec![ast::Ident::new(new.clone())]);
                    *args = None;
                    self.next += 1;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// A `table_changes` bound: a version (integer) or a timestamp (string, as ms).
enum Bound {
    Version(i64),
    Timestamp(i64),
}

fn feed_bound(arg: &ast::FunctionArg) -> Result<Bound> {
    let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = arg else {
        return Err(plan_error(format!("table_changes takes versions or timestamps, not `{arg}`")));
    };
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().map(Bound::Version).map_err(|_| plan_error(format!("`{n}` is not a version"))),
            _ => timestamp_ms(e).map(Bound::Timestamp),
        },
        _ => timestamp_ms(e).map(Bound::Timestamp),
    }
}

impl Session {
    /// Opens every `VERSION AS OF` / `TIMESTAMP AS OF` table of `statement` at its version,
    /// registers each under a fresh name and points the statement at it.
    async fn resolve_time_travel(&self, statement: &mut Statement) -> Result<()> {
        let mut tt = TimeTravel { session: self, latest: Vec::new(), found: Vec::new(), renames: Vec::new(), next: 0, error: None };
        // The first pass takes the clauses out; a clone keeps the original for the second.
        let mut probe = statement.clone();
        let _ = probe.visit(&mut tt);
        if let Some(e) = tt.error.take() {
            return Err(e);
        }
        // A registered name reads the table as it is now, as a name in Spark does.
        for name in std::mem::take(&mut tt.latest) {
            self.refresh(&name).await?;
        }
        if tt.found.is_empty() {
            return Ok(());
        }
        let mut renames = Vec::with_capacity(tt.found.len());
        for (location, version) in std::mem::take(&mut tt.found) {
            let table = Table::open_with(&location, self.table_options()).map_err(df_error)?;
            let snapshot = match &version {
                TableVersion::VersionAsOf(e) => {
                    let v: i64 = e.to_string().parse().map_err(|_| plan_error(format!("VERSION AS OF takes a version number, not `{e}`")))?;
                    table.snapshot_at(v).await
                }
                TableVersion::TimestampAsOf(e) | TableVersion::ForSystemTimeAsOf(e) => table.snapshot_at_timestamp(timestamp_ms(e)?).await,
                other => return Err(plan_error(format!("`{other}` is not a Delta time travel clause (VERSION AS OF n, TIMESTAMP AS OF '…')"))),
            }
            .map_err(df_error)?;
            let name = format!("__delta_time_travel_{}", TIME_TRAVEL_NAMES.fetch_add(1, Ordering::Relaxed));
            self.context().register_table(&name, Arc::new(DeltaTableProvider::try_new(snapshot)?))?;
            renames.push(name);
        }
        tt.renames = renames;
        let _ = statement.visit(&mut tt);
        Ok(())
    }

    /// Reads the change feed of every `table_changes(…)` call of `statement`, registers each
    /// under a fresh name and points the statement at it.
    async fn resolve_table_changes(&self, statement: &mut Statement) -> Result<()> {
        let mut feeds = ChangeFeeds::default();
        let mut probe = statement.clone();
        let _ = probe.visit(&mut feeds);
        if feeds.found.is_empty() {
            return Ok(());
        }
        let mut renames = Vec::with_capacity(feeds.found.len());
        for args in std::mem::take(&mut feeds.found) {
            let usage = "table_changes('table path or name', start [, end]) with versions or timestamps";
            let (table, start, end) = match args.as_slice() {
                [t, s] => (t, s, None),
                [t, s, e] => (t, s, Some(e)),
                _ => return Err(plan_error(format!("table_changes takes 2 or 3 arguments: {usage}"))),
            };
            let table = match table {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(SqlExpr::Value(v))) => match &v.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    _ => return Err(plan_error(format!("the first argument of {usage}, as a string"))),
                },
                _ => return Err(plan_error(format!("the first argument of {usage}, as a string"))),
            };
            let location = if table.contains('/') || table.contains(':') {
                table.clone()
            } else {
                self.location_of(&table).ok_or_else(|| plan_error(format!("table_changes: unknown table `{table}` (a path, or a registered name)")))?
            };
            let t = Table::open_with(&location, self.table_options()).map_err(df_error)?;
            let changes = match (feed_bound(start)?, end.map(feed_bound).transpose()?) {
                (Bound::Version(s), None) => t.table_changes(s, None, None).await,
                (Bound::Version(s), Some(Bound::Version(e))) => t.table_changes(s, Some(e), None).await,
                (Bound::Timestamp(s), None) => t.table_changes_by_timestamp(s, None, None).await,
                (Bound::Timestamp(s), Some(Bound::Timestamp(e))) => t.table_changes_by_timestamp(s, Some(e), None).await,
                _ => return Err(plan_error("table_changes: give both bounds as versions or both as timestamps")),
            }
            .map_err(df_error)?;
            let name = format!("__delta_changes_{}", TIME_TRAVEL_NAMES.fetch_add(1, Ordering::Relaxed));
            self.context().register_table(&name, Arc::new(crate::changes::ChangeFeedProvider::new(changes)))?;
            renames.push(name);
        }
        feeds.renames = renames;
        let _ = statement.visit(&mut feeds);
        Ok(())
    }

    /// Plans a query statement (after time travel and change feeds) on DataFusion.
    async fn query(&self, mut statement: Statement) -> Result<DataFrame> {
        self.resolve_table_changes(&mut statement).await?;
        self.resolve_time_travel(&mut statement).await?;
        let state = self.context().state();
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(statement))).await?;
        Ok(self.frame(datafusion::dataframe::DataFrame::new(state, plan)))
    }

    /// Parses one statement in Spark's dialect.
    fn parse_one(text: &str) -> Result<Statement> {
        let mut statements = Parser::parse_sql(&DatabricksDialect {}, text).map_err(|e| DataFusionError::SQL(Box::new(e), None))?;
        match statements.len() {
            1 => Ok(statements.remove(0)),
            n => Err(plan_error(format!("expected one statement, found {n}"))),
        }
    }

    /// A query in Spark SQL (time travel included), lazily.
    pub(crate) async fn sql_query(&self, text: &str) -> Result<DataFrame> {
        let statement = Self::parse_one(text)?;
        match statement {
            Statement::Query(_) | Statement::Explain { .. } => self.query(statement).await,
            _ => {
                // Other statements DataFusion knows itself (SET, SHOW, CREATE VIEW, …).
                Ok(self.frame(self.context().sql(text).await?))
            }
        }
    }

    /// Runs one Spark SQL statement: a query (rows, lazily), INSERT, or any of Delta's own
    /// statements (DDL, DML, utility commands, DESCRIBE/SHOW), which delta-core's `sql` module
    /// runs with this session answering the queries inside them.
    pub async fn execute(&self, text: &str) -> Result<Outcome> {
        if delta_core::sql::is_delta_statement(text) {
            return self.delta_statement(text).await;
        }
        let statement = Self::parse_one(text)?;
        match statement {
            Statement::Query(_) | Statement::Explain { .. } => Ok(Outcome::Rows(Box::new(self.query(statement).await?))),
            // Boxed: its state (snapshot, plans) would otherwise sit in every `execute` future.
            Statement::Insert(ins) => Box::pin(self.insert(ins)).await,
            other => Ok(Outcome::Rows(Box::new(self.frame(self.context().sql(&other.to_string()).await?)))),
        }
    }

    /// `INSERT INTO|OVERWRITE t [(cols)] query|VALUES`: the query by position into the table's
    /// columns, streamed into delta-core's writer as one commit.
    async fn insert(&self, ins: ast::Insert) -> Result<Outcome> {
        let TableObject::TableName(name) = &ins.table else {
            return Err(plan_error("INSERT names a table: a registered name or delta.`/path`"));
        };
        let location =
            location_of(self, name).ok_or_else(|| plan_error(format!("`{name}` is not a Delta table; INSERT writes Delta tables")))?;
        let source = ins.source.ok_or_else(|| plan_error("INSERT needs a query or VALUES"))?;
        let df = self.query(Statement::Query(source)).await?;
        // By position, as Spark: the query's columns take the listed names, or the
        // table's in order, and the table's types (Spark's store assignment: `1.10` into
        // a DECIMAL column, `'2024-03-05'` into a DATE; a value that does not fit is an
        // error of the cast, never a silent NULL).
        let snapshot = Table::open_with(&location, self.table_options()).map_err(df_error)?.snapshot().await.map_err(df_error)?;
        let names: Vec<String> = if ins.columns.is_empty() {
            snapshot.schema().fields.iter().map(|f| f.name.clone()).collect()
        } else {
            ins.columns.iter().map(|c| name_parts(c).join(".")).collect()
        };
        let target = snapshot.arrow_schema();
        let width = df.inner().schema().fields().len();
        if width != names.len() {
            return Err(plan_error(format!(
                "INSERT into `{name}`: the query has {width} column(s) and the target {} ({})",
                names.len(),
                names.join(", ")
            )));
        }
        let renamed: Vec<datafusion::logical_expr::Expr> = df
            .inner()
            .schema()
            .iter()
            .zip(&names)
            .map(|((q, f), n)| {
                let column = datafusion::logical_expr::Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()));
                let to = target.fields().iter().find(|t| t.name().eq_ignore_ascii_case(n)).map(|t| t.data_type());
                let column = match to {
                    Some(to) if to != f.data_type() && arrow::compute::can_cast_types(f.data_type(), to) => {
                        datafusion::logical_expr::cast(column, to.clone())
                    }
                    _ => column,
                };
                column.alias(n)
            })
            .collect();
        let df = df.select_exprs(renamed)?;
        let options = WriteOptions { mode: if ins.overwrite { SaveMode::Overwrite } else { SaveMode::Append }, ..Default::default() };
        let result = df.write_with(options).save(&location).await?;
        Ok(Outcome::Committed { version: result.version, metrics: write_metrics(&result) })
    }

    /// A statement delta-core runs, with this session running the queries inside it.
    async fn delta_statement(&self, text: &str) -> Result<Outcome> {
        let runner = SessionQueries { session: self.clone() };
        let output = delta_core::sql::execute(text, &self.table_options(), Some(&runner)).await.map_err(df_error)?;
        match output {
            delta_core::sql::SqlOutput::Committed(result) => {
                let mut metrics: Vec<(String, String)> = result.metrics.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
                if let Some(e) = &result.post_commit_error {
                    metrics.push(("post_commit_error".into(), e.clone()));
                }
                Ok(Outcome::Committed { version: result.version, metrics })
            }
            delta_core::sql::SqlOutput::Rows { schema, batches } => {
                let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
                Ok(Outcome::Rows(Box::new(self.frame(self.context().read_table(Arc::new(table))?))))
            }
        }
    }
}

fn write_metrics(r: &delta_core::write::WriteResult) -> Vec<(String, String)> {
    let mut m = vec![
        ("numFiles".to_string(), r.files_added.to_string()),
        ("numRemovedFiles".to_string(), r.files_removed.to_string()),
        ("numOutputRows".to_string(), r.rows_written.to_string()),
    ];
    if let Some(e) = &r.post_commit_error {
        m.push(("post_commit_error".into(), e.clone()));
    }
    m
}

/// The session as delta-core's runner of MERGE source queries.
struct SessionQueries {
    session: Session,
}

impl delta_core::sql::QueryRunner for SessionQueries {
    fn locate(&self, name: &str) -> Option<String> {
        self.session.location_of(name)
    }

    fn run<'a>(&'a self, sql: &'a str) -> futures::future::BoxFuture<'a, delta_core::DeltaResult<delta_core::sql::QuerySource>> {
        async move {
            let failed = |e: DataFusionError| delta_core::DeltaError::WriteRefused { reason: format!("the MERGE source query failed: {e}") };
            let df = self.session.sql_query(sql).await.map_err(failed)?;
            let schema = Arc::new(df.inner().schema().as_arrow().clone());
            let stream = df.execute_stream().await.map_err(failed)?;
            let stream = stream.map_err(failed).boxed();
            Ok((schema, stream))
        }
        .boxed()
    }

    /// CTAS: on a cluster the executors write the files ([`crate::write`]); locally the rows
    /// stream into delta-core's writer.
    fn write<'a>(
        &'a self,
        sql: &'a str,
        table: &'a Table,
        options: WriteOptions,
    ) -> futures::future::BoxFuture<'a, delta_core::DeltaResult<delta_core::write::WriteResult>> {
        async move {
            if !self.session.is_distributed() {
                let (_, stream) = self.run(sql).await?;
                return table.write_stream(stream, options).await;
            }
            let failed = |e: DataFusionError| delta_core::DeltaError::WriteRefused { reason: format!("the query being written failed: {e}") };
            let df = self.session.sql_query(sql).await.map_err(failed)?;
            let location = table.location().root_url().to_string();
            df.write_with(options).save(&location).await.map_err(|e| match e {
                DataFusionError::External(inner) => match inner.downcast::<delta_core::DeltaError>() {
                    Ok(d) => *d,
                    Err(other) => failed(DataFusionError::External(other)),
                },
                other => failed(other),
            })
        }
        .boxed()
    }
}

/// Names registered for SQL, with their locations (for time travel and DML by name).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub locations: HashMap<String, String>,
}
