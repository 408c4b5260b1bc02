//! The precompiled-component cache: compiling a gate takes tens of
//! milliseconds, loading its precompiled form well under one, so a restart
//! with a warm cache does not recompile.
//!
//! Entries are keyed by the component's sha256 and the engine's compatibility
//! hash (wasmtime version and settings). Each file starts with a checksum
//! over a header naming that component digest and engine key, and over the
//! artifact; a file that fails the check (torn write, corruption, a file
//! copied under another gate's name) is recompiled, never deserialized.
//!
//! A cached artifact is native code the host will run, so the cache
//! directory is trusted like the binary itself: postgate uses it only when
//! it is owned by the current user and writable by no one else.

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
    /// A cache in `dir`, created owner-only if missing, for components
    /// compiled by `engine`. Refuses a directory another user could write.
    pub fn open(dir: &Path, engine: &wasmtime::Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        if !is_private(&std::fs::metadata(dir)?) {
            return Err(std::io::Error::other("owned by another user or writable by group or others"));
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key,
        })
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The component with sha256 `digest`, from the cache or compiled from `bytes`.
    pub fn load(&self, engine: &wasmtime::Engine, digest: &str, bytes: &[u8]) -> wasmtime::Result<(Component, Origin)> {
        let path = self.entry(digest);
        if let Some(component) = self.read(engine, &path, digest) {
            return Ok((component, Origin::Cached));
        }
        let component = Component::new(engine, bytes)?;
        if let Err(err) = self.write(&path, digest, &component) {
            tracing::warn!(path = %path.display(), error = %err, "cannot cache a compiled gate");
        }
        Ok((component, Origin::Compiled))
    }

    /// What the checksum covers besides the artifact: which gate, which engine.
    fn header(&self, digest: &str) -> String {
        format!("postgate-cache v1 {digest} {}\n", self.engine_key)
    }

    fn read(&self, engine: &wasmtime::Engine, path: &Path, digest: &str) -> Option<Component> {
        let file = std::fs::File::open(path).ok()?;
        if !is_private(&file.metadata().ok()?) {
            tracing::warn!(path = %path.display(), "cached gate is not private to this user, recompiling");
            return None;
        }
        let bytes = std::fs::read(path).ok()?;
        let header = self.header(digest);
        let (checksum, rest) = bytes.split_at_checked(32)?;
        let artifact = rest.strip_prefix(header.as_bytes())?;
        if Sha256::digest(rest).as_slice() != checksum {
            tracing::warn!(path = %path.display(), "cached gate fails its checksum, recompiling");
            return None;
        }
        // SAFETY: the artifact was produced by `Component::serialize` of an
        // engine with the same compatibility hash, for this very component
        // (both are in the checksummed header), and is byte for byte what was
        // written (the checksum), in a directory and file no other user can
        // write (checked above). wasmtime still checks the artifact's header
        // and refuses one from a mismatched engine.
        #[expect(unsafe_code, reason = "deserializing our own checksummed precompiled artifact")]
        let component = unsafe { Component::deserialize(engine, artifact) };
        component
            .inspect_err(|err| tracing::warn!(path = %path.display(), error = %err, "cached gate refused, recompiling"))
            .ok()
    }

    fn write(&self, path: &Path, digest: &str, component: &Component) -> anyhow::Result<()> {
        let mut content = self.header(digest).into_bytes();
        content.extend_from_slice(&component.serialize()?);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut file, &Sha256::digest(&content))?;
        std::io::Write::write_all(&mut file, &content)?;
        file.persist(path)?;
        Ok(())
    }
}

/// Owned by this process's user and writable by no one else.
fn is_private(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    metadata.uid() == rustix::process::getuid().as_raw() && metadata.mode() & 0o022 == 0
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
