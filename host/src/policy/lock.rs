//! `postgate policy lock`: pin each gate's current digest into the manifest.

use std::path::Path;

use anyhow::{Context as _, bail};

use super::Policy;

/// Writes each gate's current component digest into the manifest at `path`,
/// keeping its comments and layout. Returns `(gate, digest)` in chain order.
pub fn lock(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    // Edit the real file, not a symlink to it, and keep its permissions.
    let path = &path.canonicalize().with_context(|| format!("{}: cannot read", path.display()))?;
    let policy = Policy::load(path)?;
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut document: toml_edit::DocumentMut = text.parse().with_context(|| format!("{}: cannot edit", path.display()))?;
    let Some(tables) = document.get_mut("gate").and_then(|g| g.as_array_of_tables_mut()) else {
        bail!("{}: `gate` must be written as `[[gate]]` tables to be locked", path.display());
    };
    let mut pins = Vec::new();
    for (table, gate) in tables.iter_mut().zip(&policy.gates) {
        let bytes = crate::engine::read_component(gate).with_context(|| format!("gate `{}`", gate.name))?;
        let digest = crate::engine::sha256_hex(&bytes);
        table["sha256"] = toml_edit::value(digest.clone());
        pins.push((gate.name.clone(), digest));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, document.to_string().as_bytes())?;
    std::fs::set_permissions(file.path(), std::fs::metadata(path)?.permissions())?;
    file.persist(path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(pins)
}
