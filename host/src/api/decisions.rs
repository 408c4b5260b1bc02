//! Safety flags, dry runs of the gate chain on the store's facts, and the decision log.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{App, Body, Caller, Params, PathId, Problem};
use crate::auth::{Principal, Scope};
use crate::model::{self, ApiKey, Flags};
use crate::store::{ChainReport, DecisionFilter, DecisionRecord, Facts, Store, new_id, now};

/// The most blocked terms, and the longest one, the operator may set.
const MAX_BLOCKED_TERMS: usize = 500;
const MAX_TERM_CHARS: usize = 200;
/// Decisions per page, by default and at most.
const PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// Reads the safety flags: the operator, customers and reviewers.
#[utoipa::path(get, path = "/v1/flags", tag = "decisions", responses((status = 200, body = Flags), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_flags<S: Store>(State(app): State<Arc<App<S>>>, Caller(caller): Caller) -> Result<Json<Flags>, Problem> {
    if matches!(caller, Principal::ApiKey { .. }) {
        return Err(Problem::forbidden("API keys do not read the safety flags"));
    }
    Ok(Json(app.store.flags().await.map_err(Problem::internal)?))
}

/// Sets the safety flags (the operator only): publishing mode, kill switch, blocked terms. Audited.
#[utoipa::path(put, path = "/v1/flags", tag = "decisions", request_body = Flags, responses((status = 200, body = Flags), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn set_flags<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(flags): Body<Flags>,
) -> Result<Json<Flags>, Problem> {
    if caller != Principal::Operator {
        return Err(Problem::forbidden("only the operator sets the safety flags"));
    }
    if flags.blocked_terms.len() > MAX_BLOCKED_TERMS
        || flags
            .blocked_terms
            .iter()
            .any(|t| t.trim().is_empty() || t.chars().count() > MAX_TERM_CHARS)
    {
        return Err(Problem::invalid(format!(
            "`blocked_terms` takes at most {MAX_BLOCKED_TERMS} terms of 1 to {MAX_TERM_CHARS} characters"
        )));
    }
    app.store.set_flags(&flags).await.map_err(Problem::internal)?;
    Ok(Json(flags))
}

/// A publication or dry run: which draft, to which destination.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    draft_id: String,
    destination_id: String,
}

/// Runs the active chain on the facts in the store, never charges, and records the result as a dry run.
#[utoipa::path(post, path = "/v1/decisions/dry-run", tag = "decisions", request_body = DecisionRequest, responses((status = 200, body = DecisionRecord), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn dry_run<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(body): Body<DecisionRequest>,
) -> Result<Json<DecisionRecord>, Problem> {
    let Decided::Unrecorded(record, _) = decide(&app, &caller, body, "dry_run", None).await? else {
        return Err(Problem::internal("a dry run claims no idempotency key"));
    };
    Ok(Json(
        app.store
            .record_decision(record)
            .await
            .map_err(|e| Problem::from_store(e, "workspace", ""))?,
    ))
}

/// The workspace a decision is asked for, and the asking key: the customer, or a key with `publish:request`.
pub(super) fn asker(caller: &Principal) -> Result<(String, Option<ApiKey>), Problem> {
    Ok(match caller {
        Principal::Customer { workspace_id } => (workspace_id.clone(), None),
        Principal::ApiKey { id, workspace_id, scopes } if scopes.contains(&Scope::PublishRequest) => {
            let names = scopes
                .iter()
                .filter_map(|s| serde_json::to_value(s).ok()?.as_str().map(str::to_owned))
                .collect();
            (
                workspace_id.clone(),
                Some(ApiKey {
                    id: id.clone(),
                    scopes: names,
                }),
            )
        }
        Principal::ApiKey { .. } => return Err(Problem::missing_scope(Scope::PublishRequest)),
        Principal::Operator | Principal::Reviewer { .. } => {
            return Err(Problem::forbidden(
                "decisions are asked for by the workspace's customer or its keys",
            ));
        }
    })
}

/// The product's price of a publication when the policy has no credit gate to say otherwise.
const DEFAULT_PRICE_CENTS: i64 = 4;

/// What deciding found.
#[expect(
    clippy::large_enum_variant,
    reason = "built and moved once per decision; a box would only add an allocation"
)]
pub(super) enum Decided {
    /// The idempotency key was claimed before: answer from that claim, decide nothing.
    Claimed,
    /// The unrecorded decision, and the price the chain's credit gate charges.
    Unrecorded(DecisionRecord, i64),
}

/// Runs the active chain for `caller` on the store's facts, unless the
/// idempotency key `claim` (when given) was claimed before.
pub(super) async fn decide<S: Store>(
    app: &App<S>,
    caller: &Principal,
    body: DecisionRequest,
    kind: &str,
    claim: Option<&str>,
) -> Result<Decided, Problem> {
    let (workspace_id, key) = asker(caller)?;
    let route = if kind == "dry_run" {
        "/v1/decisions/dry-run"
    } else {
        "/v1/publications"
    };
    let started = std::time::Instant::now();
    let facts = app
        .store
        .facts(&workspace_id, &body.draft_id, &body.destination_id, claim)
        .await
        .map_err(|e| Problem::from_store(e, "draft or destination", &format!("{} / {}", body.draft_id, body.destination_id)))?;
    app.metrics.phase(route, "facts", started.elapsed());
    let Facts::Unclaimed(mut request) = facts else {
        return Ok(Decided::Claimed);
    };
    request.key = key;
    let started = std::time::Instant::now();
    // The whole decision runs on the chain active when it started, and is charged at its price.
    let chain = app.policy.current();
    let price = chain.config_integer("credit", "price_cents").unwrap_or(DEFAULT_PRICE_CENTS);
    let decision = chain.evaluate(&request);
    app.metrics.phase(route, "chain", started.elapsed());
    let canonical = serde_json::to_string(&request).map_err(Problem::internal)?;
    let record = DecisionRecord {
        seq: 0,
        id: new_id("dec"),
        workspace_id,
        kind: kind.into(),
        key_id: request.key.as_ref().map(|k| k.id.clone()),
        draft_id: body.draft_id,
        destination_id: body.destination_id,
        request_digest: crate::engine::sha256_hex(canonical.as_bytes()),
        request: Some(canonical),
        policy: decision.policy.clone(),
        revision: decision.revision.clone(),
        outcome: decision.outcome.to_string(),
        gates: serde_json::to_string(&decision.gates).map_err(Problem::internal)?,
        charge_cents: 0,
        created_at: now(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    Ok(Decided::Unrecorded(record, price))
}

/// Reads one decision, under the same visibility as the log.
#[utoipa::path(get, path = "/v1/decisions/{id}", tag = "decisions", params(("id" = String, Path)), responses((status = 200, body = DecisionRecord), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_one<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<Json<DecisionRecord>, Problem> {
    let filter = DecisionFilter {
        id: Some(id.clone()),
        ..visible(&caller)
    };
    let found = app.store.decisions(&filter, 0, 1).await.map_err(Problem::internal)?;
    found
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| Problem::not_found("decision", &id))
}

/// Walks every workspace's decision chain and reports the first broken link of each: the operator and reviewers.
#[utoipa::path(get, path = "/v1/decisions/verify", tag = "decisions", responses((status = 200, body = ChainReport), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn verify<S: Store>(State(app): State<Arc<App<S>>>, Caller(caller): Caller) -> Result<Json<ChainReport>, Problem> {
    if !matches!(caller, Principal::Operator | Principal::Reviewer { .. }) {
        return Err(Problem::forbidden("the operator and reviewers verify the decision log"));
    }
    Ok(Json(crate::store::verify_chains(&app.store).await.map_err(Problem::internal)?))
}

/// `?after=CURSOR&limit=N&outcome=&key=&since=&until=`, cursors being `c` and a sequence number.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    after: Option<String>,
    limit: Option<i64>,
    /// Only this outcome.
    outcome: Option<model::Outcome>,
    /// Only this key's requests.
    key: Option<String>,
    /// Made at or after this RFC 3339 UTC time.
    since: Option<String>,
    /// Made before this RFC 3339 UTC time.
    until: Option<String>,
}

/// Which decisions `caller` may read: all (operator, reviewers), a workspace's (customer), a key's own (key).
fn visible(caller: &Principal) -> DecisionFilter {
    match caller {
        Principal::Operator | Principal::Reviewer { .. } => DecisionFilter::default(),
        Principal::Customer { workspace_id } => DecisionFilter {
            workspace_id: Some(workspace_id.clone()),
            ..Default::default()
        },
        Principal::ApiKey { id, workspace_id, .. } => DecisionFilter {
            workspace_id: Some(workspace_id.clone()),
            key_id: Some(id.clone()),
            ..Default::default()
        },
    }
}

/// A time bound as stored (RFC 3339, UTC, microseconds), or a problem naming the parameter.
fn time_bound(name: &str, value: Option<String>) -> Result<Option<String>, Problem> {
    value
        .map(|text| {
            humantime::parse_rfc3339_weak(&text)
                .map(|at| humantime::format_rfc3339_micros(at).to_string())
                .map_err(|_| Problem::invalid(format!("`{name}` must be an RFC 3339 time such as 2026-12-04T18:00:00Z")))
        })
        .transpose()
}

/// A page of the decision log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DecisionPage {
    decisions: Vec<DecisionRecord>,
    next_cursor: Option<String>,
}

/// Reads the decision log: the operator and reviewers (all), the customer (their workspace), a key (its own requests).
#[utoipa::path(get, path = "/v1/decisions", tag = "decisions", params(DecisionQuery), responses((status = 200, body = DecisionPage), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Params(query): Params<DecisionQuery>,
) -> Result<Json<DecisionPage>, Problem> {
    let mut filter = visible(&caller);
    if let Some(key) = query.key {
        // A key that asks for another key's requests finds none: the filters narrow, never widen.
        if filter.key_id.as_ref().is_some_and(|own| *own != key) {
            return Ok(Json(DecisionPage {
                decisions: Vec::new(),
                next_cursor: None,
            }));
        }
        filter.key_id = Some(key);
    }
    filter.outcome = query.outcome.map(|o| o.to_string());
    filter.since = time_bound("since", query.since)?;
    filter.until = time_bound("until", query.until)?;
    let after = match query.after.as_deref() {
        None => 0,
        Some(cursor) => cursor
            .strip_prefix('c')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Problem::invalid(format!("`after` cursor `{cursor}` is not one this API gave out")))?,
    };
    let limit = query.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(format!("`limit` must be 1 to {MAX_PAGE}")));
    }
    let decisions = app.store.decisions(&filter, after, limit).await.map_err(Problem::internal)?;
    let next_cursor = if decisions.len() as i64 == limit {
        decisions.last().map(|d| format!("c{}", d.seq))
    } else {
        None
    };
    Ok(Json(DecisionPage { decisions, next_cursor }))
}
