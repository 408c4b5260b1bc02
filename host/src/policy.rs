//! Policy manifests: which gates run, in which order, with which digest pin,
//! configuration, limits and failure mode.
//!
//! A manifest is strict TOML: a `version` field read first, unknown keys
//! rejected, and every error names the file, the key and what was expected.
//!
//! ```toml
//! version = 1
//! name = "default"
//!
//! [[gate]]
//! name = "credit"
//! component = "../target/gates/credit.wasm"
//! sha256 = "…"            # written by `postgate policy lock`
//! source = "../gates/credit"
//! on_error = "deny"       # the default; "allow" fails open, always reported
//! mode = "enforce"        # the default; "monitor" runs and records it, never deciding
//! config = { price_cents = 4 }
//! limits = { memory_mib = 8, deadline_ms = 10, fuel = 10_000_000 }
//! ```

mod lock;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use lock::lock;

/// What a gate name must be, for error messages.
pub(crate) const GATE_NAME_RULE: &str = "lowercase letters, digits and dashes, starting with a letter, at most 32";

/// The one manifest format this postgate reads.
pub const POLICY_VERSION: i64 = 1;

/// A parsed, validated policy manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// The manifest's name, e.g. `default`.
    pub name: String,
    /// `rev_` and the first 16 hex digits of the manifest's sha256: the pins make it cover every gate.
    pub revision: String,
    /// Where the manifest was read from.
    pub path: PathBuf,
    /// The gates, in chain order.
    pub gates: Vec<GateSpec>,
}

/// One gate of a policy.
#[derive(Debug, Clone, Serialize)]
pub struct GateSpec {
    /// The gate's name in this policy.
    pub name: String,
    /// The component file, resolved against the manifest's directory; a
    /// policy uploaded to the server may name its components by pin alone.
    pub component: Option<PathBuf>,
    /// The pinned sha256 of the component, lowercase hex.
    pub sha256: Option<String>,
    /// Where a reviewer finds the gate's source.
    pub source: Option<String>,
    /// The gate's configuration, as written.
    pub config: Vec<(String, ConfigValue)>,
    /// The resources one evaluation may use.
    pub limits: Limits,
    /// What a runtime failure of the gate means for the decision.
    pub on_error: FailureMode,
    /// Whether the gate's verdict counts, or is only recorded.
    pub mode: GateMode,
}

/// Whether a gate's verdict decides, or is recorded beside the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// The verdict counts: a deny denies.
    #[default]
    Enforce,
    /// Shadow: the gate runs on every decision and its verdict is recorded,
    /// but it never changes the outcome. How a new gate is tried on live traffic.
    Monitor,
}

impl GateMode {
    /// Whether this is the default, enforcing mode.
    pub fn is_enforce(&self) -> bool {
        *self == Self::Enforce
    }
}

/// A configuration value a gate receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ConfigValue {
    /// A string.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
    /// A list of strings.
    Texts(Vec<String>),
}

/// Resource limits of one gate evaluation. Every limit is always on: a gate
/// that reaches one traps and its verdict is a `gate_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory cap in MiB. 8 MiB holds a Rust gate's stack, heap and a
    /// large draft with room to spare; at most [`Limits::MAX_MEMORY_MIB`].
    pub memory_mib: u32,
    /// Deadline of instantiation plus evaluation, in milliseconds of the
    /// gate's CPU time, checked every 1 ms epoch tick; a gate preempted on a
    /// busy machine is stopped anyway at ten times the deadline of wall-clock
    /// time. The reference gates take microseconds, so 10 ms only stops runaways.
    pub deadline_ms: u32,
    /// Fuel (roughly, wasm instructions) one evaluation may burn. The reference
    /// gates use about 10,000; the cap bounds CPU deterministically, which the
    /// wall-clock deadline alone cannot on a loaded machine.
    pub fuel: u64,
}

impl Limits {
    /// The largest memory cap a policy may set; the engine sizes its pool slots for it.
    pub const MAX_MEMORY_MIB: u32 = 64;
    /// The longest deadline a policy may set: a gate is a check, not a job.
    pub const MAX_DEADLINE_MS: u32 = 1_000;
    /// The most fuel a policy may grant.
    pub const MAX_FUEL: u64 = 10_000_000_000;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: 8,
            deadline_ms: 10,
            fuel: 10_000_000,
        }
    }
}

/// What a runtime failure (trap, timeout, memory, bad verdict) of a gate means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Fail closed: the gate's verdict becomes `deny` with code `gate_error`.
    #[default]
    Deny,
    /// Fail open: the verdict becomes `allow` with code `gate_error`, and the
    /// decision reports that the gate failed open. A gate that cannot even be
    /// loaded always fails closed.
    Allow,
}

/// Why a policy manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The manifest.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not what a manifest must be; the message names the key.
    #[error("{path}{location}: {message}")]
    Invalid {
        /// The manifest.
        path: String,
        /// `:line:column` when known.
        location: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[expect(dead_code, reason = "checked before the manifest is deserialized")]
    version: i64,
    name: String,
    #[serde(rename = "gate")]
    gates: Vec<GateManifest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateManifest {
    name: String,
    component: Option<PathBuf>,
    sha256: Option<String>,
    source: Option<String>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    on_error: FailureMode,
    #[serde(default)]
    mode: GateMode,
}

impl Policy {
    /// Reads and validates the manifest file at `path`, which must name every gate's component file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_file(path, &text)
    }

    /// Parses and validates the text of a manifest file: as [`Policy::parse`],
    /// and every gate must name its component file.
    pub fn parse_file(path: &Path, text: &str) -> Result<Self, PolicyError> {
        let policy = Self::parse(path, text)?;
        if let Some(index) = policy.gates.iter().position(|gate| gate.component.is_none()) {
            return Err(PolicyError::Invalid {
                path: path.display().to_string(),
                location: String::new(),
                message: format!(
                    "key `gate[{index}]`: missing field `component`: a policy file names each gate's component file (only an upload names it by `sha256` alone)"
                ),
            });
        }
        Ok(policy)
    }

    /// Parses and validates manifest text; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PolicyError> {
        let invalid = |location: String, message: String| PolicyError::Invalid {
            path: path.display().to_string(),
            location,
            message,
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|err| invalid(location(text, err.span()), err.message().trim().to_owned()))?;
        match table.get("version") {
            Some(toml::Value::Integer(POLICY_VERSION)) => {}
            Some(other) => {
                return Err(invalid(
                    String::new(),
                    format!("key `version` must be {POLICY_VERSION}, the only policy format this postgate reads, found {other}"),
                ));
            }
            None => {
                return Err(invalid(
                    String::new(),
                    format!("key `version` is missing, expected `version = {POLICY_VERSION}`"),
                ));
            }
        }
        let deserializer =
            toml::Deserializer::parse(text).map_err(|err| invalid(location(text, err.span()), err.message().trim().to_owned()))?;
        let manifest: Manifest = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            let inner = err.into_inner();
            invalid(location(text, inner.span()), format!("key `{key}`: {}", inner.message().trim()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let revision = format!("rev_{}", &crate::engine::sha256_hex(text.as_bytes())[..16]);
        Self::validate(manifest, base, path.to_owned(), revision).map_err(|message| invalid(String::new(), message))
    }

    fn validate(manifest: Manifest, base: &Path, path: PathBuf, revision: String) -> Result<Self, String> {
        if manifest.gates.is_empty() {
            return Err("no `[[gate]]`: a policy must chain at least one gate".into());
        }
        let mut seen = HashSet::new();
        let mut gates = Vec::with_capacity(manifest.gates.len());
        for (index, gate) in manifest.gates.into_iter().enumerate() {
            let at = format!("gate[{index}]");
            if !is_gate_name(&gate.name) {
                return Err(format!(
                    "key `{at}.name`: `{}` is not a gate name, expected {GATE_NAME_RULE}",
                    gate.name
                ));
            }
            if !seen.insert(gate.name.clone()) {
                return Err(format!("key `{at}.name`: gate `{}` appears twice", gate.name));
            }
            if let Some(digest) = &gate.sha256
                && !is_sha256(digest)
            {
                return Err(format!(
                    "key `{at}.sha256`: `{digest}` is not a sha256, expected 64 lowercase hex digits"
                ));
            }
            check_limits(&at, &gate.limits)?;
            let config = gate
                .config
                .into_iter()
                .map(|(key, value)| config_value(&format!("{at}.config.{key}"), value).map(|v| (key, v)))
                .collect::<Result<_, _>>()?;
            gates.push(GateSpec {
                component: gate.component.map(|component| base.join(component)),
                name: gate.name,
                sha256: gate.sha256,
                source: gate.source,
                config,
                limits: gate.limits,
                on_error: gate.on_error,
                mode: gate.mode,
            });
        }
        if gates.iter().all(|gate: &GateSpec| !gate.mode.is_enforce()) {
            return Err("every gate is in `monitor` mode: a policy needs at least one gate that enforces".into());
        }
        Ok(Self {
            name: manifest.name,
            revision,
            path,
            gates,
        })
    }
}

/// Whether `text` is a sha256 as postgate writes them: 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` may name a gate: lowercase letters, digits and dashes, starting with a letter, at most 32.
pub(crate) fn is_gate_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 32
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_limits(at: &str, limits: &Limits) -> Result<(), String> {
    let out_of_range = |key: &str, value: u64, max: u64| format!("key `{at}.limits.{key}`: {value} is out of range, expected 1 to {max}");
    if limits.memory_mib == 0 || limits.memory_mib > Limits::MAX_MEMORY_MIB {
        return Err(out_of_range("memory_mib", limits.memory_mib.into(), Limits::MAX_MEMORY_MIB.into()));
    }
    if limits.deadline_ms == 0 || limits.deadline_ms > Limits::MAX_DEADLINE_MS {
        return Err(out_of_range(
            "deadline_ms",
            limits.deadline_ms.into(),
            Limits::MAX_DEADLINE_MS.into(),
        ));
    }
    if limits.fuel == 0 || limits.fuel > Limits::MAX_FUEL {
        return Err(out_of_range("fuel", limits.fuel, Limits::MAX_FUEL));
    }
    Ok(())
}

/// A gate's configuration value from TOML; `key` names it in the error.
pub(crate) fn config_value(key: &str, value: toml::Value) -> Result<ConfigValue, String> {
    let expected = "expected a string, an integer, a boolean or a list of strings";
    Ok(match value {
        toml::Value::String(text) => ConfigValue::Text(text),
        toml::Value::Integer(number) => ConfigValue::Integer(number),
        toml::Value::Boolean(flag) => ConfigValue::Boolean(flag),
        toml::Value::Array(items) => ConfigValue::Texts(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    toml::Value::String(text) => Ok(text),
                    other => Err(format!("key `{key}[{i}]`: found a {}, expected a string", other.type_str())),
                })
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("key `{key}`: found a {}, {expected}", other.type_str())),
    })
}

/// `:line:column` of a byte offset, for error messages.
fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else { return String::new() };
    let Some(before) = text.get(..span.start) else {
        return String::new();
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(":{line}:{column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let text = "a = 1
bé = 2
";
        assert_eq!(location(text, Some(9..10)), ":2:3", "the space after `bé`");
        assert_eq!(location(text, None), "");
    }

    #[test]
    fn the_revision_follows_the_text() {
        let text = "version = 1\nname = \"p\"\n[[gate]]\nname = \"a\"\ncomponent = \"a.wasm\"\n";
        let one = Policy::parse(Path::new("p.toml"), text).unwrap();
        let two = Policy::parse(Path::new("p.toml"), &text.replace("a.wasm", "b.wasm")).unwrap();
        assert!(one.revision.starts_with("rev_") && one.revision.len() == 20);
        assert_ne!(one.revision, two.revision);
        assert_eq!(one.gates[0].limits, Limits::default());
        assert_eq!(one.gates[0].component.as_deref(), Some(Path::new("a.wasm")));
    }
}
