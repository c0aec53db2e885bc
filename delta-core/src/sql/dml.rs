//! DML: `DELETE FROM`, `UPDATE … SET`, `MERGE INTO … USING … ON … WHEN …`
//! (including `UPDATE SET *`, `INSERT *` and `WHEN NOT MATCHED BY SOURCE`), parsed with
//! `sqlparser` and run through [`Table::delete_where`], [`Table::update_where`] and
//! [`Table::merge`].
//!
//! Tables are named as Spark names them by path: ``delta.`/path/to/table` `` (a Delta table) and,
//! as a MERGE source, ``parquet.`/path/file.parquet` ``. Errors carry the line and column of the
//! part of the statement that is wrong.

use sqlparser::ast::{self, Spanned};
use sqlparser::dialect::DatabricksDialect;
use sqlparser::parser::Parser;

use crate::error::{DeltaError, DeltaResult};
use crate::log::storage::TableOptions;
use crate::ops::merge::{MergeAction, MergeWhen};
use crate::read::snapshot::Table;
use crate::table::expr::{from_sql, Expr};
use crate::write::rewrite::DmlResult;

fn at(node: &impl Spanned, message: impl Into<String>) -> DeltaError {
    let span = node.span();
    DeltaError::Sql { message: message.into(), line: span.start.line, column: span.start.column }
}

/// A relation named in a statement.
enum Relation {
    Delta(String),
    Parquet(String),
    /// A query (MERGE source) run by the engine.
    Query(String),
}

fn relation(factor: &ast::TableFactor, queries: Option<&dyn QueryRunner>) -> DeltaResult<(Relation, Option<String>)> {
    let ast::TableFactor::Table { name, alias, .. } = factor else {
        return Err(at(
            factor,
            format!("`{factor}` is not a table reference; name tables as delta.`/path` or parquet.`/path/file.parquet`"),
        ));
    };
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident().map(|i| i.value.clone())).collect();
    let rel = match parts.as_slice() {
        [fmt, path] if fmt.eq_ignore_ascii_case("delta") => Relation::Delta(path.clone()),
        [fmt, path] if fmt.eq_ignore_ascii_case("parquet") => Relation::Parquet(path.clone()),
        [path] if path.contains('/') => Relation::Delta(path.clone()),
        [name] if queries.and_then(|q| q.locate(name)).is_some() => {
            Relation::Delta(queries.and_then(|q| q.locate(name)).unwrap_or_default())
        }
        _ => {
            return Err(at(
                name,
                format!("unknown table `{name}`: there is no catalog; name tables by path as delta.`/path/to/table` or parquet.`/path/file.parquet`"),
            ))
        }
    };
    Ok((rel, alias.as_ref().map(|a| a.name.value.clone())))
}

fn delta_table(rel: Relation, node: &impl Spanned, options: &TableOptions) -> DeltaResult<Table> {
    match rel {
        Relation::Delta(path) => Table::open_with(&path, options.clone()),
        Relation::Parquet(_) | Relation::Query(_) => Err(at(node, "the target of a DML statement must be a Delta table (delta.`/path`)")),
    }
}

fn expr(text: &str, e: &ast::Expr, alias: Option<&str>) -> DeltaResult<Expr> {
    let parsed = from_sql(text, e.clone()).map_err(|err| at(e, err.to_string()))?;
    // A single-table statement's alias qualifies nothing the table lacks: strip it.
    match alias {
        Some(a) => parsed
            .map_columns(&mut |p: &[String]| Ok(if p.len() > 1 && p[0].eq_ignore_ascii_case(a) { p[1..].to_vec() } else { p.to_vec() })),
        None => Ok(parsed),
    }
}

fn column_name(target: &ast::AssignmentTarget) -> DeltaResult<String> {
    match target {
        ast::AssignmentTarget::ColumnName(n) => {
            Ok(n.0.iter().filter_map(|p| p.as_ident().map(|i| i.value.clone())).collect::<Vec<_>>().join("."))
        }
        ast::AssignmentTarget::Tuple(_) => Err(at(target, "tuple assignments are not supported; assign one column at a time")),
    }
}

async fn read_parquet(path: &str) -> DeltaResult<Vec<arrow::array::RecordBatch>> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || -> DeltaResult<Vec<arrow::array::RecordBatch>> {
        let file = std::fs::File::open(&path).map_err(|e| DeltaError::DataFileNotFound { path: format!("{path}: {e}") })?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| DeltaError::parquet(&path, e))?
            .build()
            .map_err(|e| DeltaError::parquet(&path, e))?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    })
    .await
    .map_err(|e| DeltaError::Internal(format!("parquet read task failed: {e}")))?
}

pub(super) fn position_in(message: &str) -> Option<(u64, u64)> {
    let rest = &message[message.find("Line: ")? + 6..];
    let line: u64 = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let rest = &rest[rest.find("Column: ")? + 8..];
    let column: u64 = rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some((line, column))
}

/// A MERGE source that is a query or a table name delta-core cannot read itself, as rows.
pub type QuerySource = (arrow::datatypes::SchemaRef, futures::stream::BoxStream<'static, DeltaResult<arrow::array::RecordBatch>>);

/// Runs queries for MERGE sources (`USING (SELECT …) s`, or a table name of the engine's
/// catalog). delta-core has no query engine; an engine (delta-exec's DataFusion session) passes
/// itself here.
pub trait QueryRunner: Send + Sync {
    /// The rows of one query, given as SQL text.
    fn run<'a>(&'a self, sql: &'a str) -> futures::future::BoxFuture<'a, DeltaResult<QuerySource>>;

    /// The location of a Delta table the engine knows by this name (a DML target by name).
    fn locate(&self, _name: &str) -> Option<String> {
        None
    }

    /// Writes the rows of one query into `table` (CREATE TABLE … AS SELECT). By default the rows
    /// come here ([`QueryRunner::run`]) and are written by this process; an engine that runs
    /// queries on a cluster overrides it to have its executors write the data files
    /// ([`Table::begin_write`]).
    fn write<'a>(
        &'a self,
        sql: &'a str,
        table: &'a Table,
        options: crate::write::WriteOptions,
    ) -> futures::future::BoxFuture<'a, DeltaResult<crate::write::WriteResult>> {
        Box::pin(async move {
            let (_, stream) = self.run(sql).await?;
            table.write_stream(stream, options).await
        })
    }
}

/// Parses and runs one DML statement (DELETE, UPDATE, MERGE).
pub(super) async fn execute(text: &str, options: &TableOptions, queries: Option<&dyn QueryRunner>) -> DeltaResult<DmlResult> {
    let statements = Parser::parse_sql(&DatabricksDialect {}, text).map_err(|e| {
        let message = e.to_string();
        // sqlparser puts the position in the message when it knows it; else the end of the text.
        let (line, column) = position_in(&message).unwrap_or_else(|| {
            let lines = text.lines().count().max(1) as u64;
            (lines, text.lines().last().map(|l| l.chars().count() as u64 + 1).unwrap_or(1))
        });
        let message = message.split(" at Line:").next().unwrap_or(&message).to_string();
        DeltaError::Sql { message: format!("cannot parse the statement: {message}"), line, column }
    })?;
    let [statement] = statements.as_slice() else {
        return Err(DeltaError::Sql { message: format!("expected one statement, found {}", statements.len()), line: 1, column: 1 });
    };
    match statement {
        ast::Statement::Delete(d) => {
            let tables = match &d.from {
                ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
            };
            let [t] = tables.as_slice() else { return Err(at(statement, "DELETE names exactly one table")) };
            if !t.joins.is_empty() || d.using.is_some() {
                return Err(at(statement, "DELETE … USING / joins are not supported; use MERGE … WHEN MATCHED THEN DELETE"));
            }
            let (rel, alias) = relation(&t.relation, queries)?;
            let table = delta_table(rel, &t.relation, options)?;
            let predicate = d.selection.as_ref().map(|e| expr(text, e, alias.as_deref())).transpose()?;
            table.delete_where(predicate).await
        }
        ast::Statement::Update(u) => {
            if !u.table.joins.is_empty() || u.from.is_some() {
                return Err(at(statement, "UPDATE … FROM / joins are not supported; use MERGE … WHEN MATCHED THEN UPDATE"));
            }
            let (rel, alias) = relation(&u.table.relation, queries)?;
            let table = delta_table(rel, &u.table.relation, options)?;
            let predicate = u.selection.as_ref().map(|e| expr(text, e, alias.as_deref())).transpose()?;
            let mut assignments = Vec::with_capacity(u.assignments.len());
            for a in &u.assignments {
                let mut col = column_name(&a.target)?;
                if let Some(al) = &alias {
                    if let Some(rest) = col.strip_prefix(&format!("{al}.")) {
                        col = rest.to_string();
                    }
                }
                assignments.push((col, expr(text, &a.value, alias.as_deref())?));
            }
            table.update_where(predicate, assignments).await
        }
        ast::Statement::Merge(m) => {
            let (target_rel, target_alias) = relation(&m.table, queries)?;
            let table = delta_table(target_rel, &m.table, options)?;
            let (source_rel, source_alias) = match (&m.source, queries) {
                (ast::TableFactor::Derived { subquery, alias, .. }, Some(_)) => {
                    (Relation::Query(subquery.to_string()), alias.as_ref().map(|a| a.name.value.clone()))
                }
                (ast::TableFactor::Table { name, alias, args: None, .. }, Some(_)) if relation(&m.source, None).is_err() && queries.and_then(|q| q.locate(&name.to_string())).is_none() => {
                    (Relation::Query(format!("SELECT * FROM {name}")), alias.as_ref().map(|a| a.name.value.clone()))
                }
                _ => relation(&m.source, queries)?,
            };
            let (source, schema) = match source_rel {
                Relation::Query(sql) => {
                    let runner = queries.ok_or_else(|| at(&m.source, "a query as MERGE source needs a query engine"))?;
                    let (schema, stream) = runner.run(&sql).await?;
                    (stream, schema)
                }
                Relation::Delta(path) => {
                    let snapshot = Table::open_with(&path, options.clone())?.snapshot().await?;
                    let scan = snapshot.scan().build()?;
                    let schema = scan.schema();
                    (scan.execute(), schema)
                }
                Relation::Parquet(path) => {
                    let batches = read_parquet(&path).await?;
                    let file = std::fs::File::open(&path).map_err(|e| DeltaError::DataFileNotFound { path: format!("{path}: {e}") })?;
                    let schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(|e| DeltaError::parquet(&path, e))?
                        .schema()
                        .clone();
                    (futures::StreamExt::boxed(futures::stream::iter(batches.into_iter().map(Ok))), schema)
                }
            };
            from_sql(text, (*m.on).clone()).map_err(|e| at(m.on.as_ref(), e.to_string()))?;
            let mut b = table.merge_stream(source, &m.on.to_string()).with_source_schema(schema);
            if let Some(a) = &target_alias {
                b = b.with_target_alias(a);
            }
            if let Some(a) = &source_alias {
                b = b.with_source_alias(a);
            }
            for c in &m.clauses {
                if let Some(p) = &c.predicate {
                    from_sql(text, p.clone()).map_err(|e| at(p, e.to_string()))?;
                }
                let condition = c.predicate.as_ref().map(|p| p.to_string());
                let when = match c.clause_kind {
                    ast::MergeClauseKind::Matched => MergeWhen::Matched,
                    ast::MergeClauseKind::NotMatched | ast::MergeClauseKind::NotMatchedByTarget => MergeWhen::NotMatched,
                    ast::MergeClauseKind::NotMatchedBySource => MergeWhen::NotMatchedBySource,
                };
                let action = match &c.action {
                    ast::MergeAction::Delete { .. } => MergeAction::Delete,
                    ast::MergeAction::Update(u) => {
                        if u.update_predicate.is_some() || u.delete_predicate.is_some() {
                            return Err(at(
                                c,
                                "UPDATE … WHERE / DELETE WHERE inside a MERGE clause is not Spark SQL; put the condition after WHEN … AND",
                            ));
                        }
                        match &u.kind {
                            ast::MergeUpdateKind::Wildcard => MergeAction::UpdateAll,
                            ast::MergeUpdateKind::Set(assignments) => {
                                let mut set = Vec::new();
                                for a in assignments {
                                    from_sql(text, a.value.clone()).map_err(|e| at(&a.value, e.to_string()))?;
                                    set.push((column_name(&a.target)?, a.value.to_string()));
                                }
                                MergeAction::Update(set)
                            }
                        }
                    }
                    ast::MergeAction::Insert(i) => match &i.kind {
                        ast::MergeInsertKind::Wildcard => MergeAction::InsertAll,
                        ast::MergeInsertKind::Values(v) => {
                            let [row] = v.rows.as_slice() else { return Err(at(c, "INSERT VALUES in MERGE takes exactly one row")) };
                            if i.columns.is_empty() || row.content.len() != i.columns.len() {
                                return Err(at(
                                    c,
                                    format!(
                                        "INSERT lists {} column(s) and {} value(s); name the columns",
                                        i.columns.len(),
                                        row.content.len()
                                    ),
                                ));
                            }
                            let mut values = Vec::new();
                            for (col, v) in i.columns.iter().zip(&row.content) {
                                from_sql(text, v.clone()).map_err(|e| at(v, e.to_string()))?;
                                let name = col.0.iter().filter_map(|p| p.as_ident().map(|i| i.value.clone())).collect::<Vec<_>>().join(".");
                                values.push((name, v.to_string()));
                            }
                            MergeAction::Insert(values)
                        }
                        ast::MergeInsertKind::Row => {
                            return Err(at(c, "INSERT ROW is not supported; use INSERT * or INSERT (cols) VALUES (…)"))
                        }
                    },
                    ast::MergeAction::DoNothing { .. } => return Err(at(c, "DO NOTHING is not Spark SQL; leave the clause out")),
                };
                b = b.when(when, condition.as_deref(), action);
            }
            b.execute().await
        }
        other => Err(at(other, "only DELETE, UPDATE and MERGE statements are supported")),
    }
}
