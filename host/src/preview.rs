//! Payload previews: for one draft and one platform, the payload the
//! provider would receive, how the platform counts the text, the limit, and
//! every rule the draft breaks, each with a stable code.
//!
//! A preview is a pure function of the draft: it never calls a provider and
//! never needs a provider token. The rules follow `shared/product/PLATFORMS.md`.

mod count;
mod platforms;

use serde::Serialize;

use crate::model::{MediaKind, MediaRef};

pub use platforms::SUPPORTED;

/// The draft content a preview renders.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    /// The post text.
    pub text: &'a str,
    /// The media attachments, in order.
    pub media: &'a [MediaRef],
}

/// Settings of a destination that change its rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// The instance's character limit where it is configurable (Mastodon's
    /// `configuration.statuses.max_characters`); the platform default otherwise.
    pub max_characters: Option<usize>,
}

/// What one platform would receive, and whether it fits.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// The provider, e.g. `x`.
    pub provider: String,
    /// The request body the provider would receive (no token, no ids it would assign).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The text's length as the platform counts it.
    pub count: usize,
    /// The platform's limit for that count.
    pub limit: usize,
    /// How the platform counts, in words.
    pub counting_rule: &'static str,
    /// Every rule the draft breaks; empty when it fits.
    pub violations: Vec<Violation>,
}

/// One rule a draft breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    /// A stable code, e.g. `text_too_long`.
    pub code: &'static str,
    /// What is wrong, for humans.
    pub message: String,
}

impl Violation {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Renders `content` for `provider` and checks it against the platform's rules.
pub fn preview(provider: &str, content: Content<'_>, settings: Settings) -> Preview {
    platforms::render(provider, content, settings)
}

/// Media-count rules: at most `max` items; kinds in `alone` must be the only item.
fn check_media(media: &[MediaRef], max: usize, alone: &[MediaKind], violations: &mut Vec<Violation>) {
    if media.len() > max {
        violations.push(Violation::new(
            "too_many_media",
            format!("{} media attached, the limit is {max}", media.len()),
        ));
    }
    if media.len() > 1
        && let Some(kind) = media.iter().map(|m| m.kind).find(|kind| alone.contains(kind))
    {
        violations.push(Violation::new(
            "media_mix_not_allowed",
            format!("a {} must be the only media of a post here", kind_name(kind)),
        ));
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Gif => "GIF",
    }
}

/// A `text_too_long` violation when `count` exceeds `limit`.
fn check_length(count: usize, limit: usize, unit: &str, violations: &mut Vec<Violation>) {
    if count > limit {
        violations.push(Violation::new(
            "text_too_long",
            format!("the text is {count} {unit}, the limit is {limit}"),
        ));
    }
}

#[cfg(test)]
mod tests;
