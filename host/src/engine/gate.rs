//! One gate: loading it (digest, compile, contract check, config check) and
//! running it once in a fresh sandbox.

use std::time::{Duration, Instant};

use cpu_time::ThreadTime;

use serde::Serialize;
use wasmtime::component::{Component, ComponentExportIndex, ComponentType, Lift, Linker, WasmList, WasmStr};
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};

use super::GATE_ERROR;
use super::bindings::{self, ConfigEntry, Request, SafetyGatePre};
use super::cache::Origin;
use super::chain::GateResult;
use super::runtime::{EPOCH_TICK, Runtime};
use crate::model::Outcome;
use crate::policy::{FailureMode, GateSpec, Limits};

/// The interface a component must export to be a gate.
const GATE_INTERFACE: &str = "postgate:gate/gate@0.1.0";

/// Imports a gate may carry because they grant nothing: the contract's own
/// `types` interface (types only, no functions), and what a Rust
/// `wasm32-wasip2` guest carries from its standard library (stdio, exit,
/// environment, streams), which is linked as traps: calling one fails the
/// gate. Any other import is refused at load.
const INERT_IMPORT_PREFIXES: [&str; 3] = ["postgate:gate/types@0.1.", "wasi:cli/", "wasi:io/"];

/// Fuel granted to `describe` and `validate-config` at load time.
const LOAD_FUEL: u64 = 10_000_000;

/// Verdict bounds: a gate explains itself, it does not ship payloads.
const MAX_CODE_BYTES: usize = 64;
const MAX_MESSAGE_BYTES: usize = 1024;
const MAX_EVIDENCE: usize = 32;
const MAX_EVIDENCE_VALUE_BYTES: usize = 512;

/// Why a gate could not be loaded. Any of these refuses a policy at load time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GateLoadError {
    /// The server holds no component with the gate's pinned digest.
    #[error("the server holds no component with sha256 {digest}: upload it with the policy")]
    NotHeld {
        /// The pinned digest.
        digest: String,
    },
    /// The component file could not be read.
    #[error("cannot read component `{path}`: {message}")]
    Read {
        /// The component path.
        path: String,
        /// The I/O failure.
        message: String,
    },
    /// The policy pins no digest for the gate.
    #[error("no sha256 pin (the component is {found}); run `postgate policy lock` to pin it")]
    Unpinned {
        /// The component's actual digest.
        found: String,
    },
    /// The component is not the one the policy pinned.
    #[error("digest mismatch: the policy pins {pinned}, the component is {found}")]
    DigestMismatch {
        /// The pinned digest.
        pinned: String,
        /// The actual digest.
        found: String,
    },
    /// The file is not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component imports something postgate never grants.
    #[error("imports `{0}`, a capability postgate never grants to gates")]
    ForbiddenImport(String),
    /// The component does not export the gate contract.
    #[error("does not implement `{GATE_INTERFACE}`: {0}")]
    NotAGate(String),
    /// The component failed while describing itself or checking its config.
    #[error("failed while loading: {0}")]
    Failed(String),
    /// The gate refused its configuration.
    #[error("refused its configuration: {0}")]
    InvalidConfig(String),
}

/// What `postgate gate inspect` shows of a component.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// sha256 of the file, lowercase hex.
    pub digest: String,
    /// Size in bytes.
    pub size: usize,
    /// Whether it implements the gate contract, or why not.
    pub gate_contract: Result<(), String>,
    /// The component's exports, by name.
    pub exports: Vec<String>,
    /// The component's imports, by name.
    pub imports: Vec<String>,
    /// The gate's description of itself, when it is a gate.
    pub description: Option<Description>,
}

/// A gate's description of itself.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it checks.
    pub summary: String,
}

/// How much longer than its deadline a gate may take in wall-clock time
/// while its thread is preempted, before it is stopped regardless.
const WALL_CLOCK_BACKSTOP: u32 = 10;

/// What a gate's store holds: its memory cap and use, and its clock.
struct GateState {
    memory_cap: usize,
    memory_used: usize,
    memory_refused: Option<usize>,
    clock: DeadlineClock,
}

/// Decides, at each epoch tick, whether a gate has used up its deadline.
///
/// The deadline counts the gate's CPU time, not wall-clock time, so a gate
/// whose thread is merely preempted on a busy machine is not failed for it;
/// a wall-clock backstop still stops it at [`WALL_CLOCK_BACKSTOP`] times the
/// deadline. The thread's CPU clock is read only from the first tick on, so
/// gates that finish within a tick (all well-behaved ones) pay no syscall.
struct DeadlineClock {
    deadline: Duration,
    wall_started: Instant,
    /// The thread's CPU clock at the first tick, and the CPU time the gate
    /// is taken to have used by then: one tick, as the ticker fires every
    /// tick. (Were the ticker itself starved, the wall-clock backstop still holds.)
    first_tick: Option<(Duration, Duration)>,
}

impl DeadlineClock {
    fn new(deadline_ms: u32) -> Self {
        Self {
            deadline: Duration::from_millis(deadline_ms.into()),
            wall_started: Instant::now(),
            first_tick: None,
        }
    }

    fn on_tick(&mut self) -> UpdateDeadline {
        let wall = self.wall_started.elapsed();
        if wall >= self.deadline * WALL_CLOCK_BACKSTOP {
            return UpdateDeadline::Interrupt;
        }
        // Without a readable CPU clock, wall-clock time is the conservative bound.
        let used = match ThreadTime::try_now() {
            Ok(now) => {
                let cpu_now = now.as_duration();
                // Wall time before the first tick may be time spent preempted: count at most a tick of it.
                let (cpu_mark, used_at_mark) = *self.first_tick.get_or_insert((cpu_now, wall.min(EPOCH_TICK)));
                used_at_mark + cpu_now.saturating_sub(cpu_mark)
            }
            Err(_) => wall,
        };
        // Stop now if the next tick would land past the deadline, so that a
        // gate is stopped at its deadline give or take the tick's lateness.
        if used + EPOCH_TICK > self.deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        }
    }
}

impl ResourceLimiter for GateState {
    /// The cap holds for all of a gate's memories together.
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_used.saturating_add(desired.saturating_sub(current));
        if total > self.memory_cap {
            self.memory_refused = Some(total);
            return Ok(false);
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // A gate's function table is fixed at link time; growth means abuse.
        Ok(desired <= 10_000)
    }
}

/// The verdict as it lies in the gate's memory, lifted lazily so that its
/// size is checked before any of it is copied into the host: a gate could
/// otherwise return a million evidence entries pointing at one huge string.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawVerdict {
    outcome: bindings::Outcome,
    code: WasmStr,
    message: WasmStr,
    evidence: WasmList<RawEvidence>,
}

/// One evidence entry as it lies in the gate's memory.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawEvidence {
    key: WasmStr,
    value: WasmStr,
}

/// A checked verdict, copied into the host.
struct Verdict {
    outcome: Outcome,
    code: String,
    message: String,
    evidence: Vec<(String, String)>,
}

/// Why a gate run failed, and whether its failure mode may turn that into an allow.
struct Failure {
    message: String,
    /// False for failures that must deny whatever the gate's failure mode:
    /// the host's own (an exhausted pool) and a malformed verdict that denied.
    may_fail_open: bool,
}

/// A compiled, pre-linked gate, ready to instantiate per decision.
pub(crate) struct LoadedGate {
    pub(crate) spec: GateSpec,
    pub(crate) digest: String,
    pub(crate) size: usize,
    pub(crate) description: Description,
    pub(crate) origin: Origin,
    config: Vec<ConfigEntry>,
    pre: SafetyGatePre<GateState>,
    evaluate: ComponentExportIndex,
}

impl LoadedGate {
    /// Verifies, compiles and checks `bytes` as the gate `spec` names.
    pub(crate) fn load(runtime: &Runtime, spec: &GateSpec, bytes: &[u8]) -> Result<Self, GateLoadError> {
        let digest = super::sha256_hex(bytes);
        match &spec.sha256 {
            None => return Err(GateLoadError::Unpinned { found: digest }),
            Some(pinned) if *pinned != digest => {
                return Err(GateLoadError::DigestMismatch {
                    pinned: pinned.clone(),
                    found: digest,
                });
            }
            Some(_) => {}
        }
        let (component, origin) = runtime
            .compile(&digest, bytes)
            .map_err(|err| GateLoadError::Invalid(one_line(&err)))?;
        let pre = link(runtime.engine(), &component)?;
        let evaluate = component
            .get_export_index(None, GATE_INTERFACE)
            .and_then(|gate| component.get_export_index(Some(&gate), "evaluate"))
            .ok_or_else(|| GateLoadError::NotAGate("no `evaluate` export".into()))?;
        let config = bindings::config_entries(&spec.config);
        let description = describe(runtime.engine(), &pre, &spec.limits, Some(&config))?;
        Ok(Self {
            spec: spec.clone(),
            digest,
            size: bytes.len(),
            description,
            origin,
            config,
            pre,
            evaluate,
        })
    }

    /// Runs the gate on one request in a fresh instance, within its limits.
    /// Every failure becomes a `gate_error` verdict per the gate's failure mode.
    pub(crate) fn evaluate(&self, engine: &wasmtime::Engine, request: &Request) -> GateResult {
        let started = Instant::now();
        let limits = &self.spec.limits;
        let mut store = sandbox(engine, limits, limits.fuel);
        let verdict = self.run(&mut store, request);
        let fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        // Tearing the instance down (resetting its memory) is part of its cost.
        drop(store);
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut result = GateResult {
            gate: self.spec.name.clone(),
            version: self.description.version.clone(),
            digest: self.digest.clone(),
            outcome: Outcome::Deny,
            code: GATE_ERROR.into(),
            message: String::new(),
            evidence: Vec::new(),
            duration_us,
            fuel,
            error: None,
            failed_open: false,
            mode: self.spec.mode,
        };
        match verdict {
            Ok(verdict) => {
                result.outcome = verdict.outcome;
                result.code = verdict.code;
                result.message = verdict.message;
                result.evidence = verdict.evidence;
            }
            Err(failure) => {
                result.failed_open = failure.may_fail_open && self.spec.on_error == FailureMode::Allow;
                if result.failed_open {
                    result.outcome = Outcome::Allow;
                    result.message = format!(
                        "gate `{}` failed and is configured to fail open: {}",
                        self.spec.name, failure.message
                    );
                } else {
                    result.message = format!("gate `{}` failed, so it denies: {}", self.spec.name, failure.message);
                }
                result.error = Some(failure.message);
            }
        }
        result
    }

    fn run(&self, store: &mut Store<GateState>, request: &Request) -> Result<Verdict, Failure> {
        let limits = &self.spec.limits;
        // Only the gate's own faults may fail open, never the host's: an
        // instantiation that fails without a trap or a memory refusal is the
        // host's (an exhausted pool); anything failing inside the call is the gate's.
        let instance = self.pre.instance_pre().instantiate(&mut *store).map_err(|err| Failure {
            message: failure(store, limits, &err),
            may_fail_open: store.data().memory_refused.is_some() || err.downcast_ref::<Trap>().is_some(),
        })?;
        let raw = instance
            .get_typed_func::<(&[ConfigEntry], &Request), (RawVerdict,)>(&mut *store, &self.evaluate)
            .and_then(|evaluate| evaluate.call(&mut *store, (&self.config, request)))
            .map_err(|err| Failure {
                message: failure(store, limits, &err),
                may_fail_open: true,
            })?
            .0;
        let denied = raw.outcome == bindings::Outcome::Deny;
        read_verdict(store, raw).map_err(|problem| Failure {
            message: format!("malformed verdict: {problem}"),
            // A gate that said deny keeps denying, however it said it.
            may_fail_open: !denied,
        })
    }

    /// The verdict of a gate that could not be loaded: always deny.
    pub(crate) fn broken(spec: &GateSpec, error: &GateLoadError) -> GateResult {
        GateResult {
            gate: spec.name.clone(),
            version: String::new(),
            digest: spec.sha256.clone().unwrap_or_default(),
            outcome: Outcome::Deny,
            code: GATE_ERROR.into(),
            message: format!("gate `{}` could not be loaded, so it denies: {error}", spec.name),
            evidence: Vec::new(),
            duration_us: 0,
            fuel: 0,
            error: Some(error.to_string()),
            failed_open: false,
            mode: spec.mode,
        }
    }
}

/// Reads the component file `spec` names.
pub fn read_component(spec: &GateSpec) -> Result<Vec<u8>, GateLoadError> {
    let path = spec.component.as_deref().ok_or_else(|| GateLoadError::Read {
        path: String::new(),
        message: "the policy names no component file for this gate".into(),
    })?;
    std::fs::read(path).map_err(|err| GateLoadError::Read {
        path: path.display().to_string(),
        message: err.to_string(),
    })
}

/// A fresh store for one gate run: its own memory cap, fuel and deadline.
fn sandbox(engine: &wasmtime::Engine, limits: &Limits, fuel: u64) -> Store<GateState> {
    let state = GateState {
        memory_cap: (limits.memory_mib as usize) << 20,
        memory_used: 0,
        memory_refused: None,
        clock: DeadlineClock::new(limits.deadline_ms),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| state);
    // Fuel metering is enabled on the engine, so setting it cannot fail.
    let _ = store.set_fuel(fuel);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut context| Ok(context.data_mut().clock.on_tick()));
    store
}

/// Links a component with no capability and checks it exports the gate contract.
fn link(engine: &wasmtime::Engine, component: &Component) -> Result<SafetyGatePre<GateState>, GateLoadError> {
    let ty = component.component_type();
    if let Some((name, _)) = ty.imports(engine).find(|(name, _)| import_treatment(name) == REFUSED) {
        return Err(GateLoadError::ForbiddenImport(name.to_owned()));
    }
    if !ty.exports(engine).any(|(name, _)| name == GATE_INTERFACE) {
        let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
        return Err(GateLoadError::NotAGate(format!("it exports {}", list_or_nothing(&exports))));
    }
    let mut linker = Linker::new(engine);
    linker
        .define_unknown_imports_as_traps(component)
        .map_err(|err| GateLoadError::Invalid(one_line(&err)))?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|err| GateLoadError::NotAGate(one_line(&err)))?;
    SafetyGatePre::new(pre).map_err(|err| GateLoadError::NotAGate(one_line(&err)))
}

/// An error and its causes on one line: wasmparser's messages span several.
fn one_line(err: &wasmtime::Error) -> String {
    format!("{err:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

const REFUSED: &str = "refused: postgate never grants it";

/// How postgate treats an import of a gate, as `postgate gate inspect` shows it.
pub fn import_treatment(name: &str) -> &'static str {
    if name.starts_with(INERT_IMPORT_PREFIXES[0]) {
        "the contract's types; any function there is linked as a trap"
    } else if INERT_IMPORT_PREFIXES.iter().any(|p| name.starts_with(p)) {
        "linked as a trap"
    } else {
        REFUSED
    }
}

fn list_or_nothing(names: &[&str]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    }
}

/// Instantiates a gate once to read its description and, given a config,
/// to have the gate validate it: what loading a gate and inspecting one share.
fn describe(
    engine: &wasmtime::Engine,
    pre: &SafetyGatePre<GateState>,
    limits: &Limits,
    config: Option<&[ConfigEntry]>,
) -> Result<Description, GateLoadError> {
    let mut store = sandbox(engine, limits, LOAD_FUEL);
    let loaded = (|| {
        let gate = pre.instantiate(&mut store)?;
        let description = gate.postgate_gate_gate().call_describe(&mut store)?;
        let verdict = match config {
            Some(config) => gate.postgate_gate_gate().call_validate_config(&mut store, config)?,
            None => Ok(()),
        };
        Ok::<_, wasmtime::Error>((description, verdict))
    })();
    let (description, verdict) = loaded.map_err(|err| GateLoadError::Failed(failure(&store, limits, &err)))?;
    verdict.map_err(|problem| GateLoadError::InvalidConfig(printable(&problem, MAX_MESSAGE_BYTES)))?;
    let fields = [(&description.name, 64), (&description.version, 64), (&description.summary, 256)];
    if let Some((field, max)) = fields
        .iter()
        .find(|(text, max)| text.len() > *max || text.chars().any(char::is_control))
    {
        return Err(GateLoadError::Failed(format!(
            "malformed description: `{}` is over {max} bytes or holds control characters",
            printable(field, 64)
        )));
    }
    Ok(Description {
        name: description.name,
        version: description.version,
        summary: description.summary,
    })
}

/// Text from a gate, shortened and stripped of control characters for display.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .scan(0, |len, c| {
            *len += c.len_utf8();
            (*len <= max).then_some(c)
        })
        .collect()
}

/// One line saying why a gate run failed, without wasm backtraces.
fn failure(store: &Store<GateState>, limits: &Limits, err: &wasmtime::Error) -> String {
    if let Some(asked) = store.data().memory_refused {
        return format!("memory limit of {} MiB exceeded (it asked for {asked} bytes)", limits.memory_mib);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("deadline of {} ms exceeded", limits.deadline_ms),
        Some(Trap::OutOfFuel) => format!("fuel limit of {} exhausted", limits.fuel),
        Some(trap) => format!("trapped: {trap}"),
        None => {
            let cause = err.root_cause().to_string();
            // Imports linked by `define_unknown_imports_as_traps` fail this way.
            match cause
                .strip_prefix("unknown import: ")
                .and_then(|rest| rest.strip_suffix(" has not been defined"))
            {
                Some(import) => format!("trapped: called {import}, which postgate links as a trap (a gate is granted no capability)"),
                None => cause,
            }
        }
    }
}

/// Copies a verdict out of the gate's memory, checking each size before copying.
fn read_verdict(store: &mut Store<GateState>, raw: RawVerdict) -> Result<Verdict, String> {
    if raw.evidence.len() > MAX_EVIDENCE {
        return Err(format!("{} evidence entries, the limit is {MAX_EVIDENCE}", raw.evidence.len()));
    }
    let entries: Vec<RawEvidence> = raw
        .evidence
        .iter(&mut *store)
        .and_then(|entries| entries.collect::<Result<_, _>>())
        .map_err(|err| format!("evidence: {err}"))?;
    let store = &*store;
    let text = |s: &WasmStr, what: &str, max: usize| -> Result<String, String> {
        let text = s.to_str(store).map_err(|err| format!("{what}: {err}"))?;
        if text.len() > max {
            return Err(format!("{what} is {} bytes, the limit is {max}", text.len()));
        }
        Ok(text.into_owned())
    };
    let code = text(&raw.code, "code", MAX_CODE_BYTES)?;
    if !is_code(&code) {
        return Err(format!("code `{}` is not lowercase snake_case", printable(&code, MAX_CODE_BYTES)));
    }
    if code == GATE_ERROR {
        return Err(format!("code `{GATE_ERROR}` is reserved for the host"));
    }
    let message = text(&raw.message, "message", MAX_MESSAGE_BYTES)?;
    let mut evidence: Vec<(String, String)> = Vec::with_capacity(raw.evidence.len());
    for entry in entries {
        let key = text(&entry.key, "evidence key", MAX_CODE_BYTES)?;
        if !is_code(&key) || evidence.iter().any(|(k, _)| *k == key) {
            return Err(format!(
                "evidence key `{}` is not snake_case or appears twice",
                printable(&key, MAX_CODE_BYTES)
            ));
        }
        let value = text(&entry.value, "evidence value", MAX_EVIDENCE_VALUE_BYTES)?;
        evidence.push((key, value));
    }
    Ok(Verdict {
        outcome: raw.outcome.into(),
        code,
        message,
        evidence,
    })
}

fn is_code(text: &str) -> bool {
    text.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Inspection {
    /// Compiles `bytes` and reads what a reviewer needs to know about them.
    pub(crate) fn of(runtime: &Runtime, bytes: &[u8]) -> Result<Self, GateLoadError> {
        let engine = runtime.engine();
        let digest = super::sha256_hex(bytes);
        let (component, _) = runtime
            .compile(&digest, bytes)
            .map_err(|err| GateLoadError::Invalid(one_line(&err)))?;
        let ty = component.component_type();
        let exports = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
        let imports = ty.imports(engine).map(|(name, _)| name.to_owned()).collect();
        let described = link(engine, &component).and_then(|pre| describe(engine, &pre, &Limits::default(), None));
        let (gate_contract, description) = match described {
            Ok(description) => (Ok(()), Some(description)),
            Err(err) => (Err(err.to_string()), None),
        };
        Ok(Self {
            digest,
            size: bytes.len(),
            gate_contract,
            exports,
            imports,
            description,
        })
    }
}
