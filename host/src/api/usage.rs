//! Usage checks: every API-key request is attributed to its key (route,
//! status, time) and counted, and each key has a rate limit.
//!
//! The limit is a token bucket per key, in this process's memory: no
//! database round trip per request. Several host processes sharing one
//! database each keep their own buckets, so a key spread over N processes
//! gets up to N times its limit; set the per-key limit to the share one
//! process should allow, or route each key to one process (sticky routing
//! by the `Authorization` header) when the limit must hold exactly.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;

use super::{App, Caller, PathId, Problem, customer_of};
use crate::store::{Store, UsageCount};

/// Per-key token buckets.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimits {
    /// Takes one request from `key_id`'s bucket, or says how long to wait.
    pub fn check(&self, key_id: &str, per_minute: u32) -> Result<(), Duration> {
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
            Arc::clone(
                buckets
                    .entry(key_id.to_owned())
                    .or_insert_with(|| Arc::new(RateLimiter::direct(quota))),
            )
        };
        bucket
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Which key a request was made with, filled in by the [`Caller`] extractor.
#[derive(Clone, Default)]
pub struct UsageSlot(Arc<Mutex<Option<(String, String)>>>);

impl UsageSlot {
    /// Records that the request came from `key_id` of `workspace_id`.
    pub fn attribute(&self, key_id: &str, workspace_id: &str) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((key_id.to_owned(), workspace_id.to_owned()));
    }

    fn take(&self) -> Option<(String, String)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// Middleware: after an API-key request, records its route, status and time.
pub async fn record<S: Store>(State(app): State<Arc<App<S>>>, route: Option<MatchedPath>, mut request: Request, next: Next) -> Response {
    let slot = UsageSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().to_string();
    let response = next.run(request).await;
    if let Some((key_id, workspace_id)) = slot.take() {
        let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        if let Err(err) = app
            .store
            .record_usage(&key_id, &workspace_id, &method, route, response.status().as_u16())
            .await
        {
            tracing::error!(error = %err, key_id, "cannot record usage");
        }
    }
    response
}

/// A key's usage: total requests, and counts by route and status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Usage {
    key_id: String,
    total: i64,
    by_route: Vec<UsageCount>,
}

/// A key's usage, for its workspace's customer.
#[utoipa::path(get, path = "/v1/api-keys/{id}/usage", tag = "keys", params(("id" = String, Path)), responses((status = 200, body = Usage), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn key_usage<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<Json<Usage>, Problem> {
    let workspace_id = customer_of(&caller)?;
    let by_route = app
        .store
        .usage(workspace_id, &id)
        .await
        .map_err(|e| Problem::from_store(e, "API key", &id))?;
    let total = by_route.iter().map(|c| c.count).sum();
    Ok(Json(Usage {
        key_id: id,
        total,
        by_route,
    }))
}
