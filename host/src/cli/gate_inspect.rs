//! `postgate gate inspect`: what a component is, exports and imports.

use std::path::PathBuf;

use anyhow::anyhow;

use super::{CliError, Context, Exit, internal, invalid};
use crate::engine::import_treatment;

/// Arguments of `postgate gate inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The component file.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Prints the component's digest, size, contract, self-description, exports and imports.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    let bytes = std::fs::read(&args.file).map_err(|err| invalid(anyhow!("cannot read `{}`: {err}", args.file.display())))?;
    let inspection = context
        .runtime()?
        .inspect(&bytes)
        .map_err(|err| invalid(anyhow!("`{}`: {err}", args.file.display())))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&inspection).map_err(internal)?);
        return Ok(Exit::Success);
    }
    println!("file:        {}", args.file.display());
    println!("digest:      sha256:{}", inspection.digest);
    println!("size:        {} bytes", inspection.size);
    match &inspection.gate_contract {
        Ok(()) => println!("world:       postgate:gate/safety-gate@0.1.0 (a gate)"),
        Err(why) => println!("world:       not a postgate gate: {why}"),
    }
    if let Some(description) = &inspection.description {
        println!("describes:   {} {}: {}", description.name, description.version, description.summary);
    }
    println!("exports:");
    for name in &inspection.exports {
        println!("  {name}");
    }
    println!("imports:");
    for name in &inspection.imports {
        println!("  {name}  ({})", import_treatment(name));
    }
    Ok(if inspection.gate_contract.is_ok() {
        Exit::Success
    } else {
        Exit::Invalid
    })
}
