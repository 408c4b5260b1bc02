//! The precompiled-component cache: compiling a gate takes tens of
//! milliseconds, loading its precompiled form well under one, so a restart
//! with a warm cache does not recompile.
//!
//! Entries are keyed by the component's sha256 and the engine's compatibility
//! hash (wasmtime version and settings). Each file holds the sha256 of the
//! artifact before the artifact itself; a file that fails that check (torn
//! write, corruption) is recompiled, never deserialized.

use std::hash::{Hash as _, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;

/// Whether a component came from the cache or was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from a cached artifact.
    Cached,
    /// Compiled from the component bytes (and cached, if there is a cache).
    Compiled,
}

/// A directory of precompiled components.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into sha256, for a key that is stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl Cache {
    /// A cache in `dir`, created owner-only if missing, for components compiled by `engine`.
    pub fn open(dir: &Path, engine: &wasmtime::Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self { dir: dir.to_owned(), engine_key })
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The component with sha256 `digest`, from the cache or compiled from `bytes`.
    pub fn load(&self, engine: &wasmtime::Engine, digest: &str, bytes: &[u8]) -> wasmtime::Result<(Component, Origin)> {
        let path = self.entry(digest);
        if let Some(component) = self.read(engine, &path) {
            return Ok((component, Origin::Cached));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(err) = self.write(&path, &component) {
            tracing::warn!(path = %path.display(), error = %err, "cannot cache a compiled gate");
        }
        Ok((component, Origin::Compiled))
    }

    fn read(&self, engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
        let file = std::fs::read(path).ok()?;
        let (checksum, artifact) = file.split_at_checked(32)?;
        if Sha256::digest(artifact).as_slice() != checksum {
            tracing::warn!(path = %path.display(), "cached gate fails its checksum, recompiling");
            return None;
        }
        // SAFETY: the artifact was produced by `Component::serialize` of an
        // engine with the same compatibility hash (it is in the file name)
        // and is byte-for-byte what was written (the checksum above).
        // wasmtime still checks the header and refuses a mismatched engine.
        #[expect(unsafe_code, reason = "deserializing our own checksummed precompiled artifact")]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component
            .inspect_err(|err| tracing::warn!(path = %path.display(), error = %err, "cached gate refused, recompiling"))
            .ok()
    }

    fn write(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let artifact = component.serialize()?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut file, &Sha256::digest(&artifact))?;
        std::io::Write::write_all(&mut file, &artifact)?;
        file.persist(path)?;
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
