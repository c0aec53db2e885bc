//! The log layer: where a table lives and how its `_delta_log` becomes Arrow actions — the
//! object store and the one path resolver (`storage`), listing a log segment (`segment`), reading
//! files from the store (`file_reader`), and columnar replay of commits, checkpoints and sidecars
//! (`replay`). Writing checkpoints needs a snapshot, so it sits in [`crate::write::checkpoint`].
//!
//! May use: [`crate::table`], [`crate::error`].

pub mod file_reader;
pub mod replay;
pub mod segment;
pub mod storage;

pub use segment::*;
