//! The HTTP surface. For now: health and the active chain for reviewers.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::engine::{Chain, GateInfo, Runtime};
use crate::policy::Policy;

/// The active policy, swappable atomically while requests are in flight.
pub struct ActivePolicy {
    runtime: Runtime,
    path: PathBuf,
    chain: ArcSwap<Chain>,
}

/// Why a policy was not activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// The manifest is invalid.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// A gate could not be loaded.
    #[error("gate `{gate}` {fault}")]
    Gate {
        /// The gate.
        gate: String,
        /// Why.
        fault: String,
    },
}

impl ActivePolicy {
    /// Loads the policy at `path`. A chain with broken gates still becomes
    /// active (it denies everything: fail closed); check [`Chain::faults`].
    pub fn load(runtime: Runtime, path: PathBuf) -> Result<Self, crate::policy::PolicyError> {
        let policy = Policy::load(&path)?;
        let chain = Arc::new(runtime.load(&policy));
        Ok(Self { runtime, path, chain: ArcSwap::new(chain) })
    }

    /// The chain new requests run on. Hold the `Arc` for the whole request.
    pub fn current(&self) -> Arc<Chain> {
        self.chain.load_full()
    }

    /// Re-reads the policy file and swaps it in, only if every gate loads:
    /// a bad policy never replaces a good one.
    pub fn reload(&self) -> Result<Arc<Chain>, ActivationError> {
        let policy = Policy::load(&self.path)?;
        let chain = self.runtime.load(&policy);
        if let Some((gate, fault)) = chain.faults().first() {
            return Err(ActivationError::Gate { gate: (*gate).to_owned(), fault: fault.to_string() });
        }
        let chain = Arc::new(chain);
        self.chain.store(Arc::clone(&chain));
        Ok(chain)
    }
}

/// The router the server runs.
pub fn router(active: Arc<ActivePolicy>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/v1/gates", get(gates)).with_state(active)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The active chain as reviewers see it.
#[derive(Serialize)]
struct ActiveChain {
    policy: String,
    revision: String,
    gates: Vec<GateInfo>,
}

async fn gates(State(active): State<Arc<ActivePolicy>>) -> Json<ActiveChain> {
    let chain = active.current();
    Json(ActiveChain { policy: chain.policy().to_owned(), revision: chain.revision().to_owned(), gates: chain.gates() })
}
