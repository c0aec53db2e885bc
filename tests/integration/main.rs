//! The one integration test binary (link time is the cost on a small machine).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conflicts;
mod dml;
mod features;
mod fuzz_replay;
mod interop;
mod maintenance;
mod reader;
mod simulation;
mod sql;
mod stores;
mod writer;
