//! The gate request and outcome as JSON: the form `postgate eval` reads and
//! decisions are recorded in. It mirrors the `types` interface of `wit/gate.wit`.

use serde::{Deserialize, Serialize};

/// One publication request, as every gate sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    /// The workspace the request belongs to.
    pub workspace_id: String,
    /// The API key that made the request; absent when the customer did.
    #[serde(default)]
    pub key: Option<ApiKey>,
    /// The content to publish.
    pub draft: Draft,
    /// Where to publish it.
    pub destination: Destination,
    /// The customer's approval of the draft.
    pub approval: Approval,
    /// The workspace's prepaid account.
    pub account: Account,
    /// The operator's safety flags.
    pub flags: Flags,
}

/// The API key that made a request (its id, never the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The key's id.
    pub id: String,
    /// The key's scopes.
    pub scopes: Vec<String>,
}

/// The content to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// The draft's id.
    pub id: String,
    /// The post text.
    pub text: String,
    /// The media attachments.
    pub media: Vec<MediaRef>,
    /// The sha256 of the draft's current content.
    pub content_digest: String,
}

/// A media attachment of a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRef {
    /// What the media is.
    pub kind: MediaKind,
    /// A URL or provider-side media id.
    pub location: String,
    /// The accessibility description.
    #[serde(default)]
    pub alt_text: Option<String>,
}

/// What kind of media a draft references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A still image.
    Image,
    /// A video.
    Video,
    /// An animated image.
    Gif,
}

/// Where a publication would go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// The destination's id.
    pub id: String,
    /// The workspace that connected it.
    pub workspace_id: String,
    /// The provider, e.g. `x`.
    pub provider: String,
    /// Whether the customer's consent is in force.
    pub connected: bool,
    /// The provider's review of the destination.
    pub provider_review: ProviderReview,
}

/// The provider's review of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderReview {
    /// Never requested.
    None,
    /// Under way.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
}

/// The customer's approval of a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Where the approval stands.
    pub status: ApprovalStatus,
    /// The content digest the customer approved.
    #[serde(default)]
    pub content_digest: Option<String>,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Never submitted.
    None,
    /// Awaiting the customer.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Lapsed.
    Expired,
}

/// The workspace's prepaid account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The balance in integer cents.
    pub balance_cents: i64,
}

/// The operator's safety flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    /// Whether live publishing is open.
    pub publishing_mode: PublishingMode,
    /// Stops all publishing when on.
    pub kill_switch: bool,
    /// Terms that must not appear in a post.
    pub blocked_terms: Vec<String>,
}

/// Whether live publishing is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PublishingMode {
    /// In preview: live publishing is blocked.
    Preview,
    /// Live publishing is open.
    Live,
}

/// A gate's or a chain's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Let the request through.
    Allow,
    /// Refuse the request.
    Deny,
    /// Wait on a human.
    Pending,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Pending => "pending",
        })
    }
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InvalidRequest {
    /// Where in the document the problem is, e.g. `draft.content_digest`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl GateRequest {
    /// Reads a request from JSON, naming the offending field on failure.
    pub fn from_json(text: &str) -> Result<Self, InvalidRequest> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = match err.path().to_string() {
                root if root == "." => "request".to_owned(),
                path => path,
            };
            InvalidRequest {
                path,
                message: err.into_inner().to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: &str = include_str!("../../examples/allow.json");

    #[test]
    fn the_example_request_parses() {
        let request = GateRequest::from_json(ALLOW).unwrap();
        assert_eq!(request.flags.publishing_mode, PublishingMode::Live);
        assert_eq!(request.approval.status, ApprovalStatus::Approved);
    }

    #[test]
    fn errors_name_the_field() {
        let missing = ALLOW.replace("\"content_digest\": \"9f2c", "\"digest\": \"9f2c");
        let err = GateRequest::from_json(&missing).unwrap_err();
        assert_eq!(err.path, "draft.digest", "{err}");
        let mistyped = ALLOW.replace("\"balance_cents\": 500", "\"balance_cents\": \"500\"");
        let err = GateRequest::from_json(&mistyped).unwrap_err();
        assert_eq!(err.path, "account.balance_cents", "{err}");
        let bad_state = ALLOW.replace("\"provider_review\": \"approved\"", "\"provider_review\": \"ok\"");
        let err = GateRequest::from_json(&bad_state).unwrap_err();
        assert!(
            err.to_string().starts_with("destination.provider_review: unknown variant `ok`"),
            "{err}"
        );
        let err = GateRequest::from_json("[]").unwrap_err();
        assert_eq!(err.path, "request", "{err}");
    }
}
