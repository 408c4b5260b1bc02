//! Workspaces, money and API keys.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{App, Body, Caller, IdPageQuery, Page, Params, PathId, Problem, customer_of, workspace_access};
use crate::auth::{self, Principal, Scope, TokenKind};
use crate::store::{ApiKey, AuditRecord, LedgerEntry, NewKey, Reviewer, Store, TopUp, Workspace};

/// Creating an API key needs this balance: $5.
pub const API_KEY_MIN_BALANCE_CENTS: i64 = 500;
/// The largest single top-up: $100,000, against typos.
const MAX_TOP_UP_CENTS: i64 = 10_000_000;
/// Ledger entries per page, by default and at most.
const PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// `POST /v1/workspaces`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    name: String,
}

/// A new workspace and its first customer token, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedWorkspace {
    workspace: Workspace,
    customer_token: String,
}

/// Creates a workspace (operator only) and returns its first customer token once.
#[utoipa::path(post, path = "/v1/workspaces", tag = "accounts", request_body = NewWorkspace, responses((status = 201, body = CreatedWorkspace), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create_workspace<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(body): Body<NewWorkspace>,
) -> Result<(StatusCode, Json<CreatedWorkspace>), Problem> {
    if caller != Principal::Operator {
        return Err(Problem::forbidden("only the operator creates workspaces"));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Problem::invalid("`name` must be 1 to 100 characters"));
    }
    let token = auth::mint(TokenKind::Customer);
    let workspace = app
        .store
        .create_workspace(name, &token)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", ""))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWorkspace {
            workspace,
            customer_token: token.secret,
        }),
    ))
}

/// `POST /v1/reviewers`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReviewer {
    label: String,
}

/// A new reviewer and their token, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedReviewer {
    reviewer: Reviewer,
    token: String,
}

/// Mints a reviewer (operator only) and returns their token once.
#[utoipa::path(post, path = "/v1/reviewers", tag = "accounts", request_body = NewReviewer, responses((status = 201, body = CreatedReviewer), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create_reviewer<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(body): Body<NewReviewer>,
) -> Result<(StatusCode, Json<CreatedReviewer>), Problem> {
    if caller != Principal::Operator {
        return Err(Problem::forbidden("only the operator mints reviewers"));
    }
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(Problem::invalid("`label` must be 1 to 100 characters"));
    }
    let token = auth::mint(TokenKind::Reviewer);
    let reviewer = app
        .store
        .create_reviewer(label, &token)
        .await
        .map_err(|e| Problem::from_store(e, "reviewer", ""))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedReviewer {
            reviewer,
            token: token.secret,
        }),
    ))
}

/// `POST /v1/workspaces/{id}/credits`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredit {
    amount_cents: i64,
    reference: String,
}

/// The ledger entry of a top-up and the balance after it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Credited {
    entry: LedgerEntry,
    replayed: bool,
}

/// Credits a workspace (operator only), once per caller reference: a retry
/// with the same reference and amount replays the first answer.
#[utoipa::path(post, path = "/v1/workspaces/{id}/credits", tag = "accounts", params(("id" = String, Path)), request_body = NewCredit, responses((status = 201, body = Credited, description = "credited"), (status = 200, body = Credited, description = "a retry, replayed"), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn top_up<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
    Body(body): Body<NewCredit>,
) -> Result<(StatusCode, Json<Credited>), Problem> {
    if caller != Principal::Operator {
        return Err(Problem::forbidden("only the operator tops up credits"));
    }
    if !(1..=MAX_TOP_UP_CENTS).contains(&body.amount_cents) {
        return Err(Problem::invalid(format!("`amount_cents` must be 1 to {MAX_TOP_UP_CENTS}")));
    }
    let reference = body.reference.trim();
    if reference.is_empty() || reference.len() > 128 {
        return Err(Problem::invalid("`reference` must be 1 to 128 bytes"));
    }
    match app
        .store
        .top_up(&id, body.amount_cents, reference)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", &id))?
    {
        TopUp::Applied(entry) => Ok((StatusCode::CREATED, Json(Credited { entry, replayed: false }))),
        TopUp::Replayed(entry) => Ok((StatusCode::OK, Json(Credited { entry, replayed: true }))),
    }
}

/// A workspace's balance.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Balance {
    workspace_id: String,
    balance_cents: i64,
}

/// Reads the balance: the operator, the workspace's customer, or a key with `account:read`.
#[utoipa::path(get, path = "/v1/workspaces/{id}/balance", tag = "accounts", params(("id" = String, Path)), responses((status = 200, body = Balance), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn balance<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<Json<Balance>, Problem> {
    workspace_access(&caller, &id, Scope::AccountRead)?;
    let workspace = app
        .store
        .workspace(&id)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", &id))?;
    Ok(Json(Balance {
        workspace_id: workspace.id,
        balance_cents: workspace.balance_cents,
    }))
}

/// `?after=CURSOR&limit=N`, where cursors are `c` and a sequence number.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    after: Option<String>,
    limit: Option<i64>,
}

impl PageQuery {
    /// The sequence number to start after and the page size, checked.
    fn bounds(&self) -> Result<(i64, i64), Problem> {
        let after = match self.after.as_deref() {
            None => 0,
            Some(cursor) => cursor
                .strip_prefix('c')
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| Problem::invalid(format!("`after` cursor `{cursor}` is not one this API gave out")))?,
        };
        let limit = self.limit.unwrap_or(PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problem::invalid(format!("`limit` must be 1 to {MAX_PAGE}")));
        }
        Ok((after, limit))
    }
}

/// One page of the ledger, and the cursor of the next when there is one.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LedgerPage {
    entries: Vec<LedgerEntry>,
    next_cursor: Option<String>,
}

/// Reads the ledger, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/workspaces/{id}/ledger", tag = "accounts", params(("id" = String, Path), PageQuery), responses((status = 200, body = LedgerPage), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn ledger<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
    Params(query): Params<PageQuery>,
) -> Result<Json<LedgerPage>, Problem> {
    workspace_access(&caller, &id, Scope::AccountRead)?;
    let (after, limit) = query.bounds()?;
    app.store
        .workspace(&id)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", &id))?;
    let entries = app
        .store
        .ledger(&id, after, limit)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", &id))?;
    let next_cursor = next_cursor(&entries, limit, |e| e.seq);
    Ok(Json(LedgerPage { entries, next_cursor }))
}

/// One page of the audit trail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    records: Vec<AuditRecord>,
    next_cursor: Option<String>,
}

/// Reads the audit trail: the customer of their workspace, the operator of every workspace.
#[utoipa::path(get, path = "/v1/audit", tag = "accounts", params(PageQuery), responses((status = 200, body = AuditPage), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn audit<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Params(query): Params<PageQuery>,
) -> Result<Json<AuditPage>, Problem> {
    let workspace_id = match &caller {
        Principal::Operator => None,
        Principal::Customer { workspace_id } => Some(workspace_id.as_str()),
        Principal::ApiKey { .. } | Principal::Reviewer { .. } => return Err(Problem::forbidden("the audit trail is the customer's")),
    };
    let (after, limit) = query.bounds()?;
    let records = app
        .store
        .audit_trail(workspace_id, after, limit)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id.unwrap_or("")))?;
    let next_cursor = next_cursor(&records, limit, |r| r.seq);
    Ok(Json(AuditPage { records, next_cursor }))
}

/// The cursor after the last item of a full page.
fn next_cursor<T>(items: &[T], limit: i64, seq: impl Fn(&T) -> i64) -> Option<String> {
    if items.len() as i64 == limit {
        items.last().map(|last| format!("c{}", seq(last)))
    } else {
        None
    }
}

/// `POST /v1/api-keys`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    label: String,
    scopes: Vec<Scope>,
    rate_limit_per_minute: Option<i64>,
}

/// A key's rate limit unless its creator sets one: ten requests a second.
const DEFAULT_RATE_LIMIT_PER_MINUTE: i64 = 600;
/// The highest rate limit a key may have.
const MAX_RATE_LIMIT_PER_MINUTE: i64 = 60_000;

/// A new API key and its secret, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub(crate) key: ApiKey,
    pub(crate) secret: String,
}

/// Creates an API key (the customer only), if the balance is at least $5.
#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", request_body = NewApiKey, responses((status = 201, body = CreatedApiKey), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create_api_key<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(body): Body<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), Problem> {
    let workspace_id = customer_of(&caller)?;
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(Problem::invalid("`label` must be 1 to 100 characters"));
    }
    let mut scopes = body.scopes;
    scopes.sort_by_key(|s| *s as u8);
    scopes.dedup();
    if scopes.is_empty() {
        return Err(Problem::invalid("`scopes` must name at least one scope"));
    }
    let rate_limit_per_minute = body.rate_limit_per_minute.unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE);
    if !(1..=MAX_RATE_LIMIT_PER_MINUTE).contains(&rate_limit_per_minute) {
        return Err(Problem::invalid(format!(
            "`rate_limit_per_minute` must be 1 to {MAX_RATE_LIMIT_PER_MINUTE}"
        )));
    }
    let token = auth::mint(TokenKind::ApiKey);
    let new = NewKey {
        label,
        scopes: &scopes,
        rate_limit_per_minute,
    };
    let key = app
        .store
        .create_api_key(workspace_id, new, &token, API_KEY_MIN_BALANCE_CENTS)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id))?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key, secret: token.secret })))
}

/// Lists the workspace's API keys (the customer only), never their secrets.
#[utoipa::path(get, path = "/v1/api-keys", tag = "keys", params(IdPageQuery), responses((status = 200, body = Page<ApiKey>), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list_api_keys<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Params(query): Params<IdPageQuery>,
) -> Result<Json<Page<ApiKey>>, Problem> {
    let workspace_id = customer_of(&caller)?;
    let (after, limit) = query.bounds()?;
    let keys = app
        .store
        .api_keys(workspace_id, after, limit)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id))?;
    Ok(Json(Page::of(keys, limit, |k| &k.id)))
}

/// The revoked key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    key: ApiKey,
}

/// Revokes a key (the customer only): it authenticates nothing from the next request on.
#[utoipa::path(post, path = "/v1/api-keys/{id}/revoke", tag = "keys", params(("id" = String, Path)), responses((status = 200, body = Revoked), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn revoke_api_key<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<Json<Revoked>, Problem> {
    let workspace_id = customer_of(&caller)?;
    let key = app
        .store
        .revoke_api_key(workspace_id, &id)
        .await
        .map_err(|e| Problem::from_store(e, "API key", &id))?;
    Ok(Json(Revoked { key }))
}
