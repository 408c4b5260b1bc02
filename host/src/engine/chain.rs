//! A loaded policy: its gates in order, and the decision they reach together.

use std::time::Instant;

use serde::Serialize;

use super::bindings::Request;
use super::gate::{GateLoadError, LoadedGate};
use crate::model::{GateRequest, Outcome};
use crate::policy::{ConfigValue, FailureMode, GateMode, GateSpec, Limits, Policy};

/// One gate of a chain: loaded, or broken (and then it denies everything).
enum Slot {
    Ready(Box<LoadedGate>),
    Broken(GateSpec, GateLoadError),
}

/// An immutable, loaded policy. Share it behind an `Arc`: a request that
/// started on a chain finishes on it, whatever replaces it meanwhile.
pub struct Chain {
    engine: wasmtime::Engine,
    policy: String,
    revision: String,
    slots: Vec<Slot>,
}

/// The chain's answer to one request, with every gate's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Deny if any gate denies; else pending if any is pending; else allow.
    pub outcome: Outcome,
    /// The policy's name.
    pub policy: String,
    /// The policy revision every gate of this decision belongs to.
    pub revision: String,
    /// Every gate's result, in chain order.
    pub gates: Vec<GateResult>,
    /// Time for the whole chain, in microseconds.
    pub duration_us: u64,
}

/// One gate's part in a decision.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    /// The gate's name in the policy.
    pub gate: String,
    /// The gate's version, as it describes itself.
    pub version: String,
    /// The sha256 of the component that ran (its pin, when it could not be loaded).
    pub digest: String,
    /// Its verdict.
    pub outcome: Outcome,
    /// Its stable reason code (`gate_error` when the gate failed).
    pub code: String,
    /// Its explanation.
    pub message: String,
    /// The facts behind the verdict, in the gate's order (a JSON object).
    #[serde(serialize_with = "as_object")]
    pub evidence: Vec<(String, String)>,
    /// Time to instantiate and run the gate, in microseconds.
    pub duration_us: u64,
    /// Fuel the gate burned.
    pub fuel: u64,
    /// Why the gate failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when the gate failed and its policy made it allow anyway.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed_open: bool,
    /// `monitor` for a shadow gate, whose verdict is recorded but does not count.
    #[serde(skip_serializing_if = "GateMode::is_enforce")]
    pub mode: GateMode,
}

/// What reviewers see of a gate in the active chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GateInfo {
    /// The gate's name in the policy.
    pub name: String,
    /// Its version, as it describes itself (empty when broken).
    pub version: String,
    /// Its one-sentence summary (empty when broken).
    pub summary: String,
    /// The sha256 of its component.
    pub digest: String,
    /// The component's size in bytes.
    pub size: usize,
    /// The component file it was read from, when it was read from one.
    pub component: Option<String>,
    /// Where its source lives.
    pub source: Option<String>,
    /// Its configuration (a JSON object).
    #[serde(serialize_with = "as_object")]
    #[schema(value_type = Object)]
    pub config: Vec<(String, ConfigValue)>,
    /// Its resource limits.
    pub limits: Limits,
    /// Whether a failure denies or allows.
    pub on_error: FailureMode,
    /// Whether its verdict counts (`enforce`) or is only recorded (`monitor`).
    pub mode: GateMode,
    /// Why it could not be loaded, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

impl Chain {
    /// A chain of `policy`'s gates, each loaded or broken.
    pub(crate) fn new(engine: wasmtime::Engine, policy: &Policy, gates: Vec<Result<LoadedGate, GateLoadError>>) -> Self {
        let slots = policy
            .gates
            .iter()
            .zip(gates)
            .map(|(spec, gate)| match gate {
                Ok(gate) => Slot::Ready(Box::new(gate)),
                Err(err) => Slot::Broken(spec.clone(), err),
            })
            .collect();
        Self {
            engine,
            policy: policy.name.clone(),
            revision: policy.revision.clone(),
            slots,
        }
    }

    /// The policy's name.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The policy revision.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The gates that could not be loaded, with why: a chain with faults
    /// denies everything and must not replace a healthy one.
    pub fn faults(&self) -> Vec<(&str, &GateLoadError)> {
        self.slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Broken(spec, err) => Some((spec.name.as_str(), err)),
                Slot::Ready(_) => None,
            })
            .collect()
    }

    /// How many gates were deserialized from the precompiled cache.
    pub fn cached_gates(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Ready(g) if g.origin == super::cache::Origin::Cached))
            .count()
    }

    /// Runs every gate on `request` and combines their verdicts.
    pub fn evaluate(&self, request: &GateRequest) -> Decision {
        let started = Instant::now();
        let request = Request::from(request);
        let gates: Vec<GateResult> = self
            .slots
            .iter()
            .map(|slot| match slot {
                Slot::Ready(gate) => gate.evaluate(&self.engine, &request),
                Slot::Broken(spec, err) => LoadedGate::broken(spec, err),
            })
            .collect();
        let outcome = combine(gates.iter().filter(|g| g.mode.is_enforce()).map(|g| g.outcome));
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Decision {
            outcome,
            policy: self.policy.clone(),
            revision: self.revision.clone(),
            gates,
            duration_us,
        }
    }

    /// The integer `key` of gate `gate`'s configuration, if the chain has that gate and it sets that key.
    pub fn config_integer(&self, gate: &str, key: &str) -> Option<i64> {
        let spec = self.slots.iter().map(|slot| match slot {
            Slot::Ready(loaded) => &loaded.spec,
            Slot::Broken(spec, _) => spec,
        });
        spec.filter(|spec| spec.name == gate)
            .flat_map(|spec| &spec.config)
            .find_map(|(name, value)| match value {
                ConfigValue::Integer(number) if name == key => Some(*number),
                _ => None,
            })
    }

    /// The chain as reviewers see it.
    pub fn gates(&self) -> Vec<GateInfo> {
        self.slots
            .iter()
            .map(|slot| {
                let (spec, loaded, fault) = match slot {
                    Slot::Ready(gate) => (&gate.spec, Some(gate), None),
                    Slot::Broken(spec, err) => (spec, None, Some(err.to_string())),
                };
                GateInfo {
                    name: spec.name.clone(),
                    version: loaded.map(|g| g.description.version.clone()).unwrap_or_default(),
                    summary: loaded.map(|g| g.description.summary.clone()).unwrap_or_default(),
                    digest: loaded.map_or_else(|| spec.sha256.clone().unwrap_or_default(), |g| g.digest.clone()),
                    size: loaded.map_or(0, |g| g.size),
                    component: spec.component.as_ref().map(|path| path.display().to_string()),
                    source: spec.source.clone(),
                    config: spec.config.clone(),
                    limits: spec.limits,
                    on_error: spec.on_error,
                    mode: spec.mode,
                    fault,
                }
            })
            .collect()
    }
}

/// Key/value pairs as a JSON object, in their order.
fn as_object<S: serde::Serializer, V: Serialize>(pairs: &[(String, V)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// Deny if any denies; else pending if any is pending; else allow. An empty chain denies
/// (a chain of monitor gates alone decides nothing, so it denies).
fn combine(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    let mut combined = None;
    for outcome in outcomes {
        combined = Some(match (combined, outcome) {
            (_, Outcome::Deny) | (Some(Outcome::Deny), _) => Outcome::Deny,
            (_, Outcome::Pending) | (Some(Outcome::Pending), _) => Outcome::Pending,
            _ => Outcome::Allow,
        });
    }
    combined.unwrap_or(Outcome::Deny)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::{Allow, Deny, Pending};

    #[test]
    fn deny_beats_pending_beats_allow() {
        assert_eq!(combine([Allow, Allow].into_iter()), Allow);
        assert_eq!(combine([Allow, Pending, Allow].into_iter()), Pending);
        assert_eq!(combine([Pending, Deny, Allow].into_iter()), Deny);
        assert_eq!(combine([Deny, Pending].into_iter()), Deny);
    }

    #[test]
    fn an_empty_chain_denies() {
        assert_eq!(combine(std::iter::empty()), Deny);
    }
}
