//! The approval gate: a draft goes out only as the customer approved it.
#![cfg_attr(target_family = "wasm", no_std)]

use postgate_gate_sdk::prelude::*;
use postgate_gate_sdk::{ApprovalStatus, Config, ConfigEntry, Description, Gate, Request, Verdict};

/// Allows a draft only when the customer approved its current content.
pub struct ApprovalGate;

impl Gate for ApprovalGate {
    fn describe() -> Description {
        Description::new(
            "approval",
            env!("CARGO_PKG_VERSION"),
            "allows only a draft the customer approved, unchanged since approval",
        )
    }

    fn validate_config(config: Vec<ConfigEntry>) -> Result<(), String> {
        Config::new(&config).only(&[])
    }

    fn evaluate(_config: Vec<ConfigEntry>, request: Request) -> Verdict {
        let approval = &request.approval;
        let current = &request.draft.content_digest;
        match approval.status {
            ApprovalStatus::None => Verdict::deny("approval_missing", "the draft was never submitted for approval"),
            ApprovalStatus::Pending => Verdict::pending("approval_pending", "the draft awaits the customer's approval"),
            ApprovalStatus::Rejected => Verdict::deny("approval_rejected", "the customer rejected the draft"),
            ApprovalStatus::Expired => Verdict::deny("approval_expired", "the customer's approval has expired"),
            ApprovalStatus::Approved => match &approval.content_digest {
                Some(approved) if approved == current => Verdict::allow("approved", "the customer approved this content"),
                approved => Verdict::deny("approval_stale", "the draft changed after the customer approved it")
                    .with("approved_digest", approved.as_deref().unwrap_or("none"))
                    .with("current_digest", current),
            },
        }
    }
}

postgate_gate_sdk::export_gate!(ApprovalGate);

#[cfg(test)]
mod tests {
    use super::*;
    use postgate_gate_sdk::Outcome;
    use postgate_gate_sdk::testing::{assert_verdict, request};

    fn with_status(status: ApprovalStatus) -> Verdict {
        let mut request = request();
        request.approval.status = status;
        ApprovalGate::evaluate(Vec::new(), request)
    }

    #[test]
    fn allows_the_approved_content() {
        assert_verdict(&with_status(ApprovalStatus::Approved), Outcome::Allow, "approved");
    }

    #[test]
    fn waits_while_the_customer_decides() {
        assert_verdict(&with_status(ApprovalStatus::Pending), Outcome::Pending, "approval_pending");
    }

    #[test]
    fn denies_rejected_expired_and_never_submitted() {
        assert_verdict(&with_status(ApprovalStatus::Rejected), Outcome::Deny, "approval_rejected");
        assert_verdict(&with_status(ApprovalStatus::Expired), Outcome::Deny, "approval_expired");
        assert_verdict(&with_status(ApprovalStatus::None), Outcome::Deny, "approval_missing");
    }

    #[test]
    fn denies_a_draft_edited_after_approval() {
        let mut request = request();
        request.draft.text.push_str(" Now with more hype.");
        request.draft.content_digest = "0".repeat(64);
        let verdict = ApprovalGate::evaluate(Vec::new(), request);
        assert_verdict(&verdict, Outcome::Deny, "approval_stale");
        assert_eq!(verdict.evidence_value("current_digest"), Some("0".repeat(64).as_str()));
    }

    #[test]
    fn denies_an_approval_that_names_no_content() {
        let mut request = request();
        request.approval.content_digest = None;
        let verdict = ApprovalGate::evaluate(Vec::new(), request);
        assert_verdict(&verdict, Outcome::Deny, "approval_stale");
        assert_eq!(verdict.evidence_value("approved_digest"), Some("none"));
    }

    #[test]
    fn takes_no_configuration() {
        let config = vec![postgate_gate_sdk::testing::integer("strict", 1)];
        assert!(ApprovalGate::validate_config(config).is_err());
        assert!(ApprovalGate::validate_config(Vec::new()).is_ok());
    }
}
