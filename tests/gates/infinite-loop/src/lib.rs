//! A gate that never answers: the deadline or the fuel limit must stop it.

use postgate_gate_sdk::{ConfigEntry, Description, Gate, Request, Verdict};

/// Spins forever.
pub struct InfiniteLoop;

impl Gate for InfiniteLoop {
    fn describe() -> Description {
        Description::new("infinite-loop", "0.1.0", "spins forever")
    }

    fn validate_config(_config: Vec<ConfigEntry>) -> Result<(), String> {
        Ok(())
    }
    fn evaluate(_config: Vec<ConfigEntry>, _request: Request) -> Verdict {
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

postgate_gate_sdk::export_gate!(InfiniteLoop);
