//! The credit gate: a publication goes out only when the balance covers its price.
#![cfg_attr(target_family = "wasm", no_std)]

use postgate_gate_sdk::prelude::*;
use postgate_gate_sdk::{Config, ConfigEntry, Description, Gate, Request, Verdict};

/// Allows a request only when the workspace's balance covers the publication price.
pub struct CreditGate;

/// The config key holding the price of one publication.
const PRICE: &str = "price_cents";

/// The product's price of one publication: $0.04.
const DEFAULT_PRICE_CENTS: i64 = 4;

fn price_cents(config: &[ConfigEntry]) -> Result<i64, String> {
    match Config::new(config).integer(PRICE, DEFAULT_PRICE_CENTS)? {
        price if price < 0 => Err(format!("key `{PRICE}` must not be negative, found {price}")),
        price => Ok(price),
    }
}

impl Gate for CreditGate {
    fn describe() -> Description {
        Description::new(
            "credit",
            env!("CARGO_PKG_VERSION"),
            "allows a publication only when the prepaid balance covers its price",
        )
    }

    fn validate_config(config: Vec<ConfigEntry>) -> Result<(), String> {
        Config::new(&config).only(&[PRICE])?;
        price_cents(&config).map(drop)
    }

    fn evaluate(config: Vec<ConfigEntry>, request: Request) -> Verdict {
        let balance = request.account.balance_cents;
        let price = match price_cents(&config) {
            Ok(price) => price,
            Err(problem) => return Verdict::deny("config_invalid", problem),
        };
        let verdict = if balance >= price {
            Verdict::allow("credit_ok", format!("the balance of {balance} cents covers the price of {price}"))
        } else {
            Verdict::deny(
                "insufficient_credit",
                format!("the balance of {balance} cents does not cover the price of {price}"),
            )
        };
        verdict.with("balance_cents", balance).with("price_cents", price)
    }
}

postgate_gate_sdk::export_gate!(CreditGate);

#[cfg(test)]
mod tests {
    use super::*;
    use postgate_gate_sdk::Outcome;
    use postgate_gate_sdk::testing::{assert_verdict, integer, request};

    fn with_balance(balance_cents: i64, config: Vec<ConfigEntry>) -> Verdict {
        let mut request = request();
        request.account.balance_cents = balance_cents;
        CreditGate::evaluate(config, request)
    }

    #[test]
    fn the_default_price_is_four_cents() {
        assert_verdict(&with_balance(4, Vec::new()), Outcome::Allow, "credit_ok");
        let verdict = with_balance(3, Vec::new());
        assert_verdict(&verdict, Outcome::Deny, "insufficient_credit");
        assert_eq!(verdict.evidence_value("balance_cents"), Some("3"));
        assert_eq!(verdict.evidence_value("price_cents"), Some("4"));
    }

    #[test]
    fn the_price_comes_from_config() {
        let config = || vec![integer(PRICE, 10)];
        assert_verdict(&with_balance(10, config()), Outcome::Allow, "credit_ok");
        assert_verdict(&with_balance(9, config()), Outcome::Deny, "insufficient_credit");
    }

    #[test]
    fn config_rejects_negative_and_unknown() {
        assert!(CreditGate::validate_config(vec![integer(PRICE, 4)]).is_ok());
        assert!(
            CreditGate::validate_config(vec![integer(PRICE, -1)])
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            CreditGate::validate_config(vec![integer("price", 4)])
                .unwrap_err()
                .contains("`price`")
        );
    }
}
