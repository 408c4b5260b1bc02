//! Reading a gate's configuration from the policy file.

use crate::prelude::*;
use crate::{ConfigEntry, ConfigValue};

/// Typed access to a gate's `[gate.config]` table.
///
/// Errors are one lowercase line naming the key and what was expected, as
/// the host shows them verbatim when it refuses a policy.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    entries: &'a [ConfigEntry],
}

impl<'a> Config<'a> {
    /// Wraps the entries the host passed in.
    pub fn new(entries: &'a [ConfigEntry]) -> Self {
        Self { entries }
    }

    /// Fails on any key not in `known`: a typo must not silently fall back to a default.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.entries.iter().find(|e| !known.contains(&e.key.as_str())) {
            None => Ok(()),
            Some(e) if known.is_empty() => Err(format!("unknown key `{}`: this gate takes no configuration", e.key)),
            Some(e) => Err(format!("unknown key `{}`, expected one of: {}", e.key, known.join(", "))),
        }
    }

    fn get(&self, key: &str) -> Option<&'a ConfigValue> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// The integer at `key`, or `default` when the key is absent.
    pub fn integer(&self, key: &str, default: i64) -> Result<i64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Integer(value)) => Ok(*value),
            Some(other) => Err(format!("key `{key}` must be an integer, found {}", kind(other))),
        }
    }

    /// The list of strings at `key`, or `None` when the key is absent.
    pub fn texts(&self, key: &str) -> Result<Option<&'a [String]>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Texts(values)) => Ok(Some(values)),
            Some(other) => Err(format!("key `{key}` must be a list of strings, found {}", kind(other))),
        }
    }
}

fn kind(value: &ConfigValue) -> &'static str {
    match value {
        ConfigValue::Text(_) => "a string",
        ConfigValue::Integer(_) => "an integer",
        ConfigValue::Boolean(_) => "a boolean",
        ConfigValue::Texts(_) => "a list of strings",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: ConfigValue) -> ConfigEntry {
        ConfigEntry { key: key.into(), value }
    }

    #[test]
    fn unknown_keys_are_named() {
        let entries = [entry("prise_cents", ConfigValue::Integer(4))];
        let err = Config::new(&entries).only(&["price_cents"]).unwrap_err();
        assert_eq!(err, "unknown key `prise_cents`, expected one of: price_cents");
        let err = Config::new(&entries).only(&[]).unwrap_err();
        assert!(err.contains("takes no configuration"), "{err}");
    }

    #[test]
    fn typed_reads_fall_back_and_check_types() {
        let entries = [entry("price_cents", ConfigValue::Text("4".into()))];
        let config = Config::new(&entries);
        assert_eq!(config.integer("other", 7), Ok(7));
        assert_eq!(
            config.integer("price_cents", 4),
            Err("key `price_cents` must be an integer, found a string".into())
        );
        assert_eq!(config.texts("absent"), Ok(None));
    }
}
