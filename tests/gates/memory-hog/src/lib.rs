//! A gate that allocates until the memory cap stops it.

use postgate_gate_sdk::{ConfigEntry, Description, Gate, Request, Verdict};

/// Allocates a mebibyte at a time, forever.
pub struct MemoryHog;

impl Gate for MemoryHog {
    fn describe() -> Description {
        Description::new("memory-hog", "0.1.0", "allocates until stopped")
    }

    fn validate_config(_config: Vec<ConfigEntry>) -> Result<(), String> {
        Ok(())
    }
    fn evaluate(_config: Vec<ConfigEntry>, _request: Request) -> Verdict {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1; 1 << 20]));
        }
    }
}

postgate_gate_sdk::export_gate!(MemoryHog);
