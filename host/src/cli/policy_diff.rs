//! `postgate policy diff`: replay recorded decisions against a candidate policy.

use std::path::PathBuf;
use std::sync::Arc;

use super::{CliError, Context, Exit, internal, invalid};
use crate::engine::Chain;
use crate::lifecycle::{self, Candidate, DiffReport};
use crate::store::{self, StoreError};

/// Arguments of `postgate policy diff`.
#[derive(clap::Args)]
pub struct Args {
    /// The candidate policy manifest; its components are read from the files it names.
    candidate: PathBuf,
    /// Replay decisions recorded since: an RFC 3339 time, or a duration back from now such as `2h`.
    #[arg(long)]
    since: String,
    /// Replay at most this many decisions.
    #[arg(long, default_value_t = lifecycle::DIFF_LIMIT)]
    limit: i64,
    /// The database, as for `serve`; by default the SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Replays on whichever store the URL names.
struct Replay {
    chain: Arc<Chain>,
    since: String,
    limit: i64,
}

impl store::WithStore for Replay {
    type Output = Result<DiffReport, StoreError>;

    async fn run<S: store::Store>(self, store: S) -> Self::Output {
        lifecycle::diff(&store, self.chain, &self.since, self.limit).await
    }
}

/// Prints each changed decision and a summary; exits 1 when any outcome would change.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    if !(1..=lifecycle::MAX_DIFF_LIMIT).contains(&args.limit) {
        return Err(invalid(anyhow::anyhow!("--limit must be 1 to {}", lifecycle::MAX_DIFF_LIMIT)));
    }
    let since = lifecycle::parse_since(&args.since).map_err(|err| invalid(anyhow::anyhow!(err)))?;
    let candidate = Candidate::from_file(&args.candidate).map_err(invalid)?;
    let chain = Arc::new(candidate.compile(&context.runtime()?).map_err(invalid)?);
    let url = args.database_url.unwrap_or_else(|| store::default_url(&context.data_dir));
    let replay = Replay {
        chain,
        since,
        limit: args.limit,
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(internal)?
        .block_on(store::with_store(&url, replay))
        .map_err(invalid)?
        .map_err(internal)?;
    for change in &report.changes {
        println!(
            "changed  {}  {}  {} -> {}  ({})  ran on {}",
            change.decision_id,
            change.created_at,
            change.before,
            change.after,
            change.reasons.join(", "),
            change.revision
        );
    }
    for id in &report.unverifiable {
        println!("skipped  {id}: its recorded input does not match its digest");
    }
    let transitions: Vec<String> = report.transitions.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!(
        "{}: {} of {} decisions since {} would change{}{}",
        report.candidate,
        report.changed,
        report.replayed,
        report.since,
        if transitions.is_empty() {
            String::new()
        } else {
            format!(" ({})", transitions.join(", "))
        },
        if report.truncated { "; stopped at --limit" } else { "" }
    );
    Ok(if report.changed == 0 { Exit::Success } else { Exit::Deny })
}
