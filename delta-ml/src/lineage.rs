//! Which data a model was trained on.
//!
//! `fit` on a DataFrame read from Delta records every table the frame reads, at the version
//! read (a timestamp read is resolved to its version by the snapshot), the rows fitted on and
//! the frame's logical plan (filters included). Reading the same versions with the same plan
//! reproduces the training rows exactly: Delta versions are immutable.

use delta_exec::DataFrame;
use serde::{Deserialize, Serialize};

/// One Delta table at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableVersion {
    /// The table's root URL.
    pub uri: String,
    pub version: i64,
    /// The commit time of that version in ms since the epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
}

/// The training data of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub tables: Vec<TableVersion>,
    /// Rows the estimator read.
    pub rows: u64,
    /// The input frame's logical plan, as DataFusion prints it.
    pub plan: String,
}

impl Lineage {
    /// The lineage of `df` (None when it reads no Delta table).
    pub fn of(df: &DataFrame, rows: u64) -> Option<Lineage> {
        let tables: Vec<TableVersion> = df
            .delta_sources()
            .into_iter()
            .map(|s| TableVersion { uri: s.location, version: s.version, timestamp_ms: s.timestamp_ms })
            .collect();
        if tables.is_empty() {
            return None;
        }
        Some(Lineage { tables, rows, plan: df.inner().logical_plan().display_indent().to_string() })
    }
}
