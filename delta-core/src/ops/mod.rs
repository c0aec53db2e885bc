//! The operations layer: what a user asks of a table beyond an append — DELETE and UPDATE
//! (`dml`), MERGE (`merge`), the change data feed (`cdf`), OPTIMIZE (`optimize`), RESTORE, VACUUM
//! and CLONE (`maintenance`) and ALTER (`alter`). Each builds on the write layer's rewriter and
//! transaction; none of them is used by a layer below.
//!
//! May use: [`crate::write`], [`crate::read`], [`crate::log`], [`crate::table`], [`crate::error`].

pub mod alter;
pub mod convert;
pub mod cdf;
pub mod dml;
pub mod maintenance;
pub mod merge;
pub mod optimize;
