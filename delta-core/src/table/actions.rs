//! Actions as written to commit files (serde, one JSON object per line).
//!
//! Reading uses the columnar layout of [`crate::table::protocol::action_schema`]; writing and conflict
//! checking use these structs, which serialise to exactly the protocol's JSON.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DeltaError, DeltaResult};
use crate::table::protocol::{AppTransaction, CommitInfo, DeletionVectorDescriptor, DomainMetadata, Metadata, Protocol};

/// The `add` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddFile {
    pub path: String,
    #[serde(default)]
    pub partition_values: HashMap<String, Option<String>>,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_row_commit_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clustering_provider: Option<String>,
}

/// The `remove` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveFile {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<HashMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_vector: Option<DeletionVectorDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_row_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_row_commit_version: Option<i64>,
}

impl AddFile {
    /// A data-changing `add` of this file with no stats, tags, deletion vector or row tracking
    /// fields (set what applies with struct update syntax).
    pub fn new(path: String, partition_values: HashMap<String, Option<String>>, size: i64) -> Self {
        AddFile {
            path,
            partition_values,
            size,
            modification_time: 0,
            data_change: true,
            stats: None,
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }
    }

    /// `numRecords` from the file's JSON stats, when they have it.
    pub fn num_records(&self) -> Option<u64> {
        self.stats.as_deref().and_then(num_records_of)
    }

    /// The `remove` that retires this file (with its deletion vector).
    pub fn to_remove(&self, deletion_timestamp: i64, data_change: bool) -> RemoveFile {
        RemoveFile {
            path: self.path.clone(),
            deletion_timestamp: Some(deletion_timestamp),
            data_change,
            extended_file_metadata: Some(true),
            partition_values: Some(self.partition_values.clone()),
            size: Some(self.size),
            stats: None,
            deletion_vector: self.deletion_vector.clone(),
            base_row_id: self.base_row_id,
            default_row_commit_version: self.default_row_commit_version,
        }
    }
}

/// The `cdc` action: a change data file (CDF), read instead of add/remove for its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddCdcFile {
    pub path: String,
    #[serde(default)]
    pub partition_values: HashMap<String, Option<String>>,
    pub size: i64,
    #[serde(default)]
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<HashMap<String, Option<String>>>,
}

/// One action of a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "commitInfo")]
    CommitInfo(CommitInfo),
    #[serde(rename = "protocol")]
    Protocol(Protocol),
    #[serde(rename = "metaData")]
    Metadata(Metadata),
    #[serde(rename = "add")]
    Add(AddFile),
    #[serde(rename = "remove")]
    Remove(RemoveFile),
    #[serde(rename = "txn")]
    Txn(AppTransaction),
    #[serde(rename = "domainMetadata")]
    DomainMetadata(DomainMetadata),
    #[serde(rename = "cdc")]
    Cdc(AddCdcFile),
}

/// Serialises actions as a commit file body (newline-delimited JSON).
pub fn commit_bytes(actions: &[Action]) -> DeltaResult<Vec<u8>> {
    let mut out = Vec::with_capacity(256 * actions.len().max(1));
    for a in actions {
        serde_json::to_writer(&mut out, a).map_err(|e| DeltaError::Internal(format!("serialising an action: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Parses a commit file into the actions this crate writes; unknown actions (and any that fail to
/// parse as their known shape) are skipped, as the protocol requires of readers.
pub fn parse_commit(path: &str, bytes: &[u8]) -> DeltaResult<Vec<Action>> {
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| DeltaError::corrupt(path, e))?;
        let Some(obj) = v.as_object() else { return Err(DeltaError::corrupt(path, "a log line is not a JSON object")) };
        for (key, body) in obj {
            let tagged = serde_json::json!({ key.as_str(): body });
            if let Ok(a) = serde_json::from_value::<Action>(tagged) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// `numRecords` of a stats JSON object, reading past the other fields without building them.
pub(crate) fn num_records_of(stats: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Count {
        #[serde(rename = "numRecords")]
        num_records: Option<u64>,
    }
    serde_json::from_str::<Count>(stats).ok().and_then(|c| c.num_records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_commit_json() {
        let add = AddFile {
            path: "p=1/a.parquet".into(),
            partition_values: [("p".to_string(), Some("1".to_string()))].into(),
            size: 10,
            modification_time: 1,
            data_change: true,
            stats: Some("{\"numRecords\":1}".into()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        };
        let actions = vec![Action::Remove(add.to_remove(5, true)), Action::Add(add)];
        let bytes = commit_bytes(&actions).unwrap();
        assert_eq!(parse_commit("t", &bytes).unwrap(), actions);
        // The columnar reader decodes the same bytes.
        let batches = crate::log::replay::decode_commit_json("t", &bytes, 10).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    }
}
