//! The flags gate: the operator's safety flags (publishing mode, kill switch,
//! blocked terms) hold every publication back.
#![cfg_attr(target_family = "wasm", no_std)]

use postgate_gate_sdk::prelude::*;
use postgate_gate_sdk::{Config, ConfigEntry, Description, Gate, PublishingMode, Request, Verdict};
use unicode_normalization::UnicodeNormalization;

/// Denies while publishing is in preview, while the kill switch is on, or when the draft holds a blocked term.
pub struct FlagsGate;

impl Gate for FlagsGate {
    fn describe() -> Description {
        Description::new(
            "flags",
            env!("CARGO_PKG_VERSION"),
            "denies while in preview, while the kill switch is on, or when the draft holds a blocked term",
        )
    }

    fn validate_config(config: Vec<ConfigEntry>) -> Result<(), String> {
        Config::new(&config).only(&[])
    }

    fn evaluate(_config: Vec<ConfigEntry>, request: Request) -> Verdict {
        let flags = &request.flags;
        if flags.kill_switch {
            return Verdict::deny("kill_switch", "the operator's kill switch stops all publishing");
        }
        if flags.publishing_mode == PublishingMode::Preview {
            return Verdict::deny("publishing_blocked", "live publishing is blocked while the product is in preview");
        }
        let text = fold(&request.draft.text);
        let alt_texts = request.draft.media.iter().filter_map(|m| m.alt_text.as_deref()).map(fold);
        let haystacks: Vec<String> = core::iter::once(text).chain(alt_texts).collect();
        let found = flags.blocked_terms.iter().find(|term| {
            let needle = fold(term);
            !needle.is_empty() && haystacks.iter().any(|h| h.contains(&needle))
        });
        match found {
            Some(term) => Verdict::deny("blocked_term", "the draft contains a blocked term").with("term", term),
            None => Verdict::allow("flags_clear", "publishing is live and the draft holds no blocked term"),
        }
    }
}

/// Folds text so that matching ignores case, compatibility forms (full-width
/// letters, ligatures), invisible format characters and runs of whitespace:
/// the tricks that would otherwise slip a blocked term past a plain comparison.
fn fold(text: &str) -> String {
    if text.is_ascii() {
        // ASCII holds no compatibility characters: dropping controls and lowercasing is the whole fold.
        let visible: String = text.chars().filter(|c| !is_invisible(*c)).collect();
        return visible
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
    }
    let visible: String = text.nfd().filter(|c| !is_invisible(*c)).collect();
    let folded: String = fold_case(&visible).nfkc().collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Unicode case folding for matching: lowercase, with the letters whose
/// folded form differs from their lowercase (sharp s, final sigma) folded too.
fn fold_case(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'ß' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            c => folded.push(c),
        }
    }
    folded
}

/// Characters that render as nothing: controls other than whitespace, and
/// Unicode's default-ignorable code points (zero-width characters, soft
/// hyphen, bidi controls, variation selectors, tag characters, fillers).
fn is_invisible(c: char) -> bool {
    (c.is_control() && !c.is_whitespace())
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
            | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

postgate_gate_sdk::export_gate!(FlagsGate);

#[cfg(test)]
mod tests {
    use super::*;
    use postgate_gate_sdk::testing::{assert_verdict, request};
    use postgate_gate_sdk::{MediaKind, MediaRef, Outcome};

    fn with_text(text: &str, terms: &[&str]) -> Verdict {
        let mut request = request();
        request.draft.text = text.into();
        request.flags.blocked_terms = terms.iter().map(|t| (*t).to_owned()).collect();
        FlagsGate::evaluate(Vec::new(), request)
    }

    #[test]
    fn allows_live_clean_drafts() {
        assert_verdict(&FlagsGate::evaluate(Vec::new(), request()), Outcome::Allow, "flags_clear");
    }

    #[test]
    fn preview_blocks_live_publishing() {
        let mut request = request();
        request.flags.publishing_mode = PublishingMode::Preview;
        assert_verdict(&FlagsGate::evaluate(Vec::new(), request), Outcome::Deny, "publishing_blocked");
    }

    #[test]
    fn the_kill_switch_wins() {
        let mut request = request();
        request.flags.publishing_mode = PublishingMode::Preview;
        request.flags.kill_switch = true;
        assert_verdict(&FlagsGate::evaluate(Vec::new(), request), Outcome::Deny, "kill_switch");
    }

    #[test]
    fn blocked_terms_match_case_insensitively() {
        let verdict = with_text("GUARANTEED Returns for all!", &["guaranteed returns"]);
        assert_verdict(&verdict, Outcome::Deny, "blocked_term");
        assert_eq!(verdict.evidence_value("term"), Some("guaranteed returns"));
    }

    #[test]
    fn blocked_terms_see_through_unicode_tricks() {
        let cases = [
            ("ＧＵＡＲＡＮＴＥＥＤ ＲＥＴＵＲＮＳ", "full-width letters"),
            ("guaran\u{200B}teed\u{00AD} returns", "zero-width space and soft hyphen"),
            ("guaranteed \n\t returns", "a whitespace run"),
            ("guaranteed\u{0B}returns", "a vertical tab"),
            ("guaran\u{7F}teed re\u{0}turns", "ASCII control characters"),
            ("guaran\u{2066}teed retu\u{FE0F}rns", "a bidi isolate and a variation selector"),
            ("guaran\u{3164}teed returns ü", "a Hangul filler"),
        ];
        for (text, trick) in cases {
            assert_verdict(&with_text(text, &["guaranteed returns"]), Outcome::Deny, "blocked_term");
            assert!(fold(text).contains("guaranteed returns"), "{trick}");
        }
        assert_verdict(&with_text("STRASSE", &["straße"]), Outcome::Deny, "blocked_term");
        assert_verdict(&with_text("ΌΣΟΣ", &["όσος"]), Outcome::Deny, "blocked_term");
        assert_verdict(&with_text("cafe\u{0301} noir", &["café"]), Outcome::Deny, "blocked_term");
    }

    #[test]
    fn blocked_terms_in_alt_text_count() {
        let mut request = request();
        request.draft.media.push(MediaRef {
            kind: MediaKind::Image,
            location: "https://cdn.example/chart.png".into(),
            alt_text: Some("Guaranteed returns chart".into()),
        });
        assert_verdict(&FlagsGate::evaluate(Vec::new(), request), Outcome::Deny, "blocked_term");
    }

    #[test]
    fn innocent_text_and_empty_terms_pass() {
        assert_verdict(
            &with_text("Returns are never guaranteed.", &["guaranteed returns", ""]),
            Outcome::Allow,
            "flags_clear",
        );
    }
}
