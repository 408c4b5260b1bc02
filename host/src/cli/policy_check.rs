//! `postgate policy check`: would this policy load?

use std::path::PathBuf;

use anyhow::anyhow;

use super::{CliError, Context, Exit, invalid};
use crate::policy::Policy;

/// Arguments of `postgate policy check`.
#[derive(clap::Args)]
pub struct Args {
    /// The policy manifest.
    file: PathBuf,
}

/// Loads the policy as the server would and reports each gate.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    let policy = Policy::load(&args.file).map_err(invalid)?;
    let chain = context.runtime()?.load(&policy);
    let faults = chain.faults();
    for gate in chain.gates() {
        match &gate.fault {
            None => println!("ok     {:<18} {:<8} sha256:{}", gate.name, gate.version, gate.digest),
            Some(fault) => println!("error  {:<18} {fault}", gate.name),
        }
    }
    if let Some((gate, fault)) = faults.first() {
        return Err(invalid(anyhow!("{}: gate `{gate}` {fault}", args.file.display())));
    }
    println!(
        "policy `{}` {}: {} gates ready",
        chain.policy(),
        chain.revision(),
        chain.gates().len()
    );
    Ok(Exit::Success)
}
