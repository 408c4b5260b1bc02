//! End-to-end tests: the real `postgate` binary and library, real WebAssembly
//! components built from `gates/` and `tests/gates/`, real HTTP.
//!
//! The components are built by `./dev test` before the tests run; a test
//! that finds one missing says so and fails.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]

mod api;
mod authoring;
mod cli;
mod console;
mod decisions;
mod destinations;
mod drafts;
mod durability;
mod fixtures;
mod hostile;
mod lifecycle;
mod policy_files;
mod publications;
mod server;
mod support;
mod swap;
