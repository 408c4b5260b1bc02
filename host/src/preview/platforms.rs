//! One renderer per platform: payload, count, limit and rules.

use serde_json::{Value, json};

use super::count;
use super::{Content, Preview, Settings, Violation, check_length, check_media};
use crate::model::{MediaKind, MediaRef};

/// The providers a preview can render.
pub const SUPPORTED: [&str; 10] = [
    "x",
    "bluesky",
    "mastodon",
    "threads",
    "linkedin",
    "facebook",
    "instagram",
    "telegram",
    "discord",
    "sandbox",
];

/// Renders `content` for `provider`; an unknown provider gets `provider_unsupported`.
pub fn render(provider: &str, content: Content<'_>, settings: Settings) -> Preview {
    let mut violations = Vec::new();
    let (payload, count, limit, counting_rule) = match provider {
        "x" => x(content, &mut violations),
        "bluesky" => bluesky(content, &mut violations),
        "mastodon" => mastodon(content, settings, &mut violations),
        "threads" => threads(content, &mut violations),
        "linkedin" => linkedin(content, &mut violations),
        "facebook" => facebook(content, &mut violations),
        "instagram" => instagram(content, &mut violations),
        "telegram" => telegram(content, &mut violations),
        "discord" => discord(content, &mut violations),
        "sandbox" => sandbox(content, &mut violations),
        other => {
            violations.push(Violation::new(
                "provider_unsupported",
                format!(
                    "`{other}` has no publishing API postgate supports; supported: {}",
                    SUPPORTED.join(", ")
                ),
            ));
            (Value::Null, 0, 0, "none")
        }
    };
    Preview {
        provider: provider.to_owned(),
        payload,
        count,
        limit,
        counting_rule,
        violations,
    }
}

type Rendered = (Value, usize, usize, &'static str);

fn locations(media: &[MediaRef]) -> Vec<&str> {
    media.iter().map(|m| m.location.as_str()).collect()
}

fn x(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = count::x_weighted(content.text);
    check_length(count, 280, "weighted characters", violations);
    check_media(content.media, 4, &[MediaKind::Video, MediaKind::Gif], violations);
    let mut payload = json!({ "text": content.text });
    if !content.media.is_empty() {
        payload["media"] = json!({ "media_ids": locations(content.media) });
    }
    (
        payload,
        count,
        280,
        "weighted: NFC; URLs weigh 23; emoji and code points outside Latin and punctuation ranges weigh 2, others 1",
    )
}

fn bluesky(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let text = content.text;
    let count = count::graphemes(text);
    check_length(count, 300, "graphemes", violations);
    if text.len() > 3000 {
        violations.push(Violation::new(
            "text_too_many_bytes",
            format!("the text is {} UTF-8 bytes, the limit is 3000", text.len()),
        ));
    }
    check_media(content.media, 4, &[MediaKind::Video, MediaKind::Gif], violations);
    if content
        .media
        .iter()
        .any(|m| m.alt_text.as_deref().is_none_or(|alt| alt.trim().is_empty()))
    {
        violations.push(Violation::new("alt_text_required", "every image needs alt text on Bluesky"));
    }
    let facet = |range: &std::ops::Range<usize>, feature: Value| json!({ "index": { "byteStart": range.start, "byteEnd": range.end }, "features": [feature] });
    let mut facets: Vec<Value> = count::links(text)
        .iter()
        .map(|r| {
            let uri = &text[r.clone()];
            let uri = if uri.contains("://") {
                uri.to_owned()
            } else {
                format!("https://{uri}")
            };
            facet(r, json!({ "$type": "app.bsky.richtext.facet#link", "uri": uri }))
        })
        .collect();
    facets.extend(count::handle_mentions(text).iter().map(|r| {
        facet(
            r,
            json!({ "$type": "app.bsky.richtext.facet#mention", "handle": &text[r.start + 1..r.end] }),
        )
    }));
    facets.extend(count::tags(text).iter().map(|r| {
        facet(
            r,
            json!({ "$type": "app.bsky.richtext.facet#tag", "tag": &text[r.start + 1..r.end] }),
        )
    }));
    let mut payload = json!({ "$type": "app.bsky.feed.post", "text": text, "facets": facets });
    if !content.media.is_empty() {
        let images: Vec<Value> = content
            .media
            .iter()
            .map(|m| json!({ "image": m.location, "alt": m.alt_text.clone().unwrap_or_default() }))
            .collect();
        payload["embed"] = json!({ "$type": "app.bsky.embed.images", "images": images });
    }
    (
        payload,
        count,
        300,
        "graphemes (at most 300) and UTF-8 bytes (at most 3000); links count in full",
    )
}

fn mastodon(content: Content<'_>, settings: Settings, violations: &mut Vec<Violation>) -> Rendered {
    let limit = settings.max_characters.unwrap_or(500);
    let text = content.text;
    // `@user@domain` counts as `@user`; each URL outside a mention counts 23.
    let mut weighted = count::fediverse_mentions(text);
    let overlaps_mention = |link: &std::ops::Range<usize>| weighted.iter().any(|(m, _)| link.start < m.end && m.start < link.end);
    let links: Vec<_> = count::links(text)
        .into_iter()
        .filter(|link| !overlaps_mention(link))
        .map(|link| (link, 23))
        .collect();
    weighted.extend(links);
    weighted.sort_by_key(|(r, _)| r.start);
    let mut count = 0;
    let mut at = 0;
    for (range, weight) in &weighted {
        count += count::graphemes(&text[at..range.start]) + weight;
        at = range.end;
    }
    count += count::graphemes(&text[at..]);
    check_length(count, limit, "characters", violations);
    check_media(content.media, 4, &[MediaKind::Video], violations);
    let payload = json!({ "status": text, "media_ids": locations(content.media), "visibility": "public" });
    (
        payload,
        count,
        limit,
        "graphemes; each URL counts 23; @user@domain counts as @user; the limit is the instance's",
    )
}

fn threads(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = count::threads_length(content.text);
    check_length(count, 500, "characters", violations);
    check_media(content.media, 20, &[], violations);
    let links = count::links(content.text).len();
    if links > 5 {
        violations.push(Violation::new("too_many_links", format!("{links} links, the limit is 5")));
    }
    let media_type = match content.media {
        [] => "TEXT",
        [one] if one.kind == MediaKind::Video => "VIDEO",
        [_] => "IMAGE",
        _ => "CAROUSEL",
    };
    let payload = json!({ "media_type": media_type, "text": content.text, "children": locations(content.media) });
    (payload, count, 500, "characters; an emoji counts its UTF-8 bytes")
}

/// Escapes the reserved characters of LinkedIn's "little" text format.
fn linkedin_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '|' | '{' | '}' | '@' | '[' | ']' | '(' | ')' | '<' | '>' | '#' | '*' | '_' | '~'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn linkedin(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = content.text.chars().count();
    check_length(count, 3000, "characters", violations);
    check_media(content.media, 10, &[MediaKind::Video], violations);
    let payload = json!({
        "commentary": linkedin_escape(content.text),
        "visibility": "PUBLIC",
        "content": { "media": locations(content.media) },
        "lifecycleState": "PUBLISHED",
    });
    (
        payload,
        count,
        3000,
        "characters of commentary; reserved characters are backslash-escaped in the payload",
    )
}

fn facebook(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = content.text.chars().count();
    check_length(count, 63_206, "characters", violations);
    check_media(content.media, 10, &[MediaKind::Video], violations);
    let payload = json!({ "message": content.text, "attached_media": locations(content.media) });
    (payload, count, 63_206, "characters")
}

fn instagram(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = content.text.chars().count();
    check_length(count, 2_200, "characters", violations);
    if content.media.is_empty() {
        violations.push(Violation::new("media_required", "Instagram has no text-only posts"));
    }
    check_media(content.media, 10, &[], violations);
    let payload = json!({ "caption": content.text, "children": locations(content.media) });
    (payload, count, 2_200, "characters of the caption")
}

fn telegram(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = count::utf16_units(content.text);
    let (limit, payload) = match content.media {
        [] => {
            if content.text.trim().is_empty() {
                violations.push(Violation::new("text_required", "a Telegram message needs 1 to 4096 characters"));
            }
            (4096, json!({ "method": "sendMessage", "text": content.text }))
        }
        [one] => (
            1024,
            json!({ "method": if one.kind == MediaKind::Video { "sendVideo" } else { "sendPhoto" }, "caption": content.text, "media": one.location }),
        ),
        many => (
            1024,
            json!({ "method": "sendMediaGroup", "caption": content.text, "media": locations(many) }),
        ),
    };
    check_length(count, limit, "UTF-16 units", violations);
    check_media(content.media, 10, &[], violations);
    (
        payload,
        count,
        limit,
        "UTF-16 code units: 1-4096 for a message, 0-1024 for a caption",
    )
}

/// The built-in sandbox provider: generous limits, the content as it is.
fn sandbox(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = count::graphemes(content.text);
    check_length(count, 10_000, "graphemes", violations);
    check_media(content.media, 20, &[], violations);
    (
        json!({ "text": content.text, "media": locations(content.media) }),
        count,
        10_000,
        "graphemes",
    )
}

fn discord(content: Content<'_>, violations: &mut Vec<Violation>) -> Rendered {
    let count = content.text.chars().count();
    check_length(count, 2000, "characters", violations);
    check_media(content.media, 10, &[], violations);
    let embeds: Vec<Value> = content
        .media
        .iter()
        .map(|m| json!({ "image": { "url": m.location }, "description": m.alt_text }))
        .collect();
    // An empty `parse` list: the payload can never ping @everyone or anyone else.
    let payload = json!({ "content": content.text, "embeds": embeds, "allowed_mentions": { "parse": [] } });
    (payload, count, 2000, "characters of content")
}
