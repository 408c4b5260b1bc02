//! postgate: a safety-gate engine. Each gate is a sandboxed WebAssembly
//! component; a policy chains them; nothing passes unless every gate allows.
//!
//! The stages of a decision's path each have a module: [`model`] (what a gate
//! is asked), [`policy`] (which gates, with which limits), [`engine`] (running
//! them in wasmtime), [`server`] (the HTTP surface) and [`cli`] (the binary).
//! [`preview`] renders drafts as each platform would receive them.

pub mod api;
pub mod auth;
pub mod cli;
pub mod console;
pub mod delivery;
pub mod engine;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod preview;
pub mod provenance;
pub mod providers;
pub mod secrets;
pub mod server;
pub mod store;
