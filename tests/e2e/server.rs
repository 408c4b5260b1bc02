//! `postgate serve`: the real binary on an ephemeral port, over HTTP.

use std::time::{Duration, Instant};

use crate::support::{GateEntry, Server, reference_gates, write_policy};

#[test]
fn serves_health_and_the_active_chain_for_reviewers() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "reviewed", &reference_gates());
    let server = Server::start(dir.path(), &policy, None);
    assert_eq!(server.get("/healthz")["status"], "ok");
    let chain = server.get("/v1/gates");
    assert_eq!(chain["policy"], "reviewed");
    let gates = chain["gates"].as_array().unwrap();
    let names: Vec<&str> = gates.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["approval", "provider-review", "destination", "credit", "flags"]);
    for gate in gates {
        assert_eq!(gate["version"], "0.1.0");
        assert_eq!(gate["digest"].as_str().unwrap().len(), 64);
        assert!(gate["size"].as_u64().unwrap() > 1000);
        assert_eq!(gate["limits"]["deadline_ms"], 10);
        assert_eq!(gate["on_error"], "deny");
        assert!(gate["component"].as_str().unwrap().ends_with(".wasm"));
        assert!(gate.get("fault").is_none(), "{gate}");
    }
    assert_eq!(gates[3]["config"]["price_cents"], 4);
    let (status, problem, content_type) = server.call("PUT", "/v1/gates", None, None);
    assert_eq!(
        (status, content_type.as_str(), &problem["type"]),
        (405, "application/problem+json", &serde_json::json!("/problems/method_not_allowed"))
    );
    let (status, problem, content_type) = server.call("GET", "/v1/nothing", None, None);
    assert_eq!(
        (status, content_type.as_str(), &problem["type"]),
        (404, "application/problem+json", &serde_json::json!("/problems/not_found"))
    );
}

#[test]
fn sighup_swaps_the_policy_and_never_to_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "live", &reference_gates());
    let server = Server::start(dir.path(), &policy, None);
    let first = server.get("/v1/gates")["revision"].clone();

    let mut stricter = reference_gates();
    stricter[3] = GateEntry::new("credit", crate::support::gate("credit")).with("config = { price_cents = 10 }");
    write_policy(dir.path(), "live", &stricter);
    server.signal("HUP");
    server.await_log("policy swapped", 1);
    let second = server.get("/v1/gates");
    assert_ne!(second["revision"], first);
    assert_eq!(second["gates"][3]["config"]["price_cents"], 10);

    let broken = [GateEntry::new("credit", crate::support::gate("credit")).with(&format!("sha256 = \"{}\"", "b".repeat(64)))];
    write_policy(dir.path(), "live", &broken);
    server.signal("HUP");
    server.await_log("policy refused", 1);
    assert_eq!(server.get("/v1/gates")["revision"], second["revision"], "the good policy stays");
    assert!(server.log.lock().unwrap().contains("digest mismatch"));
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "short", &reference_gates());
    let mut server = Server::start(dir.path(), &policy, None);
    assert_eq!(server.get("/healthz")["status"], "ok");
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    server.await_log("drained, exiting", 1);
}

#[test]
fn a_second_start_loads_gates_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "cached", &reference_gates());
    drop(Server::start(dir.path(), &policy, None));
    let again = Server::start(dir.path(), &policy, None);
    again.await_log("from_cache=5", 1);
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "metered", &reference_gates());
    let server = Server::start(dir.path(), &policy, None);
    server.get("/healthz");
    server.call("GET", "/v1/nothing", None, None);
    let (status, _, content_type) = server.raw("GET", "/metrics", None, None, "");
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = server.transcript.lock().unwrap().clone();
    assert!(
        text.contains(r#"postgate_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404"} 1"#), "{text}");
    assert!(text.contains("postgate_http_request_duration_seconds_bucket"), "{text}");
}

#[test]
fn openapi_documents_every_route_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "documented", &reference_gates());
    let server = Server::start(dir.path(), &policy, None);
    let doc = server.get("/openapi.json");
    let routes = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/gates", "get"),
        ("/v1/workspaces", "post"),
        ("/v1/workspaces/{id}/credits", "post"),
        ("/v1/workspaces/{id}/balance", "get"),
        ("/v1/workspaces/{id}/ledger", "get"),
        ("/v1/audit", "get"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{id}/revoke", "post"),
        ("/v1/api-keys/{id}/usage", "get"),
        ("/v1/destinations", "get"),
        ("/v1/destinations/connect", "post"),
        ("/v1/destinations/callback", "get"),
        ("/v1/destinations/{id}", "delete"),
        ("/v1/destinations/{id}/review", "put"),
        ("/sandbox/consent", "get"),
        ("/v1/drafts", "post"),
        ("/v1/drafts", "get"),
        ("/v1/drafts/{id}", "get"),
        ("/v1/drafts/{id}", "patch"),
        ("/v1/drafts/{id}/preview", "get"),
        ("/v1/drafts/{id}/submit", "post"),
        ("/v1/approvals", "get"),
        ("/v1/approvals/{id}/approve", "post"),
        ("/v1/approvals/{id}/reject", "post"),
        ("/v1/flags", "get"),
        ("/v1/flags", "put"),
        ("/v1/decisions", "get"),
        ("/v1/decisions/{id}", "get"),
        ("/v1/decisions/dry-run", "post"),
        ("/v1/decisions/verify", "get"),
        ("/v1/publications", "post"),
        ("/v1/publications/{id}", "get"),
        ("/v1/reviewers", "post"),
    ];
    for (path, method) in routes {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not documented");
    }
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("#/components/schemas/").skip(1) {
        let name: String = reference.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        assert!(schemas.contains_key(&name), "schema `{name}` is referenced but not defined");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
