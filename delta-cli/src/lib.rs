//! The `delta` command's library half: what its subcommands share with examples and tests.
//!
//! * [`pipeline`]: the feature pipeline end to end (`delta pipeline`, the README's main
//!   command).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod pipeline;
