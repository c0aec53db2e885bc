//! # delta-exec
//!
//! Spark's DataFrame vocabulary over Delta tables, executed by Apache DataFusion.
//!
//! ```text
//!  Session ─► read().version_as_of(v).delta(path) ─► DataFrame (lazy; Spark SQL text in filter,
//!                                                    select, with_column, group_by().agg, …)
//!                 │                                           │ DataFusion's optimizer
//!                 ▼                                           ▼
//!  DeltaTableProvider (one snapshot) ──────────────► DeltaScanExec (files pruned by delta-core,
//!                                                    whole files per partition, DVs applied)
//!  DataFrame::write().mode(..).save(path) ─► delta-core's writer, batches streamed, one commit
//! ```
//!
//! We write no optimizer, join or sort: DataFusion plans and runs them. What is ours is the Delta
//! integration ([`provider`]) and the Spark-shaped API ([`session`]).
//!
//! ## Where this departs from `../shared/DESIGN.md` (for now)
//! * The scan reads files with delta-core's reader (row-group pruning by statistics, deletion
//!   vectors, column mapping, type widening, the residual predicate), not DataFusion's parquet
//!   source: page-index pruning and late materialisation of filtered columns are still to come.
//! * delta-core keeps `object_store` 0.14; DataFusion's own object store registry (0.13) is not
//!   used, since every file is read through delta-core.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod hint;
pub mod provider;
pub mod session;
pub mod statement;
pub mod table;
pub mod window;

pub use provider::{DeltaScanExec, DeltaTableProvider, ScanProgress};
pub use session::{broadcast, DataFrame, DataFrameReader, DataFrameWriter, GroupedData, JoinHow, Session};
pub use statement::Outcome;
pub use table::DeltaTable;
pub use window::{Window, WindowSpec, CURRENT_ROW, UNBOUNDED_FOLLOWING, UNBOUNDED_PRECEDING};
