//! `POST /v1/publications`: the gate chain decides, and only an allow is
//! charged, once, atomically with its record.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::decisions::{Decided, DecisionRequest, asker, decide};
use super::{App, Body, Caller, PathId, Problem};
use crate::auth::Principal;
use crate::store::{DecisionRecord, Delivered, Publication, Published, Store};

/// The route, as its metrics name it.
const ROUTE: &str = "/v1/publications";
/// The header that makes a publication request safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// An allowed, charged, queued publication and the decision behind it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Queued {
    publication: Publication,
    decision: DecisionRecord,
}

/// A decision waiting on a human (approval or provider review): nothing charged.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Waiting {
    decision: DecisionRecord,
}

/// Asks to publish a draft to a destination: the customer, or a key with `publish:request`.
///
/// `Idempotency-Key` is required: a retry with the same key and body gets the
/// first answer (`Idempotent-Replayed: true`) and is never charged twice; the
/// same key with another body is a 422. 201: allowed, charged and queued.
/// 202: pending on a human, nothing charged. 403 `denied`: a gate denied,
/// nothing charged; the problem carries the decision.
#[utoipa::path(post, path = "/v1/publications", tag = "decisions", request_body = DecisionRequest,
    params(("Idempotency-Key" = String, Header, description = "1 to 128 visible ASCII characters, unique per request")),
    responses((status = 201, body = Queued), (status = 202, body = Waiting),
        (status = "4XX", description = "a problem (403 `denied` carries the decision)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn publish<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Body(body): Body<DecisionRequest>,
) -> Result<Response, Problem> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|key| (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "Idempotency key required",
                "send an `Idempotency-Key` header of 1 to 128 visible ASCII characters",
            )
        })?
        .to_owned();
    let fingerprint = crate::engine::sha256_hex(&serde_json::to_vec(&body).map_err(Problem::internal)?);
    let (workspace_id, _) = asker(&caller)?;
    let published = match decide(&app, &caller, body, "publication", Some(&key)).await? {
        // A retry is answered from the record, without deciding again.
        Decided::Claimed => app.store.idempotent_answer(&workspace_id, &key, &fingerprint).await,
        Decided::Unrecorded(record, price) => {
            let started = Instant::now();
            let published = app.store.publish(&key, &fingerprint, record, price).await;
            app.metrics.phase(ROUTE, "write", started.elapsed());
            published
        }
    }
    .map_err(|e| Problem::from_store(e, "workspace", &workspace_id))?;
    let started = Instant::now();
    let (record, publication, replayed) = match published {
        Published::Decided(record, publication) => (record, publication, false),
        Published::Replayed(record, publication) => (record, publication, true),
        Published::KeyReused => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
                format!("`Idempotency-Key: {key}` was used for another request"),
            ));
        }
    };
    let mut response = match (record.outcome.as_str(), publication) {
        ("allow", Some(publication)) => (
            StatusCode::CREATED,
            Json(Queued {
                publication,
                decision: record,
            }),
        )
            .into_response(),
        ("pending", _) => (StatusCode::ACCEPTED, Json(Waiting { decision: record })).into_response(),
        _ => {
            let detail = denials(&record.gates);
            let decision = serde_json::to_value(&record).map_err(Problem::internal)?;
            Problem::new(StatusCode::FORBIDDEN, "denied", "Publication denied", detail)
                .with("decision", decision)
                .into_response()
        }
    };
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    app.metrics.phase(ROUTE, "respond", started.elapsed());
    Ok(response)
}

/// Reads a publication: the workspace's customer, or its keys with `publish:request`.
#[utoipa::path(get, path = "/v1/publications/{id}", tag = "decisions", params(("id" = String, Path)), responses((status = 200, body = Publication), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_one<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<Json<Publication>, Problem> {
    let (workspace_id, _) = asker(&caller)?;
    Ok(Json(
        app.store
            .publication(&workspace_id, &id)
            .await
            .map_err(|e| Problem::from_store(e, "publication", &id))?,
    ))
}

/// What the operator found when asking the provider about a publication whose delivery outcome was unknown.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resolution {
    /// The provider has the post.
    Delivered {
        /// The provider's id for it.
        provider_post_id: String,
    },
    /// The provider never received it: the publication fails and its charge is reversed.
    Failed {
        /// What the provider said.
        detail: String,
    },
}

/// Settles a publication whose delivery outcome is `unknown` (the operator only), after asking its provider. Audited.
///
/// `delivered` records the provider's post id; `failed` reverses the charge
/// with a ledger entry. 409 when the publication is not `unknown`.
#[utoipa::path(post, path = "/v1/publications/{id}/resolve", tag = "decisions", params(("id" = String, Path)), request_body = Resolution,
    responses((status = 200, body = Publication), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn resolve<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
    Body(resolution): Body<Resolution>,
) -> Result<Json<Publication>, Problem> {
    if caller != Principal::Operator {
        return Err(Problem::forbidden("only the operator settles an unknown delivery"));
    }
    let (Resolution::Delivered { provider_post_id: text } | Resolution::Failed { detail: text }) = &resolution;
    if !(1..=MAX_RESOLUTION_CHARS).contains(&text.chars().count()) {
        return Err(Problem::invalid(format!(
            "`provider_post_id` or `detail` takes 1 to {MAX_RESOLUTION_CHARS} characters"
        )));
    }
    let delivered = match resolution {
        Resolution::Delivered { provider_post_id } => Delivered::Posted(provider_post_id),
        Resolution::Failed { detail } => Delivered::NotSent(detail),
    };
    Ok(Json(
        app.store
            .finish_delivery(&id, "unknown", &delivered)
            .await
            .map_err(|e| Problem::from_store(e, "publication", &id))?,
    ))
}

/// The longest post id or failure detail the operator may record.
const MAX_RESOLUTION_CHARS: usize = 500;

/// The denying gates' messages, as one line.
fn denials(gates: &str) -> String {
    let results: Vec<serde_json::Value> = serde_json::from_str(gates).unwrap_or_default();
    let reasons: Vec<String> = results
        .iter()
        .filter(|g| g["outcome"] == "deny")
        .map(|g| {
            format!(
                "{} ({}): {}",
                g["gate"].as_str().unwrap_or("?"),
                g["code"].as_str().unwrap_or("?"),
                g["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    if reasons.is_empty() {
        "a gate denied".into()
    } else {
        format!("denied by {}", reasons.join("; "))
    }
}
