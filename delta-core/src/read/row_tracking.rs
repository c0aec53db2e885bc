//! Row tracking (the `rowTracking` table feature): stable row ids and row commit versions.
//!
//! A file written by an append carries no per-row values: row `i` of a file has id
//! `baseRowId + i` and commit version `defaultRowCommitVersion`, both assigned at commit
//! ([`crate::write::txn`]). When an operation moves rows into new files (UPDATE, MERGE, copy-on-write
//! DELETE, OPTIMIZE), their ids would change with their position, so the new files *materialise*
//! them in two hidden columns whose names the table's metadata holds
//! (`delta.rowTracking.materializedRowIdColumnName`, `…materializedRowCommitVersionColumnName`):
//! a non-NULL value there wins over the file's defaults.
//!
//! - copied rows keep their id and their commit version;
//! - updated rows keep their id and get a NULL commit version, so the commit's version applies;
//! - inserted rows get NULL in both, so fresh ids (`baseRowId + i`) and the commit's version apply.
//!
//! [`crate::read::scan::ScanBuilder::with_row_tracking`] reads the values back.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use arrow::datatypes::DataType as ArrowType;

use crate::table::protocol::Metadata;
use crate::table::schema::{DataType, PrimitiveType, StructField};

/// The column [`crate::read::scan::ScanBuilder::with_row_tracking`] appends: each row's stable row id (Spark's
/// `_metadata.row_id`), `Int64`.
pub const ROW_ID_COLUMN: &str = "__delta_row_id";

/// The column [`crate::read::scan::ScanBuilder::with_row_tracking`] appends after [`ROW_ID_COLUMN`]: the version
/// that last changed the row (Spark's `_metadata.row_commit_version`), `Int64`.
pub const ROW_COMMIT_VERSION_COLUMN: &str = "__delta_row_commit_version";

/// The metadata key naming the materialised row id column.
pub const ROW_ID_NAME_KEY: &str = "delta.rowTracking.materializedRowIdColumnName";
/// The metadata key naming the materialised row commit version column.
pub const COMMIT_VERSION_NAME_KEY: &str = "delta.rowTracking.materializedRowCommitVersionColumnName";

/// The materialised column names the table's metadata declares.
pub fn materialized_names(metadata: &Metadata) -> (Option<String>, Option<String>) {
    (metadata.property(ROW_ID_NAME_KEY).map(str::to_string), metadata.property(COMMIT_VERSION_NAME_KEY).map(str::to_string))
}

/// New materialised column names (delta-spark's `_row-id-col-<uuid>` form) for the keys that
/// `declared` says are not set yet.
pub fn missing_names(declared: impl Fn(&str) -> bool) -> Vec<(&'static str, String)> {
    [(ROW_ID_NAME_KEY, "_row-id-col-"), (COMMIT_VERSION_NAME_KEY, "_row-commit-version-col-")]
        .into_iter()
        .filter(|(key, _)| !declared(key))
        .map(|(key, prefix)| (key, format!("{prefix}{}", uuid::Uuid::new_v4())))
        .collect()
}

/// For an operation that moves rows into new files: the materialised column names, and the
/// metadata to commit when the table did not declare them yet (`None` without row tracking).
pub(crate) fn names_for_rewrite(snapshot: &crate::read::snapshot::Snapshot) -> Option<((String, String), Option<Metadata>)> {
    if !snapshot.protocol().has_feature(&crate::table::protocol::TableFeature::RowTracking) {
        return None;
    }
    let mut metadata = snapshot.metadata().clone();
    let missing = missing_names(|k| metadata.property(k).is_some());
    let declared = !missing.is_empty();
    for (key, name) in missing {
        metadata.configuration.insert(key.to_string(), Some(name));
    }
    let (id, version) = materialized_names(&metadata);
    Some(((id.unwrap_or_default(), version.unwrap_or_default()), declared.then_some(metadata)))
}

/// The two hidden columns a rewriting writer adds to the table's columns.
pub(crate) fn hidden_fields(names: &(String, String)) -> Vec<StructField> {
    [&names.0, &names.1].into_iter().map(|n| StructField::new(n.clone(), DataType::Primitive(PrimitiveType::Long), true)).collect()
}

/// What the hidden columns of rows being written hold.
pub(crate) enum Lineage {
    /// New rows: no materialised values.
    Inserted,
    /// Rows replacing existing ones: their ids (the commit's version applies).
    Updated(ArrayRef),
    /// Rows copied unchanged: their ids and commit versions.
    Copied(ArrayRef, ArrayRef),
}

impl Lineage {
    /// The two hidden columns for `rows` rows.
    pub(crate) fn columns(self, rows: usize) -> [ArrayRef; 2] {
        let nulls = || new_null_array(&ArrowType::Int64, rows);
        match self {
            Lineage::Inserted => [nulls(), nulls()],
            Lineage::Updated(ids) => [ids, nulls()],
            Lineage::Copied(ids, versions) => [ids, versions],
        }
    }
}

/// The row ids and commit versions of a scan batch read with row tracking.
pub(crate) fn of_batch(batch: &arrow::array::RecordBatch) -> Option<(ArrayRef, ArrayRef)> {
    let ids = batch.column_by_name(ROW_ID_COLUMN)?;
    let versions = batch.column_by_name(ROW_COMMIT_VERSION_COLUMN)?;
    Some((Arc::clone(ids), Arc::clone(versions)))
}
