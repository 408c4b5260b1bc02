//! A gate that answers with a verdict far larger than any gate needs.

use postgate_gate_sdk::{ConfigEntry, Description, Gate, Outcome, Request, Verdict};

/// Allows, with a one-mebibyte message.
pub struct OversizedVerdict;

impl Gate for OversizedVerdict {
    fn describe() -> Description {
        Description::new("oversized-verdict", "0.1.0", "answers with a one-mebibyte message")
    }

    fn validate_config(_config: Vec<ConfigEntry>) -> Result<(), String> {
        Ok(())
    }
    fn evaluate(_config: Vec<ConfigEntry>, _request: Request) -> Verdict {
        // Built by hand: the SDK's helpers would clip the message.
        Verdict {
            outcome: Outcome::Allow,
            code: "fine".into(),
            message: "a".repeat(1 << 20),
            evidence: Vec::new(),
        }
    }
}

postgate_gate_sdk::export_gate!(OversizedVerdict);
