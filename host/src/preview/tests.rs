//! Counting rules per platform against known cases: emoji, CJK, URLs, combining marks.

use super::*;
use crate::model::{MediaKind, MediaRef};

fn text(provider: &str, text: &str) -> Preview {
    preview(provider, Content { text, media: &[] }, Settings::default())
}

fn codes(preview: &Preview) -> Vec<&'static str> {
    preview.violations.iter().map(|v| v.code).collect()
}

fn media(kind: MediaKind, alt: Option<&str>) -> MediaRef {
    MediaRef {
        kind,
        location: "https://cdn.example/m".into(),
        alt_text: alt.map(str::to_owned),
    }
}

const FAMILY: &str = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";

#[test]
fn x_weighs_cjk_emoji_and_urls() {
    assert_eq!(text("x", "Hello").count, 5);
    assert_eq!(text("x", "你好").count, 4, "CJK weighs 2");
    assert_eq!(text("x", "😀").count, 2);
    assert_eq!(text("x", FAMILY).count, 2, "an emoji sequence weighs 2");
    assert_eq!(text("x", "e\u{301}").count, 1, "NFC first: e + combining acute is é");
    assert_eq!(
        text("x", "see https://example.com/a/very/long/path/indeed").count,
        4 + 23,
        "a URL weighs 23"
    );
    assert_eq!(text("x", "example.com").count, 23, "a bare domain is a URL too");
    assert!(codes(&text("x", &"中".repeat(140))).is_empty(), "280 weighted fits");
    assert_eq!(codes(&text("x", &"中".repeat(141))), ["text_too_long"]);
}

#[test]
fn bluesky_counts_graphemes_and_bytes() {
    assert_eq!(text("bluesky", FAMILY).count, 1);
    assert_eq!(text("bluesky", "e\u{301}").count, 1, "a combining mark joins its letter");
    assert!(codes(&text("bluesky", &"a".repeat(300))).is_empty());
    assert_eq!(codes(&text("bluesky", &"a".repeat(301))), ["text_too_long"]);
    // 200 graphemes of 18 bytes: within 300 graphemes, over 3000 bytes.
    assert_eq!(codes(&text("bluesky", &FAMILY.repeat(200))), ["text_too_many_bytes"]);
}

#[test]
fn bluesky_facets_carry_utf8_byte_ranges() {
    let preview = text("bluesky", "Ünïcode https://example.com #rust @alice.bsky.social");
    let facets = preview.payload["facets"].as_array().unwrap();
    let range = |i: usize| {
        (
            facets[i]["index"]["byteStart"].as_u64().unwrap(),
            facets[i]["index"]["byteEnd"].as_u64().unwrap(),
        )
    };
    // "Ünïcode " is 10 bytes: Ü and ï take two each.
    assert_eq!(range(0), (10, 29));
    assert_eq!(facets[0]["features"][0]["uri"], "https://example.com");
    assert_eq!(facets[1]["features"][0]["handle"], "alice.bsky.social");
    assert_eq!(range(1), (36, 54));
    assert_eq!(facets[2]["features"][0]["tag"], "rust");
    assert_eq!(range(2), (30, 35));
}

#[test]
fn bluesky_needs_alt_text() {
    let images = [media(MediaKind::Image, Some("a chart")), media(MediaKind::Image, None)];
    let preview = preview(
        "bluesky",
        Content {
            text: "hi",
            media: &images,
        },
        Settings::default(),
    );
    assert_eq!(codes(&preview), ["alt_text_required"]);
}

#[test]
fn mastodon_counts_urls_as_23_and_mentions_by_user() {
    assert_eq!(
        text("mastodon", "x https://example.com/a/very/long/path/that/goes/on").count,
        2 + 23
    );
    assert_eq!(text("mastodon", "@bob@mastodon.social hi").count, 4 + 3);
    let long = "a".repeat(600);
    assert_eq!(codes(&text("mastodon", &long)), ["text_too_long"]);
    let roomy = preview(
        "mastodon",
        Content { text: &long, media: &[] },
        Settings {
            max_characters: Some(1000),
        },
    );
    assert!(roomy.violations.is_empty() && roomy.limit == 1000, "the instance's limit applies");
}

#[test]
fn threads_counts_emoji_by_bytes_and_caps_links() {
    assert_eq!(text("threads", "😀").count, 4);
    assert_eq!(text("threads", "a😀").count, 5);
    let links = (0..6).map(|i| format!("https://e{i}.example")).collect::<Vec<_>>().join(" ");
    assert_eq!(codes(&text("threads", &links)), ["too_many_links"]);
}

#[test]
fn linkedin_escapes_reserved_characters() {
    assert_eq!(text("linkedin", "(a) #b @c_d").payload["commentary"], "\\(a\\) \\#b \\@c\\_d");
}

#[test]
fn telegram_counts_utf16_and_caps_captions() {
    assert_eq!(text("telegram", "😀").count, 2);
    assert_eq!(codes(&text("telegram", "  ")), ["text_required"]);
    let photo = [media(MediaKind::Image, None)];
    let captioned = preview(
        "telegram",
        Content {
            text: &"a".repeat(1025),
            media: &photo,
        },
        Settings::default(),
    );
    assert_eq!((captioned.limit, codes(&captioned)), (1024, vec!["text_too_long"]));
    assert_eq!(captioned.payload["method"], "sendPhoto");
}

#[test]
fn discord_never_pings() {
    let preview = text("discord", "@everyone look");
    assert_eq!(preview.payload["allowed_mentions"]["parse"], serde_json::json!([]));
    assert_eq!(codes(&text("discord", &"a".repeat(2001))), ["text_too_long"]);
}

#[test]
fn media_counts_and_mixes_are_checked() {
    let five = vec![media(MediaKind::Image, Some("x")); 5];
    assert_eq!(
        codes(&preview("x", Content { text: "hi", media: &five }, Settings::default())),
        ["too_many_media"]
    );
    let mixed = [media(MediaKind::Video, None), media(MediaKind::Image, None)];
    assert_eq!(
        codes(&preview("x", Content { text: "hi", media: &mixed }, Settings::default())),
        ["media_mix_not_allowed"]
    );
    assert_eq!(
        codes(&preview("linkedin", Content { text: "hi", media: &mixed }, Settings::default())),
        ["media_mix_not_allowed"]
    );
    assert_eq!(codes(&text("instagram", "text only")), ["media_required"]);
}

#[test]
fn unknown_platforms_are_unsupported() {
    let preview = text("youtube", "community post");
    assert_eq!(codes(&preview), ["provider_unsupported"]);
    assert!(preview.violations[0].message.contains("supported: x, bluesky"));
}
