//! Tokens and principals: who is calling.
//!
//! A token is a type prefix (`pgo_` operator, `pgc_` customer, `pgr_`
//! reviewer, `pgk_` API key), 40 random alphanumeric characters (~238 bits) and a 6-character
//! CRC-32 checksum, so scanners can recognise a leaked postgate token and a
//! mistyped one is refused without a database lookup. Only its sha256 and a
//! short display prefix are stored; the secret is shown once, at creation.

use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// Random characters in a token.
const BODY_LEN: usize = 40;
/// Checksum characters at the end of a token.
const CHECKSUM_LEN: usize = 6;
/// Characters of a token kept for display (prefix and the first body characters).
const DISPLAY_LEN: usize = 12;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// The operator running the service.
    Operator,
    /// The customer owning a workspace.
    Customer,
    /// A reviewer of gates and decisions.
    Reviewer,
    /// An API key of a workspace, for automation.
    ApiKey,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Operator => "pgo_",
            Self::Customer => "pgc_",
            Self::Reviewer => "pgr_",
            Self::ApiKey => "pgk_",
        }
    }
}

/// A freshly minted token: the secret to show once, and what is stored.
pub struct NewToken {
    /// The token itself. Shown once to its owner, never stored or logged.
    pub secret: String,
    /// Its sha256, lowercase hex: what the database holds.
    pub hash: String,
    /// Its first characters, for people to tell keys apart.
    pub display_prefix: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("display_prefix", &self.display_prefix)
            .finish_non_exhaustive()
    }
}

/// Mints a token of `kind` from the operating system's random source.
pub fn mint(kind: TokenKind) -> NewToken {
    let body: String = rand::rng().sample_iter(Alphanumeric).take(BODY_LEN).map(char::from).collect();
    let unchecked = format!("{}{body}", kind.prefix());
    let secret = format!("{unchecked}{}", checksum(&unchecked));
    NewToken {
        hash: hash(&secret),
        display_prefix: secret[..DISPLAY_LEN].to_owned(),
        secret,
    }
}

/// The token's kind, if it is well-formed (prefix, length, alphabet and checksum).
pub fn kind_of(token: &str) -> Option<TokenKind> {
    let kind = [TokenKind::Operator, TokenKind::Customer, TokenKind::Reviewer, TokenKind::ApiKey]
        .into_iter()
        .find(|k| token.starts_with(k.prefix()))?;
    let rest = &token[kind.prefix().len()..];
    if rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (unchecked, sum) = token.split_at(token.len() - CHECKSUM_LEN);
    (checksum(unchecked) == sum).then_some(kind)
}

/// The sha256 of a token, lowercase hex.
pub fn hash(token: &str) -> String {
    crate::engine::sha256_hex(token.as_bytes())
}

/// Compares two token hashes in constant time.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// CRC-32 of `text` in base62, zero-padded to six characters.
fn checksum(text: &str) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut value = crc32fast::hash(text.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// Read drafts and previews.
    #[serde(rename = "drafts:read")]
    DraftsRead,
    /// Write drafts and submit them for approval.
    #[serde(rename = "drafts:write")]
    DraftsWrite,
    /// List connected destinations.
    #[serde(rename = "destinations:read")]
    DestinationsRead,
    /// Read the balance and ledger.
    #[serde(rename = "account:read")]
    AccountRead,
    /// Request publications.
    #[serde(rename = "publish:request")]
    PublishRequest,
}

/// Who is calling, once their token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator.
    Operator,
    /// The customer of a workspace.
    Customer {
        /// Their workspace.
        workspace_id: String,
    },
    /// A reviewer.
    Reviewer {
        /// The reviewer's id.
        id: String,
    },
    /// An API key of a workspace.
    ApiKey {
        /// The key's id.
        id: String,
        /// Its workspace.
        workspace_id: String,
        /// What it may do.
        scopes: Vec<Scope>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_typos_do_not() {
        let token = mint(TokenKind::ApiKey);
        assert!(token.secret.starts_with("pgk_") && token.secret.len() == 4 + BODY_LEN + CHECKSUM_LEN);
        assert_eq!(kind_of(&token.secret), Some(TokenKind::ApiKey));
        assert_eq!(token.hash, hash(&token.secret));
        assert!(token.secret.starts_with(&token.display_prefix));
        let mut typo = token.secret.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(kind_of(&String::from_utf8(typo).unwrap()), None, "the checksum catches a typo");
        assert_eq!(kind_of("pgk_short"), None);
        assert_eq!(kind_of("Bearer nonsense"), None);
        assert_ne!(mint(TokenKind::ApiKey).secret, token.secret);
        assert!(!format!("{token:?}").contains(&token.secret), "Debug never shows the secret");
    }

    #[test]
    fn hashes_compare_equal_only_when_equal() {
        assert!(same_hash("abc", "abc"));
        assert!(!same_hash("abc", "abd"));
        assert!(!same_hash("abc", "abcd"));
    }
}
