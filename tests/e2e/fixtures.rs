//! Fixtures shared by the end-to-end tests and the load benchmark: fresh
//! databases, workspaces, and a workspace ready to publish.

use serde_json::{Value, json};

use crate::support::Server;

/// A database of its own on the PostgreSQL server, dropped afterwards.
pub struct FreshPostgres {
    base: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl FreshPostgres {
    /// Creates a fresh database on the server at `base` (a URL ending in /DATABASE).
    pub fn create(base: &str) -> Self {
        let name = postgate::store::new_id("pgtest").to_lowercase();
        admin(base, &format!("CREATE DATABASE {name}"));
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("POSTGATE_TEST_POSTGRES_URL must end in /DATABASE"),
        };
        Self {
            base: base.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        admin(&self.base, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn admin(url: &str, statement: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use sqlx::Executor as _;
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        // The statements name databases this test generated: nothing user-supplied.
        pool.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())))
            .await
            .unwrap();
        pool.close().await;
    });
}

/// The operator creates a workspace; its customer token comes back once.
pub fn workspace(server: &Server, name: &str) -> (String, String) {
    let (status, body, _) = server.call("POST", "/v1/workspaces", Some(&server.operator), Some(json!({"name": name})));
    assert_eq!(status, 201, "{body}");
    (
        body["workspace"]["id"].as_str().unwrap().to_owned(),
        body["customer_token"].as_str().unwrap().to_owned(),
    )
}

/// A workspace with `cents`, and an approved draft to an approved sandbox
/// destination: ready to publish but for the flags (preview by default).
pub fn ready(server: &Server, cents: i64) -> (String, String, Value) {
    let (ws, customer) = workspace(server, "Publisher");
    server.call(
        "POST",
        &format!("/v1/workspaces/{ws}/credits"),
        Some(&server.operator),
        Some(json!({"amount_cents": cents, "reference": "funding"})),
    );
    let destination = approved_destination(server, &customer);
    let draft = approved_draft(server, &customer, "Launch day!");
    (ws, customer, json!({"draft_id": draft, "destination_id": destination}))
}

/// A sandbox destination the customer connected and the operator's provider review approved: its id.
pub fn approved_destination(server: &Server, customer: &str) -> String {
    let (_, started, _) = server.call(
        "POST",
        "/v1/destinations/connect",
        Some(customer),
        Some(json!({"provider": "sandbox"})),
    );
    let (_, destination, _) = server.call(
        "GET",
        &format!("/v1/destinations/callback?state={}&code=c1", started["state"].as_str().unwrap()),
        None,
        None,
    );
    let destination = destination["id"].as_str().unwrap().to_owned();
    let (status, reviewed, _) = server.call(
        "PUT",
        &format!("/v1/destinations/{destination}/review"),
        Some(&server.operator),
        Some(json!({"state": "approved"})),
    );
    assert_eq!(status, 200, "{reviewed}");
    destination
}

/// A draft with `text`, submitted and approved by the customer: its id.
pub fn approved_draft(server: &Server, customer: &str, text: &str) -> String {
    let (_, draft, _) = server.call("POST", "/v1/drafts", Some(customer), Some(json!({"text": text})));
    let draft = draft["id"].as_str().unwrap().to_owned();
    let (_, item, _) = server.call("POST", &format!("/v1/drafts/{draft}/submit"), Some(customer), None);
    let (status, approved, _) = server.call(
        "POST",
        &format!("/v1/approvals/{}/approve", item["id"].as_str().unwrap()),
        Some(customer),
        None,
    );
    assert_eq!(status, 200, "{approved}");
    draft
}

/// Sets the publishing mode, leaving the other flags off.
pub fn set_mode(server: &Server, mode: &str) {
    let (status, _, _) = server.call(
        "PUT",
        "/v1/flags",
        Some(&server.operator),
        Some(json!({"publishing_mode": mode, "kill_switch": false, "blocked_terms": []})),
    );
    assert_eq!(status, 200);
}

/// Requests a publication with `key` as its idempotency key: status, body and content type.
pub fn publish(server: &Server, token: &str, key: &str, body: &Value) -> (u16, Value, String) {
    let raw = body.to_string();
    server.raw_with(
        "POST",
        "/v1/publications",
        Some(token),
        Some(raw.as_bytes()),
        &[("Idempotency-Key", key)],
    )
}
