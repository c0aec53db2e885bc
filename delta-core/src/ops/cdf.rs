//! Change data feed: `table_changes(start..=end)`.
//!
//! For each commit in the range: when it has `cdc` actions, its changes are exactly the rows of
//! those change data files (written by DML; each row carries `_change_type`); otherwise they are
//! derived from the commit's data-changing `add`s (inserts) and `remove`s (deletes), as the
//! protocol allows. Commits that change no data (`dataChange = false`, e.g. OPTIMIZE) contribute
//! nothing. Every row gets `_commit_version` and `_commit_timestamp` (the in-commit timestamp
//! where enabled, else the commit file's time made monotonic).
//!
//! Rows are read with the schema of the range's last version; a predicate prunes files by
//! partition values (and, for added files, statistics) and filters rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::error::{DeltaError, DeltaResult};
use crate::log::segment::LogSegment;
use crate::read::scan::{ScanBuilder, ScanFile};
use crate::read::skipping::FilePruner;
use crate::read::snapshot::{Snapshot, Table};
use crate::table::actions::{parse_commit, Action, AddFile};
use crate::table::expr::Expr;
use crate::table::schema::{DataType, PrimitiveType, StructField};
use crate::write::files::CHANGE_TYPE_COLUMN;

pub const COMMIT_VERSION_COLUMN: &str = "_commit_version";
pub const COMMIT_TIMESTAMP_COLUMN: &str = "_commit_timestamp";

/// Files of one commit read the same way: the unit an engine splits a change feed into (it may
/// split a group's files further) and sends to other processes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChangeFiles {
    pub version: i64,
    pub timestamp_ms: i64,
    /// `None`: change data files (the type is in the file); else the type of every row.
    pub change_type: Option<String>,
    pub files: Vec<ScanFile>,
}

/// Change rows: the table's columns, `_change_type`, `_commit_version`, `_commit_timestamp`.
pub struct Changes {
    schema: SchemaRef,
    snapshot: Snapshot,
    predicate: Option<Expr>,
    groups: Vec<ChangeFiles>,
}

impl Changes {
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// What to read: the snapshot rows are read with (the range's last version), the predicate
    /// and the groups of files in commit order.
    pub fn into_parts(self) -> (Snapshot, Option<Expr>, Vec<ChangeFiles>) {
        (self.snapshot, self.predicate, self.groups)
    }

    /// The changes of some of a feed's groups ([`Changes::into_parts`]), read with `snapshot`.
    pub fn from_parts(snapshot: Snapshot, predicate: Option<Expr>, groups: Vec<ChangeFiles>) -> Changes {
        Changes { schema: change_schema(&snapshot), snapshot, predicate, groups }
    }

    /// Number of files that will be read.
    pub fn num_files(&self) -> usize {
        self.groups.iter().map(|g| g.files.len()).sum()
    }

    /// Streams the changes, ordered by commit version.
    pub fn execute(self) -> BoxStream<'static, DeltaResult<RecordBatch>> {
        let Changes { schema, snapshot, predicate, groups } = self;
        futures::stream::iter(groups)
            .map(move |g| {
                let schema = schema.clone();
                let mut b = ScanBuilder::new(snapshot.clone()).with_files(g.files);
                if g.change_type.is_none() {
                    b = b.with_extra_fields(vec![StructField::new(CHANGE_TYPE_COLUMN, DataType::Primitive(PrimitiveType::String), true)]);
                }
                if let Some(p) = &predicate {
                    b = b.with_predicate(p.clone());
                }
                match b.build() {
                    Ok(scan) => scan
                        .execute()
                        .map(move |r| r.and_then(|batch| decorate(&schema, batch, g.change_type.as_deref(), g.version, g.timestamp_ms)))
                        .boxed(),
                    Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                }
            })
            .flatten()
            .boxed()
    }

    /// Reads every change into memory.
    pub async fn collect(self) -> DeltaResult<Vec<RecordBatch>> {
        self.execute().try_collect().await
    }
}

/// The table's columns (all nullable) and the three change columns.
fn change_schema(snapshot: &Snapshot) -> SchemaRef {
    let mut fields: Vec<Field> = snapshot.arrow_schema().fields().iter().map(|f| crate::table::schema::all_nullable(f)).collect();
    fields.push(Field::new(CHANGE_TYPE_COLUMN, ArrowType::Utf8, true));
    fields.push(Field::new(COMMIT_VERSION_COLUMN, ArrowType::Int64, false));
    fields.push(Field::new(COMMIT_TIMESTAMP_COLUMN, ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false));
    Arc::new(Schema::new(fields))
}

fn decorate(schema: &SchemaRef, batch: RecordBatch, change_type: Option<&str>, version: i64, ts_ms: i64) -> DeltaResult<RecordBatch> {
    let n = batch.num_rows();
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    if let Some(t) = change_type {
        cols.push(Arc::new(StringArray::from(vec![t; n])));
    }
    cols.push(Arc::new(Int64Array::from(vec![version; n])));
    cols.push(Arc::new(TimestampMicrosecondArray::from(vec![ts_ms * 1000; n]).with_timezone("UTC")));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

impl Table {
    /// The changes of versions `start..=end` (`end` defaults to the latest).
    pub async fn table_changes(&self, start: i64, end: Option<i64>, predicate: Option<Expr>) -> DeltaResult<Changes> {
        let listing = LogSegment::full_listing(self.location()).await?;
        let latest = listing.latest_version().ok_or_else(|| DeltaError::NotATable { location: self.location().root_url().to_string() })?;
        let earliest = listing.commits.keys().next().copied().unwrap_or(0);
        let end = end.unwrap_or(latest);
        for v in [start, end] {
            if v < earliest || v > latest || !listing.commits.contains_key(&v) {
                return Err(DeltaError::VersionNotFound { requested: v, earliest, latest });
            }
        }
        if start > end {
            return Err(DeltaError::WriteRefused { reason: format!("table_changes: start version {start} is after end version {end}") });
        }
        let end_snapshot = self.snapshot_at(end).await?;
        let mut enabled = self.snapshot_at(start).await?.metadata().bool_property("delta.enableChangeDataFeed", false);
        let timestamps: std::collections::HashMap<i64, i64> = self.commit_timestamps(&listing).await?.into_iter().collect();
        let pruner = FilePruner::new(&end_snapshot)?;
        // Change data files carry no stats; their partition values still prune.
        let keep = |add: &AddFile| -> DeltaResult<bool> { predicate.as_ref().map_or(Ok(true), |p| pruner.may_match_add(p, add)) };
        let mut groups = Vec::new();
        for (v, file) in listing.commits.range(start..=end) {
            let bytes = self.location().read_bounded(&file.meta.location, Some(file.meta.size)).await?;
            let actions = parse_commit(file.meta.location.as_ref(), &bytes)?;
            if *v > start {
                if let Some(m) = actions.iter().find_map(|a| if let Action::Metadata(m) = a { Some(m) } else { None }) {
                    enabled = m.bool_property("delta.enableChangeDataFeed", false);
                }
            }
            let ts = timestamps.get(v).copied().unwrap_or(0);
            let cdc: Vec<ScanFile> = actions
                .iter()
                .filter_map(|a| if let Action::Cdc(c) = a { Some(c) } else { None })
                .map(|c| {
                    let add = AddFile { data_change: false, ..AddFile::new(c.path.clone(), c.partition_values.clone(), c.size) };
                    Ok(keep(&add)?.then(|| ScanFile::from_add(&add, &pruner)))
                })
                .filter_map(|r: DeltaResult<Option<ScanFile>>| r.transpose())
                .collect::<DeltaResult<_>>()?;
            let changes_data = actions.iter().any(|a| match a {
                Action::Add(x) => x.data_change,
                Action::Remove(x) => x.data_change,
                Action::Cdc(_) => true,
                _ => false,
            });
            if changes_data && !enabled {
                return Err(DeltaError::ChangeDataNotRecorded { version: *v });
            }
            if actions.iter().any(|a| matches!(a, Action::Cdc(_))) {
                if !cdc.is_empty() {
                    groups.push(ChangeFiles { version: *v, timestamp_ms: ts, change_type: None, files: cdc });
                }
                continue;
            }
            let mut inserts = Vec::new();
            let mut deletes = Vec::new();
            for a in &actions {
                match a {
                    Action::Add(add) if add.data_change && keep(add)? => inserts.push(ScanFile::from_add(add, &pruner)),
                    Action::Remove(r) if r.data_change => {
                        let add = AddFile {
                            stats: r.stats.clone(),
                            deletion_vector: r.deletion_vector.clone(),
                            ..AddFile::new(r.path.clone(), r.partition_values.clone().unwrap_or_default(), r.size.unwrap_or(0))
                        };
                        if keep(&add)? {
                            deletes.push(ScanFile::from_add(&add, &pruner));
                        }
                    }
                    _ => {}
                }
            }
            if !deletes.is_empty() {
                groups.push(ChangeFiles { version: *v, timestamp_ms: ts, change_type: Some("delete".into()), files: deletes });
            }
            if !inserts.is_empty() {
                groups.push(ChangeFiles { version: *v, timestamp_ms: ts, change_type: Some("insert".into()), files: inserts });
            }
        }
        Ok(Changes::from_parts(end_snapshot, predicate, groups))
    }

    /// [`Table::table_changes`] by commit timestamps (ms since the epoch): from the first commit at
    /// or after `start_ms` to the last at or before `end_ms`.
    pub async fn table_changes_by_timestamp(&self, start_ms: i64, end_ms: Option<i64>, predicate: Option<Expr>) -> DeltaResult<Changes> {
        let listing = LogSegment::full_listing(self.location()).await?;
        let timestamps = self.commit_timestamps(&listing).await?;
        let start = timestamps.iter().find(|(_, t)| *t >= start_ms).map(|(v, _)| *v).ok_or_else(|| DeltaError::TimestampAfterLatest {
            timestamp_ms: start_ms,
            latest_ms: timestamps.last().map(|(_, t)| *t).unwrap_or(0),
        })?;
        let end = match end_ms {
            None => None,
            Some(e) => Some(timestamps.iter().rev().find(|(_, t)| *t <= e).map(|(v, _)| *v).ok_or_else(|| {
                DeltaError::TimestampTooEarly { timestamp_ms: e, earliest_ms: timestamps.first().map(|(_, t)| *t).unwrap_or(0) }
            })?),
        };
        self.table_changes(start, end, predicate).await
    }
}
