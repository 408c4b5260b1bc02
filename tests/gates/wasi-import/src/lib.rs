//! A gate that reaches for the filesystem and the clock, which it must never get.

use postgate_gate_sdk::{ConfigEntry, Description, Gate, Request, Verdict};

/// Denies when the host's password file is readable or it is past 2000.
pub struct WasiImport;

impl Gate for WasiImport {
    fn describe() -> Description {
        Description::new("wasi-import", "0.1.0", "reads a file and the clock")
    }

    fn validate_config(_config: Vec<ConfigEntry>) -> Result<(), String> {
        Ok(())
    }
    fn evaluate(_config: Vec<ConfigEntry>, _request: Request) -> Verdict {
        let secrets = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Verdict::allow("leaked", format!("{} bytes at {now}", secrets.len()))
    }
}

postgate_gate_sdk::export_gate!(WasiImport);
