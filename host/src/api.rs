//! The REST surface: every error is RFC 9457 problem+json, every request
//! body is size-limited, and every route learns its caller from one extractor.

pub(crate) mod accounts;
mod decisions;
mod destinations;
pub(crate) mod drafts;
mod openapi;
pub(crate) mod policy;
mod problem;
mod publications;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::auth::{self, Principal, Scope, TokenKind};
use crate::lifecycle::ActivePolicy;
use crate::store::Store;

pub use openapi::ApiDoc;
pub use problem::Problem;

/// The largest request body accepted: drafts and keys are small.
pub const MAX_BODY_BYTES: usize = 64 << 10;

/// What every handler shares.
pub struct App<S> {
    /// The database.
    pub store: S,
    /// sha256 of the operator's token.
    pub operator_hash: String,
    /// The active gate policy.
    pub policy: Arc<ActivePolicy>,
    /// Seals provider tokens at rest.
    pub secrets: crate::secrets::SecretBox,
    /// Strict mode: distinct reviewers who must sign off each component of an uploaded policy (0: off).
    pub sign_offs_required: usize,
    /// Per-key rate limits.
    pub rate_limits: usage::RateLimits,
    /// Request counts and times.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The API routes, for a store chosen at start; API-key requests are attributed to their key.
pub fn routes<S: Store>(app: &Arc<App<S>>) -> Router<Arc<App<S>>> {
    Router::new()
        .route("/v1/reviewers", post(accounts::create_reviewer::<S>))
        .route("/v1/workspaces", post(accounts::create_workspace::<S>))
        .route("/v1/workspaces/{id}/credits", post(accounts::top_up::<S>))
        .route("/v1/workspaces/{id}/balance", get(accounts::balance::<S>))
        .route("/v1/workspaces/{id}/ledger", get(accounts::ledger::<S>))
        .route(
            "/v1/api-keys",
            post(accounts::create_api_key::<S>).get(accounts::list_api_keys::<S>),
        )
        .route("/v1/api-keys/{id}/revoke", post(accounts::revoke_api_key::<S>))
        .route("/v1/api-keys/{id}/usage", get(usage::key_usage::<S>))
        .route("/v1/audit", get(accounts::audit::<S>))
        .route("/v1/flags", get(decisions::get_flags::<S>).put(decisions::set_flags::<S>))
        .route("/v1/decisions", get(decisions::list::<S>))
        .route("/v1/decisions/dry-run", post(decisions::dry_run::<S>))
        .route("/v1/decisions/verify", get(decisions::verify::<S>))
        .route(
            "/v1/policy",
            get(policy::active::<S>)
                .put(policy::upload::<S>)
                .layer(DefaultBodyLimit::max(policy::MAX_UPLOAD_BYTES)),
        )
        .route("/v1/policy/revisions", get(policy::history::<S>))
        .route("/v1/policy/rollback", post(policy::rollback::<S>))
        .route(
            "/v1/policy/diff",
            post(policy::diff::<S>).layer(DefaultBodyLimit::max(policy::MAX_UPLOAD_BYTES)),
        )
        .route("/v1/gates/{id}", get(policy::gate::<S>))
        .route("/v1/gates/{id}/sign-off", post(policy::sign_off::<S>))
        .route("/v1/publications", post(publications::publish::<S>))
        .route("/v1/publications/{id}", get(publications::get_one::<S>))
        .route("/v1/publications/{id}/resolve", post(publications::resolve::<S>))
        .route("/v1/decisions/{id}", get(decisions::get_one::<S>))
        .route("/v1/destinations", get(destinations::list::<S>))
        .route("/v1/destinations/connect", post(destinations::connect::<S>))
        .route("/v1/destinations/callback", get(destinations::callback::<S>))
        .route("/v1/destinations/{id}", axum::routing::delete(destinations::disconnect::<S>))
        .route("/v1/destinations/{id}/review", axum::routing::put(destinations::review::<S>))
        .route("/sandbox/consent", get(destinations::sandbox_consent))
        .route("/v1/drafts", post(drafts::create::<S>).get(drafts::list::<S>))
        .route("/v1/drafts/{id}", get(drafts::get_one::<S>).patch(drafts::update::<S>))
        .route("/v1/drafts/{id}/preview", get(drafts::preview_draft::<S>))
        .route("/v1/drafts/{id}/submit", post(drafts::submit::<S>))
        .route("/v1/approvals", get(drafts::queue::<S>))
        .route("/v1/approvals/{id}/approve", post(drafts::approve::<S>))
        .route("/v1/approvals/{id}/reject", post(drafts::reject::<S>))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(app), usage::record::<S>))
}

/// The authenticated caller of a request.
pub struct Caller(pub Principal);

impl<S: Store> FromRequestParts<Arc<App<S>>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, Problem> {
        let started = std::time::Instant::now();
        let caller = Self::authenticate(parts, app).await;
        if let Some(route) = parts.extensions.get::<axum::extract::MatchedPath>() {
            app.metrics.phase(route.as_str(), "auth", started.elapsed());
        }
        caller
    }
}

impl Caller {
    async fn authenticate<S: Store>(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(Problem::unauthenticated)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(Problem::unauthenticated)?;
        let token = token.trim();
        if auth::kind_of(token) != Some(TokenKind::ApiKey) {
            return person(app, token).await.map(Self);
        }
        let hash = auth::hash(token);
        let record = app.store.token(&hash).await.map_err(Problem::internal)?;
        let record = record
            .filter(|r| r.revoked_at.is_none() && r.kind == "api_key" && auth::same_hash(&r.hash, &hash))
            .ok_or_else(Problem::invalid_token)?;
        if let Some(slot) = parts.extensions.get::<usage::UsageSlot>() {
            slot.attribute(&record.id, &record.workspace_id);
        }
        // Throttle before any write: a flood costs the database one read per request.
        let per_minute = u32::try_from(record.rate_limit_per_minute).unwrap_or(u32::MAX);
        app.rate_limits
            .check(&record.id, per_minute)
            .map_err(|wait| Problem::rate_limited(per_minute, wait))?;
        // The usage record, written once the handler has answered (and before the response is sent), marks the key as used.
        Ok(Self(Principal::ApiKey {
            id: record.id,
            workspace_id: record.workspace_id,
            scopes: crate::store::parse_scopes(&record.scopes),
        }))
    }
}

/// The person a token of the operator, a reviewer or a customer stands for;
/// API keys are automation, not people, and are refused here.
pub async fn person<S: Store>(app: &App<S>, token: &str) -> Result<Principal, Problem> {
    let kind = auth::kind_of(token).ok_or_else(Problem::invalid_token)?;
    let hash = auth::hash(token);
    match kind {
        TokenKind::Operator if auth::same_hash(&hash, &app.operator_hash) => Ok(Principal::Operator),
        TokenKind::Reviewer => {
            let id = app
                .store
                .reviewer_by_hash(&hash)
                .await
                .map_err(Problem::internal)?
                .ok_or_else(Problem::invalid_token)?;
            Ok(Principal::Reviewer { id })
        }
        TokenKind::Customer => {
            let record = app.store.token(&hash).await.map_err(Problem::internal)?;
            let record = record
                .filter(|r| r.revoked_at.is_none() && r.kind == "customer" && auth::same_hash(&r.hash, &hash))
                .ok_or_else(Problem::invalid_token)?;
            app.store.touch_token(&record.id).await.map_err(Problem::internal)?;
            Ok(Principal::Customer {
                workspace_id: record.workspace_id,
            })
        }
        TokenKind::Operator | TokenKind::ApiKey => Err(Problem::invalid_token()),
    }
}

/// A JSON body whose every rejection (syntax, unknown field, wrong type,
/// wrong content type, too large, not UTF-8) is a problem+json answer.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for Body<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &St) -> Result<Self, Problem> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await.map_err(Problem::from)?;
        Ok(Self(value))
    }
}

/// Query parameters whose rejection (unknown, missing or mistyped) is a problem+json answer.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Problem> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Problem::invalid(rejection.body_text()))?;
        Ok(Self(value))
    }
}

/// The `{id}` of a route, whose rejection (e.g. bad percent-encoding) is a problem+json answer.
pub struct PathId(pub String);

impl<St: Send + Sync> FromRequestParts<St> for PathId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Problem> {
        let axum::extract::Path(id) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Problem::new(axum::http::StatusCode::BAD_REQUEST, "bad_path", "Bad path", rejection.body_text()))?;
        Ok(Self(id))
    }
}

/// Items per page, by default and at most.
const PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// `?after=CURSOR&limit=N` for lists in id order: the cursor is the last id of the previous page.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IdPageQuery {
    after: Option<String>,
    limit: Option<i64>,
}

impl IdPageQuery {
    /// The id to start after and the page size, checked.
    pub fn bounds(&self) -> Result<(&str, i64), Problem> {
        let limit = self.limit.unwrap_or(PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problem::invalid(format!("`limit` must be 1 to {MAX_PAGE}")));
        }
        Ok((self.after.as_deref().unwrap_or(""), limit))
    }
}

/// A page of items and the cursor of the next page, when there may be one.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items` fetched with `limit`; `id` gives an item's cursor.
    pub fn of(items: Vec<T>, limit: i64, id: impl Fn(&T) -> &str) -> Self {
        let next_cursor = if items.len() as i64 == limit {
            items.last().map(|last| id(last).to_owned())
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// The workspace `id` as `caller` may see it: operators see every workspace;
/// customers and keys only their own (another's is "not found", never
/// "forbidden": they must not learn it exists); a key also needs `scope`.
pub fn workspace_access(caller: &Principal, id: &str, scope: Scope) -> Result<(), Problem> {
    match caller {
        Principal::Operator => Ok(()),
        Principal::Customer { workspace_id } if workspace_id == id => Ok(()),
        Principal::ApiKey { workspace_id, scopes, .. } if workspace_id == id => {
            if scopes.contains(&scope) {
                Ok(())
            } else {
                Err(Problem::missing_scope(scope))
            }
        }
        Principal::Reviewer { .. } => Err(Problem::forbidden("reviewers read gates and decisions, not workspaces")),
        _ => Err(Problem::not_found("workspace", id)),
    }
}

/// The caller's workspace when the caller is its customer.
pub fn customer_of(caller: &Principal) -> Result<&str, Problem> {
    match caller {
        Principal::Customer { workspace_id } => Ok(workspace_id),
        _ => Err(Problem::forbidden("only the workspace's customer may do this")),
    }
}
