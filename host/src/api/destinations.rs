//! Destinations: connected only by the customer through the provider's
//! consent flow, disconnected at once, reviewed by the operator.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use serde::{Deserialize, Serialize};

use super::{App, Body, Caller, IdPageQuery, Page, Params, PathId, Problem, customer_of, workspace_access};
use crate::auth::{self, Principal, Scope, TokenKind};
use crate::providers;
use crate::store::{Destination, Store, new_id};

/// How long a consent flow may take, from `connect` to the callback.
const CONSENT_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// `POST /v1/destinations/connect`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    provider: String,
}

/// Where the customer gives consent, and the state that ties the callback to this request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentStarted {
    consent_url: String,
    state: String,
    expires_in_seconds: u64,
}

/// Starts connecting a destination: the customer only (an API key never connects one).
#[utoipa::path(post, path = "/v1/destinations/connect", tag = "destinations", request_body = Connect, responses((status = 201, body = ConsentStarted), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn connect<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(body): Body<Connect>,
) -> Result<(StatusCode, Json<ConsentStarted>), Problem> {
    let workspace_id = match &caller {
        Principal::ApiKey { .. } => {
            return Err(Problem::forbidden(
                "an API key cannot connect a destination: the customer does, through the provider's consent",
            ));
        }
        _ => customer_of(&caller)?,
    };
    let provider = providers::provider(&body.provider).ok_or_else(|| {
        Problem::invalid(format!(
            "provider `{}` has no consent flow on this server; available: sandbox",
            body.provider
        ))
    })?;
    // The state is a one-time secret: only its hash is stored.
    let state = auth::mint(TokenKind::Customer).secret.replacen("pgc_", "cst_", 1);
    app.store
        .begin_consent(workspace_id, provider.name(), &auth::hash(&state))
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id))?;
    let started = ConsentStarted {
        consent_url: provider.consent_url(&state),
        state,
        expires_in_seconds: CONSENT_MAX_AGE.as_secs(),
    };
    Ok((StatusCode::CREATED, Json(started)))
}

/// `?state=…&code=…`, as the provider redirects back.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Callback {
    state: String,
    code: String,
}

/// Completes a consent flow: the state proves which customer started it.
#[utoipa::path(get, path = "/v1/destinations/callback", tag = "destinations", params(Callback), responses((status = 201, body = Destination), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")))]
pub async fn callback<S: Store>(
    State(app): State<Arc<App<S>>>,
    Params(callback): Params<Callback>,
) -> Result<(StatusCode, Json<Destination>), Problem> {
    let (workspace_id, provider_name) = app
        .store
        .take_consent(&auth::hash(&callback.state), CONSENT_MAX_AGE)
        .await
        .map_err(|e| Problem::from_store(e, "consent", "in progress"))?;
    let provider = providers::provider(&provider_name).ok_or_else(|| Problem::internal(format!("provider `{provider_name}` vanished")))?;
    let token = provider.exchange(&callback.code).map_err(|err| Problem::invalid(err.to_string()))?;
    let id = new_id("dst");
    let sealed = app.secrets.seal(&token, &id).map_err(Problem::internal)?;
    drop(token);
    let destination = app
        .store
        .connect_destination(&id, &workspace_id, provider.name(), &sealed)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", &workspace_id))?;
    Ok((StatusCode::CREATED, Json(destination)))
}

/// `?state=…`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsentPage {
    state: String,
}

/// The sandbox provider's consent page.
#[utoipa::path(get, path = "/sandbox/consent", tag = "destinations", params(ConsentPage), responses((status = 200, description = "the sandbox consent page", body = String, content_type = "text/html"), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")))]
pub async fn sandbox_consent(Params(page): Params<ConsentPage>) -> Html<String> {
    Html(providers::sandbox_consent_page(&page.state))
}

/// Lists destinations, never their tokens: the operator (all), the customer, a key with `destinations:read`.
#[utoipa::path(get, path = "/v1/destinations", tag = "destinations", params(IdPageQuery), responses((status = 200, body = Page<Destination>), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Params(query): Params<IdPageQuery>,
) -> Result<Json<Page<Destination>>, Problem> {
    let workspace_id = match &caller {
        Principal::Operator => None,
        Principal::Reviewer { .. } => return Err(Problem::forbidden("destinations are the workspace's and the operator's")),
        Principal::Customer { workspace_id } | Principal::ApiKey { workspace_id, .. } => {
            workspace_access(&caller, workspace_id, Scope::DestinationsRead)?;
            Some(workspace_id.as_str())
        }
    };
    let (after, limit) = query.bounds()?;
    let destinations = app
        .store
        .destinations(workspace_id, after, limit)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id.unwrap_or("")))?;
    Ok(Json(Page::of(destinations, limit, |d| &d.id)))
}

/// Disconnects a destination (the customer only): unusable at once, its token wiped.
#[utoipa::path(delete, path = "/v1/destinations/{id}", tag = "destinations", params(("id" = String, Path)), responses((status = 200, body = Destination), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn disconnect<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<Json<Destination>, Problem> {
    let workspace_id = customer_of(&caller)?;
    Ok(Json(
        app.store
            .disconnect_destination(workspace_id, &id)
            .await
            .map_err(|e| Problem::from_store(e, "destination", &id))?,
    ))
}

/// `PUT /v1/destinations/{id}/review`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    state: ReviewState,
}

/// A provider-review state the operator can set.
#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    /// Under review.
    Pending,
    /// Approved by the provider.
    Approved,
    /// Rejected by the provider.
    Rejected,
}

/// Sets a destination's provider-review state: the operator only.
#[utoipa::path(put, path = "/v1/destinations/{id}/review", tag = "destinations", params(("id" = String, Path)), request_body = Review, responses((status = 200, body = Destination), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn review<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
    Body(body): Body<Review>,
) -> Result<Json<Destination>, Problem> {
    if caller != Principal::Operator {
        return Err(Problem::forbidden("only the operator records provider reviews"));
    }
    let state = match body.state {
        ReviewState::Pending => "pending",
        ReviewState::Approved => "approved",
        ReviewState::Rejected => "rejected",
    };
    Ok(Json(
        app.store
            .set_review(&id, state)
            .await
            .map_err(|e| Problem::from_store(e, "destination", &id))?,
    ))
}
