//! Building verdicts.

use crate::{Evidence, Outcome, Verdict};

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
        Self { outcome, code: code.into(), message: message.into(), evidence: Vec::new() }
    }

    /// Adds one piece of evidence, e.g. `.with("balance_cents", 3)`.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.evidence.push(Evidence { key: key.into(), value: value.to_string() });
        self
    }

    /// The value of the evidence named `key`, if the verdict has it.
    pub fn evidence_value(&self, key: &str) -> Option<&str> {
        self.evidence.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }
}
