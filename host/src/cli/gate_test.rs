//! `postgate gate test`: run gates against the fixture cases beside their source.
//!
//! Each gate directory holds a `cases.json`:
//!
//! ```json
//! { "base": "../../examples/allow.json",
//!   "config": { "price_cents": 4 },
//!   "cases": [
//!     { "name": "three cents is not enough",
//!       "patch": { "account": { "balance_cents": 3 } },
//!       "expect": { "outcome": "deny", "code": "insufficient_credit" } } ] }
//! ```
//!
//! `base` is a request file (relative to `cases.json`); each case applies its
//! `patch` to it (JSON merge patch, RFC 7396) and may override `config`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use serde::Deserialize;

use super::gate_build::{self, Built};
use super::{CliError, Context, Exit, invalid};
use crate::model::{GateRequest, Outcome};
use crate::policy::{self, ConfigValue, FailureMode, GateMode, GateSpec, Limits, Policy};

/// Arguments of `postgate gate test`: the gates to build and test.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    gates: gate_build::Args,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    base: PathBuf,
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    patch: serde_json::Value,
    config: Option<serde_json::Map<String, serde_json::Value>>,
    expect: Expect,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Expect {
    outcome: Outcome,
    code: String,
}

/// Builds the gates, runs every case, prints each result and a summary.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    let args = args.gates;
    let built = gate_build::build(&args.names, &args.dir, &args.out)?;
    let runtime = context.runtime()?;
    let (mut passed, mut failed) = (0, 0);
    for gate in &built {
        let file = args.dir.join(&gate.name).join("cases.json");
        let cases = read_cases(&file).map_err(invalid)?;
        for case in &cases.cases {
            let config = case.config.as_ref().unwrap_or(&cases.config);
            match run_case(&runtime, gate, &file, &cases.base, case, config) {
                Ok(()) => {
                    passed += 1;
                    println!("ok    {} :: {}", gate.name, case.name);
                }
                Err(problem) => {
                    failed += 1;
                    println!("FAIL  {} :: {}\n      {problem}", gate.name, case.name);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { Exit::Success } else { Exit::Deny })
}

fn read_cases(file: &Path) -> anyhow::Result<CaseFile> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let cases: CaseFile = serde_json::from_str(&text).with_context(|| format!("`{}`", file.display()))?;
    if cases.cases.is_empty() {
        return Err(anyhow!("`{}` holds no case", file.display()));
    }
    Ok(cases)
}

fn run_case(
    runtime: &crate::engine::Runtime,
    gate: &Built,
    file: &Path,
    base: &Path,
    case: &Case,
    config: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let base_path = file.parent().unwrap_or(Path::new(".")).join(base);
    let base_text = std::fs::read_to_string(&base_path).map_err(|err| format!("cannot read base `{}`: {err}", base_path.display()))?;
    let mut request: serde_json::Value =
        serde_json::from_str(&base_text).map_err(|err| format!("base `{}`: {err}", base_path.display()))?;
    json_patch::merge(&mut request, &case.patch);
    let request = GateRequest::from_json(&request.to_string()).map_err(|err| format!("the patched request is invalid: {err}"))?;
    let spec = GateSpec {
        name: gate.name.clone(),
        component: Some(gate.path.clone()),
        sha256: Some(gate.digest.clone()),
        source: None,
        config: config_values(config)?,
        limits: Limits::default(),
        on_error: FailureMode::Deny,
        mode: GateMode::Enforce,
    };
    let policy = Policy {
        name: "gate-test".into(),
        revision: "test".into(),
        path: file.to_owned(),
        gates: vec![spec],
    };
    let chain = runtime.load(&policy);
    if let Some((_, fault)) = chain.faults().first() {
        return Err(format!("gate could not be loaded: {fault}"));
    }
    let decision = chain.evaluate(&request);
    let got = decision.gates.into_iter().next().ok_or("the chain returned no verdict")?;
    if got.outcome == case.expect.outcome && got.code == case.expect.code {
        return Ok(());
    }
    Err(format!(
        "expected {} `{}`, got {} `{}`: {}",
        case.expect.outcome, case.expect.code, got.outcome, got.code, got.message
    ))
}

/// A case's JSON config, read by the same rules as a policy's `[gate.config]`.
fn config_values(config: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<(String, ConfigValue)>, String> {
    config
        .iter()
        .map(|(key, value)| {
            let value: toml::Value = serde_json::from_value(value.clone()).map_err(|err| format!("config `{key}`: {err}"))?;
            policy::config_value(&format!("config.{key}"), value).map(|value| (key.clone(), value))
        })
        .collect()
}
