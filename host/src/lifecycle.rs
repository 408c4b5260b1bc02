//! The policy lifecycle: revisions stored in the database, activated on
//! every host process sharing it, rolled back, gated by reviewers' sign-offs,
//! and tried against recorded traffic before they decide anything.
//!
//! - The database is the source of truth. The last activation names the
//!   revision every process runs; each process checks for a new one every
//!   [`FOLLOW_INTERVAL`] and swaps it in once every gate of it loads.
//! - At first start (nothing ever activated) the host's policy file becomes
//!   the first revision. After that the file is read again only on SIGHUP.
//! - A revision's components are held in the database by digest, so every
//!   process runs the very bytes reviewers signed off, wherever it runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::engine::{Chain, GateLoadError, Runtime};
use crate::model::{GateRequest, Outcome};
use crate::policy::{GateMode, GateSpec, Policy, PolicyError};
use crate::store::{Activation, Revision, Store, StoreError, now};

/// How often a process checks which revision is active.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// Replays per diff, by default and at most.
pub const DIFF_LIMIT: i64 = 10_000;
/// The most replays one diff may ask for.
pub const MAX_DIFF_LIMIT: i64 = 100_000;
/// Changed decisions a diff lists; it counts them all.
const DIFF_LISTED: usize = 100;

/// Why a policy was not activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// The manifest is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A gate could not be loaded.
    #[error("gate `{gate}` {fault}")]
    Gate {
        /// The gate.
        gate: String,
        /// Why.
        fault: String,
    },
    /// An uploaded component carries a source section no `gate build` writes.
    #[error("component sha256:{digest}: {fault}")]
    Component {
        /// The component's sha256.
        digest: String,
        /// What is wrong with it.
        fault: String,
    },
    /// The policy file cannot serve as the first revision.
    #[error("{0}; with no revision in the database, the policy file must load")]
    File(String),
    /// No stored revision has this id.
    #[error("no revision `{0}` is stored")]
    UnknownRevision(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The chain this process runs, swappable atomically while requests are in flight.
pub struct ActivePolicy {
    runtime: Runtime,
    file: PathBuf,
    /// Why the policy file could not be read at start, if it could not.
    file_error: Option<String>,
    chain: ArcSwap<Chain>,
    /// The activation the running chain answers to (0: the file, before any),
    /// and the newer active revision that cannot load here, if one cannot.
    state: Mutex<Installed>,
}

#[derive(Default)]
struct Installed {
    seq: i64,
    stale: Option<String>,
}

impl ActivePolicy {
    /// Loads the policy file at `file`. A chain with broken gates still becomes
    /// active (it denies everything: fail closed); check [`Chain::faults`].
    /// A file that cannot be read or parsed leaves a chain of no gates, which
    /// denies everything, until [`start`] swaps in the database's revision;
    /// [`ActivePolicy::file_error`] says why.
    pub fn load(runtime: Runtime, file: PathBuf) -> Self {
        let (chain, file_error) = match Policy::load(&file) {
            Ok(policy) => (runtime.load(&policy), None),
            Err(err) => {
                let none = Policy {
                    name: "none".into(),
                    revision: "rev_none".into(),
                    path: file.clone(),
                    gates: Vec::new(),
                };
                (runtime.load(&none), Some(err.to_string()))
            }
        };
        Self {
            runtime,
            file,
            file_error,
            chain: ArcSwap::new(Arc::new(chain)),
            state: Mutex::default(),
        }
    }

    /// Why the policy file could not be read at start, if it could not.
    pub fn file_error(&self) -> Option<&str> {
        self.file_error.as_deref()
    }

    /// The chain new requests run on. Hold the `Arc` for the whole request.
    pub fn current(&self) -> Arc<Chain> {
        self.chain.load_full()
    }

    /// The wasmtime runtime chains are compiled with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Reads the policy file again and compiles it, refusing it unless every
    /// gate loads: a bad policy never replaces a good one. Nothing is swapped yet.
    pub fn read_file(&self) -> Result<(Candidate, Chain), ActivationError> {
        let candidate = Candidate::from_file(&self.file)?;
        let chain = candidate.compile(&self.runtime)?;
        Ok((candidate, chain))
    }

    /// Makes `chain`, of activation `seq`, the one new requests run on, unless
    /// the running chain is of that activation or a later one: installs racing
    /// on one process (the follow loop, an upload, a rollback) end on the newest.
    pub fn install(&self, seq: i64, chain: Chain) -> Option<Arc<Chain>> {
        let mut state = self.state();
        if seq <= state.seq {
            return None;
        }
        let chain = Arc::new(chain);
        self.chain.store(Arc::clone(&chain));
        *state = Installed { seq, stale: None };
        Some(chain)
    }

    /// Records that the running chain answers to activation `seq` (it activated the same revision again).
    fn adopt(&self, seq: i64) {
        let mut state = self.state();
        if seq > state.seq {
            *state = Installed { seq, stale: None };
        }
    }

    /// The activation the running chain answers to.
    fn installed(&self) -> i64 {
        self.state().seq
    }

    /// The active revision, when it is newer than the running chain and cannot load here.
    pub fn stale(&self) -> Option<String> {
        self.state().stale.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Installed> {
        // The state is two plain fields: one a panicking holder left is still whole.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A policy with the components it runs: read from the host's file, uploaded, or stored.
pub struct Candidate {
    /// The parsed manifest.
    pub policy: Policy,
    /// The manifest as written.
    pub manifest: String,
    /// Component bytes by sha256.
    pub components: HashMap<String, Vec<u8>>,
    /// Whether component paths in the manifest may be read: only for the host's own file,
    /// never for a manifest that came over the network.
    from_host_file: bool,
}

/// One gate of a stored revision.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RevisionGate {
    /// The gate's name in the policy.
    pub name: String,
    /// The sha256 of its component.
    pub digest: String,
    /// `enforce` or `monitor`.
    pub mode: GateMode,
}

impl Candidate {
    /// The host's policy file and the component files it names.
    pub fn from_file(path: &Path) -> Result<Self, ActivationError> {
        let manifest = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let policy = Policy::parse_file(path, &manifest)?;
        let components = policy
            .gates
            .iter()
            .filter_map(|spec| crate::engine::read_component(spec).ok())
            .map(|bytes| (crate::engine::sha256_hex(&bytes), bytes))
            .collect();
        Ok(Self {
            policy,
            manifest,
            components,
            from_host_file: true,
        })
    }

    /// A manifest and components sent over the API. Every gate must pin its
    /// digest; a component is found among `components` or those already held.
    pub fn from_upload(manifest: &str, components: Vec<Vec<u8>>) -> Result<Self, ActivationError> {
        let policy = Policy::parse(Path::new("manifest"), manifest)?;
        if let Some(unpinned) = policy.gates.iter().find(|gate| gate.sha256.is_none()) {
            return Err(ActivationError::Gate {
                gate: unpinned.name.clone(),
                fault: "has no `sha256`: an uploaded policy names each component by its digest".into(),
            });
        }
        let mut candidate = Self {
            policy,
            manifest: manifest.to_owned(),
            components: components
                .into_iter()
                .map(|bytes| (crate::engine::sha256_hex(&bytes), bytes))
                .collect(),
            from_host_file: false,
        };
        // A component no gate pins is dropped, never held.
        let pins = candidate.pins();
        candidate.components.retain(|digest, _| pins.contains(digest));
        Ok(candidate)
    }

    /// A stored revision, with the components its gates pin that `store` holds.
    pub async fn stored<S: Store>(store: &S, id: &str) -> Result<Self, ActivationError> {
        let revision = store
            .revision(id)
            .await?
            .ok_or_else(|| ActivationError::UnknownRevision(id.to_owned()))?;
        let mut candidate = Self::from_upload(&revision.manifest, Vec::new())?;
        candidate.components = store.components(&candidate.pins()).await?;
        Ok(candidate)
    }

    /// Adds the components `store` holds for pins this candidate lacks.
    pub async fn with_held<S: Store>(mut self, store: &S) -> Result<Self, StoreError> {
        let missing: Vec<String> = self.pins().into_iter().filter(|pin| !self.components.contains_key(pin)).collect();
        self.components.extend(store.components(&missing).await?);
        Ok(self)
    }

    /// The revision id: `rev_` and 16 hex digits of the manifest's sha256, pins included.
    pub fn id(&self) -> &str {
        &self.policy.revision
    }

    /// The distinct digests the gates pin.
    pub fn pins(&self) -> Vec<String> {
        let mut pins: Vec<String> = self.policy.gates.iter().filter_map(|gate| gate.sha256.clone()).collect();
        pins.sort();
        pins.dedup();
        pins
    }

    /// The gates as a stored revision lists them.
    pub fn gates(&self) -> Vec<RevisionGate> {
        self.policy
            .gates
            .iter()
            .map(|gate| RevisionGate {
                name: gate.name.clone(),
                digest: gate.sha256.clone().unwrap_or_default(),
                mode: gate.mode,
            })
            .collect()
    }

    /// The revision to store, first stored by `created_by`.
    pub fn revision(&self, created_by: &str) -> Result<Revision, StoreError> {
        Ok(Revision {
            id: self.id().to_owned(),
            name: self.policy.name.clone(),
            manifest: self.manifest.clone(),
            gates: serde_json::to_string(&self.gates()).map_err(|err| StoreError::Corrupt(err.to_string()))?,
            created_by: created_by.to_owned(),
            created_at: now(),
        })
    }

    /// Refuses a component carrying a source section no `gate build` writes:
    /// reviewers read the embedded source of what the server holds.
    fn check_sources(&self) -> Result<(), ActivationError> {
        for (digest, bytes) in &self.components {
            crate::provenance::embedded(bytes).map_err(|err| ActivationError::Component {
                digest: digest.clone(),
                fault: format!("{err:#}"),
            })?;
        }
        Ok(())
    }

    /// Who first stores a revision read from the host's file: that file.
    pub fn file_origin(&self) -> String {
        format!("host file {}", self.policy.path.display())
    }

    /// Holds the components in `store`, checked as [`Candidate::compile`] checks them.
    pub async fn hold<S: Store>(&self, store: &S) -> Result<(), ActivationError> {
        self.check_sources()?;
        Ok(store.hold_components(&self.components).await?)
    }

    /// Compiles every gate; refuses the candidate if any gate cannot load or
    /// any component's source section is malformed.
    pub fn compile(&self, runtime: &Runtime) -> Result<Chain, ActivationError> {
        self.check_sources()?;
        let chain = runtime.load_with(&self.policy, |spec| self.component(spec));
        if let Some((gate, fault)) = chain.faults().first() {
            return Err(ActivationError::Gate {
                gate: (*gate).to_owned(),
                fault: fault.to_string(),
            });
        }
        Ok(chain)
    }

    fn component(&self, spec: &GateSpec) -> Result<Vec<u8>, GateLoadError> {
        if let Some(bytes) = spec.sha256.as_ref().and_then(|pin| self.components.get(pin)) {
            return Ok(bytes.clone());
        }
        if self.from_host_file {
            // Read again, so that an unpinned or changed file is reported as such.
            return crate::engine::read_component(spec);
        }
        Err(GateLoadError::NotHeld {
            digest: spec.sha256.clone().unwrap_or_default(),
        })
    }
}

/// Compiles `candidate` off the async workers.
pub async fn compile(active: &Arc<ActivePolicy>, candidate: Arc<Candidate>) -> Result<Chain, ActivationError> {
    let active = Arc::clone(active);
    tokio::task::spawn_blocking(move || candidate.compile(active.runtime()))
        .await
        .map_err(|err| ActivationError::Gate {
            gate: "(all)".into(),
            fault: format!("compilation crashed: {err}"),
        })?
}

/// The last activation, naming the revision every process should run.
pub async fn active<S: Store>(store: &S) -> Result<Option<Activation>, StoreError> {
    Ok(store.activations(i64::MAX, 1).await?.into_iter().next())
}

/// What this process runs at start: the active stored revision, or, on a
/// database where nothing was ever activated, the host's policy file, which
/// then becomes the first revision.
pub async fn start<S: Store>(store: &S, policy: &Arc<ActivePolicy>) -> Result<(), ActivationError> {
    if active(store).await?.is_none() {
        if let Some(err) = policy.file_error() {
            return Err(ActivationError::File(err.to_owned()));
        }
        let first = policy.current();
        if !first.faults().is_empty() {
            tracing::error!("the policy file has broken gates: it runs, denying everything, but is not stored as a revision");
            return Ok(());
        }
        let candidate = Candidate::from_file(&policy.file)?;
        candidate.hold(store).await?;
        let revision = candidate.revision(&candidate.file_origin())?;
        if let Some(seq) = store.activate(&revision, "bootstrap", "host", "first start", true).await? {
            policy.adopt(seq);
            tracing::info!(revision = first.revision(), "policy file stored as the first revision");
            return Ok(());
        }
        // Another process bootstrapped the database first: follow it.
    }
    follow_once(store, policy).await.map(|_| ())
}

/// Swaps in the active stored revision if this process runs an older
/// activation; returns the revision swapped in, if any.
pub async fn follow_once<S: Store>(store: &S, policy: &Arc<ActivePolicy>) -> Result<Option<String>, ActivationError> {
    let Some(activation) = active(store).await? else { return Ok(None) };
    if activation.seq <= policy.installed() {
        return Ok(None);
    }
    let running = policy.current();
    // The same revision activated again, or this process's own activation: nothing to load,
    // unless the running chain is broken and the database holds good components.
    if activation.revision_id == running.revision() && running.faults().is_empty() {
        policy.adopt(activation.seq);
        return Ok(None);
    }
    let candidate = Arc::new(Candidate::stored(store, &activation.revision_id).await?);
    let chain = compile(policy, candidate).await?;
    Ok(policy.install(activation.seq, chain).map(|_| activation.revision_id))
}

/// Follows the active revision for the life of the process. A revision that
/// cannot load here is reported once, the running chain stays, and readiness
/// fails until a loadable revision is active.
pub async fn follow<S: Store>(store: S, policy: Arc<ActivePolicy>) {
    loop {
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        match follow_once(&store, &policy).await {
            Ok(Some(id)) => tracing::info!(revision = %id, "policy swapped: activated in the database"),
            Ok(None) => {}
            Err(err) => {
                let id = active(&store).await.ok().flatten().map(|a| a.revision_id);
                let mut state = policy.state();
                if state.stale != id {
                    tracing::error!(error = %err, revision = ?id, "active revision cannot load here; the running policy stays and readiness fails");
                    state.stale = id;
                }
            }
        }
    }
}

/// The revision a rollback without a target returns to: the one active before
/// the current one, where each rollback undoes what it rolled back, so that
/// rolling back twice from C in A, B, C reaches A. Activations oldest first.
pub fn rollback_target(activations: &[Activation]) -> Option<&str> {
    let mut stack: Vec<&str> = Vec::new();
    for activation in activations {
        let id = activation.revision_id.as_str();
        match stack.iter().rposition(|r| *r == id) {
            Some(at) if activation.action == "rollback" => stack.truncate(at + 1),
            _ if stack.last() == Some(&id) => {}
            _ => stack.push(id),
        }
    }
    stack.len().checked_sub(2).map(|at| stack[at])
}

/// A gate whose component lacks the sign-offs strict mode requires.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MissingSignOff {
    /// The gate's name in the policy.
    pub gate: String,
    /// The component's sha256: what a reviewer signs off.
    pub digest: String,
    /// Distinct reviewers who signed it off.
    pub have: usize,
    /// How many must.
    pub need: usize,
}

/// The gates of `candidate` whose components fewer than `required` distinct reviewers signed off.
pub async fn missing_sign_offs<S: Store>(store: &S, candidate: &Candidate, required: usize) -> Result<Vec<MissingSignOff>, StoreError> {
    if required == 0 {
        return Ok(Vec::new());
    }
    let mut reviewers: HashMap<String, Vec<String>> = HashMap::new();
    for sign_off in store.sign_offs(&candidate.pins()).await? {
        reviewers.entry(sign_off.digest).or_default().push(sign_off.reviewer_id);
    }
    Ok(candidate
        .gates()
        .into_iter()
        .filter_map(|gate| {
            let have = reviewers.get(&gate.digest).map_or(0, Vec::len);
            (have < required).then_some(MissingSignOff {
                gate: gate.name,
                digest: gate.digest,
                have,
                need: required,
            })
        })
        .collect())
}

/// What replaying recorded decisions against a candidate policy found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiffReport {
    /// The candidate's revision id.
    pub candidate: String,
    /// Replayed decisions were recorded at or after this time (RFC 3339).
    pub since: String,
    /// Decisions replayed.
    pub replayed: u64,
    /// Decisions whose outcome the candidate changes.
    pub changed: u64,
    /// Outcome counts, recorded → candidate (e.g. `allow→deny`).
    pub transitions: BTreeMap<String, u64>,
    /// Recorded inputs that no longer match their digest: skipped, and a sign of tampering.
    pub unverifiable: Vec<String>,
    /// The first changed decisions, oldest first.
    pub changes: Vec<Change>,
    /// True when the replay stopped at its limit with more decisions left.
    pub truncated: bool,
}

/// One decision whose outcome the candidate changes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// The recorded decision.
    pub decision_id: String,
    /// When it was made.
    pub created_at: String,
    /// The revision it ran on.
    pub revision: String,
    /// Its recorded outcome.
    pub before: Outcome,
    /// The candidate's outcome.
    pub after: Outcome,
    /// The candidate's enforcing gates that did not allow, as `gate: code`.
    pub reasons: Vec<String>,
}

/// Replays decisions recorded since `since` (at most `limit`) against `chain`
/// and reports which outcomes would change. Nothing is written.
pub async fn diff<S: Store>(store: &S, chain: Arc<Chain>, since: &str, limit: i64) -> Result<DiffReport, StoreError> {
    const BATCH: i64 = 500;
    let mut report = DiffReport {
        candidate: chain.revision().to_owned(),
        since: since.to_owned(),
        replayed: 0,
        changed: 0,
        transitions: BTreeMap::new(),
        unverifiable: Vec::new(),
        changes: Vec::new(),
        truncated: false,
    };
    let mut after = 0;
    loop {
        let left = limit - i64::try_from(report.replayed).unwrap_or(i64::MAX);
        let inputs = store.replay_inputs(since, after, BATCH.min(left + 1)).await?;
        let Some(last) = inputs.last() else { break };
        after = last.seq;
        let more = inputs.len() as i64 > left;
        let batch: Vec<_> = inputs.into_iter().take(usize::try_from(left).unwrap_or(0)).collect();
        let chain = Arc::clone(&chain);
        let replayed = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .map(|input| {
                    let decided = serde_json::from_str::<GateRequest>(&input.request)
                        .ok()
                        .filter(|_| crate::engine::sha256_hex(input.request.as_bytes()) == input.request_digest)
                        .map(|request| chain.evaluate(&request));
                    (input, decided)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("replay crashed: {err}")))?;
        for (input, decided) in replayed {
            let Some(decision) = decided else {
                report.unverifiable.push(input.id);
                continue;
            };
            report.replayed += 1;
            let before: Outcome = serde_json::from_value(serde_json::Value::String(input.outcome.clone()))
                .map_err(|err| StoreError::Corrupt(format!("decision {}: outcome: {err}", input.id)))?;
            if before == decision.outcome {
                continue;
            }
            report.changed += 1;
            *report.transitions.entry(format!("{before}→{}", decision.outcome)).or_default() += 1;
            if report.changes.len() < DIFF_LISTED {
                report.changes.push(Change {
                    decision_id: input.id,
                    created_at: input.created_at,
                    revision: input.revision,
                    before,
                    after: decision.outcome,
                    reasons: decision
                        .gates
                        .iter()
                        .filter(|gate| gate.mode.is_enforce() && gate.outcome != Outcome::Allow)
                        .map(|gate| format!("{}: {}", gate.gate, gate.code))
                        .collect(),
                });
            }
        }
        if more {
            report.truncated = true;
            break;
        }
    }
    Ok(report)
}

/// `since` as a stored timestamp: an RFC 3339 time, or a duration back from now such as `2h`.
pub fn parse_since(text: &str) -> Result<String, String> {
    let text = text.trim();
    let at = humantime::parse_rfc3339_weak(text).or_else(|_| {
        let ago = humantime::parse_duration(text)
            .map_err(|_| format!("`since` must be an RFC 3339 time or a duration back from now such as `2h`, not `{text}`"))?;
        std::time::SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("`since` reaches back too far: `{text}`"))
    })?;
    // Timestamps are written from 1970 on; an earlier one cannot even be formatted.
    if at < std::time::UNIX_EPOCH {
        return Err(format!("`since` reaches back before 1970: `{text}`"));
    }
    Ok(humantime::format_rfc3339_micros(at).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activation(revision: &str, action: &str) -> Activation {
        Activation {
            seq: 0,
            revision_id: revision.into(),
            action: action.into(),
            actor: "operator".into(),
            note: String::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn rolling_back_walks_back_through_the_history() {
        let mut history = vec![activation("a", "bootstrap"), activation("b", "upload"), activation("c", "upload")];
        assert_eq!(rollback_target(&history), Some("b"));
        history.push(activation("b", "rollback"));
        assert_eq!(rollback_target(&history), Some("a"), "not back to c");
        history.push(activation("a", "rollback"));
        assert_eq!(rollback_target(&history), None, "nothing before the first");
        history.push(activation("c", "rollback"));
        assert_eq!(
            rollback_target(&history),
            Some("a"),
            "a rollback to a revision no longer stacked pushes it"
        );
        history.push(activation("c", "upload"));
        assert_eq!(
            rollback_target(&history),
            Some("a"),
            "activating the running revision again changes nothing"
        );
    }

    #[test]
    fn since_takes_times_and_durations() {
        assert_eq!(parse_since("2026-12-04T10:00:00Z").unwrap(), "2026-12-04T10:00:00.000000Z");
        assert!(parse_since("2h").unwrap() < now());
        assert!(parse_since("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_since("100y").unwrap_err().contains("before 1970"), "not a panic");
    }
}
