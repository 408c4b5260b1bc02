//! Provider adapters: how a destination is connected (the consent flow) for
//! each provider. Only the built-in `sandbox` provider is wired today: its
//! consent page and token exchange run inside postgate, so the whole flow
//! works offline and in tests.

/// One provider's consent flow.
pub trait Provider: Send + Sync {
    /// The provider's name, as destinations and policies use it.
    fn name(&self) -> &'static str;
    /// Where the customer gives consent, relative to the API's base URL.
    fn consent_url(&self, state: &str) -> String;
    /// Exchanges the code the consent step returned for the provider's token.
    fn exchange(&self, code: &str) -> Result<String, ProviderError>;
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
