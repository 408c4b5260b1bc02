//! The destination gate: only a connected destination of the request's own
//! workspace, on a provider the policy supports.
#![cfg_attr(target_family = "wasm", no_std)]

use postgate_gate_sdk::prelude::*;
use postgate_gate_sdk::{Config, ConfigEntry, Description, Gate, Request, Verdict};

/// Allows only connected destinations of the requesting workspace on supported providers.
pub struct DestinationGate;

/// The config key listing the providers this policy publishes to.
const PROVIDERS: &str = "providers";

fn providers(config: &[ConfigEntry]) -> Result<&[String], String> {
    match Config::new(config).texts(PROVIDERS)? {
        None => Err(format!("key `{PROVIDERS}` is required: list the providers this policy supports")),
        Some([]) => Err(format!("key `{PROVIDERS}` must list at least one provider")),
        Some(list) => match list.iter().find(|p| !is_provider_name(p)) {
            Some(bad) => Err(format!(
                "key `{PROVIDERS}` holds `{bad}`, expected lowercase provider names such as `x` or `bluesky`"
            )),
            None => Ok(list),
        },
    }
}

fn is_provider_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Gate for DestinationGate {
    fn describe() -> Description {
        Description::new(
            "destination",
            env!("CARGO_PKG_VERSION"),
            "allows only a connected destination of the request's workspace on a supported provider",
        )
    }

    fn validate_config(config: Vec<ConfigEntry>) -> Result<(), String> {
        Config::new(&config).only(&[PROVIDERS])?;
        providers(&config).map(drop)
    }

    fn evaluate(config: Vec<ConfigEntry>, request: Request) -> Verdict {
        let destination = &request.destination;
        let verdict = if destination.workspace_id != request.workspace_id {
            Verdict::deny("destination_foreign", "the destination belongs to another workspace")
        } else if !destination.connected {
            Verdict::deny("destination_disconnected", "the destination is not connected")
        } else {
            // The host validated the config at load; an unreadable one here denies.
            match providers(&config) {
                Err(problem) => Verdict::deny("config_invalid", problem),
                Ok(list) if !list.contains(&destination.provider) => Verdict::deny(
                    "provider_unsupported",
                    format!("provider `{}` is not one this policy supports", destination.provider),
                )
                .with("supported", list.join(",")),
                Ok(_) => Verdict::allow("destination_ok", "the destination is connected and belongs to this workspace"),
            }
        };
        verdict
            .with("destination_id", &destination.id)
            .with("provider", &destination.provider)
    }
}

postgate_gate_sdk::export_gate!(DestinationGate);

#[cfg(test)]
mod tests {
    use super::*;
    use postgate_gate_sdk::Outcome;
    use postgate_gate_sdk::testing::{assert_verdict, request, texts};

    fn config() -> Vec<ConfigEntry> {
        vec![texts(PROVIDERS, &["x", "bluesky"])]
    }

    #[test]
    fn allows_a_connected_own_destination() {
        assert_verdict(&DestinationGate::evaluate(config(), request()), Outcome::Allow, "destination_ok");
    }

    #[test]
    fn denies_another_workspaces_destination() {
        let mut request = request();
        request.destination.workspace_id = "ws_2".into();
        assert_verdict(&DestinationGate::evaluate(config(), request), Outcome::Deny, "destination_foreign");
    }

    #[test]
    fn denies_a_disconnected_destination() {
        let mut request = request();
        request.destination.connected = false;
        assert_verdict(
            &DestinationGate::evaluate(config(), request),
            Outcome::Deny,
            "destination_disconnected",
        );
    }

    #[test]
    fn denies_an_unsupported_provider() {
        let mut request = request();
        request.destination.provider = "myspace".into();
        let verdict = DestinationGate::evaluate(config(), request);
        assert_verdict(&verdict, Outcome::Deny, "provider_unsupported");
        assert_eq!(verdict.evidence_value("supported"), Some("x,bluesky"));
    }

    #[test]
    fn config_needs_a_provider_list() {
        assert!(DestinationGate::validate_config(config()).is_ok());
        let missing = DestinationGate::validate_config(Vec::new()).unwrap_err();
        assert!(missing.contains("`providers` is required"), "{missing}");
        let empty = DestinationGate::validate_config(vec![texts(PROVIDERS, &[])]).unwrap_err();
        assert!(empty.contains("at least one"), "{empty}");
        let bad = DestinationGate::validate_config(vec![texts(PROVIDERS, &["X "])]).unwrap_err();
        assert!(bad.contains("`X `"), "{bad}");
    }
}
