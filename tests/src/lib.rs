//! Shared test support: the fuzz targets (run by `cargo fuzz` from `fuzz/` and replayed on stable
//! by the `integration` test binary) and helpers that build real tables on local disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod faulty_store;
pub mod fuzz_targets;
pub mod sim;
pub mod tables;
