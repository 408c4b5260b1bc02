//! The host side of the gate contract, generated from `wit/gate.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "safety-gate",
});

pub use self::postgate::gate::types::{
    Account, ApiKey, Approval, ApprovalStatus, ConfigEntry, ConfigValue, Destination, Draft, Flags, MediaKind, MediaRef, Outcome,
    ProviderReview, PublishingMode, Request,
};

use crate::model;
use crate::policy;

impl From<&model::GateRequest> for Request {
    fn from(request: &model::GateRequest) -> Self {
        Self {
            workspace_id: request.workspace_id.clone(),
            key: request.key.as_ref().map(|key| ApiKey {
                id: key.id.clone(),
                scopes: key.scopes.clone(),
            }),
            draft: Draft {
                id: request.draft.id.clone(),
                text: request.draft.text.clone(),
                media: request.draft.media.iter().map(MediaRef::from).collect(),
                content_digest: request.draft.content_digest.clone(),
            },
            destination: Destination {
                id: request.destination.id.clone(),
                workspace_id: request.destination.workspace_id.clone(),
                provider: request.destination.provider.clone(),
                connected: request.destination.connected,
                provider_review: match request.destination.provider_review {
                    model::ProviderReview::None => ProviderReview::None,
                    model::ProviderReview::Pending => ProviderReview::Pending,
                    model::ProviderReview::Approved => ProviderReview::Approved,
                    model::ProviderReview::Rejected => ProviderReview::Rejected,
                },
            },
            approval: Approval {
                status: match request.approval.status {
                    model::ApprovalStatus::None => ApprovalStatus::None,
                    model::ApprovalStatus::Pending => ApprovalStatus::Pending,
                    model::ApprovalStatus::Approved => ApprovalStatus::Approved,
                    model::ApprovalStatus::Rejected => ApprovalStatus::Rejected,
                    model::ApprovalStatus::Expired => ApprovalStatus::Expired,
                },
                content_digest: request.approval.content_digest.clone(),
            },
            account: Account {
                balance_cents: request.account.balance_cents,
            },
            flags: Flags {
                publishing_mode: match request.flags.publishing_mode {
                    model::PublishingMode::Preview => PublishingMode::Preview,
                    model::PublishingMode::Live => PublishingMode::Live,
                },
                kill_switch: request.flags.kill_switch,
                blocked_terms: request.flags.blocked_terms.clone(),
            },
        }
    }
}

impl From<&model::MediaRef> for MediaRef {
    fn from(media: &model::MediaRef) -> Self {
        Self {
            kind: match media.kind {
                model::MediaKind::Image => MediaKind::Image,
                model::MediaKind::Video => MediaKind::Video,
                model::MediaKind::Gif => MediaKind::Gif,
            },
            location: media.location.clone(),
            alt_text: media.alt_text.clone(),
        }
    }
}

impl From<Outcome> for model::Outcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Allow => Self::Allow,
            Outcome::Deny => Self::Deny,
            Outcome::Pending => Self::Pending,
        }
    }
}

/// The configuration entries a gate receives, from its policy table.
pub fn config_entries(config: &[(String, policy::ConfigValue)]) -> Vec<ConfigEntry> {
    config
        .iter()
        .map(|(key, value)| ConfigEntry {
            key: key.clone(),
            value: match value {
                policy::ConfigValue::Text(text) => ConfigValue::Text(text.clone()),
                policy::ConfigValue::Integer(number) => ConfigValue::Integer(*number),
                policy::ConfigValue::Boolean(flag) => ConfigValue::Boolean(*flag),
                policy::ConfigValue::Texts(texts) => ConfigValue::Texts(texts.clone()),
            },
        })
        .collect()
}
