//! ALTER TABLE: add columns (nested too), rename and drop columns (column mapping), widen column
//! types (typeWidening), enable table features, and turn column mapping on for an existing
//! table. Properties and CHECK constraints are in [`crate::write::writer`] (`set_properties`,
//! `unset_properties`, `add_constraint`, `drop_constraint`).
//!
//! Every change is one metadata commit (with a protocol upgrade where the change needs a
//! feature); no data file is rewritten. Renames and drops rely on column mapping: files keep
//! their physical column names, the schema maps logical names onto them, so a dropped column's
//! data stays in old files, unread, until they are rewritten. Columns named by a CHECK
//! constraint, a generated column or the partitioning cannot be renamed or dropped.

use serde_json::{json, Value};

use crate::error::{DeltaError, DeltaResult};
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::Action;
use crate::table::expr::Expr;
use crate::table::features::feature_protocol;
use crate::table::protocol::TableFeature;
pub use crate::table::schema::is_widening;
use crate::table::schema::{record_type_change, same_path, split_path, within};
use crate::table::schema::{ColumnMappingMode, DataType, StructField, StructType};
use crate::write::enforce::ensure_writable;
use crate::write::txn::Transaction;

/// The struct holding the last element of `path`, and that element's index in it (if present).
fn parent_mut<'a>(schema: &'a mut StructType, path: &[String], shown: &str) -> DeltaResult<(&'a mut StructType, Option<usize>)> {
    let Some((last, parents)) = path.split_last() else { return Err(schema.column_not_found(shown)) };
    let mut st = schema;
    for p in parents {
        let err = st.column_not_found(shown);
        let i = st.fields.iter().position(|f| f.name.eq_ignore_ascii_case(p)).ok_or(err)?;
        st = match &mut st.fields[i].data_type {
            DataType::Struct(inner) => inner,
            other => {
                return Err(DeltaError::WriteRefused { reason: format!("`{p}` in `{shown}` is a {other}, not a struct") });
            }
        };
    }
    let idx = st.fields.iter().position(|f| f.name.eq_ignore_ascii_case(last));
    Ok((st, idx))
}

/// Refuses changes to columns that constraints, generated columns or the partitioning name.
fn ensure_unreferenced(snapshot: &Snapshot, path: &[String], what: &str) -> DeltaResult<()> {
    let shown = path.join(".");
    if path.len() == 1 && snapshot.partition_columns().iter().any(|p| p.eq_ignore_ascii_case(&path[0])) && what == "drop" {
        return Err(DeltaError::WriteRefused { reason: format!("cannot drop partition column `{shown}`") });
    }
    let mut expressions: Vec<(String, String)> = Vec::new();
    for (k, v) in &snapshot.metadata().configuration {
        if let (Some(name), Some(text)) = (k.strip_prefix("delta.constraints."), v) {
            expressions.push((format!("CHECK constraint {name}"), text.clone()));
        }
    }
    for f in &snapshot.schema().fields {
        if let Some(text) = f.metadata.get("delta.generationExpression").and_then(Value::as_str) {
            expressions.push((format!("generated column `{}`", f.name), text.to_string()));
            if within(std::slice::from_ref(&f.name), path) {
                return Err(DeltaError::WriteRefused { reason: format!("cannot {what} `{shown}`: it is a generated column") });
            }
        }
    }
    for (owner, text) in expressions {
        let e = Expr::parse(&text)?;
        if e.columns().iter().any(|c| within(c, path) || within(path, c)) {
            return Err(DeltaError::WriteRefused { reason: format!("cannot {what} `{shown}`: {owner} ({text}) uses it; drop that first") });
        }
    }
    Ok(())
}

/// A change to one column (`ALTER TABLE … ALTER COLUMN`).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnChange {
    SetNotNull,
    DropNotNull,
    Comment(String),
    /// A constant expression's SQL text.
    SetDefault(String),
    DropDefault,
}

fn ensure_column_mapping(snapshot: &Snapshot, what: &str) -> DeltaResult<()> {
    if snapshot.column_mapping_mode() == ColumnMappingMode::None {
        return Err(DeltaError::WriteRefused {
            reason: format!("{what} needs column mapping: set delta.columnMapping.mode = 'name' first (no data is rewritten)"),
        });
    }
    Ok(())
}

impl Table {
    async fn alter(
        &self,
        operation: &str,
        parameters: Value,
        change: impl FnOnce(&Snapshot, &mut StructType, &mut crate::table::protocol::Metadata) -> DeltaResult<()>,
    ) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        ensure_writable(snapshot.protocol())?;
        let mut schema = snapshot.schema().clone();
        let mut metadata = snapshot.metadata().clone();
        change(&snapshot, &mut schema, &mut metadata)?;
        metadata.schema_string = schema.to_json().to_string();
        let mut txn = Transaction::new(snapshot.clone()).with_operation(operation, parameters);
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        // Post-commit work never turns a committed change into an error.
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// `ALTER TABLE … ADD COLUMNS (path type, …)`: `path` is `name` or `struct.name` (nested);
    /// new columns are nullable and read as NULL from existing files.
    pub async fn add_columns(&self, columns: &[(&str, DataType)]) -> DeltaResult<i64> {
        let defs = columns.iter().map(|(n, t)| (n.to_string(), StructField::new(*n, t.clone(), true))).collect();
        self.add_column_definitions(defs).await
    }

    /// `ALTER TABLE … ADD COLUMNS (path type [COMMENT '…'], …)` with each new column's field
    /// (its metadata, e.g. a comment, kept; its name is the last part of the path). A new column
    /// cannot be NOT NULL (existing rows hold no value for it) nor have a DEFAULT (as delta-spark:
    /// add it, then `ALTER COLUMN … SET DEFAULT`).
    pub async fn add_column_definitions(&self, columns: Vec<(String, StructField)>) -> DeltaResult<i64> {
        let shown: Vec<Value> = columns
            .iter()
            .map(|(n, f)| json!({ "column": { "name": n, "type": f.data_type.to_string(), "nullable": f.nullable, "metadata": f.metadata } }))
            .collect();
        self.alter("ADD COLUMNS", json!({ "columns": Value::Array(shown).to_string() }), |snapshot, schema, metadata| {
            for (name, field) in &columns {
                if !field.nullable {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("cannot add `{name}` as NOT NULL: existing rows have no value for it; add it nullable"),
                    });
                }
                if field.metadata.contains_key("CURRENT_DEFAULT") {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("cannot add `{name}` with a DEFAULT: add the column, then ALTER COLUMN {name} SET DEFAULT …"),
                    });
                }
                let path = split_path(name)?;
                let (parent, existing) = parent_mut(schema, &path, name)?;
                if existing.is_some() {
                    return Err(DeltaError::WriteRefused { reason: format!("column `{name}` already exists") });
                }
                let mut field = field.clone();
                field.name = path[path.len() - 1].clone();
                parent.fields.push(field);
            }
            if snapshot.column_mapping_mode() != ColumnMappingMode::None {
                crate::table::column_mapping::assign_new_column_ids(schema, metadata);
            }
            Ok(())
        })
        .await
    }

    /// `ALTER TABLE … ALTER COLUMN path SET NOT NULL | DROP NOT NULL | COMMENT '…' | SET DEFAULT
    /// expr | DROP DEFAULT` (delta-spark's `CHANGE COLUMN`). SET NOT NULL reads the column first
    /// and is refused when a row holds NULL; a default must be a constant and needs
    /// `allowColumnDefaults`, which the commit adds to the protocol.
    pub async fn alter_column(&self, column: &str, change: ColumnChange) -> DeltaResult<i64> {
        let path = split_path(column)?;
        let snapshot = self.snapshot().await?;
        ensure_writable(snapshot.protocol())?;
        let mut schema = snapshot.schema().clone();
        let mut metadata = snapshot.metadata().clone();
        let (parent, idx) = parent_mut(&mut schema, &path, column)?;
        let Some(i) = idx else { return Err(parent.column_not_found(column)) };
        let field = &mut parent.fields[i];
        let mut whole_table_read = false;
        match &change {
            ColumnChange::SetNotNull => {
                if field.nullable {
                    let nulls = snapshot.scan().with_predicate(Expr::IsNull(Box::new(Expr::Column(path.clone())))).build()?.count().await?;
                    if nulls > 0 {
                        return Err(DeltaError::WriteRefused {
                            reason: format!("cannot SET NOT NULL on `{column}`: {nulls} existing row(s) hold NULL in it"),
                        });
                    }
                    whole_table_read = true;
                    field.nullable = false;
                }
            }
            ColumnChange::DropNotNull => field.nullable = true,
            ColumnChange::Comment(text) => {
                field.metadata.insert("comment".into(), Value::String(text.clone()));
            }
            ColumnChange::SetDefault(text) => {
                let e = Expr::parse(text)?;
                if !e.columns().is_empty() {
                    return Err(DeltaError::WriteRefused { reason: format!("a DEFAULT must be a constant, not `{text}`, which reads columns") });
                }
                if field.metadata.contains_key("delta.generationExpression") || field.metadata.contains_key("delta.identity.start") {
                    return Err(DeltaError::WriteRefused {
                        reason: format!("`{column}` is a generated or identity column; it cannot have a DEFAULT"),
                    });
                }
                field.metadata.insert("CURRENT_DEFAULT".into(), Value::String(text.clone()));
            }
            ColumnChange::DropDefault => {
                field.metadata.remove("CURRENT_DEFAULT");
            }
        }
        let shown = json!({ "name": column, "type": field.data_type.to_string(), "nullable": field.nullable, "metadata": field.metadata });
        metadata.schema_string = schema.to_json().to_string();
        let mut txn = Transaction::new(snapshot.clone()).with_operation("CHANGE COLUMN", json!({ "column": shown.to_string() }));
        if whole_table_read {
            // A concurrent append of a NULL must conflict with the check above.
            txn.read_whole_table();
        }
        self.commit_metadata(&snapshot, metadata, &mut txn)?;
        let version = txn.commit().await?.version()?;
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// `ALTER TABLE … DROP FEATURE name`: removes a writer feature from the protocol once nothing
    /// in the table uses it (no CHECK constraint for `checkConstraints`, no DEFAULT for
    /// `allowColumnDefaults`, the enabling property off for `changeDataFeed`, `appendOnly`,
    /// `inCommitTimestamp`, …). Reader-writer features leave traces in the history that readers
    /// of old versions need; removing them takes history truncation, which is refused here with
    /// that reason.
    pub async fn drop_feature(&self, name: &str) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        ensure_writable(snapshot.protocol())?;
        let protocol = snapshot.protocol();
        let refuse = |reason: String| Err(DeltaError::FeatureRequirement { feature: name.to_string(), reason });
        let writer = protocol.effective_writer_features();
        if !writer.iter().any(|f| f == name) && !protocol.effective_reader_features().iter().any(|f| f == name) {
            return refuse(format!("the table does not have feature `{name}` (it has: {})", writer.join(", ")));
        }
        if crate::table::protocol::READER_WRITER_FEATURES.contains(&name) {
            return refuse(format!(
                "`{name}` is a reader-writer feature: dropping it needs its traces removed and the history truncated, which this engine does not do"
            ));
        }
        let metadata = snapshot.metadata();
        let props: std::collections::HashMap<String, String> =
            metadata.configuration.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        let used = crate::table::features::min_protocol(snapshot.schema(), &props).effective_writer_features();
        let in_use = match name {
            "appendOnly" => metadata.bool_property("delta.appendOnly", false).then(|| "delta.appendOnly is true".to_string()),
            "invariants" => metadata.schema_string.contains("delta.invariants").then(|| "a column has a delta.invariants rule".to_string()),
            "domainMetadata" => {
                let users: Vec<&str> = ["clustering", "rowTracking"].into_iter().filter(|f| writer.iter().any(|w| w == f)).collect();
                if !users.is_empty() {
                    Some(format!("feature(s) {} need it", users.join(", ")))
                } else if snapshot.domain_metadata().any(|d| !d.removed) {
                    Some("the table has domain metadata".to_string())
                } else {
                    None
                }
            }
            "clustering" => Some("clustering cannot be dropped; CLUSTER BY NONE stops clustering new data".to_string()),
            "checkConstraints" if used.iter().any(|f| f == name) => Some("the table has CHECK constraints; drop them first".to_string()),
            "allowColumnDefaults" if used.iter().any(|f| f == name) => Some("a column has a DEFAULT; drop it first".to_string()),
            _ if used.iter().any(|f| f == name) => Some("the table's schema or properties still use it".to_string()),
            _ => None,
        };
        if let Some(why) = in_use {
            return refuse(format!("cannot drop `{name}`: {why}"));
        }
        let mut downgraded = protocol.clone();
        downgraded.min_writer_version = 7;
        downgraded.writer_features = Some(writer.into_iter().filter(|f| f != name).collect());
        if downgraded.min_reader_version >= 3 {
            downgraded.reader_features = Some(protocol.effective_reader_features());
        }
        let mut txn =
            Transaction::new(snapshot.clone()).with_operation("DROP FEATURE", json!({ "featureName": name, "truncateHistory": false }));
        txn.add_action(Action::Protocol(downgraded));
        let version = txn.commit().await?.version()?;
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// `ALTER TABLE … RENAME COLUMN path TO new_name` (column mapping).
    pub async fn rename_column(&self, column: &str, new_name: &str) -> DeltaResult<i64> {
        let path = split_path(column)?;
        let mut new_path = path.clone();
        if let Some(last) = new_path.last_mut() {
            *last = new_name.to_string();
        }
        let params = json!({ "oldColumnPath": column, "newColumnPath": new_path.join(".") });
        self.alter("RENAME COLUMN", params, |snapshot, schema, metadata| {
            ensure_column_mapping(snapshot, "RENAME COLUMN")?;
            if new_name.trim().is_empty() || new_name.contains('`') {
                return Err(DeltaError::WriteRefused { reason: format!("`{new_name}` is not a column name") });
            }
            ensure_unreferenced(snapshot, &path, "rename")?;
            let (parent, idx) = parent_mut(schema, &path, column)?;
            let Some(i) = idx else { return Err(parent.column_not_found(column)) };
            if parent.fields.iter().enumerate().any(|(j, f)| j != i && f.name.eq_ignore_ascii_case(new_name)) {
                return Err(DeltaError::WriteRefused { reason: format!("column `{}` already exists", new_path.join(".")) });
            }
            let old = std::mem::replace(&mut parent.fields[i].name, new_name.to_string());
            if path.len() == 1 {
                for p in &mut metadata.partition_columns {
                    if p.eq_ignore_ascii_case(&old) {
                        *p = new_name.to_string();
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// `ALTER TABLE … DROP COLUMNS (path, …)` (column mapping). Data stays in the files, unread.
    pub async fn drop_columns(&self, columns: &[&str]) -> DeltaResult<i64> {
        let params = json!({ "columns": json!(columns).to_string() });
        self.alter("DROP COLUMNS", params, |snapshot, schema, _| {
            ensure_column_mapping(snapshot, "DROP COLUMNS")?;
            for column in columns {
                let path = split_path(column)?;
                ensure_unreferenced(snapshot, &path, "drop")?;
                let (parent, idx) = parent_mut(schema, &path, column)?;
                let Some(i) = idx else { return Err(parent.column_not_found(*column)) };
                if parent.fields.len() == 1 {
                    return Err(DeltaError::WriteRefused {
                        reason: format!(
                            "cannot drop `{column}`: it is the only field of its {}",
                            if path.len() == 1 { "table" } else { "struct" }
                        ),
                    });
                }
                parent.fields.remove(i);
            }
            Ok(())
        })
        .await
    }

    /// `ALTER TABLE … ALTER COLUMN path TYPE t`: widening only (byte→short→int→long,
    /// float→double, date→timestamp_ntz, decimal precision up), on tables with typeWidening
    /// (`delta.enableTypeWidening = true`). Existing files keep their type; reads widen.
    pub async fn change_column_type(&self, column: &str, to: DataType) -> DeltaResult<i64> {
        let params = json!({ "column": json!({ "name": column, "type": to.to_string() }).to_string() });
        self.alter("CHANGE COLUMN", params, |snapshot, schema, metadata| {
            let enabled = metadata.bool_property("delta.enableTypeWidening", false)
                && (snapshot.protocol().has_feature(&TableFeature::TypeWidening)
                    || snapshot.protocol().has_feature(&TableFeature::TypeWideningPreview));
            if !enabled {
                return Err(DeltaError::WriteRefused {
                    reason: "changing a column's type needs type widening: set delta.enableTypeWidening = 'true' first".into(),
                });
            }
            let path = split_path(column)?;
            if path.len() == 1 && snapshot.partition_columns().iter().any(|p| p.eq_ignore_ascii_case(&path[0])) {
                return Err(DeltaError::WriteRefused { reason: format!("cannot change the type of partition column `{column}`") });
            }
            let (parent, idx) = parent_mut(schema, &path, column)?;
            let Some(i) = idx else { return Err(parent.column_not_found(column)) };
            let field = &mut parent.fields[i];
            let from = field.data_type.clone();
            if from == to {
                return Ok(());
            }
            if !is_widening(&from, &to) {
                return Err(DeltaError::WriteRefused {
                    reason: format!("cannot change `{column}` from {from} to {to}: only widening changes are supported"),
                });
            }
            record_type_change(field, &from, &to);
            field.data_type = to.clone();
            Ok(())
        })
        .await
    }

    /// `ALTER TABLE … CLUSTER BY (columns)`; an empty list is `CLUSTER BY NONE`. Sets the
    /// clustering columns (the `delta.clustering` domain), adding the `clustering` feature to a
    /// table that lacks it; partitioned tables cannot be clustered. A column that becomes a
    /// clustering column must have statistics in every existing file (the protocol's rule).
    /// Existing files are not rewritten: OPTIMIZE clusters the files not yet clustered.
    pub async fn cluster_by<S: AsRef<str>>(&self, columns: &[S]) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        ensure_writable(snapshot.protocol())?;
        let columns = crate::table::features::parse_columns(columns)?;
        if !snapshot.partition_columns().is_empty() && !columns.is_empty() {
            return Err(DeltaError::FeatureRequirement {
                feature: "clustering".into(),
                reason: format!(
                    "the table is partitioned by {:?}; a table cannot be both partitioned and clustered",
                    snapshot.partition_columns()
                ),
            });
        }
        let mode = snapshot.column_mapping_mode();
        let domain = crate::table::features::clustering_domain(snapshot.schema(), mode, &columns)?;
        let current = snapshot.clustering_columns()?;
        if columns.is_empty() && !snapshot.protocol().has_feature(&TableFeature::Clustering) {
            // CLUSTER BY NONE on a table that was never clustered: nothing to change.
            return Ok(snapshot.version());
        }
        let added: Vec<&Vec<String>> = columns.iter().filter(|c| !current.iter().any(|x| same_path(x, c))).collect();
        if !added.is_empty() {
            let physical: Vec<(String, Vec<String>)> = added
                .iter()
                .map(|c| (c.join("."), crate::table::schema::physical_path(snapshot.schema(), c, mode).unwrap_or_else(|| c.to_vec())))
                .collect();
            for add in snapshot.add_files()? {
                let stats: Option<Value> = add.stats.as_deref().and_then(|s| serde_json::from_str(s).ok());
                for (name, path) in &physical {
                    let has = stats.as_ref().is_some_and(|v| !path.iter().fold(&v["nullCount"], |v, p| &v[p.as_str()]).is_null());
                    if !has {
                        return Err(DeltaError::FeatureRequirement {
                            feature: "clustering".into(),
                            reason: format!(
                                "file {} has no statistics for `{name}`; files must be rewritten with statistics for it (within delta.dataSkippingNumIndexedCols or delta.dataSkippingStatsColumns) first",
                                add.path
                            ),
                        });
                    }
                }
            }
        }
        let names = |cols: &[Vec<String>]| cols.iter().map(|c| c.join(".")).collect::<Vec<_>>().join(",");
        let mut txn = Transaction::new(snapshot.clone())
            .with_operation("CLUSTER BY", json!({ "oldClusteringColumns": names(&current), "newClusteringColumns": names(&columns) }));
        if let Some(upgraded) = feature_protocol(&["clustering"])?.and_then(|p| snapshot.protocol().upgraded_with(&p)) {
            ensure_writable(&upgraded)?;
            txn.add_action(Action::Protocol(upgraded));
        }
        txn.add_action(Action::DomainMetadata(domain));
        let version = txn.commit().await?.version()?;
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// Sets an application's domain metadata (`domain` → `configuration`, any string, JSON by
    /// convention), adding the `domainMetadata` feature when the table lacks it. Domains starting
    /// with `delta.` belong to the protocol and are refused. Two concurrent commits to the same
    /// domain conflict.
    pub async fn set_domain_metadata(&self, domain: &str, configuration: &str) -> DeltaResult<i64> {
        self.change_domain(domain, configuration, false).await
    }

    /// Removes an application's domain metadata (a tombstone; refused for `delta.` domains). A
    /// domain that is not there is left alone and nothing is committed.
    pub async fn remove_domain_metadata(&self, domain: &str) -> DeltaResult<i64> {
        self.change_domain(domain, "", true).await
    }

    async fn change_domain(&self, domain: &str, configuration: &str, removed: bool) -> DeltaResult<i64> {
        if domain.is_empty() || domain.to_ascii_lowercase().starts_with("delta.") {
            return Err(DeltaError::WriteRefused {
                reason: format!("domain `{domain}` is not an application domain (`delta.` domains belong to the protocol)"),
            });
        }
        let snapshot = self.snapshot().await?;
        ensure_writable(snapshot.protocol())?;
        let current = snapshot.domain_metadata().find(|d| d.domain == domain && !d.removed);
        if removed && current.is_none() {
            return Ok(snapshot.version());
        }
        let configuration = match (removed, current) {
            // A tombstone carries the last configuration, as delta-spark writes it.
            (true, Some(d)) => d.configuration.clone(),
            _ => configuration.to_string(),
        };
        let mut txn = Transaction::new(snapshot.clone())
            .with_operation(if removed { "REMOVE DOMAIN METADATA" } else { "SET DOMAIN METADATA" }, json!({ "domain": domain }));
        if let Some(upgraded) =
            snapshot.protocol().upgraded_with(&feature_protocol(&["domainMetadata"])?.unwrap_or_else(|| snapshot.protocol().clone()))
        {
            ensure_writable(&upgraded)?;
            txn.add_action(Action::Protocol(upgraded));
        }
        txn.add_action(Action::DomainMetadata(crate::table::protocol::DomainMetadata {
            domain: domain.to_string(),
            configuration,
            removed,
        }));
        let version = txn.commit().await?.version()?;
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }

    /// `ALTER TABLE … SET TBLPROPERTIES ('delta.feature.<name>' = 'supported')`: adds table
    /// features to the protocol (refused for features this engine cannot write).
    pub async fn enable_features(&self, features: &[&str]) -> DeltaResult<i64> {
        let snapshot = self.snapshot().await?;
        ensure_writable(snapshot.protocol())?;
        let names: Vec<String> = features.iter().map(|f| f.trim().to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let Some(wanted) = feature_protocol(&refs)? else { return Ok(snapshot.version()) };
        let Some(upgraded) = snapshot.protocol().upgraded_with(&wanted) else { return Ok(snapshot.version()) };
        ensure_writable(&upgraded)?;
        let props: serde_json::Map<String, Value> = names.iter().map(|n| (format!("delta.feature.{n}"), json!("supported"))).collect();
        let mut txn = Transaction::new(snapshot.clone())
            .with_operation("SET TBLPROPERTIES", json!({ "properties": Value::Object(props).to_string() }));
        txn.add_action(Action::Protocol(upgraded));
        let version = txn.commit().await?.version()?;
        let _ = crate::write::checkpoint::post_commit(self, version).await;
        Ok(version)
    }
}
