//! A native test harness: run a gate's logic in plain Rust unit tests.

use crate::prelude::*;
use crate::{
    Account, ApiKey, Approval, ApprovalStatus, ConfigEntry, ConfigValue, Destination, Draft, Flags, Outcome, ProviderReview,
    PublishingMode, Request, Verdict,
};

/// The content digest of [`request`]'s draft.
pub const DRAFT_DIGEST: &str = "9f2c4e1b7a3d5f6081c2e4a6b8d0f1a3c5e7092b4d6f8a1c3e5b7d9f0a2c4e6b";

/// A request that every reference gate allows: approved, reviewed,
/// connected, funded, live, no blocked term. Tests change one fact of it.
pub fn request() -> Request {
    Request {
        workspace_id: "ws_1".into(),
        key: Some(ApiKey {
            id: "key_1".into(),
            scopes: vec!["publish:request".into()],
        }),
        draft: Draft {
            id: "drf_1".into(),
            text: "Launch day!".into(),
            media: Vec::new(),
            content_digest: DRAFT_DIGEST.into(),
        },
        destination: Destination {
            id: "dst_1".into(),
            workspace_id: "ws_1".into(),
            provider: "x".into(),
            connected: true,
            provider_review: ProviderReview::Approved,
        },
        approval: Approval {
            status: ApprovalStatus::Approved,
            content_digest: Some(DRAFT_DIGEST.into()),
        },
        account: Account { balance_cents: 500 },
        flags: Flags {
            publishing_mode: PublishingMode::Live,
            kill_switch: false,
            blocked_terms: vec!["guaranteed returns".into()],
        },
    }
}

/// A configuration entry holding an integer.
pub fn integer(key: &str, value: i64) -> ConfigEntry {
    ConfigEntry {
        key: key.into(),
        value: ConfigValue::Integer(value),
    }
}

/// A configuration entry holding a list of strings.
pub fn texts(key: &str, values: &[&str]) -> ConfigEntry {
    let values = values.iter().map(|v| (*v).to_owned()).collect();
    ConfigEntry {
        key: key.into(),
        value: ConfigValue::Texts(values),
    }
}

/// Asserts a verdict's outcome and code, showing the whole verdict when they differ.
#[track_caller]
pub fn assert_verdict(verdict: &Verdict, outcome: Outcome, code: &str) {
    assert!(
        verdict.outcome == outcome && verdict.code == code,
        "expected {outcome:?} `{code}`, got {:?} `{}`: {}",
        verdict.outcome,
        verdict.code,
        verdict.message
    );
}
