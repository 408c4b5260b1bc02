//! `postgate gate build`: gate crates into WebAssembly components.
//!
//! A gate is a crate in a directory under `--dir` (by default `gates/`) with a
//! `cdylib` target. Each gate is built by its own locked `cargo build` for
//! `wasm32-wasip2` in the `gate` profile, with paths remapped so that the
//! digest depends on the source and the pinned toolchain, not on where the
//! checkout lives. Each component gets its source embedded (see
//! [`crate::provenance`]) and is written to `--out/NAME.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, anyhow};
use serde::Deserialize;

use super::{CliError, Exit, internal, invalid};
use crate::provenance::{self, Source};

/// The target gates are built for.
pub const GATE_TARGET: &str = "wasm32-wasip2";

/// Arguments of `postgate gate build`, and which gates `postgate gate test` builds.
#[derive(clap::Args)]
pub struct Args {
    /// The gates, by directory name; all gates in `--dir` when none is named.
    pub(crate) names: Vec<String>,
    /// The directory holding one crate per gate.
    #[arg(long, default_value = "gates")]
    pub(crate) dir: PathBuf,
    /// Where the built components go, as NAME.wasm.
    #[arg(long, default_value = "target/gates")]
    pub(crate) out: PathBuf,
}

/// A gate that was built.
pub struct Built {
    /// The gate's directory name.
    pub name: String,
    /// The component file.
    pub path: PathBuf,
    /// Its sha256, lowercase hex.
    pub digest: String,
    /// Its size in bytes.
    pub size: usize,
}

/// Builds the gates and prints name, digest and size of each.
pub fn run(args: Args) -> Result<Exit, CliError> {
    for built in build(&args.names, &args.dir, &args.out)? {
        println!(
            "{:<18} sha256:{}  {:>7} bytes  {}",
            built.name,
            built.digest,
            built.size,
            built.path.display()
        );
    }
    Ok(Exit::Success)
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
    workspace_root: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    /// Set for a path dependency.
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    crate_types: Vec<String>,
}

/// Builds the named gates (all in `dir` when `names` is empty) into `out`.
pub fn build(names: &[String], dir: &Path, out: &Path) -> Result<Vec<Built>, CliError> {
    let metadata = metadata(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|err| invalid(anyhow!("gate directory `{}`: {err}", dir.display())))?;
    let gates = gate_crates(&metadata, &dir);
    let selected: Vec<(&String, &Package, &Target)> = if names.is_empty() {
        gates.iter().map(|(n, p, t)| (n, *p, *t)).collect()
    } else {
        names
            .iter()
            .map(|name| {
                gates.iter().find(|(n, ..)| n == name).map(|(n, p, t)| (n, *p, *t)).ok_or_else(|| {
                    let known: Vec<&str> = gates.iter().map(|(n, ..)| n.as_str()).collect();
                    invalid(anyhow!(
                        "no gate `{name}` in `{}`; gates there: {}",
                        dir.display(),
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    if selected.is_empty() {
        return Err(invalid(anyhow!("no gate crates (with a cdylib target) in `{}`", dir.display())));
    }
    std::fs::create_dir_all(out).map_err(|err| internal(anyhow!("cannot create `{}`: {err}", out.display())))?;
    let artifacts = metadata.target_directory.join(GATE_TARGET).join("gate");
    selected
        .into_iter()
        .map(|(name, package, target)| {
            // One gate per cargo run: features unify across the packages of a
            // run, and `gate verify` rebuilds each gate alone.
            compile(&dir, &metadata.workspace_root, &package.name, None)?;
            let component = read_artifact(&artifacts, &target.name)?;
            let bytes = match source(&metadata, package) {
                Ok(source) => provenance::embed(&component, &source.to_bytes().map_err(internal)?),
                Err(why) => {
                    eprintln!("note: gate `{name}` is built without its source embedded: {why:#}");
                    component
                }
            };
            let path = out.join(format!("{name}.wasm"));
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write `{}`", path.display()))
                .map_err(internal)?;
            Ok(Built {
                name: name.clone(),
                path,
                digest: crate::engine::sha256_hex(&bytes),
                size: bytes.len(),
            })
        })
        .collect()
}

/// The source of `package`: its crate and the workspace crates it depends on by path, transitively.
fn source(metadata: &Metadata, package: &Package) -> anyhow::Result<Source> {
    let crate_dir = |p: &Package| p.manifest_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut locals: Vec<(String, PathBuf)> = Vec::new();
    let mut todo: Vec<&Package> = vec![package];
    while let Some(next) = todo.pop() {
        for path in next.dependencies.iter().filter_map(|d| d.path.as_ref()) {
            let local = metadata
                .packages
                .iter()
                .find(|p| crate_dir(p) == *path)
                .ok_or_else(|| anyhow!("its path dependency `{}` is not a crate of this workspace", path.display()))?;
            if !locals.iter().any(|(name, _)| *name == local.name) {
                locals.push((local.name.clone(), path.clone()));
                todo.push(local);
            }
        }
    }
    Source::collect(&metadata.workspace_root, &crate_dir(package), &package.name, &locals)
}

/// Builds the gate `package` of the workspace at `root` (running cargo in
/// `cwd`) at the versions its lockfile pins, when it has one.
///
/// A rebuild (`target_dir` given) runs in a workspace of the gate and the SDK
/// alone, whose embedded lockfile may list a few packages more than that
/// workspace needs; cargo drops those and keeps every pinned version.
pub(crate) fn compile(cwd: &Path, root: &Path, package: &str, target_dir: Option<&Path>) -> Result<(), CliError> {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(cwd)
        .args(["build", "--quiet", "--profile", "gate", "--target", GATE_TARGET, "-p", package]);
    match target_dir {
        Some(target_dir) => {
            cargo.env("CARGO_TARGET_DIR", target_dir);
        }
        // A new workspace's first build writes its lockfile.
        None if root.join("Cargo.lock").exists() => {
            cargo.arg("--locked");
        }
        None => {}
    }
    // The encoded form wins over RUSTFLAGS and survives paths with spaces; with
    // `--target` it applies to the gates only, not to build scripts or macros.
    cargo
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags(root).join("\x1f"))
        .env_remove("RUSTFLAGS");
    let status = cargo.status().map_err(|err| internal(anyhow!("cannot run cargo: {err}")))?;
    if !status.success() {
        return Err(invalid(anyhow!("cargo could not build gate `{package}` ({status})")));
    }
    Ok(())
}

/// The component cargo built for `target` under `artifacts`.
pub(crate) fn read_artifact(artifacts: &Path, target: &str) -> Result<Vec<u8>, CliError> {
    let built = artifacts.join(format!("{}.wasm", target.replace('-', "_")));
    std::fs::read(&built)
        .with_context(|| format!("cannot read `{}`", built.display()))
        .map_err(internal)
}

/// Flags for reproducible, lean gates: source paths remapped to fixed
/// prefixes, a 64 KiB shadow stack instead of Rust's 1 MiB, which every
/// fresh instance would otherwise carry, and libc's memory functions.
fn rustflags(workspace_root: &Path) -> Vec<String> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default();
    vec![
        format!("--remap-path-prefix={}=/postgate", workspace_root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        "-Clink-arg=-zstack-size=65536".to_owned(),
        // A `no_std` gate still needs `memcmp` and friends: take them from the
        // target's own libc (pure functions, importing nothing).
        "-Clink-arg=-lc".to_owned(),
    ]
}

fn metadata(dir: &Path) -> Result<Metadata, CliError> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .map_err(|err| internal(anyhow!("cannot run cargo: {err}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|line| !line.trim().is_empty()).unwrap_or("no output").trim();
        return Err(invalid(anyhow!("cargo metadata failed in `{}`: {first}", dir.display())));
    }
    serde_json::from_slice(&output.stdout).map_err(|err| internal(anyhow!("cannot read cargo metadata: {err}")))
}

/// `(gate name, package, cdylib target)` of each crate directly under `dir`.
fn gate_crates<'m>(metadata: &'m Metadata, dir: &Path) -> Vec<(String, &'m Package, &'m Target)> {
    let mut gates: Vec<_> = metadata
        .packages
        .iter()
        .filter_map(|package| {
            let crate_dir = package.manifest_path.parent()?;
            if crate_dir.parent()? != dir {
                return None;
            }
            let target = package.targets.iter().find(|t| t.crate_types.iter().any(|c| c == "cdylib"))?;
            Some((crate_dir.file_name()?.to_string_lossy().into_owned(), package, target))
        })
        .collect();
    gates.sort_by(|a, b| a.0.cmp(&b.0));
    gates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustflags_remap_the_checkout() {
        let flags = rustflags(Path::new("/somewhere/my checkout"));
        assert!(
            flags.contains(&"--remap-path-prefix=/somewhere/my checkout=/postgate".to_owned()),
            "{flags:?}"
        );
        assert!(flags.iter().any(|f| f.ends_with("stack-size=65536")), "{flags:?}");
    }
}
