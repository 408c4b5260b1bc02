//! A gate that answers with a verdict far larger than any gate needs.

use postgate_gate_sdk::{ConfigEntry, Description, Gate, Request, Verdict};

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
        Verdict::allow("fine", "a".repeat(1 << 20))
    }
}

postgate_gate_sdk::export_gate!(OversizedVerdict);
