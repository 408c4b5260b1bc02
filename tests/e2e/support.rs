//! Shared helpers: paths, the binary, policies written on the fly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use postgate::engine::{Runtime, RuntimeOptions};
use postgate::model::GateRequest;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn built(dir: &str, name: &str) -> PathBuf {
    let path = root().join("target").join(dir).join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run `./dev test`, which builds the gates and fixtures first", path.display());
    path
}

/// A reference gate built from `gates/NAME`.
pub fn gate(name: &str) -> PathBuf {
    built("gates", name)
}

/// A hostile fixture gate built from `tests/gates/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    built("fixtures", name)
}

/// The sha256 of a file, lowercase hex.
pub fn digest(path: &Path) -> String {
    postgate::engine::sha256_hex(&std::fs::read(path).unwrap())
}

/// The example request every reference gate allows.
pub fn allow_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("examples/allow.json")).unwrap()).unwrap()
}

/// The example request with a JSON merge patch applied.
pub fn request_with(patch: serde_json::Value) -> GateRequest {
    let mut request = allow_json();
    json_patch::merge(&mut request, &patch);
    GateRequest::from_json(&request.to_string()).unwrap()
}

/// A runtime with its own cache directory.
pub fn runtime(cache: &Path) -> Runtime {
    Runtime::new(&RuntimeOptions { cache_dir: Some(cache.to_owned()) }).unwrap()
}

/// One `[[gate]]` of a policy written by a test.
pub struct GateEntry {
    /// The gate's name.
    pub name: String,
    /// Its component.
    pub component: PathBuf,
    /// Extra TOML lines (config, limits, on_error, a different sha256).
    pub extra: String,
}

impl GateEntry {
    /// A gate pinned to its component's digest.
    pub fn new(name: &str, component: PathBuf) -> Self {
        Self { name: name.into(), component, extra: String::new() }
    }

    /// Adds TOML lines to the gate's table.
    pub fn with(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self.extra.push('\n');
        self
    }
}

/// The five reference gates as the default policy chains them.
pub fn reference_gates() -> Vec<GateEntry> {
    vec![
        GateEntry::new("approval", gate("approval")),
        GateEntry::new("provider-review", gate("provider-review")),
        GateEntry::new("destination", gate("destination")).with(r#"config = { providers = ["x", "bluesky"] }"#),
        GateEntry::new("credit", gate("credit")).with("config = { price_cents = 4 }"),
        GateEntry::new("flags", gate("flags")),
    ]
}

/// Writes a policy named `name` to `dir/name.toml`, pinning each component unless its extra lines set `sha256`.
pub fn write_policy(dir: &Path, name: &str, gates: &[GateEntry]) -> PathBuf {
    let mut text = format!("version = 1\nname = \"{name}\"\n");
    for gate in gates {
        text.push_str(&format!("\n[[gate]]\nname = \"{}\"\ncomponent = {:?}\n", gate.name, gate.component.display().to_string()));
        if !gate.extra.contains("sha256") {
            let pin = std::fs::read(&gate.component).map(|b| postgate::engine::sha256_hex(&b)).unwrap_or_else(|_| "0".repeat(64));
            text.push_str(&format!("sha256 = \"{pin}\"\n"));
        }
        text.push_str(&gate.extra);
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The `postgate` binary, run from the repository root with a private data directory.
pub fn postgate(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postgate"));
    command.current_dir(root()).env("POSTGATE_DATA_DIR", data_dir).env_remove("POSTGATE_POLICY");
    command
}

/// Runs a command to completion with no stdin.
pub fn run(command: &mut Command) -> Output {
    command.stdin(std::process::Stdio::null()).output().unwrap()
}

/// A command's stdout, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
