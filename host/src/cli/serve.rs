//! `postgate serve`: the HTTP server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use tokio::signal::unix::{SignalKind, signal};

use super::{CliError, Context, Exit, internal, invalid};
use crate::api::App;
use crate::auth::{self, TokenKind};
use crate::lifecycle::{self, ActivePolicy};
use crate::secrets::SecretBox;
use crate::server;
use crate::store::{self, Store};

/// Arguments of `postgate serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, env = "POSTGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The policy manifest: the first revision on a database that has none;
    /// SIGHUP stores and activates it again.
    #[arg(long, env = "POSTGATE_POLICY", default_value = "policies/default.toml")]
    policy: PathBuf,
    /// `postgres://…` for PostgreSQL, `sqlite://FILE` for SQLite; by default
    /// the SQLite file `postgate.db` in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Strict mode: distinct reviewers who must sign off each gate component
    /// of a policy uploaded with `PUT /v1/policy`; 0 turns strict mode off.
    #[arg(long, env = "POSTGATE_SIGN_OFFS", default_value_t = 1)]
    sign_offs: usize,
}

/// The environment variable holding the operator's token.
const OPERATOR_TOKEN_ENV: &str = "POSTGATE_OPERATOR_TOKEN";
/// The environment variable holding the provider-token key (64 hex digits).
const SECRET_KEY_ENV: &str = "POSTGATE_SECRET_KEY";

/// The operator token's hash: from the environment, or from a file in the
/// data directory, minted at first start.
fn operator_hash(data_dir: &Path) -> anyhow::Result<String> {
    let token = configured(OPERATOR_TOKEN_ENV, &data_dir.join("operator-token"), || {
        auth::mint(TokenKind::Operator).secret
    })?;
    if auth::kind_of(&token) != Some(TokenKind::Operator) {
        anyhow::bail!("the operator token is not one (`pgo_…` as postgate mints them)");
    }
    Ok(auth::hash(&token))
}

/// The key sealing provider tokens: from the environment, or from a file in
/// the data directory, minted at first start.
fn secret_box(data_dir: &Path) -> anyhow::Result<SecretBox> {
    let key = configured(SECRET_KEY_ENV, &data_dir.join("secret-key"), SecretBox::new_key)?;
    SecretBox::from_hex(&key).ok_or_else(|| anyhow!("the provider-token key must be {} bytes as hex", crate::secrets::KEY_BYTES))
}

/// A secret from `env`, or from `file`, which `mint` fills at first start,
/// readable by its owner only. The log says where, never what.
fn configured(env: &str, file: &Path, mint: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(value) = std::env::var(env) {
        return Ok(value.trim().to_owned());
    }
    match std::fs::read_to_string(file) {
        Ok(value) => {
            tracing::info!(path = %file.display(), "secret read from file");
            Ok(value.trim().to_owned())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let value = mint();
            let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file)?;
            out.write_all(value.as_bytes())?;
            tracing::info!(path = %file.display(), "secret minted into this file, readable by its owner only");
            Ok(value)
        }
        Err(err) => Err(anyhow!("cannot read `{}`: {err}", file.display())),
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
    let active = Arc::new(ActivePolicy::load(runtime, args.policy.clone()));
    if let Some(err) = active.file_error() {
        tracing::warn!(error = err, "the policy file cannot load; the database's active revision must");
    }
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
        tracing::error!(gate, %fault, "gate cannot load; if it enforces, it denies every request until the policy is fixed");
    }
    let operator_hash = operator_hash(&context.data_dir).map_err(invalid)?;
    let secrets = secret_box(&context.data_dir).map_err(invalid)?;
    let url = match args.database_url {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&context.data_dir).map_err(internal)?;
            store::default_url(&context.data_dir)
        }
    };
    let server = Server {
        listen: args.listen,
        data_dir: context.data_dir.clone(),
        operator_hash,
        policy: active,
        secrets,
        sign_offs: args.sign_offs,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(internal)?
        .block_on(store::with_store(&url, server))
        .map_err(invalid)?
        // A policy that cannot serve is the caller's to fix; anything else is ours.
        .map_err(|err| {
            if err.is::<lifecycle::ActivationError>() {
                invalid(err)
            } else {
                internal(err)
            }
        })?;
    Ok(Exit::Success)
}

/// Everything the server needs but its store.
struct Server {
    listen: SocketAddr,
    data_dir: PathBuf,
    operator_hash: String,
    policy: Arc<ActivePolicy>,
    secrets: SecretBox,
    sign_offs: usize,
}

impl store::WithStore for Server {
    type Output = anyhow::Result<()>;

    async fn run<S: Store>(self, store: S) -> anyhow::Result<()> {
        let app = App {
            store,
            operator_hash: self.operator_hash,
            policy: self.policy,
            secrets: self.secrets,
            sign_offs_required: self.sign_offs,
            rate_limits: Default::default(),
            metrics: Default::default(),
        };
        serve(self.listen, self.data_dir, app).await
    }
}

async fn serve<S: Store>(listen: SocketAddr, data_dir: PathBuf, app: App<S>) -> anyhow::Result<()> {
    lifecycle::start(&app.store, &app.policy)
        .await
        .context("cannot start on the active policy revision")?;
    let chain = app.policy.current();
    tracing::info!(policy = chain.policy(), revision = chain.revision(), "policy active");
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    // Tests and scripts read the bound address (port 0 picks one) from stdout.
    println!("listening on http://{address}");
    tokio::spawn(reload_on_sighup(app.store.clone(), Arc::clone(&app.policy)));
    tokio::spawn(lifecycle::follow(app.store.clone(), Arc::clone(&app.policy)));
    tokio::spawn(crate::delivery::run(app.store.clone(), app.secrets.clone(), data_dir));
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|err| anyhow!("server failed: {err}"))?;
    tracing::info!("drained, exiting");
    Ok(())
}

/// On SIGHUP, reads the policy file again and, if every gate loads, stores it
/// as a revision and activates it here and, through the database, everywhere.
async fn reload_on_sighup<S: Store>(store: S, active: Arc<ActivePolicy>) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: policy reload is off");
        return;
    };
    while hangups.recv().await.is_some() {
        let target = Arc::clone(&active);
        let (candidate, chain) = match tokio::task::spawn_blocking(move || target.read_file()).await {
            Ok(Ok(reloaded)) => reloaded,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "policy refused; the active policy stays");
                continue;
            }
            Err(err) => {
                tracing::error!(error = %err, "policy reload crashed; the active policy stays");
                continue;
            }
        };
        let stored = async {
            candidate.hold(&store).await?;
            let revision = candidate.revision(&candidate.file_origin())?;
            Ok::<_, lifecycle::ActivationError>(
                store
                    .activate(&revision, "reload", "host (SIGHUP)", "policy file reloaded", false)
                    .await?,
            )
        };
        // Stored first, then swapped in at its activation, so that following the database agrees.
        match stored.await {
            Ok(Some(seq)) => {
                let revision = chain.revision().to_owned();
                if active.install(seq, chain).is_some() {
                    tracing::info!(revision, "policy swapped");
                }
            }
            Ok(None) => tracing::error!("policy not activated; the active policy stays"),
            Err(err) => {
                tracing::error!(error = %err, revision = chain.revision(), "policy not activated: the database failed; the active policy stays")
            }
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
