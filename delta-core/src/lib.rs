//! # delta-core
//!
//! The Delta Lake protocol in Rust: log replay, snapshots, scans (and, in later modules, commits).
//!
//! ```text
//!  Table ──► LogSegment (listing, _last_checkpoint hint, contiguity checked)
//!              │
//!              ▼
//!           replay (Arrow batches, newest first, dedup by (path, dv)) ──► Snapshot
//!                                                                        │
//!  predicate text ──► expr (sqlparser → IR) ─────────────────────────────┤
//!                                                                        ▼
//!                     Scan: partition pruning → stats skipping → row-group pruning →
//!                           parquet read (projection) → DV mask → column mapping / widening
//!                           → residual filter → stream of RecordBatch
//! ```
//!
//! Writes go the other way: `write` (schema rules, parallel parquet encoders with statistics) →
//! `txn` (`put_if_absent` of the next commit, delta-spark's conflict checks, rebase) →
//! `checkpoint` (checksum file, checkpoints, expired-log cleanup).
//!
//! ## Where this departs from `../shared/DESIGN.md`
//! * Actions exist twice on purpose: columnar (`protocol::action_schema`) for replay and checkpoints,
//!   serde structs (`actions`) for writing commits and checking conflicts against a winner.
//! * Checkpoints, checksums and log cleanup live in `checkpoint`; `maintenance` has RESTORE, VACUUM
//!   and shallow CLONE, `optimize` OPTIMIZE (compaction, Z-order, DV purge), `alter` the schema
//!   and feature changes. VACUUM decides what to keep by replaying the retained versions (the
//!   oldest retained snapshot plus every later commit), not from checkpoint tombstones, so it is
//!   right for tables whose checkpoints carry none. Shallow clones name the source's files by
//!   absolute URL; reading one needs `TableOptions::allowed_external_prefixes` (paths outside a
//!   table root stay refused by default).
//! * DML has no separate `DmlExecutor`: `dml::Rewriter` is the one local executor (one concurrent
//!   scan of the candidate files with row and file indexes → deletion vectors or copy-on-write →
//!   parallel encoders), and MERGE (`merge`) is a hash join on the ON condition's equi-keys with
//!   the source held in memory up to a budget, past which it spills by key hash and the join runs
//!   in passes (one target scan each). The candidate scan reads only the columns the operation
//!   needs (an upsert reads its join keys; the untouched rows of a copy-on-write rewrite are read
//!   whole in a second pass). Spark SQL DML text is parsed in `sql`.
//! * Row tracking (`row_tracking`): operations that move rows into new files materialise the
//!   rows' ids and commit versions in the hidden columns the metadata names; the scan reads them
//!   back (`ScanBuilder::with_row_tracking`).
//! * Table features that constrain the whole table (clustering, IcebergCompatV1/V2) are checked in
//!   `features::validate`, called by `Transaction::commit` for every commit, rather than by each
//!   operation: a write with `mergeSchema`, an ALTER, a property change or a DML rewrite cannot
//!   leave a table that breaks its own features' writer requirements
//!   (`DeltaError::FeatureRequirement`, nothing committed).
//! * A `.crc` that disagrees with replay is recorded on the snapshot, not fatal (as delta-spark
//!   does by default); `TableOptions::strict_checksums` makes it fatal.
//! * A version gap in a listing is confirmed by looking the missing commits up directly before it
//!   is reported: directory listings are not snapshots.
//! * On local disk the log is listed with `readdir`, stat-ing only the entries kept.
//!
//! The public surface is async over [`object_store`]; CPU-heavy decoding runs off the I/O tasks.
//! Every input from the log is untrusted: unknown actions and fields are ignored, unsupported reader
//! features are refused by name before any data is read, sizes are capped, and every path goes
//! through one resolver ([`storage::TableLocation::resolve`]).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod error;
pub mod log;
pub mod maintenance;
pub mod protocol;
pub mod replay;
pub mod row_tracking;
pub mod schema;
pub mod snapshot;
pub mod sql;
pub mod storage;

pub use error::{DeltaError, DeltaResult};
pub use snapshot::{CommitRecord, Snapshot, Table};
pub use storage::{TableLocation, TableOptions};
pub mod actions;
pub mod alter;
pub mod cdf;
pub mod checkpoint;
pub mod dml;
pub mod dv;
pub mod expr;
pub mod features;
pub mod merge;
pub mod optimize;
pub mod scan;
pub mod skipping;
pub mod txn;
pub mod write;

pub use expr::Expr;
pub use scan::{Scan, ScanBuilder, ScanFile};
