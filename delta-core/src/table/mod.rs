//! The table layer: what a Delta table *is*, independent of where its log lives or how it is
//! read — protocol and metadata actions, the schema and its column mapping, table features and
//! their requirements, the file actions of a commit, and the expression language of predicates.
//!
//! May use: [`crate::error`] only. Nothing here touches storage.

pub mod actions;
pub mod column_mapping;
pub mod expr;
pub mod features;
pub mod protocol;
pub mod schema;
