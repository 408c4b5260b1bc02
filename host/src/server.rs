//! The HTTP server: health, readiness, the active chain for reviewers, and the API.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::api::{self, App, Caller, MAX_BODY_BYTES, Problem};
use crate::auth::Principal;
use crate::engine::GateInfo;
use crate::store::Store;

/// The router the server runs, for the store chosen at start.
pub fn router<S: Store>(app: Arc<App<S>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/openapi.json", get(openapi))
        .route("/v1/gates", get(gates::<S>))
        .merge(api::routes::<S>(&app))
        .merge(crate::console::routes::<S>())
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app.metrics),
            crate::metrics::observe,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// The OpenAPI document of every route.
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(<api::ApiDoc as utoipa::OpenApi>::openapi())
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics<S: Store>(State(app): State<Arc<App<S>>>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

async fn no_route(uri: Uri) -> Problem {
    Problem::not_found("route", uri.path())
}

async fn no_method(method: axum::http::Method, uri: Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        format!("{method} is not a method of `{}`", uri.path()),
    )
}

/// Readiness: the database answers and a policy with no broken gate is active.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    database: &'static str,
    policy: String,
    revision: String,
}

/// Readiness: the database answers, and the active revision runs here with no broken gate.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = Readiness), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn readyz<S: Store>(State(app): State<Arc<App<S>>>) -> Result<Json<Readiness>, Problem> {
    app.store.ping().await.map_err(|err| {
        tracing::warn!(error = %err, "database unreachable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "Not ready",
            "the database does not answer",
        )
    })?;
    let chain = app.policy.current();
    if let Some((gate, _)) = chain.faults().first() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "Not ready",
            format!("gate `{gate}` of the active policy cannot load"),
        ));
    }
    if let Some(active) = app.policy.stale() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "Not ready",
            format!(
                "the active revision `{active}` cannot load in this process, which still runs `{}`",
                chain.revision()
            ),
        ));
    }
    Ok(Json(Readiness {
        database: "ok",
        policy: chain.policy().to_owned(),
        revision: chain.revision().to_owned(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    status: &'static str,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The active chain as reviewers see it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ActiveChain {
    policy: String,
    revision: String,
    gates: Vec<GateInfo>,
}

/// The active chain, for reviewers: names, versions, digests, limits, sources.
/// The operator, customers and reviewers read it; API keys do not.
#[utoipa::path(get, path = "/v1/gates", tag = "gates", responses((status = 200, body = ActiveChain), (status = "4XX", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn gates<S: Store>(State(app): State<Arc<App<S>>>, Caller(caller): Caller) -> Result<Json<ActiveChain>, Problem> {
    if matches!(caller, Principal::ApiKey { .. }) {
        return Err(Problem::forbidden("API keys do not read the policy"));
    }
    let chain = app.policy.current();
    Ok(Json(ActiveChain {
        policy: chain.policy().to_owned(),
        revision: chain.revision().to_owned(),
        gates: chain.gates(),
    }))
}
