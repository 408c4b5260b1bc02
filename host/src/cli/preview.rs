//! `postgate preview`: how a draft renders and counts on one platform.

use std::path::PathBuf;

use anyhow::anyhow;
use serde::Deserialize;

use super::{CliError, Exit, internal, invalid};
use crate::model::MediaRef;
use crate::preview::{Content, Settings, preview};

/// Arguments of `postgate preview`.
#[derive(clap::Args)]
pub struct Args {
    /// The platform, e.g. `x`, `bluesky`, `mastodon`.
    #[arg(long)]
    provider: String,
    /// The draft as JSON: `{"text": "...", "media": [{"kind": "image", "location": "...", "alt_text": "..."}]}`.
    #[arg(long)]
    input: PathBuf,
    /// The instance's character limit, where the platform lets instances choose (Mastodon).
    #[arg(long)]
    max_characters: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    text: String,
    #[serde(default)]
    media: Vec<MediaRef>,
}

/// Prints the preview as JSON; exits 1 when the draft breaks a rule of the platform.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let text =
        std::fs::read_to_string(&args.input).map_err(|err| invalid(anyhow!("cannot read draft `{}`: {err}", args.input.display())))?;
    let draft: Draft = serde_json::from_str(&text).map_err(|err| invalid(anyhow!("{}: invalid draft: {err}", args.input.display())))?;
    let preview = preview(
        &args.provider,
        Content {
            text: &draft.text,
            media: &draft.media,
        },
        Settings {
            max_characters: args.max_characters,
        },
    );
    println!("{}", serde_json::to_string_pretty(&preview).map_err(internal)?);
    Ok(if preview.violations.is_empty() { Exit::Success } else { Exit::Deny })
}
