//! Prometheus metrics, served at `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One kind of request: method, route pattern and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// One route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// One phase of answering a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    route: String,
    phase: &'static str,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    seconds: Family<RouteLabels, Histogram>,
    phases: Family<PhaseLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("postgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        // 0.1 ms to ~1.6 s: a gate decision is microseconds, a durable write milliseconds.
        let seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 15)));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by method and route",
            seconds.clone(),
        );
        let phases = Family::<PhaseLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_01, 2.0, 18)));
        registry.register(
            "phase_duration_seconds",
            "Time spent in each phase of a request (auth, facts, chain, write, respond), by route",
            phases.clone(),
        );
        Self {
            registry,
            requests,
            seconds,
            phases,
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        text
    }

    /// Records that `phase` of answering `route` took `elapsed`.
    pub fn phase(&self, route: &str, phase: &'static str, elapsed: std::time::Duration) {
        self.phases
            .get_or_create(&PhaseLabels {
                route: route.to_owned(),
                phase,
            })
            .observe(elapsed.as_secs_f64());
    }

    fn observe(&self, method: String, route: String, status: u16, started: Instant) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route: route.clone(),
                status,
            })
            .inc();
        self.seconds
            .get_or_create(&RouteLabels { method, route })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Middleware: counts and times every request.
pub async fn observe(State(metrics): State<Arc<Metrics>>, route: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe(method, route, response.status().as_u16(), started);
    response
}
