//! RFC 9457 problem details: the one error shape of the API.

use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::Scope;
use crate::store::StoreError;

/// An API error, answered as `application/problem+json`.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    /// A stable machine-readable code; the `type` is `/problems/{code}`.
    code: &'static str,
    title: &'static str,
    detail: String,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a status, a stable code, a title and a detail.
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, for people.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Adds a member to the problem document, e.g. the balance.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// No credentials were sent.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            "send `Authorization: Bearer <token>`",
        )
    }

    /// The token is malformed, unknown or revoked.
    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Invalid token",
            "the token is malformed, unknown or revoked",
        )
    }

    /// The caller may not do this at all.
    pub fn forbidden(detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// An API key lacks the scope a route needs.
    pub fn missing_scope(scope: Scope) -> Self {
        let name = serde_json::to_value(scope).unwrap_or(Value::Null);
        Self::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            "Missing scope",
            format!("this API key needs the scope {name}"),
        )
        .with("scope", name)
    }

    /// An API key went over its rate limit; `Retry-After` says when to come back.
    pub fn rate_limited(per_minute: u32, wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            format!("this API key may make {per_minute} requests a minute; retry in {seconds} s"),
        )
        .with("limit_per_minute", per_minute);
        problem.retry_after = Some(seconds.max(1));
        problem
    }

    /// Nothing of that kind with that id is visible to the caller.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", format!("no {what} `{id}`"))
    }

    /// A field of the request is invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "Invalid request", detail)
    }

    /// Something broke inside postgate; the cause is logged, never sent.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server could not complete the request; it is logged",
        )
    }

    /// A store failure as the caller should see it.
    pub fn from_store(err: StoreError, what: &str, id: &str) -> Self {
        match err {
            StoreError::NotFound => Self::not_found(what, id),
            StoreError::Conflict(detail) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            StoreError::InsufficientBalance {
                balance_cents,
                required_cents,
            } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_balance",
                "Insufficient balance",
                format!("the balance is {balance_cents} cents; this needs at least {required_cents} cents"),
            )
            .with("balance_cents", balance_cents)
            .with("minimum_cents", required_cents),
            err @ (StoreError::Database(_) | StoreError::Corrupt(_) | StoreError::Unavailable(_)) => Self::internal(err),
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => Self::invalid(detail),
            JsonRejection::JsonSyntaxError(_) => Self::new(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON", detail),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as `Content-Type: application/json`",
            ),
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "Body too large",
                format!(
                    "request bodies are limited to {} bytes ({} for policy uploads and diffs)",
                    super::MAX_BODY_BYTES,
                    super::policy::MAX_UPLOAD_BYTES
                ),
            ),
            _ => Self::new(StatusCode::BAD_REQUEST, "unreadable_body", "Unreadable body", detail),
        }
    }
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .description(Some(
                "An RFC 9457 problem; further members (e.g. `balance_cents`) depend on its type",
            ))
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("`/problems/<code>`, a stable code")),
            )
            .property("title", ObjectBuilder::new().schema_type(Type::String))
            .property("status", ObjectBuilder::new().schema_type(Type::Integer))
            .property(
                "detail",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("what went wrong, for people")),
            )
            .required("type")
            .required("title")
            .required("status")
            .required("detail")
            .into()
    }
}

impl utoipa::ToSchema for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("/problems/{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Value::Object(members) = &mut body {
            members.extend(self.extra);
        }
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
