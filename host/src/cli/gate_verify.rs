//! `postgate gate verify`: rebuild a gate from the source embedded in it and
//! check that the digest matches.

use std::path::PathBuf;

use anyhow::anyhow;

use super::gate_build::{GATE_TARGET, compile, read_artifact};
use super::{CliError, Context, Exit, internal, invalid};
use crate::provenance;

/// Arguments of `postgate gate verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The component to verify, as built by `postgate gate build`.
    file: PathBuf,
}

/// Rebuilds in `DATA_DIR/verify/PACKAGE` (kept, so a second verify reuses the
/// compiled dependencies) and exits 0 when the digests match, 1 when not.
///
/// A rebuild runs the source's build scripts and macros, as any build does:
/// verify a component of unknown origin in a sandbox.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    let bytes = std::fs::read(&args.file).map_err(|err| invalid(anyhow!("cannot read `{}`: {err}", args.file.display())))?;
    let digest = crate::engine::sha256_hex(&bytes);
    let source = provenance::embedded(&bytes).map_err(invalid)?.ok_or_else(|| {
        invalid(anyhow!(
            "`{}` embeds no source: only `postgate gate build` writes it",
            args.file.display()
        ))
    })?;
    let payload = provenance::section(&bytes).map_err(invalid)?.unwrap_or_default();
    std::fs::create_dir_all(&context.data_dir).map_err(internal)?;
    let work = context
        .data_dir
        .canonicalize()
        .map_err(internal)?
        .join("verify")
        .join(&source.package);
    let tree = work.join("source");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(internal)?;
    }
    source.write_to(&tree).map_err(invalid)?;
    let target_dir = work.join("target");
    eprintln!("rebuilding `{}` from its embedded source in {}", source.package, tree.display());
    compile(&tree, &tree, &source.package, Some(&target_dir))?;
    let library = source.package.replace('-', "_");
    let rebuilt = provenance::embed(&read_artifact(&target_dir.join(GATE_TARGET).join("gate"), &library)?, payload);
    let rebuilt_digest = crate::engine::sha256_hex(&rebuilt);
    if rebuilt_digest == digest {
        println!("ok: `{}` rebuilds from its embedded source to sha256:{digest}", args.file.display());
        Ok(Exit::Success)
    } else {
        println!(
            "mismatch: `{}` is sha256:{digest}, but its embedded source builds sha256:{rebuilt_digest}",
            args.file.display()
        );
        Ok(Exit::Deny)
    }
}
