//! The write layer: turning rows into data files and data files into commits — schema
//! enforcement (`enforce`), parquet encoding with statistics (`files`, `stats`), the rewrite
//! machinery that deletes or replaces rows in existing files (`rewrite`, used by DML in
//! [`crate::ops`] and by `replaceWhere` overwrites here), transactions with delta-spark's
//! conflict rules (`txn`), post-commit checkpoints and checksums (`checkpoint`), and the
//! [`Table::write`](crate::Table::write) entry point with table creation and properties
//! (`writer`).
//!
//! May use: [`crate::read`], [`crate::log`], [`crate::table`], [`crate::error`].

pub mod checkpoint;
pub mod enforce;
pub mod files;
pub mod rewrite;
pub mod stats;
pub mod txn;
pub mod writer;

pub use crate::table::features::min_protocol;
pub use enforce::{merge_schemas, schema_from_arrow};
pub use files::{encode_path, DeltaWriter, CHANGE_TYPE_COLUMN};
pub use writer::{CreateMode, FileWrite, PlannedWrite, SaveMode, TableSpec, TaskWriter, WriteOptions, WriteResult, WriteTask};
