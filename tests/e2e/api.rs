//! The accounts API over real HTTP, on SQLite and, when
//! `POSTGATE_TEST_POSTGRES_URL` names a server, on PostgreSQL too.

use serde_json::{Value, json};

use crate::fixtures::{FreshPostgres, workspace};
use crate::support::{Server, reference_gates, texts, write_policy};

/// A server on a fresh database of each backend under test.
pub fn each_backend(test: impl Fn(&Server)) {
    each_backend_in(|server, _| test(server));
}

/// The same, also giving the data directory (the SQLite file is in it).
pub fn each_backend_in(test: impl Fn(&Server, &std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "api", &reference_gates());
    test(&Server::start(dir.path(), &policy, None), dir.path());
    if let Ok(base) = std::env::var("POSTGATE_TEST_POSTGRES_URL") {
        let database = FreshPostgres::create(&base);
        test(&Server::start(dir.path(), &policy, Some(&database.url)), dir.path());
    }
}

/// A funded workspace: its id, its customer token, and a key with `scopes`.
pub fn funded_key(server: &Server, scopes: Value) -> (String, String, String) {
    let (ws, customer) = workspace(server, "Funded");
    top_up(server, &ws, 500, "funding");
    let (status, created, _) = server.call(
        "POST",
        "/v1/api-keys",
        Some(&customer),
        Some(json!({"label": "agent", "scopes": scopes})),
    );
    assert_eq!(status, 201, "{created}");
    (ws, customer, created["secret"].as_str().unwrap().to_owned())
}

fn top_up(server: &Server, ws: &str, amount: i64, reference: &str) -> (u16, Value) {
    let (status, body, _) = server.call(
        "POST",
        &format!("/v1/workspaces/{ws}/credits"),
        Some(&server.operator),
        Some(json!({"amount_cents": amount, "reference": reference})),
    );
    (status, body)
}

fn balance(server: &Server, ws: &str, token: &str) -> (u16, Value) {
    let (status, body, _) = server.call("GET", &format!("/v1/workspaces/{ws}/balance"), Some(token), None);
    (status, body)
}

#[test]
fn money_is_credited_once_per_reference() {
    each_backend(|server| {
        let (ws, customer) = workspace(server, "Acme");
        assert_eq!(balance(server, &ws, &customer).1["balance_cents"], 0);
        let (status, first) = top_up(server, &ws, 500, "invoice-1");
        assert_eq!((status, &first["replayed"]), (201, &json!(false)), "{first}");
        let (status, again) = top_up(server, &ws, 500, "invoice-1");
        assert_eq!(
            (status, &again["replayed"], &again["entry"]["id"]),
            (200, &json!(true), &first["entry"]["id"])
        );
        let (status, conflict) = top_up(server, &ws, 700, "invoice-1");
        assert_eq!((status, &conflict["type"]), (409, &json!("/problems/conflict")));
        top_up(server, &ws, 250, "invoice-2");
        assert_eq!(balance(server, &ws, &customer).1["balance_cents"], 750);

        let (status, page, _) = server.call("GET", &format!("/v1/workspaces/{ws}/ledger?limit=1"), Some(&customer), None);
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["entries"][0]["balance_after_cents"], 500);
        let cursor = page["next_cursor"].as_str().unwrap();
        let (_, rest, _) = server.call(
            "GET",
            &format!("/v1/workspaces/{ws}/ledger?limit=1&after={cursor}"),
            Some(&customer),
            None,
        );
        assert_eq!(
            (
                rest["entries"][0]["amount_cents"].as_i64(),
                rest["entries"][0]["balance_after_cents"].as_i64()
            ),
            (Some(250), Some(750))
        );
        let (status, _, _) = server.call("GET", &format!("/v1/workspaces/{ws}/ledger?after=bogus"), Some(&customer), None);
        assert_eq!(status, 422);
    });
}

#[test]
fn api_keys_need_five_dollars_show_once_and_die_when_revoked() {
    each_backend(|server| {
        let (ws, customer) = workspace(server, "Keys");
        let request = json!({"label": "poster bot", "scopes": ["account:read", "drafts:write"]});
        let (status, refused, content_type) = server.call("POST", "/v1/api-keys", Some(&customer), Some(request.clone()));
        assert_eq!((status, content_type.as_str()), (402, "application/problem+json"));
        assert_eq!(
            (&refused["type"], &refused["balance_cents"], &refused["minimum_cents"]),
            (&json!("/problems/insufficient_balance"), &json!(0), &json!(500))
        );

        top_up(server, &ws, 500, "funding");
        let (status, created, _) = server.call("POST", "/v1/api-keys", Some(&customer), Some(request));
        assert_eq!(status, 201, "{created}");
        let secret = created["secret"].as_str().unwrap().to_owned();
        let id = created["key"]["id"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("pgk_") && secret.starts_with(created["key"]["display_prefix"].as_str().unwrap()));

        let (_, listed, _) = server.call("GET", "/v1/api-keys", Some(&customer), None);
        assert!(!listed.to_string().contains(&secret), "a key is never returned after creation");
        assert_eq!(listed["items"][0]["label"], "poster bot");
        assert_eq!(listed["items"][0]["scopes"], json!(["drafts:write", "account:read"]));

        assert_eq!(
            balance(server, &ws, &secret),
            (200, json!({"workspace_id": ws, "balance_cents": 500}))
        );
        let (_, listed, _) = server.call("GET", "/v1/api-keys", Some(&customer), None);
        assert!(listed["items"][0]["last_used_at"].is_string(), "last use is recorded");

        let (status, revoked, _) = server.call("POST", &format!("/v1/api-keys/{id}/revoke"), Some(&customer), None);
        assert_eq!(status, 200);
        assert!(revoked["key"]["revoked_at"].is_string());
        let (status, problem) = balance(server, &ws, &secret);
        assert_eq!(
            (status, &problem["type"]),
            (401, &json!("/problems/invalid_token")),
            "revocation holds from the very next request"
        );
    });
}

/// Method, path, token, body, expected status.
type Call<'a> = (&'a str, &'a str, Option<&'a str>, Option<Value>, u16);

#[test]
fn the_permission_matrix_holds() {
    each_backend(|server| {
        let (ws_a, customer_a) = workspace(server, "A");
        let (ws_b, customer_b) = workspace(server, "B");
        top_up(server, &ws_a, 1000, "a");
        let key = |scopes: Value| {
            let (_, created, _) = server.call(
                "POST",
                "/v1/api-keys",
                Some(&customer_a),
                Some(json!({"label": "k", "scopes": scopes})),
            );
            created["secret"].as_str().unwrap().to_owned()
        };
        let reader = key(json!(["account:read"]));
        let writer = key(json!(["drafts:write"]));
        let operator = server.operator.clone();
        let balance_a = format!("/v1/workspaces/{ws_a}/balance");
        let balance_b = format!("/v1/workspaces/{ws_b}/balance");
        let credit_a = format!("/v1/workspaces/{ws_a}/credits");
        let credit = json!({"amount_cents": 1, "reference": "matrix"});
        let cases: Vec<Call<'_>> = vec![
            ("GET", &balance_a, None, None, 401),
            ("GET", &balance_a, Some("pgk_notarealtoken"), None, 401),
            ("GET", &balance_a, Some(&operator), None, 200),
            ("GET", &balance_a, Some(&customer_a), None, 200),
            ("GET", &balance_a, Some(&reader), None, 200),
            ("GET", &balance_a, Some(&writer), None, 403),
            ("GET", &balance_b, Some(&reader), None, 404),
            ("GET", &balance_a, Some(&customer_b), None, 404),
            ("POST", "/v1/workspaces", Some(&customer_a), Some(json!({"name": "x"})), 403),
            ("POST", "/v1/workspaces", Some(&reader), Some(json!({"name": "x"})), 403),
            ("POST", &credit_a, Some(&customer_a), Some(credit.clone()), 403),
            ("POST", &credit_a, Some(&reader), Some(credit.clone()), 403),
            (
                "POST",
                "/v1/api-keys",
                Some(&reader),
                Some(json!({"label": "k", "scopes": ["account:read"]})),
                403,
            ),
            (
                "POST",
                "/v1/api-keys",
                Some(&operator),
                Some(json!({"label": "k", "scopes": ["account:read"]})),
                403,
            ),
            ("GET", "/v1/api-keys", Some(&reader), None, 403),
            ("GET", "/v1/workspaces/ws_nope/balance", Some(&operator), None, 404),
        ];
        for (method, path, token, body, expected) in cases {
            let (status, problem, content_type) = server.call(method, path, token, body);
            assert_eq!(status, expected, "{method} {path} as {token:?}: {problem}");
            if expected >= 400 {
                assert_eq!(content_type, "application/problem+json", "{method} {path}");
                assert!(problem["detail"].is_string(), "{problem}");
            }
        }
        assert_eq!(
            balance(server, &ws_a, &customer_a).1["balance_cents"],
            1000,
            "no refused request changed anything"
        );
    });
}

#[test]
fn bad_input_gets_a_problem_and_changes_nothing() {
    each_backend(|server| {
        let (ws, customer) = workspace(server, "Bad input");
        let path = format!("/v1/workspaces/{ws}/credits");
        let op = Some(server.operator.as_str());
        let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
            (b"{\"amount_cents\": 5".to_vec(), "application/json", 400, "malformed_json"),
            (
                br#"{"amount_cents": 5, "reference": "r", "bonus": 1}"#.to_vec(),
                "application/json",
                422,
                "invalid_request",
            ),
            (
                br#"{"amount_cents": "five", "reference": "r"}"#.to_vec(),
                "application/json",
                422,
                "invalid_request",
            ),
            (
                br#"{"amount_cents": -5, "reference": "r"}"#.to_vec(),
                "application/json",
                422,
                "invalid_request",
            ),
            (
                br#"{"amount_cents": 5, "reference": "r"}"#.to_vec(),
                "text/plain",
                415,
                "unsupported_media_type",
            ),
            (
                b"{\"amount_cents\": 5, \"reference\": \"\xff\xfe\"}".to_vec(),
                "application/json",
                400,
                "malformed_json",
            ),
            (
                format!(r#"{{"amount_cents": 5, "reference": "{}"}}"#, "x".repeat(100_000)).into_bytes(),
                "application/json",
                413,
                "body_too_large",
            ),
        ];
        for (body, content_type, expected, code) in cases {
            let (status, problem, answered_type) = server.raw("POST", &path, op, Some(&body), content_type);
            assert_eq!(
                (status, answered_type.as_str()),
                (expected, "application/problem+json"),
                "{}: {problem}",
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
            assert_eq!(problem["type"], format!("/problems/{code}"), "{problem}");
        }
        assert_eq!(balance(server, &ws, &customer).1["balance_cents"], 0, "nothing was credited");
        let (status, problem, content_type) = server.call("GET", "/v1/drafts/%FF%FE", Some(&customer), None);
        assert_eq!(
            (status, content_type.as_str(), &problem["type"]),
            (400, "application/problem+json", &json!("/problems/bad_path"))
        );
        let (status, problem, _) = server.call("GET", "/v1/drafts/drf_doesnotexist", Some(&customer), None);
        assert_eq!((status, &problem["type"]), (404, &json!("/problems/not_found")));
    });
}

#[test]
fn readiness_reports_database_and_policy() {
    each_backend(|server| {
        let ready = server.get("/readyz");
        assert_eq!((&ready["database"], &ready["policy"]), (&json!("ok"), &json!("api")));
    });
}

#[test]
fn every_state_change_is_in_the_audit_trail() {
    each_backend(|server| {
        let (ws, customer, key) = funded_key(server, json!(["account:read"]));
        let (_, keys, _) = server.call("GET", "/v1/api-keys", Some(&customer), None);
        let key_id = keys["items"][0]["id"].as_str().unwrap().to_owned();
        server.call("POST", &format!("/v1/api-keys/{key_id}/revoke"), Some(&customer), None);
        let (status, trail, _) = server.call("GET", "/v1/audit", Some(&customer), None);
        assert_eq!(status, 200, "{trail}");
        let actions: Vec<&str> = texts(&trail["records"], "action");
        assert_eq!(actions, ["workspace.create", "credits.top_up", "api_key.create", "api_key.revoke"]);
        assert!(trail["records"].as_array().unwrap().iter().all(|r| r["workspace_id"] == json!(ws)));
        let (status, _, _) = server.call("GET", "/v1/audit", Some(&key), None);
        assert_eq!(status, 401, "the revoked key reads nothing");
        let (_, other_customer) = workspace(server, "Other");
        let (_, theirs, _) = server.call("GET", "/v1/audit", Some(&other_customer), None);
        assert_eq!(
            theirs["records"].as_array().unwrap().len(),
            1,
            "another workspace sees only its own creation"
        );
        let (_, page, _) = server.call("GET", "/v1/audit?limit=2", Some(&server.operator), None);
        let (_, next, _) = server.call(
            "GET",
            &format!("/v1/audit?limit=2&after={}", page["next_cursor"].as_str().unwrap()),
            Some(&server.operator),
            None,
        );
        assert_ne!(page["records"][0], next["records"][0]);
    });
}

#[test]
fn key_requests_are_counted_and_rate_limited() {
    each_backend(|server| {
        let (ws, customer) = workspace(server, "Usage");
        top_up(server, &ws, 500, "funding");
        let (status, created, _) = server.call(
            "POST",
            "/v1/api-keys",
            Some(&customer),
            Some(json!({"label": "slow", "scopes": ["account:read"], "rate_limit_per_minute": 3})),
        );
        assert_eq!(status, 201, "{created}");
        let key = created["secret"].as_str().unwrap();
        let id = created["key"]["id"].as_str().unwrap();
        assert_eq!(created["key"]["rate_limit_per_minute"], 3);
        for _ in 0..3 {
            assert_eq!(balance(server, &ws, key).0, 200);
        }
        let (status, problem, _) = server.call("GET", &format!("/v1/workspaces/{ws}/balance"), Some(key), None);
        assert_eq!((status, &problem["type"]), (429, &json!("/problems/rate_limited")));
        assert!(
            server.transcript.lock().unwrap().contains("\"retry-after\": \""),
            "429 carries Retry-After"
        );

        let (status, usage, _) = server.call("GET", &format!("/v1/api-keys/{id}/usage"), Some(&customer), None);
        assert_eq!(status, 200, "{usage}");
        assert_eq!(usage["total"], 4);
        let routes = usage["by_route"].as_array().unwrap();
        let count = |status: u16| routes.iter().find(|r| r["status"] == json!(status)).map(|r| r["count"].clone());
        assert_eq!((count(200), count(429)), (Some(json!(3)), Some(json!(1))));
        assert_eq!(routes[0]["route"], "/v1/workspaces/{id}/balance");
        let (status, _, _) = server.call("GET", &format!("/v1/api-keys/{id}/usage"), Some(key), None);
        assert_eq!(status, 429, "still limited");
        let (status, _, _) = server.call(
            "POST",
            "/v1/api-keys",
            Some(&customer),
            Some(json!({"label": "x", "scopes": ["account:read"], "rate_limit_per_minute": 0})),
        );
        assert_eq!(status, 422);
    });
}

/// Expected statuses for: no token, operator, customer A, customer B,
/// reviewer, key A (every scope), key A (`drafts:read` only), key B (every scope).
type Row<'a> = (&'a str, String, Option<Value>, [u16; 8]);

#[test]
fn every_principal_against_every_action() {
    each_backend(|server| {
        let every_scope = json!([
            "drafts:read",
            "drafts:write",
            "destinations:read",
            "account:read",
            "publish:request"
        ]);
        let (ws_a, customer_a, key_a) = funded_key(server, every_scope.clone());
        let (_, created, _) = server.call(
            "POST",
            "/v1/api-keys",
            Some(&customer_a),
            Some(json!({"label": "reader", "scopes": ["drafts:read"]})),
        );
        let reader_a = created["secret"].as_str().unwrap().to_owned();
        let (_, customer_b, key_b) = funded_key(server, every_scope);
        let (_, reviewer, _) = server.call(
            "POST",
            "/v1/reviewers",
            Some(&server.operator),
            Some(json!({"label": "safety team"})),
        );
        let reviewer = reviewer["token"].as_str().unwrap().to_owned();
        let (_, draft, _) = server.call("POST", "/v1/drafts", Some(&customer_a), Some(json!({"text": "matrix"})));
        let draft = draft["id"].as_str().unwrap().to_owned();
        let (_, item, _) = server.call("POST", &format!("/v1/drafts/{draft}/submit"), Some(&customer_a), None);
        let approval = item["id"].as_str().unwrap().to_owned();
        let (_, started, _) = server.call(
            "POST",
            "/v1/destinations/connect",
            Some(&customer_a),
            Some(json!({"provider": "sandbox"})),
        );
        let (_, destination, _) = server.call(
            "GET",
            &format!("/v1/destinations/callback?state={}&code=matrix", started["state"].as_str().unwrap()),
            None,
            None,
        );
        let destination = destination["id"].as_str().unwrap().to_owned();

        let tokens = [
            None,
            Some(server.operator.clone()),
            Some(customer_a),
            Some(customer_b),
            Some(reviewer),
            Some(key_a),
            Some(reader_a),
            Some(key_b),
        ];
        let rows: Vec<Row<'_>> = vec![
            (
                "POST",
                "/v1/workspaces".into(),
                Some(json!({"name": "n"})),
                [401, 201, 403, 403, 403, 403, 403, 403],
            ),
            (
                "POST",
                format!("/v1/workspaces/{ws_a}/credits"),
                Some(json!({"amount_cents": 1, "reference": "m"})),
                [401, 201, 403, 403, 403, 403, 403, 403],
            ),
            (
                "GET",
                format!("/v1/workspaces/{ws_a}/balance"),
                None,
                [401, 200, 200, 404, 403, 200, 403, 404],
            ),
            (
                "GET",
                format!("/v1/workspaces/{ws_a}/ledger"),
                None,
                [401, 200, 200, 404, 403, 200, 403, 404],
            ),
            (
                "POST",
                "/v1/api-keys".into(),
                Some(json!({"label": "k", "scopes": ["drafts:read"]})),
                [401, 403, 201, 201, 403, 403, 403, 403],
            ),
            ("GET", "/v1/api-keys".into(), None, [401, 403, 200, 200, 403, 403, 403, 403]),
            (
                "POST",
                "/v1/destinations/connect".into(),
                Some(json!({"provider": "sandbox"})),
                [401, 403, 201, 201, 403, 403, 403, 403],
            ),
            ("GET", "/v1/destinations".into(), None, [401, 200, 200, 200, 403, 200, 403, 200]),
            (
                "PUT",
                format!("/v1/destinations/{destination}/review"),
                Some(json!({"state": "approved"})),
                [401, 200, 403, 403, 403, 403, 403, 403],
            ),
            (
                "POST",
                "/v1/drafts".into(),
                Some(json!({"text": "t"})),
                [401, 403, 201, 201, 403, 201, 403, 201],
            ),
            ("GET", format!("/v1/drafts/{draft}"), None, [401, 403, 200, 404, 403, 200, 200, 404]),
            (
                "GET",
                format!("/v1/drafts/{draft}/preview?provider=x"),
                None,
                [401, 403, 200, 404, 403, 200, 200, 404],
            ),
            ("GET", "/v1/approvals".into(), None, [401, 403, 200, 200, 403, 200, 200, 200]),
            ("GET", "/v1/gates".into(), None, [401, 200, 200, 200, 200, 403, 403, 403]),
            ("GET", "/v1/audit".into(), None, [401, 200, 200, 200, 403, 403, 403, 403]),
            (
                "POST",
                "/v1/reviewers".into(),
                Some(json!({"label": "r"})),
                [401, 201, 403, 403, 403, 403, 403, 403],
            ),
            (
                "POST",
                format!("/v1/approvals/{approval}/approve"),
                None,
                [401, 403, 200, 404, 403, 403, 403, 403],
            ),
            (
                "DELETE",
                format!("/v1/destinations/{destination}"),
                None,
                [401, 403, 200, 404, 403, 403, 403, 403],
            ),
        ];
        let names = [
            "nobody",
            "operator",
            "customer A",
            "customer B",
            "reviewer",
            "key A",
            "reader key A",
            "key B",
        ];
        for (method, path, body, expected) in rows {
            for ((token, name), want) in tokens.iter().zip(names).zip(expected) {
                let (status, answer, content_type) = server.call(method, &path, token.as_deref(), body.clone());
                assert_eq!(status, want, "{method} {path} as {name}: {answer}");
                if status >= 400 {
                    assert_eq!(content_type, "application/problem+json", "{method} {path} as {name}");
                }
            }
        }
    });
}
