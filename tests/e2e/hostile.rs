//! Hostile gates: every misbehaviour ends in a bounded-time, fail-closed deny
//! naming the gate (or a refusal at load), and later decisions are unaffected.

use std::time::{Duration, Instant};

use postgate::engine::{Chain, GateLoadError};
use postgate::model::Outcome;
use postgate::policy::Policy;
use serde_json::json;

use crate::support::{GateEntry, fixture, gate, reference_gates, request_with, runtime, write_policy};

/// A bound on how long any hostile gate may hold a decision: generous for a
/// loaded 2-core machine, yet far below "never".
const BOUND: Duration = Duration::from_secs(2);

struct Setup {
    dir: tempfile::TempDir,
    runtime: postgate::engine::Runtime,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir.path().join("cache"));
    Setup { dir, runtime }
}

impl Setup {
    /// A chain of the hostile gate followed by the approval gate.
    fn chain(&self, hostile: GateEntry) -> Chain {
        let path = write_policy(self.dir.path(), "hostile", &[hostile, GateEntry::new("approval", gate("approval"))]);
        self.runtime.load(&Policy::load(&path).unwrap())
    }

    fn load_fault(&self, hostile: GateEntry) -> GateLoadError {
        let chain = self.chain(hostile);
        let faults = chain.faults();
        assert_eq!(faults.len(), 1, "exactly the hostile gate fails to load");
        assert_eq!(faults[0].0, "hostile");
        faults[0].1.clone()
    }

    /// The default chain still allows the example request.
    fn assert_healthy(&self) {
        let path = write_policy(self.dir.path(), "healthy", &reference_gates());
        let chain = self.runtime.load(&Policy::load(&path).unwrap());
        let decision = chain.evaluate(&request_with(json!({})));
        assert_eq!(decision.outcome, Outcome::Allow, "{decision:#?}");
    }
}

/// Runs the chain and checks the hostile gate failed closed with `reason` in its error.
fn assert_fails_closed(chain: &Chain, reason: &str) {
    let started = Instant::now();
    let decision = chain.evaluate(&request_with(json!({})));
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    assert_eq!(decision.outcome, Outcome::Deny);
    let hostile = &decision.gates[0];
    assert_eq!(
        (hostile.gate.as_str(), hostile.code.as_str(), hostile.outcome),
        ("hostile", "gate_error", Outcome::Deny)
    );
    assert!(hostile.message.contains("gate `hostile` failed"), "{}", hostile.message);
    let error = hostile.error.as_deref().unwrap();
    assert!(error.contains(reason), "expected `{reason}` in `{error}`");
    assert_eq!(decision.gates[1].code, "approved", "the next gate still runs");
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let setup = setup();
    let chain =
        setup.chain(GateEntry::new("hostile", fixture("infinite-loop")).with("limits = { deadline_ms = 10, fuel = 10_000_000_000 }"));
    assert_fails_closed(&chain, "deadline of 10 ms exceeded");
    let spent = chain.evaluate(&request_with(json!({}))).gates[0].duration_us;
    // Stopped within its deadline of CPU time: the wall clock may add a little
    // for preemption, and the backstop is ten times the deadline.
    assert!((8_000..250_000).contains(&spent), "stopped after {spent} us");
    setup.assert_healthy();
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let setup = setup();
    let chain = setup.chain(GateEntry::new("hostile", fixture("infinite-loop")).with("limits = { deadline_ms = 1000, fuel = 1_000_000 }"));
    assert_fails_closed(&chain, "fuel limit of 1000000 exhausted");
    assert_eq!(chain.evaluate(&request_with(json!({}))).gates[0].fuel, 1_000_000);
    setup.assert_healthy();
}

#[test]
fn a_memory_hog_hits_its_cap() {
    let setup = setup();
    // A deadline far beyond the ~1 ms the hog needs to reach its cap: on a
    // machine busy with other tests, the wall-clock backstop must not win.
    let chain = setup.chain(GateEntry::new("hostile", fixture("memory-hog")).with("limits = { memory_mib = 4, deadline_ms = 1000 }"));
    assert_fails_closed(&chain, "memory limit of 4 MiB exceeded");
    setup.assert_healthy();
}

#[test]
fn a_panic_traps() {
    let setup = setup();
    // std's panic handler reads the environment, which traps; with no
    // handler the abort itself traps. Either way: a trap, failed closed.
    assert_fails_closed(&setup.chain(GateEntry::new("hostile", fixture("trap"))), "trapped: ");
    setup.assert_healthy();
}

#[test]
fn an_oversized_verdict_is_refused() {
    let setup = setup();
    assert_fails_closed(
        &setup.chain(GateEntry::new("hostile", fixture("oversized-verdict")).with("limits = { memory_mib = 16 }")),
        "malformed verdict: message is 1048576 bytes, the limit is 1024",
    );
    setup.assert_healthy();
}

#[test]
fn a_gate_set_to_fail_open_allows_and_says_so() {
    let setup = setup();
    let chain = setup.chain(GateEntry::new("hostile", fixture("trap")).with(r#"on_error = "allow""#));
    let decision = chain.evaluate(&request_with(json!({})));
    assert_eq!(decision.outcome, Outcome::Allow);
    let hostile = &decision.gates[0];
    assert!(hostile.failed_open);
    assert_eq!((hostile.code.as_str(), hostile.outcome), ("gate_error", Outcome::Allow));
    assert!(hostile.message.contains("configured to fail open"), "{}", hostile.message);
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(json["gates"][0]["failed_open"], true);
}

#[test]
fn a_wasi_capability_import_is_refused_at_load() {
    let setup = setup();
    let fault = setup.load_fault(GateEntry::new("hostile", fixture("wasi-import")));
    assert!(
        matches!(&fault, GateLoadError::ForbiddenImport(import) if import.starts_with("wasi:clocks/") || import.starts_with("wasi:filesystem/")),
        "{fault}"
    );
    // Served anyway, the broken gate denies: fail closed.
    let chain = setup.chain(GateEntry::new("hostile", fixture("wasi-import")));
    let decision = chain.evaluate(&request_with(json!({})));
    assert_eq!((decision.outcome, decision.gates[0].code.as_str()), (Outcome::Deny, "gate_error"));
    setup.assert_healthy();
}

#[test]
fn the_wrong_world_is_refused_at_load() {
    let setup = setup();
    let fault = setup.load_fault(GateEntry::new("hostile", fixture("wrong-world")));
    assert!(matches!(fault, GateLoadError::NotAGate(_)), "{fault}");
    assert_eq!(
        fault.to_string(),
        "does not implement `postgate:gate/gate@0.1.0`: it exports `check`"
    );
}

#[test]
fn a_file_that_is_not_wasm_is_refused_at_load() {
    let setup = setup();
    let not_wasm = crate::support::root().join("tests/fixtures/not-wasm.wasm");
    let fault = setup.load_fault(GateEntry::new("hostile", not_wasm));
    assert!(matches!(fault, GateLoadError::Invalid(_)), "{fault}");
    assert!(fault.to_string().contains("magic header not detected"), "{fault}");
    assert!(!fault.to_string().contains('\n'), "one line: {fault}");
}

#[test]
fn a_digest_mismatch_is_refused_at_load() {
    let setup = setup();
    let pin = "0".repeat(64);
    let fault = setup.load_fault(GateEntry::new("hostile", gate("credit")).with(&format!("sha256 = \"{pin}\"")));
    assert!(
        matches!(&fault, GateLoadError::DigestMismatch { pinned, .. } if *pinned == pin),
        "{fault}"
    );
}

#[test]
fn a_missing_component_is_refused_at_load() {
    let setup = setup();
    let fault = setup
        .load_fault(GateEntry::new("hostile", setup.dir.path().join("nowhere.wasm")).with(&format!("sha256 = \"{}\"", "1".repeat(64))));
    assert!(matches!(fault, GateLoadError::Read { .. }), "{fault}");
}

#[test]
fn hostile_runs_leak_nothing_into_later_decisions() {
    let setup = setup();
    let hogs = setup.chain(GateEntry::new("hostile", fixture("memory-hog")).with("limits = { memory_mib = 8 }"));
    let traps = setup.chain(GateEntry::new("hostile", fixture("trap")));
    // Far more runs than the pool has slots: every failed instance is returned.
    for _ in 0..600 {
        assert_eq!(hogs.evaluate(&request_with(json!({}))).outcome, Outcome::Deny);
        assert_eq!(traps.evaluate(&request_with(json!({}))).outcome, Outcome::Deny);
    }
    setup.assert_healthy();
}

#[test]
fn a_malformed_deny_is_never_turned_into_an_allow() {
    let setup = setup();
    // The destination gate denies a foreign destination and names it in its evidence;
    // the SDK clips the id, so the verdict stays well-formed and the deny stands.
    let chain = setup.chain(GateEntry::new("hostile", gate("destination")).with(
        r#"on_error = "allow"
config = { providers = ["x"] }"#,
    ));
    let decision = chain.evaluate(&request_with(
        json!({"destination": {"workspace_id": "ws_2", "id": "d".repeat(100_000)}}),
    ));
    assert_eq!(
        (decision.outcome, decision.gates[0].code.as_str()),
        (Outcome::Deny, "destination_foreign")
    );
}
