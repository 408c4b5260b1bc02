//! The provider-review gate: a destination is used only once its provider approved it.
#![cfg_attr(target_family = "wasm", no_std)]

use postgate_gate_sdk::prelude::*;
use postgate_gate_sdk::{Config, ConfigEntry, Description, Gate, ProviderReview, Request, Verdict};

/// Allows only destinations whose provider review is approved.
pub struct ProviderReviewGate;

impl Gate for ProviderReviewGate {
    fn describe() -> Description {
        Description::new(
            "provider-review",
            env!("CARGO_PKG_VERSION"),
            "allows only destinations the provider's review approved",
        )
    }

    fn validate_config(config: Vec<ConfigEntry>) -> Result<(), String> {
        Config::new(&config).only(&[])
    }

    fn evaluate(_config: Vec<ConfigEntry>, request: Request) -> Verdict {
        let provider = &request.destination.provider;
        let verdict = match request.destination.provider_review {
            ProviderReview::Approved => Verdict::allow("review_approved", format!("the {provider} review approved this destination")),
            ProviderReview::Pending => Verdict::pending("review_pending", format!("the {provider} review is still under way")),
            ProviderReview::Rejected => Verdict::deny("review_rejected", format!("the {provider} review rejected this destination")),
            ProviderReview::None => Verdict::deny("review_missing", format!("this destination has no {provider} review")),
        };
        verdict.with("destination_id", &request.destination.id)
    }
}

postgate_gate_sdk::export_gate!(ProviderReviewGate);

#[cfg(test)]
mod tests {
    use super::*;
    use postgate_gate_sdk::Outcome;
    use postgate_gate_sdk::testing::{assert_verdict, request};

    fn with_review(review: ProviderReview) -> Verdict {
        let mut request = request();
        request.destination.provider_review = review;
        ProviderReviewGate::evaluate(Vec::new(), request)
    }

    #[test]
    fn follows_the_review_state() {
        assert_verdict(&with_review(ProviderReview::Approved), Outcome::Allow, "review_approved");
        assert_verdict(&with_review(ProviderReview::Pending), Outcome::Pending, "review_pending");
        assert_verdict(&with_review(ProviderReview::Rejected), Outcome::Deny, "review_rejected");
        assert_verdict(&with_review(ProviderReview::None), Outcome::Deny, "review_missing");
    }

    #[test]
    fn names_the_destination() {
        let verdict = with_review(ProviderReview::Rejected);
        assert_eq!(verdict.evidence_value("destination_id"), Some("dst_1"));
        assert!(verdict.message.contains(" x "), "{}", verdict.message);
    }
}
