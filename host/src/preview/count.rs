//! How platforms measure text: graphemes, weighted code points, bytes, UTF-16 units, links.

use std::ops::Range;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// The byte ranges of the links in `text` (with or without a scheme).
pub fn links(text: &str) -> Vec<Range<usize>> {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]).url_must_have_scheme(false);
    finder.links(text).map(|link| link.start()..link.end()).collect()
}

/// The byte ranges of `@handle.domain` mentions (Bluesky handles).
pub fn handle_mentions(text: &str) -> Vec<Range<usize>> {
    tokens(text, '@', |token| token.contains('.') && !token.contains('@'))
}

/// `@user@domain` mentions (fediverse): each byte range, and the length of its `@user` part.
pub fn fediverse_mentions(text: &str) -> Vec<(Range<usize>, usize)> {
    tokens(text, '@', |token| {
        token
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
    })
    .into_iter()
    .map(|range| {
        let user_len = text[range.start + 1..range.end].find('@').unwrap_or(0) + 1;
        (range, user_len)
    })
    .collect()
}

/// The byte ranges of `#tags`.
pub fn tags(text: &str) -> Vec<Range<usize>> {
    tokens(text, '#', |token| token.chars().any(char::is_alphabetic))
}

/// Ranges of `sigil` + word characters (letters, digits, `_`, `.`, `-`, `@`) starting a word, kept when `keep` holds.
fn tokens(text: &str, sigil: char, keep: impl Fn(&str) -> bool) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut previous: Option<char> = None;
    for (start, c) in text.char_indices() {
        let at_word_start = previous.is_none_or(|p| p.is_whitespace() || p == '(');
        previous = Some(c);
        if c != sigil || !at_word_start {
            continue;
        }
        let body_start = start + c.len_utf8();
        let body_len: usize = text[body_start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
            .map(char::len_utf8)
            .sum();
        let body = text[body_start..body_start + body_len].trim_end_matches('.');
        if !body.is_empty() && keep(body) {
            found.push(start..body_start + body.len());
        }
    }
    found
}

/// Whether a grapheme cluster is an emoji (pictographic, flag, keycap or emoji sequence).
pub fn is_emoji(grapheme: &str) -> bool {
    grapheme
        .chars()
        .any(|c| matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF | 0xFE0F | 0x20E3))
}

/// Extended grapheme clusters: what a person sees as one character.
pub fn graphemes(text: &str) -> usize {
    text.graphemes(true).count()
}

/// X's weighted length (twitter-text v3): NFC, URLs weigh 23, an emoji
/// weighs 2, other code points weigh 1 in the Latin and punctuation ranges
/// and 2 elsewhere (CJK and the rest).
pub fn x_weighted(text: &str) -> usize {
    let text: String = text.nfc().collect();
    let urls = links(&text);
    let mut weight = 0;
    let mut at = 0;
    for range in urls.iter().cloned().chain(std::iter::once(text.len()..text.len())) {
        for grapheme in text[at..range.start].graphemes(true) {
            weight += if is_emoji(grapheme) {
                2
            } else {
                grapheme.chars().map(x_code_point_weight).sum()
            };
        }
        if !range.is_empty() {
            weight += 23;
        }
        at = range.end;
    }
    weight
}

fn x_code_point_weight(c: char) -> usize {
    match c as u32 {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        _ => 2,
    }
}

/// Threads' length: characters, except that an emoji counts its UTF-8 bytes.
pub fn threads_length(text: &str) -> usize {
    text.graphemes(true).map(|g| if is_emoji(g) { g.len() } else { 1 }).sum()
}

/// UTF-16 code units, as Telegram counts.
pub fn utf16_units(text: &str) -> usize {
    text.encode_utf16().count()
}
