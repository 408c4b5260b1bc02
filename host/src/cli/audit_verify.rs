//! `postgate audit verify`: walk every workspace's decision chain.

use anyhow::anyhow;

use super::{CliError, Context, Exit, internal, invalid};
use crate::store::{self, ChainReport};

/// Arguments of `postgate audit verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The database, as for `serve`; by default the SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Prints how many decisions verify and every broken link; exits 1 when a chain is broken.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    let url = args
        .database_url
        .unwrap_or_else(|| format!("sqlite://{}", context.data_dir.join("postgate.db").display()));
    let report: ChainReport = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(internal)?
        .block_on(async {
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                let store = store::postgres::connect(&url)
                    .await
                    .map_err(|err| invalid(anyhow!("cannot open the PostgreSQL database: {err}")))?;
                store::verify_chains(&store).await.map_err(internal)
            } else if url.starts_with("sqlite:") {
                let store = store::sqlite::connect(&url)
                    .await
                    .map_err(|err| invalid(anyhow!("cannot open the SQLite database: {err}")))?;
                store::verify_chains(&store).await.map_err(internal)
            } else {
                Err(invalid(anyhow!("--database-url must start with `postgres://` or `sqlite:`")))
            }
        })?;
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
