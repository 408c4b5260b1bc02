//! The web console: server-rendered pages for people, under `/console`.
//!
//! Customers work their approval queue (with each draft's rendered
//! previews), see their balance and ledger, create and revoke API keys and
//! see their destinations. Reviewers read the active chain, each gate's
//! contract, digest and sign-offs, the revision history with diffs, and the
//! decision log; they sign gates off.
//!
//! Sign-in takes a customer or reviewer token and keeps it in a session
//! cookie (`HttpOnly`, `SameSite=Strict`, scoped to `/console`, gone when the
//! browser closes). Every form carries a CSRF token derived from the session,
//! checked before anything changes. Actions go through the same handlers as
//! the API, so the console can do nothing the API would refuse.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use crate::api::{self, App, Body, Caller, PathId, Problem};
use crate::auth::Principal;
use crate::preview::{Content, Settings, preview};
use crate::store::{DecisionFilter, Store};

/// The session cookie.
const COOKIE: &str = "postgate_session";
/// Items a console list shows.
const LISTED: i64 = 100;

/// The console's routes.
pub fn routes<S: Store>() -> Router<Arc<App<S>>> {
    Router::new()
        .route("/console", get(home::<S>))
        .route("/console/session", post(sign_in::<S>))
        .route("/console/sign-out", post(sign_out::<S>))
        .route("/console/approvals/{id}/{verdict}", post(decide::<S>))
        .route("/console/account", get(account::<S>))
        .route("/console/keys", get(keys::<S>).post(create_key::<S>))
        .route("/console/keys/{id}/revoke", post(revoke_key::<S>))
        .route("/console/destinations", get(destinations::<S>))
        .route("/console/gates/{id}", get(gate::<S>))
        .route("/console/gates/{id}/sign-off", post(sign_off::<S>))
        .route("/console/revisions", get(revisions::<S>))
        .route("/console/decisions", get(decisions::<S>))
        .layer(axum::middleware::map_response(harden))
}

/// Headers every console page carries: no scripts, no framing, no caching
/// (a page may show a new key's secret), no referrer leaving the console.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A signed-in person.
struct Session {
    principal: Principal,
    csrf: String,
}

/// The CSRF token of a session: only a page served to that session knows it.
fn csrf_of(token: &str) -> String {
    crate::engine::sha256_hex(format!("postgate console csrf\n{token}").as_bytes())
}

/// The session the request's cookie names, if it stands for a customer or reviewer.
async fn session<S: Store>(app: &App<S>, headers: &HeaderMap) -> Option<Session> {
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')))?;
    let principal = api::person(app, token).await.ok()?;
    matches!(principal, Principal::Customer { .. } | Principal::Reviewer { .. }).then(|| Session {
        principal,
        csrf: csrf_of(token),
    })
}

/// The session, or the sign-in page.
async fn signed_in<S: Store>(app: &App<S>, headers: &HeaderMap) -> Result<Session, Response> {
    session(app, headers).await.ok_or_else(|| Redirect::to("/console").into_response())
}

/// A page refusing what was asked, boxed: it travels as an error.
type Refusal = Box<Response>;

/// A form's CSRF token, checked against the session's.
fn check_csrf(session: &Session, sent: &str) -> Result<(), Refusal> {
    if crate::auth::same_hash(&session.csrf, sent) {
        Ok(())
    } else {
        Err(Box::new(message_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form was not served to your session. Reload the page and try again.",
        )))
    }
}

/// A problem of the API as a refusal page.
fn refusal(problem: Problem) -> Refusal {
    Box::new(problem_page(&problem))
}

/// A failure of postgate's own, as a refusal page.
fn internal(err: impl std::fmt::Display) -> Refusal {
    refusal(Problem::internal(err))
}

const CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a}\
header{background:#14213d;color:#fff;padding:.5rem 1rem}header a{color:#fff;margin-right:1rem}\
header form{display:inline}main{padding:1rem;max-width:70rem}table{border-collapse:collapse;width:100%}\
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
pre{background:#f4f4f4;padding:.5rem;overflow:auto;white-space:pre-wrap}\
.allow{color:#0a6b2c}.deny{color:#a4161a}.pending{color:#8a5a00}\
.item{border:1px solid #ccc;padding:.5rem 1rem;margin:1rem 0}button{font:inherit;padding:.2rem .8rem}\
.secret{background:#fff3bf;padding:.5rem;font-family:monospace}.del{color:#a4161a}.ins{color:#0a6b2c}";

fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · postgate console" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    nav aria-label="Console" {
                        a href="/console" { "postgate" }
                        @match session.map(|s| &s.principal) {
                            Some(Principal::Customer { .. }) => {
                                a href="/console" { "Approvals" }
                                a href="/console/account" { "Balance" }
                                a href="/console/keys" { "API keys" }
                                a href="/console/destinations" { "Destinations" }
                            }
                            Some(Principal::Reviewer { .. }) => {
                                a href="/console" { "Active chain" }
                                a href="/console/revisions" { "Revisions" }
                                a href="/console/decisions" { "Decisions" }
                            }
                            _ => {}
                        }
                        @if let Some(session) = session {
                            form method="post" action="/console/sign-out" {
                                (csrf_field(session))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        page(
            title,
            None,
            html! { p role="alert" { (message) } p { a href="/console" { "Back to the console" } } },
        ),
    )
        .into_response()
}

/// A refusal of an action, as a page.
fn problem_page(problem: &Problem) -> Response {
    message_page(problem.status(), "Not done", problem.detail())
}

fn outcome_class(outcome: &str) -> &str {
    match outcome {
        "allow" => "allow",
        "pending" => "pending",
        _ => "deny",
    }
}

fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}${}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100)
}

async fn home<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    let Some(session) = session(&app, &headers).await else {
        return sign_in_page(StatusCode::OK, None);
    };
    let rendered = match &session.principal {
        Principal::Customer { workspace_id } => approvals_page(&app, &session, workspace_id).await,
        _ => chain_page(&app, &session).await,
    };
    rendered.unwrap_or_else(|problem| problem_page(&problem))
}

fn sign_in_page(status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        @if let Some(error) = error { p role="alert" { (error) } }
        p { "Sign in with your customer token (" code { "pgc_…" } ") or reviewer token (" code { "pgr_…" } "). API keys cannot sign in." }
        form method="post" action="/console/session" {
            label for="token" { "Token" }
            " "
            input id="token" name="token" type="password" autocomplete="off" required size="60";
            " "
            button type="submit" { "Sign in" }
        }
    };
    (status, page("Sign in", None, body)).into_response()
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    // Login CSRF: another site must not sign this browser in as someone else.
    // Browsers say where a form came from; a client that does not say is no browser.
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return sign_in_page(StatusCode::FORBIDDEN, Some("Sign in from the console's own page."));
    }
    let token = form.token.trim();
    match api::person(&app, token).await {
        Ok(Principal::Customer { .. } | Principal::Reviewer { .. }) => {
            // Over a network the cookie travels only over TLS; on this machine
            // (plain http to a loopback name, which browsers count as secure) too.
            let secure = if is_loopback(&headers) { "" } else { "; Secure" };
            let cookie = format!("{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict{secure}");
            match HeaderValue::from_str(&cookie) {
                Ok(value) => ([(header::SET_COOKIE, value)], Redirect::to("/console")).into_response(),
                Err(_) => sign_in_page(StatusCode::UNAUTHORIZED, Some("That is not a postgate token.")),
            }
        }
        Ok(_) => sign_in_page(
            StatusCode::FORBIDDEN,
            Some("The console is for customers and reviewers; the operator uses the API."),
        ),
        Err(_) => sign_in_page(StatusCode::UNAUTHORIZED, Some("That token is unknown or revoked.")),
    }
}

/// Whether the request named a loopback host: `localhost`, `127.x.x.x` or `[::1]`.
fn is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Some(session) = session(&app, &headers).await
        && let Err(refused) = check_csrf(&session, &form.csrf)
    {
        return *refused;
    }
    let expired = HeaderValue::from_static("postgate_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, expired)], Redirect::to("/console")).into_response()
}

async fn approvals_page<S: Store>(app: &Arc<App<S>>, session: &Session, workspace_id: &str) -> Result<Response, Problem> {
    let items = app.store.approvals(workspace_id, "", LISTED).await.map_err(Problem::internal)?;
    let destinations = app
        .store
        .destinations(Some(workspace_id), "", LISTED)
        .await
        .map_err(Problem::internal)?;
    let mut providers: Vec<&str> = destinations.iter().filter(|d| d.connected).map(|d| d.provider.as_str()).collect();
    providers.sort_unstable();
    providers.dedup();
    let mut pending = Vec::new();
    for item in items.iter().filter(|item| item.status == "pending") {
        let draft = app.store.draft(workspace_id, &item.draft_id).await.map_err(Problem::internal)?;
        pending.push((item, draft));
    }
    let body = html! {
        @if pending.is_empty() {
            p { "Nothing waits for your approval." }
        }
        @for (item, draft) in &pending {
            section class="item" aria-labelledby=(format!("h-{}", item.id)) {
                h2 id=(format!("h-{}", item.id)) { "Draft " code { (draft.id) } }
                p { "Submitted by " (item.submitted_by) " at " (item.created_at) }
                @if item.content_digest != item.draft_digest {
                    p role="alert" { "The draft changed after it was submitted: this item no longer covers it." }
                }
                h3 { "Text" }
                pre { (draft.text) }
                @if providers.is_empty() {
                    p { "No connected destination to preview for." }
                }
                @for provider in &providers {
                    @let shown = preview(provider, Content { text: &draft.text, media: &draft.media }, Settings::default());
                    details open {
                        summary { "Preview for " (provider) ": " (shown.count) " of " (shown.limit) " (" (shown.counting_rule) ")" }
                        @if shown.violations.is_empty() {
                            p class="allow" { "Fits the platform's rules." }
                        } @else {
                            ul class="deny" { @for v in &shown.violations { li { code { (v.code) } ": " (v.message) } } }
                        }
                        pre { (serde_json::to_string_pretty(&shown.payload).unwrap_or_default()) }
                    }
                }
                form method="post" action=(format!("/console/approvals/{}/approve", item.id)) style="display:inline" {
                    (csrf_field(session))
                    button type="submit" { "Approve" }
                }
                " "
                form method="post" action=(format!("/console/approvals/{}/reject", item.id)) style="display:inline" {
                    (csrf_field(session))
                    button type="submit" { "Reject" }
                }
            }
        }
    };
    Ok(page("Approval queue", Some(session), body).into_response())
}

async fn decide<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Path((id, verdict)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match signed_in(&app, &headers).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    if let Err(refused) = check_csrf(&session, &form.csrf) {
        return *refused;
    }
    let caller = Caller(session.principal);
    let decided = match verdict.as_str() {
        "approve" => api::drafts::approve(State(Arc::clone(&app)), caller, PathId(id)).await,
        "reject" => api::drafts::reject(State(Arc::clone(&app)), caller, PathId(id)).await,
        _ => return message_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    match decided {
        Ok(_) => Redirect::to("/console").into_response(),
        Err(problem) => problem_page(&problem),
    }
}

fn customer(session: &Session) -> Result<&str, Refusal> {
    api::customer_of(&session.principal).map_err(refusal)
}

fn reviewer(session: &Session) -> Result<&str, Refusal> {
    match &session.principal {
        Principal::Reviewer { id } => Ok(id),
        _ => Err(Box::new(message_page(
            StatusCode::FORBIDDEN,
            "Reviewers only",
            "This page is for reviewers.",
        ))),
    }
}

/// Runs `render` for a signed-in session, turning every refusal into a page.
macro_rules! with_session {
    ($app:expr, $headers:expr, |$session:ident| $render:expr) => {{
        let $session = match signed_in(&$app, &$headers).await {
            Ok(session) => session,
            Err(redirect) => return redirect,
        };
        let rendered: Result<Response, Refusal> = async { $render }.await;
        rendered.unwrap_or_else(|refused| *refused)
    }};
}

async fn account<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    with_session!(app, headers, |session| {
        let workspace_id = customer(&session)?;
        let workspace = app.store.workspace(workspace_id).await.map_err(internal)?;
        let ledger = app.store.ledger(workspace_id, 0, LISTED).await.map_err(internal)?;
        let body = html! {
            p { "Balance: " strong { (dollars(workspace.balance_cents)) } " (" (workspace.balance_cents) " cents). A publication costs 4 cents; creating an API key needs $5.00." }
            h2 { "Ledger" }
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Kind" } th scope="col" { "Amount" } th scope="col" { "Balance after" } th scope="col" { "Reference" } } }
                tbody {
                    @for entry in &ledger {
                        tr { td { (entry.created_at) } td { (entry.kind) } td { (dollars(entry.amount_cents)) } td { (dollars(entry.balance_after_cents)) } td { code { (entry.reference) } } }
                    }
                }
            }
        };
        Ok(page("Balance and ledger", Some(&session), body).into_response())
    })
}

/// The scopes a key may have, as the API names them.
const SCOPES: [&str; 5] = [
    "drafts:read",
    "drafts:write",
    "destinations:read",
    "account:read",
    "publish:request",
];

async fn keys<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    with_session!(app, headers, |session| keys_page(&app, &session, None).await)
}

async fn keys_page<S: Store>(app: &App<S>, session: &Session, created: Option<(String, String)>) -> Result<Response, Refusal> {
    let workspace_id = customer(session)?;
    let keys = app.store.api_keys(workspace_id, "", LISTED).await.map_err(internal)?;
    let body = html! {
        @if let Some((label, secret)) = &created {
            section aria-labelledby="new-key" {
                h2 id="new-key" { "New key “" (label) "”" }
                p role="status" { "Copy it now: it is shown this once and never again." }
                p class="secret" data-testid="new-key-secret" { (secret) }
            }
        }
        h2 { "Create a key" }
        form method="post" action="/console/keys" {
            (csrf_field(session))
            p { label for="label" { "Label" } " " input id="label" name="label" required maxlength="100"; }
            fieldset {
                legend { "Scopes" }
                @for name in SCOPES {
                    label { input type="checkbox" name="scope" value=(name); " " (name) } " "
                }
            }
            p { button type="submit" { "Create key" } }
        }
        h2 { "Keys" }
        table {
            thead { tr { th scope="col" { "Label" } th scope="col" { "Prefix" } th scope="col" { "Scopes" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Revoked" } th scope="col" { "Action" } } }
            tbody {
                @for key in &keys {
                    tr {
                        td { (key.label) } td { code { (key.display_prefix) "…" } }
                        td { (crate::store::scopes_text(&key.scopes)) }
                        td { (key.created_at) } td { (key.last_used_at.as_deref().unwrap_or("never")) }
                        td { (key.revoked_at.as_deref().unwrap_or("")) }
                        td {
                            @if key.revoked_at.is_none() {
                                form method="post" action=(format!("/console/keys/{}/revoke", key.id)) {
                                    (csrf_field(session))
                                    button type="submit" aria-label=(format!("Revoke {}", key.label)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("API keys", Some(session), body).into_response())
}

async fn create_key<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap, Form(pairs): Form<Vec<(String, String)>>) -> Response {
    with_session!(app, headers, |session| {
        // Read as pairs: `scope` repeats, once per ticked box.
        let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        check_csrf(&session, &field("csrf"))?;
        let scopes: Vec<&str> = pairs.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()).collect();
        let request = serde_json::from_value(serde_json::json!({ "label": field("label"), "scopes": scopes }))
            .map_err(|err| Box::new(message_page(StatusCode::BAD_REQUEST, "Not done", &format!("Unknown scope: {err}"))))?;
        let caller = Caller(session.principal.clone());
        let (_, Json(created)) = api::accounts::create_api_key(State(Arc::clone(&app)), caller, Body(request))
            .await
            .map_err(refusal)?;
        keys_page(&app, &session, Some((created.key.label, created.secret))).await
    })
}

async fn revoke_key<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    with_session!(app, headers, |session| {
        check_csrf(&session, &form.csrf)?;
        let caller = Caller(session.principal.clone());
        let Json(_revoked) = api::accounts::revoke_api_key(State(Arc::clone(&app)), caller, PathId(id))
            .await
            .map_err(refusal)?;
        Ok(Redirect::to("/console/keys").into_response())
    })
}

async fn destinations<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    with_session!(app, headers, |session| {
        let workspace_id = customer(&session)?;
        let destinations = app.store.destinations(Some(workspace_id), "", LISTED).await.map_err(internal)?;
        let body = html! {
            p { "Destinations are connected through each provider's consent flow (" code { "POST /v1/destinations/connect" } "); their tokens are never shown, here or anywhere." }
            table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Provider" } th scope="col" { "Connected" } th scope="col" { "Provider review" } th scope="col" { "Since" } th scope="col" { "Disconnected" } } }
                tbody {
                    @for d in &destinations {
                        tr { td { code { (d.id) } } td { (d.provider) } td { (if d.connected { "yes" } else { "no" }) } td { (d.provider_review) } td { (d.created_at) } td { (d.disconnected_at.as_deref().unwrap_or("")) } }
                    }
                }
            }
        };
        Ok(page("Destinations", Some(&session), body).into_response())
    })
}

async fn chain_page<S: Store>(app: &App<S>, session: &Session) -> Result<Response, Problem> {
    let chain = app.policy.current();
    let gates = chain.gates();
    let digests: Vec<String> = gates.iter().map(|g| g.digest.clone()).collect();
    let sign_offs = app.store.sign_offs(&digests).await.map_err(Problem::internal)?;
    let body = html! {
        p { "Policy " strong { (chain.policy()) } ", revision " code { (chain.revision()) } ". Every enforcing gate must allow; monitor gates are recorded only." }
        table {
            thead { tr { th scope="col" { "Gate" } th scope="col" { "Version" } th scope="col" { "Mode" } th scope="col" { "Digest" } th scope="col" { "Size" } th scope="col" { "Sign-offs" } } }
            tbody {
                @for gate in &gates {
                    tr {
                        td { a href=(format!("/console/gates/{}", gate.name)) { (gate.name) } }
                        td { (gate.version) }
                        td { (format!("{:?}", gate.mode).to_lowercase()) }
                        td { code { (gate.digest) } }
                        td { (gate.size) " bytes" }
                        td { (sign_offs.iter().filter(|s| s.digest == gate.digest).count()) }
                    }
                }
            }
        }
    };
    Ok(page("Active chain", Some(session), body).into_response())
}

async fn gate<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    with_session!(app, headers, |session| {
        reviewer(&session)?;
        let detail = api::policy::gate_detail(&app, &id).await.map_err(refusal)?;
        let body = html! {
            p { (detail.summary) }
            dl {
                dt { "Digest (sha256)" } dd { code data-testid="digest" { (detail.digest) } }
                dt { "Version" } dd { (detail.version) }
                dt { "Size" } dd { (detail.size) " bytes" }
                dt { "WIT world" } dd { code { (detail.world) } }
                @if let Some(active) = &detail.active {
                    dt { "Mode" } dd { (plain(&active.mode)) }
                    dt { "On error" } dd { (plain(&active.on_error)) }
                    dt { "Source reference" } dd { code { (active.source.as_deref().unwrap_or("not given")) } }
                    dt { "Config" } dd { pre { (plain(&serde_json::to_value(active).map(|v| v["config"].clone()).unwrap_or_default())) } }
                    dt { "Limits" } dd { pre { (plain(&active.limits)) } }
                } @else {
                    dt { "In the active chain" } dd { "no" }
                }
            }
            h2 { "Sign-offs" }
            @if detail.sign_offs.is_empty() { p { "None yet." } }
            ul {
                @for s in &detail.sign_offs {
                    li { code { (s.reviewer_id) } " at " (s.created_at) ": " (s.note) }
                }
            }
            h2 { "Sign off this digest" }
            form method="post" action=(format!("/console/gates/{}/sign-off", detail.digest)) {
                (csrf_field(&session))
                p { label for="note" { "What you checked" } }
                p { textarea id="note" name="note" rows="3" cols="60" required maxlength="2000" {} }
                p { button type="submit" { "Sign off" } }
            }
            h2 { "Source" }
            @match &detail.source {
                Some(source) => {
                    p { "Embedded in the component at build time, so covered by its digest. "
                        code { "postgate gate verify FILE" } " rebuilds it and compares." }
                    @for (path, file) in &source.files {
                        details open[path.starts_with(&format!("{}/src/", source.crate_dir))] {
                            summary { code { (path) } " (" (file.len()) " bytes)" }
                            pre { (file) }
                        }
                    }
                }
                None => p { "No source is embedded in this component (it was not built by " code { "postgate gate build" } ")." },
            }
            h2 { "The gate contract (WIT)" }
            pre { (detail.wit) }
        };
        let name = if detail.name.is_empty() { id.clone() } else { detail.name.clone() };
        Ok(page(&format!("Gate {name}"), Some(&session), body).into_response())
    })
}

/// A value as people read it: a string as itself, anything else as indented JSON.
fn plain(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => serde_json::to_string_pretty(&other).unwrap_or_default(),
        Err(err) => format!("({err})"),
    }
}

#[derive(Deserialize)]
struct SignOffForm {
    csrf: String,
    note: String,
}

async fn sign_off<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    Path(digest): Path<String>,
    Form(form): Form<SignOffForm>,
) -> Response {
    with_session!(app, headers, |session| {
        check_csrf(&session, &form.csrf)?;
        let reviewer_id = reviewer(&session)?;
        api::policy::record_sign_off(&app.store, reviewer_id, &digest, &form.note)
            .await
            .map_err(refusal)?;
        Ok(Redirect::to(&format!("/console/gates/{digest}")).into_response())
    })
}

async fn revisions<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap) -> Response {
    with_session!(app, headers, |session| {
        reviewer(&session)?;
        let entries = app.store.history(i64::MAX, LISTED).await.map_err(internal)?;
        let body = html! {
            p { "Newest first. Each entry shows what changed from the revision active before it." }
            @for (i, entry) in entries.iter().enumerate() {
                @let activation = &entry.activation;
                section class="item" {
                    h2 { code { (activation.revision_id) } " · " (activation.action) }
                    p { "By " (activation.actor) " at " (activation.created_at) @if !activation.note.is_empty() { ": “" (activation.note) "”" } }
                    @match entries.get(i + 1) {
                        Some(before) => pre aria-label="Changes" { (manifest_diff(&before.manifest, &entry.manifest)) },
                        None => pre { (entry.manifest) },
                    }
                }
            }
        };
        Ok(page("Revision history", Some(&session), body).into_response())
    })
}

/// A unified diff of two manifests, lines marked for reading.
fn manifest_diff(before: &str, after: &str) -> Markup {
    let diff = similar::TextDiff::from_lines(before, after);
    html! {
        @if before == after { "(the same manifest, activated again)" }
        @for change in diff.iter_all_changes() {
            @match change.tag() {
                similar::ChangeTag::Delete => span class="del" { "- " (change.value()) },
                similar::ChangeTag::Insert => span class="ins" { "+ " (change.value()) },
                similar::ChangeTag::Equal => span { "  " (change.value()) },
            }
        }
    }
}

#[derive(Deserialize)]
struct DecisionsQuery {
    after: Option<i64>,
}

async fn decisions<S: Store>(State(app): State<Arc<App<S>>>, headers: HeaderMap, Query(query): Query<DecisionsQuery>) -> Response {
    with_session!(app, headers, |session| {
        reviewer(&session)?;
        let records = app
            .store
            .decisions(&DecisionFilter::default(), query.after.unwrap_or(0), LISTED)
            .await
            .map_err(internal)?;
        let body = html! {
            p { "Every decision with every gate's verdict, time and fuel, oldest first." }
            @for record in &records {
                @let gates: Vec<serde_json::Value> = serde_json::from_str(&record.gates).unwrap_or_default();
                section class="item" {
                    h2 { code { (record.id) } " · " span class=(outcome_class(&record.outcome)) { (record.outcome) } }
                    p { (record.kind) " at " (record.created_at) ", workspace " code { (record.workspace_id) } ", revision " code { (record.revision) } ", charged " (record.charge_cents) " cents" }
                    table {
                        thead { tr { th scope="col" { "Gate" } th scope="col" { "Mode" } th scope="col" { "Verdict" } th scope="col" { "Code" } th scope="col" { "Message" } th scope="col" { "Time (µs)" } th scope="col" { "Fuel" } } }
                        tbody {
                            @for gate in &gates {
                                @let outcome = gate["outcome"].as_str().unwrap_or_default();
                                tr {
                                    td { (gate["gate"].as_str().unwrap_or_default()) }
                                    td { (gate["mode"].as_str().unwrap_or("enforce")) }
                                    td class=(outcome_class(outcome)) { (outcome) }
                                    td { code { (gate["code"].as_str().unwrap_or_default()) } }
                                    td { (gate["message"].as_str().unwrap_or_default()) }
                                    td { (gate["duration_us"]) }
                                    td { (gate["fuel"]) }
                                }
                            }
                        }
                    }
                }
            }
            @if records.len() as i64 == LISTED {
                @if let Some(last) = records.last() {
                    p { a href=(format!("/console/decisions?after={}", last.seq)) { "Next page" } }
                }
            }
        };
        Ok(page("Decision log", Some(&session), body).into_response())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart() {
        let host = |value: &'static str| HeaderMap::from_iter([(header::HOST, HeaderValue::from_static(value))]);
        for loopback in ["localhost", "localhost:8080", "127.0.0.1:8080", "127.9.9.9", "[::1]:80"] {
            assert!(is_loopback(&host(loopback)), "{loopback}");
        }
        for remote in ["example.com", "10.0.0.1:80", "[2001:db8::1]:443", "localhost.example.com"] {
            assert!(!is_loopback(&host(remote)), "{remote}");
        }
        assert!(!is_loopback(&HeaderMap::new()));
    }

    #[test]
    fn money_reads_as_dollars() {
        assert_eq!(dollars(600), "$6.00");
        assert_eq!(dollars(-4), "-$0.04");
    }
}
