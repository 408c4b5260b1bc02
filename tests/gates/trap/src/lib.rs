//! A gate that panics: in a component a panic aborts, which traps.

use postgate_gate_sdk::{ConfigEntry, Description, Gate, Request, Verdict};

/// Panics on every request.
pub struct Trap;

impl Gate for Trap {
    fn describe() -> Description {
        Description::new("trap", "0.1.0", "panics on every request")
    }

    fn validate_config(_config: Vec<ConfigEntry>) -> Result<(), String> {
        Ok(())
    }
    #[expect(clippy::panic, reason = "this fixture exists to panic")]
    fn evaluate(_config: Vec<ConfigEntry>, request: Request) -> Verdict {
        panic!("gate bug while reading draft {}", request.draft.id)
    }
}

postgate_gate_sdk::export_gate!(Trap);
