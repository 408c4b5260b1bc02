//! `postgate serve`: the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use tokio::signal::unix::{SignalKind, signal};

use super::{CliError, Context, Exit, internal, invalid};
use crate::server::{self, ActivePolicy};

/// Arguments of `postgate serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, env = "POSTGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The policy manifest; SIGHUP re-reads it.
    #[arg(long, env = "POSTGATE_POLICY", default_value = "policies/default.toml")]
    policy: PathBuf,
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
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(internal)?
        .block_on(serve(args.listen, active))
        .map_err(internal)?;
    Ok(Exit::Success)
}

async fn serve(listen: SocketAddr, active: Arc<ActivePolicy>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    // Tests and scripts read the bound address (port 0 picks one) from stdout.
    println!("listening on http://{address}");
    tokio::spawn(reload_on_sighup(Arc::clone(&active)));
    axum::serve(listener, server::router(active))
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
