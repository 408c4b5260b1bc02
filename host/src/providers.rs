//! Provider adapters: how a destination is connected (the consent flow) and
//! how a post is delivered, for each provider. Only the built-in `sandbox`
//! provider is wired today: its consent page, token exchange and delivery
//! run inside postgate, so the whole flow works offline and in tests.

use std::io::Write as _;
use std::path::Path;

use crate::store::Delivered;

/// One provider's consent flow.
pub trait Provider: Send + Sync {
    /// The provider's name, as destinations and policies use it.
    fn name(&self) -> &'static str;
    /// Where the customer gives consent, relative to the API's base URL.
    fn consent_url(&self, state: &str) -> String;
    /// Exchanges the code the consent step returned for the provider's token.
    fn exchange(&self, code: &str) -> Result<String, ProviderError>;
    /// Delivers a post, idempotently by publication id: delivering the same
    /// publication again returns the first post id.
    fn deliver(&self, post: &Post<'_>) -> Delivered;
}

/// A post to deliver.
pub struct Post<'a> {
    /// The publication: the provider's idempotency key.
    pub publication_id: &'a str,
    /// The destination's provider token, unsealed for this call only.
    pub token: &'a str,
    /// The text.
    pub text: &'a str,
    /// The media references, as JSON.
    pub media: &'a str,
    /// A directory the provider may keep local state in.
    pub local_dir: &'a Path,
}

/// Why a provider refused.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The code is not one the provider issued.
    #[error("the provider refused the consent code")]
    BadCode,
}

/// The built-in sandbox provider.
pub struct Sandbox;

impl Provider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn consent_url(&self, state: &str) -> String {
        format!("/sandbox/consent?state={state}")
    }

    fn exchange(&self, code: &str) -> Result<String, ProviderError> {
        if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ProviderError::BadCode);
        }
        Ok(format!("sandbox-token-{code}"))
    }

    /// Records the post in `sandbox-outbox/PUBLICATION.json`. A text holding
    /// `#sandbox-refuse` is refused before it is accepted (not sent), and one
    /// holding `#sandbox-timeout` gets no answer (unknown): how a real
    /// provider's failures look, for trying the worker's handling of them.
    fn deliver(&self, post: &Post<'_>) -> Delivered {
        if !post.token.starts_with("sandbox-token-") {
            return Delivered::NotSent("the sandbox refused the destination's token".into());
        }
        if post.text.contains("#sandbox-refuse") {
            return Delivered::NotSent("the sandbox refused the post".into());
        }
        if post.text.contains("#sandbox-timeout") {
            return Delivered::Unknown("the sandbox did not answer".into());
        }
        let outbox = post.local_dir.join("sandbox-outbox");
        let path = outbox.join(format!("{}.json", post.publication_id));
        let post_id = format!("sandbox-post-{}", post.publication_id);
        let record =
            serde_json::json!({ "post_id": post_id, "publication_id": post.publication_id, "text": post.text, "media": post.media });
        let created = std::fs::create_dir_all(&outbox).and_then(|()| std::fs::File::create_new(&path));
        match created {
            Ok(mut file) => match file.write_all(record.to_string().as_bytes()).and_then(|()| file.sync_all()) {
                Ok(()) => Delivered::Posted(post_id),
                // Part of the post may be on record: whether it counts is not known.
                Err(err) => Delivered::Unknown(format!("the sandbox failed mid-write: {err}")),
            },
            // Delivered before: the same post id, as a provider's idempotency key gives.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Delivered::Posted(post_id),
            Err(err) => Delivered::NotSent(format!("the sandbox cannot record the post: {err}")),
        }
    }
}

/// The adapter for `name`, when this server has one.
pub fn provider(name: &str) -> Option<&'static dyn Provider> {
    match name {
        "sandbox" => Some(&Sandbox),
        _ => None,
    }
}

/// The sandbox's consent page: a link that grants consent with a fresh code.
pub fn sandbox_consent_page(state: &str) -> String {
    let code = crate::store::new_id("code").replace('_', "-");
    let state: String = state.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sandbox consent</title></head><body>\
<h1>Connect the sandbox destination?</h1><p>postgate asks to publish to this sandbox account on your behalf.</p>\
<p><a href=\"/v1/destinations/callback?state={state}&amp;code={code}\">Allow</a></p></body></html>"
    )
}
