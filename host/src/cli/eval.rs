//! `postgate eval`: one request through a policy, the decision as JSON.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};

use super::{CliError, Context, Exit, internal, invalid};
use crate::model::{GateRequest, Outcome};
use crate::policy::Policy;

/// Arguments of `postgate eval`.
#[derive(clap::Args)]
pub struct Args {
    /// The policy manifest.
    #[arg(long, env = "POSTGATE_POLICY", default_value = "policies/default.toml")]
    policy: PathBuf,
    /// The request as JSON (snake_case keys, as in `examples/allow.json`); `-` reads stdin.
    #[arg(long)]
    input: PathBuf,
}

/// Evaluates the request and prints the decision; the exit code is the outcome.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    let text = read_input(&args.input).map_err(invalid)?;
    let request = GateRequest::from_json(&text).map_err(|err| invalid(anyhow!("{}: invalid request: {err}", args.input.display())))?;
    let policy = Policy::load(&args.policy).map_err(invalid)?;
    let chain = context.runtime()?.load(&policy);
    for (gate, fault) in chain.faults() {
        eprintln!("warning: gate `{gate}` {fault}; it denies every request");
    }
    let decision = chain.evaluate(&request);
    println!("{}", serde_json::to_string_pretty(&decision).map_err(internal)?);
    Ok(match decision.outcome {
        Outcome::Allow => Exit::Success,
        Outcome::Deny => Exit::Deny,
        Outcome::Pending => Exit::Pending,
    })
}

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the request from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read request `{}`", path.display()))
}
