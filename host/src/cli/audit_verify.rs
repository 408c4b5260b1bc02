//! `postgate audit verify`: walk every workspace's decision chain.

use super::{CliError, Context, Exit, internal, invalid};
use crate::store::{self, ChainReport};

/// Arguments of `postgate audit verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The database, as for `serve`; by default the SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Walks the chains of whichever store the URL names.
struct Verify;

impl store::WithStore for Verify {
    type Output = Result<ChainReport, store::StoreError>;

    async fn run<S: store::Store>(self, store: S) -> Self::Output {
        store::verify_chains(&store).await
    }
}

/// Prints how many decisions verify and every broken link; exits 1 when a chain is broken.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    let url = args.database_url.unwrap_or_else(|| store::default_url(&context.data_dir));
    let report: ChainReport = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(internal)?
        .block_on(store::with_store(&url, Verify))
        .map_err(invalid)?
        .map_err(internal)?;
    for link in &report.broken {
        println!(
            "broken  workspace {}: decision {}: {}",
            link.workspace_id, link.decision_id, link.problem
        );
    }
    if report.broken.is_empty() {
        println!("ok: {} decisions verify", report.decisions);
        Ok(Exit::Success)
    } else {
        Ok(Exit::Deny)
    }
}
