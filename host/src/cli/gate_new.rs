//! `postgate gate new`: scaffold a gate crate on the gate SDK.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::{CliError, Exit, internal, invalid};

/// Arguments of `postgate gate new`.
#[derive(clap::Args)]
pub struct Args {
    /// The gate's name: lowercase letters, digits and dashes.
    name: String,
    /// The directory to create the gate in.
    #[arg(long, default_value = "gates")]
    dir: PathBuf,
    /// The gate SDK crate, as a path relative to the new gate's directory.
    #[arg(long, default_value = "../sdk")]
    sdk: PathBuf,
}

const CARGO_TOML: &str = r#"[package]
name = "postgate-gate-{name}"
description = "The {name} safety gate"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
postgate-gate-sdk = { path = "{sdk}" }
"#;

const LIB_RS: &str = r#"//! The {name} gate.
// In WebAssembly the gate runs without the standard library: it imports nothing.
#![cfg_attr(target_family = "wasm", no_std)]

use postgate_gate_sdk::prelude::*;
use postgate_gate_sdk::{Config, ConfigEntry, Description, Gate, Request, Verdict};

/// Decides whether a request may pass the {name} check.
pub struct {Type};

impl Gate for {Type} {
    fn describe() -> Description {
        Description::new("{name}", env!("CARGO_PKG_VERSION"), "TODO: one sentence on what this gate checks")
    }

    fn validate_config(config: Vec<ConfigEntry>) -> Result<(), String> {
        Config::new(&config).only(&[])
    }

    fn evaluate(_config: Vec<ConfigEntry>, request: Request) -> Verdict {
        if request.draft.text.trim().is_empty() {
            return Verdict::deny("empty_draft", "the draft has no text");
        }
        Verdict::allow("{code}_ok", "the draft passes the {name} check")
    }
}

postgate_gate_sdk::export_gate!({Type});

#[cfg(test)]
mod tests {
    use super::*;
    use postgate_gate_sdk::Outcome;
    use postgate_gate_sdk::testing::{assert_verdict, request};

    #[test]
    fn allows_the_sample_request() {
        assert_verdict(&{Type}::evaluate(Vec::new(), request()), Outcome::Allow, "{code}_ok");
    }

    #[test]
    fn denies_an_empty_draft() {
        let mut request = request();
        request.draft.text = "  ".into();
        assert_verdict(&{Type}::evaluate(Vec::new(), request), Outcome::Deny, "empty_draft");
    }
}
"#;

const CASES_JSON: &str = r#"{
  "base": "../../examples/allow.json",
  "cases": [
    { "name": "the sample request passes", "patch": {}, "expect": { "outcome": "allow", "code": "{code}_ok" } },
    { "name": "an empty draft is denied", "patch": { "draft": { "text": "" } }, "expect": { "outcome": "deny", "code": "empty_draft" } }
  ]
}
"#;

/// Creates `DIR/NAME` with a Cargo manifest, a gate skeleton with unit tests, and fixture cases.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let name = &args.name;
    if !crate::policy::is_gate_name(name) {
        return Err(invalid(anyhow!(
            "`{name}` is not a gate name, expected {}",
            crate::policy::GATE_NAME_RULE
        )));
    }
    let root = args.dir.join(name);
    if root.exists() {
        return Err(invalid(anyhow!("`{}` already exists", root.display())));
    }
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{code}", &name.replace('-', "_"))
            .replace("{Type}", &type_name(name))
            .replace("{sdk}", &args.sdk.display().to_string())
    };
    let write =
        |path: &Path, text: String| std::fs::write(path, text).map_err(|err| internal(anyhow!("cannot write `{}`: {err}", path.display())));
    std::fs::create_dir_all(root.join("src")).map_err(|err| internal(anyhow!("cannot create `{}`: {err}", root.display())))?;
    write(&root.join("Cargo.toml"), fill(CARGO_TOML))?;
    write(&root.join("src/lib.rs"), fill(LIB_RS))?;
    write(&root.join("cases.json"), fill(CASES_JSON))?;
    println!("created gate `{name}` in {}", root.display());
    println!("next: `cargo test -p postgate-gate-{name}`, `postgate gate test {name}`, then add it to a policy");
    Ok(Exit::Success)
}

/// `rate-limit` becomes `RateLimitGate`.
fn type_name(name: &str) -> String {
    let mut type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    type_name.push_str("Gate");
    type_name
}

#[cfg(test)]
mod tests {
    use super::type_name;

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("rate-limit"), "RateLimitGate");
        assert_eq!(type_name("x2"), "X2Gate");
    }
}
