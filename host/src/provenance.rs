//! Gate provenance: the source a component was built from, embedded in it.
//!
//! `postgate gate build` appends a custom section, [`SECTION`], holding every
//! file the build read: the gate crate, the gate SDK, the WIT contract, a
//! workspace manifest naming just those two crates, the lockfile pruned to
//! their dependencies, and the pinned toolchain. The section is part of the
//! component, so the digest a reviewer signs off covers the source too.
//! `postgate gate verify` rebuilds from it and compares digests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};

/// The custom section's name.
pub const SECTION: &str = "postgate:source";

/// The files a gate was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The format of this section; 1.
    pub format: u32,
    /// The cargo package of the gate.
    pub package: String,
    /// The gate crate's directory, relative to the workspace root.
    pub crate_dir: String,
    /// Every file the build reads, by path relative to the workspace root.
    pub files: BTreeMap<String, String>,
}

/// The one section format this postgate writes and reads.
const FORMAT: u32 = 1;

impl Source {
    /// Collects the source of the gate package `package` in `crate_dir`, in
    /// the workspace at `root`, with the local crates it depends on (`locals`:
    /// package name and directory, e.g. the gate SDK), all inside `root`.
    pub fn collect(root: &Path, crate_dir: &Path, package: &str, locals: &[(String, PathBuf)]) -> anyhow::Result<Self> {
        let relative = |path: &Path| -> anyhow::Result<String> {
            Ok(path
                .strip_prefix(root)
                .with_context(|| format!("`{}` is outside the workspace", path.display()))?
                .to_string_lossy()
                .into_owned())
        };
        let mut members = vec![relative(crate_dir)?];
        for (_, dir) in locals {
            members.push(relative(dir)?);
        }
        let mut files = BTreeMap::new();
        for member in &members {
            add_tree(root, &root.join(member), &mut files)?;
        }
        // The WIT contract the SDK generates its bindings from, by this repository's layout.
        if root.join("wit").is_dir() {
            add_tree(root, &root.join("wit"), &mut files)?;
        }
        let toolchain = root.join("rust-toolchain.toml");
        if toolchain.exists() {
            files.insert(
                "rust-toolchain.toml".into(),
                std::fs::read_to_string(&toolchain).with_context(|| format!("cannot read `{}`", toolchain.display()))?,
            );
        }
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        files.insert("Cargo.toml".into(), workspace_manifest(root, &members)?);
        let mut roots = vec![package];
        roots.extend(locals.iter().map(|(name, _)| name.as_str()));
        files.insert("Cargo.lock".into(), pruned_lockfile(root, &roots)?);
        let crate_dir = members[0].to_owned();
        Ok(Self {
            format: FORMAT,
            package: package.to_owned(),
            crate_dir,
            files,
        })
    }

    /// The section's payload.
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Refuses a section no `gate build` writes: it comes from a component,
    /// which anyone may have made. The package must be a plain crate name; each
    /// path plain, relative and not hidden (so no `.cargo/config.toml` can
    /// change how a rebuild runs); the toolchain file may not name a local toolchain.
    fn check(&self) -> anyhow::Result<()> {
        if self.package.is_empty() || !self.package.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            bail!("the embedded source names package `{}`, which is not a crate name", self.package);
        }
        for path in self.files.keys() {
            let relative = Path::new(path);
            let plain =
                |c: std::path::Component<'_>| matches!(c, std::path::Component::Normal(name) if !name.to_string_lossy().starts_with('.'));
            if relative.is_absolute() || !relative.components().all(plain) {
                bail!("the embedded source names `{path}`, which is not a plain relative path");
            }
        }
        if let Some(toolchain) = self.files.get("rust-toolchain.toml") {
            let table: toml::Table = toml::from_str(toolchain).map_err(|err| anyhow!("the embedded rust-toolchain.toml: {err}"))?;
            if table.get("toolchain").and_then(|t| t.get("path")).is_some() {
                bail!("the embedded rust-toolchain.toml names a local toolchain `path`");
            }
        }
        Ok(())
    }

    /// Writes the files under `dir`.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        self.check()?;
        for (path, text) in &self.files {
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&file, text).with_context(|| format!("cannot write `{}`", file.display()))?;
        }
        Ok(())
    }
}

/// `component` with `payload` appended as the source section.
pub fn embed(component: &[u8], payload: &[u8]) -> Vec<u8> {
    use wasm_encoder::{Encode as _, Section as _};
    let section = wasm_encoder::CustomSection {
        name: SECTION.into(),
        data: payload.into(),
    };
    let mut bytes = component.to_vec();
    bytes.push(section.id());
    section.encode(&mut bytes);
    bytes
}

/// The source section's payload at the top level of `component`, if it has one.
pub fn section(component: &[u8]) -> anyhow::Result<Option<&[u8]>> {
    let mut depth = 0usize;
    let mut found = None;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.map_err(|err| anyhow!("not a WebAssembly component: {err}"))? {
            wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::CustomSection(reader) if depth == 0 && reader.name() == SECTION => {
                if found.is_some() {
                    bail!("the component carries two `{SECTION}` sections");
                }
                found = Some(reader.data());
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The source embedded in `component`, if any.
pub fn embedded(component: &[u8]) -> anyhow::Result<Option<Source>> {
    let Some(payload) = section(component)? else { return Ok(None) };
    let source: Source = serde_json::from_slice(payload).map_err(|err| anyhow!("the `{SECTION}` section is malformed: {err}"))?;
    if source.format != FORMAT {
        bail!("the `{SECTION}` section is format {}, this postgate reads {FORMAT}", source.format);
    }
    source.check()?;
    Ok(Some(source))
}

/// Adds every file under `dir` (no hidden files, no `target`) to `files`.
fn add_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            add_tree(root, &path, files)?;
        } else {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("cannot embed `{}`: gate sources are text", path.display()))?;
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            files.insert(relative, text);
        }
    }
    Ok(())
}

/// The workspace manifest at `root` with `members` as its only members.
fn workspace_manifest(root: &Path, members: &[&str]) -> anyhow::Result<String> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut manifest: toml_edit::DocumentMut = text.parse().with_context(|| format!("cannot parse `{}`", path.display()))?;
    let workspace = manifest
        .get_mut("workspace")
        .and_then(|w| w.as_table_mut())
        .ok_or_else(|| anyhow!("`{}` has no [workspace]", path.display()))?;
    workspace["members"] = toml_edit::value(members.iter().copied().collect::<toml_edit::Array>());
    workspace.remove("default-members");
    workspace.remove("exclude");
    Ok(manifest.to_string())
}

/// The lockfile at `root` with only the packages `roots` depend on, directly or not.
fn pruned_lockfile(root: &Path, roots: &[&str]) -> anyhow::Result<String> {
    let path = root.join("Cargo.lock");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut lock: toml_edit::DocumentMut = text.parse().with_context(|| format!("cannot parse `{}`", path.display()))?;
    let packages = lock
        .get("package")
        .and_then(|p| p.as_array_of_tables())
        .ok_or_else(|| anyhow!("`{}` lists no packages", path.display()))?;
    // A dependency is written `name` or `name version` (or `name version (source)`).
    let key = |table: &toml_edit::Table| -> (String, String) {
        let field = |name: &str| table.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        (field("name"), field("version"))
    };
    let mut keep = BTreeSet::new();
    let mut todo: Vec<String> = roots.iter().map(|r| (*r).to_owned()).collect();
    while let Some(dependency) = todo.pop() {
        let mut parts = dependency.split(' ');
        let name = parts.next().unwrap_or_default();
        let version = parts.next();
        for table in packages.iter() {
            let (n, v) = key(table);
            if n == name && version.is_none_or(|version| version == v) && keep.insert((n, v)) {
                let deps = table.get("dependencies").and_then(|d| d.as_array());
                todo.extend(deps.into_iter().flatten().filter_map(|d| d.as_str()).map(str::to_owned));
            }
        }
    }
    if let Some(packages) = lock.get_mut("package").and_then(|p| p.as_array_of_tables_mut()) {
        packages.retain(|table| keep.contains(&key(table)));
    }
    Ok(lock.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_round_trips_and_escaping_paths_are_refused() {
        // The smallest component: magic and the component-layer version.
        let component = b"\0asm\x0d\0\x01\0";
        let source = Source {
            format: FORMAT,
            package: "p".into(),
            crate_dir: "gates/p".into(),
            files: BTreeMap::from([("gates/p/src/lib.rs".to_owned(), "// hi".to_owned())]),
        };
        let with = embed(component, &source.to_bytes().unwrap());
        assert_eq!(embedded(&with).unwrap(), Some(source.clone()));
        assert_eq!(embedded(component).unwrap(), None);
        let twice = embed(&with, &source.to_bytes().unwrap());
        assert!(embedded(&twice).is_err(), "two sections are ambiguous");
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("../outside", ""),
            ("/etc/passwd", ""),
            (".cargo/config.toml", "[build]\nrustc-wrapper = \"sh\""),
            ("rust-toolchain.toml", "[toolchain]\npath = \"/tmp/evil\""),
        ] {
            let mut hostile = source.clone();
            hostile.files.insert(path.into(), text.into());
            assert!(hostile.write_to(dir.path()).is_err(), "{path}");
            let payload = hostile.to_bytes().unwrap();
            assert!(embedded(&embed(component, &payload)).is_err(), "{path}");
        }
        let mut renamed = source;
        renamed.package = "../../home".into();
        assert!(renamed.write_to(dir.path()).is_err());
        assert!(!dir.path().parent().unwrap().join("outside").exists());
    }
}
