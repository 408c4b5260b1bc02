//! Dry runs of the real gate chain on facts from the store, the safety
//! flags, and the decision log's hash chain, on each backend.

use serde_json::{Value, json};

use crate::api::{each_backend, funded_key};
use crate::fixtures::{approved_destination, approved_draft};
use crate::support::Server;

fn call(server: &Server, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let (status, body, _) = server.call(method, path, Some(token), body);
    (status, body)
}

/// A workspace ready to publish but for the flags: an approved draft to an approved, connected destination, and a key to ask.
fn ready(server: &Server) -> (String, String, String, String, String) {
    let (ws, customer, agent) = funded_key(server, json!(["drafts:write", "drafts:read", "publish:request"]));
    let destination = approved_destination(server, &customer);
    let draft = approved_draft(server, &customer, "Launch day!");
    (ws, customer, agent, draft, destination)
}

fn gate_codes(record: &Value) -> Vec<String> {
    let gates: Value = serde_json::from_str(record["gates"].as_str().unwrap()).unwrap();
    gates
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_dry_run_decides_on_the_stores_facts_and_never_charges() {
    each_backend(|server| {
        let (ws, customer, agent, draft, destination) = ready(server);
        let ask = json!({"draft_id": draft, "destination_id": destination});

        let (status, preview) = call(server, "POST", "/v1/decisions/dry-run", &agent, Some(ask.clone()));
        assert_eq!(status, 200, "{preview}");
        assert_eq!(
            (&preview["outcome"], &preview["kind"], &preview["charge_cents"]),
            (&json!("deny"), &json!("dry_run"), &json!(0))
        );
        assert_eq!(
            gate_codes(&preview),
            ["approved", "review_approved", "destination_ok", "credit_ok", "publishing_blocked"],
            "preview mode blocks live publishing"
        );
        assert!(preview["revision"].as_str().unwrap().starts_with("rev_"));

        let live = json!({"publishing_mode": "live", "kill_switch": false, "blocked_terms": ["guaranteed returns"]});
        assert_eq!(call(server, "PUT", "/v1/flags", &customer, Some(live.clone())).0, 403);
        assert_eq!(call(server, "PUT", "/v1/flags", &server.operator, Some(live)).0, 200);
        let (status, allowed) = call(server, "POST", "/v1/decisions/dry-run", &agent, Some(ask.clone()));
        assert_eq!((status, &allowed["outcome"]), (200, &json!("allow")), "{allowed}");
        assert_eq!(allowed["prev_hash"], preview["hash"], "each record links to the one before");

        // Editing the draft voids the approval: the approval gate now says so.
        call(
            server,
            "PATCH",
            &format!("/v1/drafts/{draft}"),
            &agent,
            Some(json!({"text": "Launch day! Guaranteed returns."})),
        );
        let (_, stale) = call(server, "POST", "/v1/decisions/dry-run", &agent, Some(ask.clone()));
        assert_eq!(gate_codes(&stale)[0], "approval_stale");
        assert_eq!(gate_codes(&stale)[4], "blocked_term");

        let (_, balance, _) = server.call("GET", &format!("/v1/workspaces/{ws}/balance"), Some(&customer), None);
        assert_eq!(balance["balance_cents"], 500, "dry runs never charge");
        let (status, log) = call(server, "GET", "/v1/decisions", &customer, None);
        assert_eq!((status, log["decisions"].as_array().map(Vec::len)), (200, Some(3)));
        call(
            server,
            "PUT",
            "/v1/flags",
            &server.operator,
            Some(json!({"publishing_mode": "preview", "kill_switch": false, "blocked_terms": []})),
        );
    });
}

#[test]
fn dry_runs_need_publish_request_and_stay_in_their_workspace() {
    each_backend(|server| {
        let (_, customer, _, draft, destination) = ready(server);
        let (_, _, other_agent) = funded_key(server, json!(["publish:request"]));
        let (_, _, writer) = funded_key(server, json!(["drafts:write"]));
        let ask = json!({"draft_id": draft, "destination_id": destination});
        assert_eq!(
            call(server, "POST", "/v1/decisions/dry-run", &other_agent, Some(ask.clone())).0,
            404,
            "another workspace's draft is not found"
        );
        assert_eq!(call(server, "POST", "/v1/decisions/dry-run", &writer, Some(ask.clone())).0, 403);
        assert_eq!(
            call(server, "POST", "/v1/decisions/dry-run", &server.operator, Some(ask.clone())).0,
            403
        );
        assert_eq!(call(server, "POST", "/v1/decisions/dry-run", &customer, Some(ask)).0, 200);
        let (_, theirs) = call(server, "GET", "/v1/decisions", &other_agent, None);
        assert_eq!(theirs["decisions"], json!([]), "a key reads only its own requests");
        let (status, flags) = call(server, "GET", "/v1/flags", &customer, None);
        assert_eq!(
            (status, &flags["publishing_mode"]),
            (200, &json!("preview")),
            "live publishing is blocked by default"
        );
    });
}

#[test]
fn tampering_with_a_decision_is_reported() {
    crate::api::each_backend_in(|server, data_dir| {
        let (_, customer, agent, draft, destination) = ready(server);
        let ask = json!({"draft_id": draft, "destination_id": destination});
        let ids: Vec<String> = (0..3)
            .map(|_| {
                call(server, "POST", "/v1/decisions/dry-run", &agent, Some(ask.clone())).1["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let (status, report) = call(server, "GET", "/v1/decisions/verify", &server.operator, None);
        assert_eq!((status, &report["broken"]), (200, &json!([])), "{report}");
        assert!(report["decisions"].as_u64().unwrap() >= 3);
        assert_eq!(call(server, "GET", "/v1/decisions/verify", &customer, None).0, 403);

        // Tamper with the second record directly in the database, as an intruder with its credentials would.
        let url = server.database_url.clone();
        let tamper = "UPDATE decisions SET outcome = 'allow' WHERE id = $1";
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                if url.starts_with("sqlite:") {
                    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                    sqlx::query(tamper).bind(&ids[1]).execute(&pool).await.unwrap();
                    pool.close().await;
                } else {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    sqlx::query(tamper).bind(&ids[1]).execute(&pool).await.unwrap();
                    pool.close().await;
                }
            });
        let (_, report) = call(server, "GET", "/v1/decisions/verify", &server.operator, None);
        assert_eq!(report["broken"][0]["decision_id"], json!(ids[1]), "{report}");
        let output = crate::support::run(crate::support::postgate(data_dir).args(["audit", "verify", "--database-url", &url]));
        assert_eq!(output.status.code(), Some(1));
        let out = crate::support::stdout(&output);
        assert!(
            out.contains(&format!("decision {}: its content no longer matches its hash", ids[1])),
            "{out}"
        );
    });
}
