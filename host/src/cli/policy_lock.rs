//! `postgate policy lock`: pin current component digests into a policy.

use std::path::PathBuf;

use super::{CliError, Exit, invalid};

/// Arguments of `postgate policy lock`.
#[derive(clap::Args)]
pub struct Args {
    /// The policy manifest to update in place.
    file: PathBuf,
}

/// Writes each gate's digest into the manifest and prints the pins.
pub fn run(args: Args) -> Result<Exit, CliError> {
    for (gate, digest) in crate::policy::lock(&args.file).map_err(invalid)? {
        println!("{gate:<18} sha256:{digest}");
    }
    Ok(Exit::Success)
}
