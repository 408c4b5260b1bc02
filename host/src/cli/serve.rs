//! `postgate serve`: the HTTP server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use tokio::signal::unix::{SignalKind, signal};

use super::{CliError, Context, Exit, internal, invalid};
use crate::api::App;
use crate::auth::{self, TokenKind};
use crate::server::{self, ActivePolicy};
use crate::store::{self, Store};

/// Arguments of `postgate serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, env = "POSTGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The policy manifest; SIGHUP re-reads it.
    #[arg(long, env = "POSTGATE_POLICY", default_value = "policies/default.toml")]
    policy: PathBuf,
    /// `postgres://…` for PostgreSQL, `sqlite://FILE` for SQLite; by default
    /// the SQLite file `postgate.db` in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// The environment variable holding the operator's token.
const OPERATOR_TOKEN_ENV: &str = "POSTGATE_OPERATOR_TOKEN";

/// The operator token's hash: from the environment, or from a file in the
/// data directory, minted (readable by its owner only) at first start.
fn operator_hash(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var(OPERATOR_TOKEN_ENV) {
        if auth::kind_of(token.trim()) != Some(TokenKind::Operator) {
            anyhow::bail!("{OPERATOR_TOKEN_ENV} is not an operator token (`pgo_…` as postgate mints them)");
        }
        return Ok(auth::hash(token.trim()));
    }
    let path = data_dir.join("operator-token");
    match std::fs::read_to_string(&path) {
        Ok(token) if auth::kind_of(token.trim()) == Some(TokenKind::Operator) => {
            tracing::info!(path = %path.display(), "operator token read from file");
            Ok(auth::hash(token.trim()))
        }
        Ok(_) => anyhow::bail!("`{}` does not hold an operator token", path.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::create_dir_all(data_dir)?;
            let token = auth::mint(TokenKind::Operator);
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            file.write_all(token.secret.as_bytes())?;
            tracing::info!(path = %path.display(), "operator token minted; it is in this file, readable by its owner only");
            Ok(token.hash)
        }
        Err(err) => Err(anyhow!("cannot read `{}`: {err}", path.display())),
    }
}

/// Serves until SIGTERM or SIGINT, draining in-flight requests.
pub fn run(args: Args, context: &Context) -> Result<Exit, CliError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|err| internal(anyhow!("cannot set up logging: {err}")))?;
    let runtime = context.runtime()?;
    let started = std::time::Instant::now();
    let active = Arc::new(ActivePolicy::load(runtime, args.policy.clone()).map_err(invalid)?);
    let chain = active.current();
    tracing::info!(
        policy = chain.policy(),
        revision = chain.revision(),
        gates = chain.gates().len(),
        from_cache = chain.cached_gates(),
        load_ms = started.elapsed().as_millis(),
        "policy loaded"
    );
    for (gate, fault) in chain.faults() {
        tracing::error!(gate, %fault, "gate cannot load; it denies every request until the policy is fixed");
    }
    let operator_hash = operator_hash(&context.data_dir).map_err(invalid)?;
    let url = match args.database_url {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&context.data_dir).map_err(internal)?;
            format!("sqlite://{}", context.data_dir.join("postgate.db").display())
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(internal)?
        .block_on(async {
            // The backend is chosen here, once; the server is built for it.
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                let store = store::postgres::connect(&url).await.map_err(|err| invalid(anyhow!("cannot open the PostgreSQL database: {err}")))?;
                tracing::info!(backend = "postgresql", "database ready");
                serve(args.listen, App { store, operator_hash, policy: active }).await.map_err(internal)
            } else if url.starts_with("sqlite:") {
                let store = store::sqlite::connect(&url).await.map_err(|err| invalid(anyhow!("cannot open the SQLite database: {err}")))?;
                tracing::info!(backend = "sqlite", "database ready");
                serve(args.listen, App { store, operator_hash, policy: active }).await.map_err(internal)
            } else {
                Err(invalid(anyhow!("--database-url must start with `postgres://` or `sqlite:`")))
            }
        })?;
    Ok(Exit::Success)
}

async fn serve<S: Store>(listen: SocketAddr, app: App<S>) -> anyhow::Result<()> {
    let app = Arc::new(app);
    let active = Arc::clone(&app.policy);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    // Tests and scripts read the bound address (port 0 picks one) from stdout.
    println!("listening on http://{address}");
    tokio::spawn(reload_on_sighup(Arc::clone(&active)));
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|err| anyhow!("server failed: {err}"))?;
    tracing::info!("drained, exiting");
    Ok(())
}

async fn reload_on_sighup(active: Arc<ActivePolicy>) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: policy reload is off");
        return;
    };
    while hangups.recv().await.is_some() {
        let target = Arc::clone(&active);
        match tokio::task::spawn_blocking(move || target.reload()).await {
            Ok(Ok(chain)) => tracing::info!(policy = chain.policy(), revision = chain.revision(), "policy swapped"),
            Ok(Err(err)) => tracing::error!(error = %err, "policy refused; the active policy stays"),
            Err(err) => tracing::error!(error = %err, "policy reload crashed; the active policy stays"),
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terms) => {
                terms.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
