//! Building verdicts.

use crate::prelude::*;
use crate::{Evidence, Outcome, Verdict};

/// The host's limits on a verdict: longer text makes the verdict malformed,
/// so the helpers clip it (at a character boundary) instead.
const MAX_MESSAGE_BYTES: usize = 1024;
const MAX_EVIDENCE_VALUE_BYTES: usize = 512;

impl Verdict {
    /// A verdict letting the request through.
    pub fn allow(code: &str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Allow, code, message)
    }

    /// A verdict refusing the request.
    pub fn deny(code: &str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Deny, code, message)
    }

    /// A verdict waiting on a human (an approval, a provider review).
    pub fn pending(code: &str, message: impl Into<String>) -> Self {
        Self::new(Outcome::Pending, code, message)
    }

    fn new(outcome: Outcome, code: &str, message: impl Into<String>) -> Self {
        Self {
            outcome,
            code: code.into(),
            message: clip(message.into(), MAX_MESSAGE_BYTES),
            evidence: Vec::new(),
        }
    }

    /// Adds one piece of evidence, e.g. `.with("balance_cents", 3)`; long values are clipped.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.evidence.push(Evidence {
            key: key.into(),
            value: clip(value.to_string(), MAX_EVIDENCE_VALUE_BYTES),
        });
        self
    }

    /// The value of the evidence named `key`, if the verdict has it.
    pub fn evidence_value(&self, key: &str) -> Option<&str> {
        self.evidence.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }
}

/// `text` cut to at most `max` bytes, at a character boundary, marked with `…`.
fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_clipped_at_a_character_boundary() {
        let verdict = Verdict::deny("x", "é".repeat(1000)).with("id", "ü".repeat(600));
        assert!(verdict.message.len() <= MAX_MESSAGE_BYTES && verdict.message.ends_with('…'));
        let value = verdict.evidence_value("id").unwrap();
        assert!(value.len() <= MAX_EVIDENCE_VALUE_BYTES && value.ends_with('…'));
        assert_eq!(Verdict::allow("x", "short").message, "short");
    }
}
