//! Provider tokens at rest: sealed with XChaCha20-Poly1305 under a key from
//! configuration, bound to the record they belong to, never in a response,
//! a log line, an audit record or a gate's input.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// Bytes of a sealing key.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Seals and opens provider tokens.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// A sealed value that does not open: wrong key, wrong record, or tampered.
#[derive(Debug, thiserror::Error)]
#[error("sealed value does not open")]
pub struct Unsealable;

impl SecretBox {
    /// A box from a 64-hex-digit key.
    pub fn from_hex(key: &str) -> Option<Self> {
        let bytes = hex::decode(key.trim()).ok().filter(|b| b.len() == KEY_BYTES)?;
        Some(Self {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// A fresh random key, as 64 hex digits.
    pub fn new_key() -> String {
        hex::encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// Seals `secret` for the record `owner` (e.g. a destination id): hex of nonce and ciphertext.
    pub fn seal(&self, secret: &str, owner: &str) -> Result<String, Unsealable> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| Unsealable)?;
        Ok(hex::encode([nonce.as_slice(), &sealed].concat()))
    }

    /// Opens a value sealed for `owner`.
    pub fn open(&self, sealed: &str, owner: &str) -> Result<String, Unsealable> {
        let bytes = hex::decode(sealed).map_err(|_| Unsealable)?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_BYTES).ok_or(Unsealable)?;
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| Unsealable)?;
        String::from_utf8(plain).map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_for_their_owner_and_key() {
        let secrets = SecretBox::from_hex(&SecretBox::new_key()).unwrap();
        let sealed = secrets.seal("provider-token", "dst_1").unwrap();
        assert!(!sealed.contains("provider-token"));
        assert_eq!(secrets.open(&sealed, "dst_1").unwrap(), "provider-token");
        assert!(secrets.open(&sealed, "dst_2").is_err(), "bound to its record");
        let other = SecretBox::from_hex(&SecretBox::new_key()).unwrap();
        assert!(other.open(&sealed, "dst_1").is_err(), "bound to its key");
        assert_ne!(secrets.seal("provider-token", "dst_1").unwrap(), sealed, "a fresh nonce each time");
        assert!(SecretBox::from_hex("abcd").is_none());
    }
}
