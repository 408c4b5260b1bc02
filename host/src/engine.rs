//! The gate engine: compiles a policy's gates once, then decides each
//! request by running every gate in a fresh, capability-free sandbox.
//!
//! - [`Runtime`] owns the wasmtime engine (pooling allocator, fuel, epoch
//!   deadlines) and the precompiled-component cache.
//! - [`Chain`] is one loaded policy: it evaluates a [`GateRequest`] into a
//!   [`Decision`]. It is immutable, so swapping policies is swapping an `Arc`.
//!
//! [`GateRequest`]: crate::model::GateRequest

mod bindings;
mod cache;
mod chain;
mod gate;
mod runtime;

pub use chain::{Chain, Decision, GateInfo, GateResult};
pub use gate::{Description, GateLoadError, Inspection, import_treatment, read_component};
pub use runtime::{Runtime, RuntimeOptions};

/// The sha256 of `bytes`, lowercase hex: how gates are pinned and cached.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The code of every verdict that stands for a failed gate rather than its judgement.
pub const GATE_ERROR: &str = "gate_error";
