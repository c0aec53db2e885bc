//! The read layer: snapshots of a table at a version or timestamp (and the [`Table`] handle that
//! opens them), data skipping by partition values and statistics, deletion vectors, row
//! tracking's column names, and scans from a snapshot to a stream of record batches.
//!
//! May use: [`crate::log`], [`crate::table`], [`crate::error`].

pub mod dv;
pub mod row_tracking;
pub mod scan;
pub mod skipping;
pub mod snapshot;

pub use snapshot::{Snapshot, Table};
