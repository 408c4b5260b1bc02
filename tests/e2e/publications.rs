//! Gated publications over real HTTP on each backend: only an allow is
//! charged, once, atomically; retries replay; races never overdraw.

use serde_json::{Value, json};

use crate::api::{each_backend, each_backend_in};
use crate::fixtures::{approved_draft, publish, ready, set_mode, workspace};
use crate::support::Server;

fn balance(server: &Server, ws: &str, token: &str) -> i64 {
    server.call("GET", &format!("/v1/workspaces/{ws}/balance"), Some(token), None).1["balance_cents"]
        .as_i64()
        .unwrap()
}

#[test]
fn preview_denies_and_live_charges_four_cents_once() {
    each_backend(|server| {
        let (ws, customer, body) = ready(server, 500);
        let (status, denied, _) = publish(server, &customer, "first", &body);
        assert_eq!((status, &denied["type"]), (403, &json!("/problems/denied")), "{denied}");
        assert!(
            denied["detail"].as_str().unwrap().contains("flags (publishing_blocked)"),
            "{denied}"
        );
        assert_eq!(
            (&denied["decision"]["kind"], &denied["decision"]["charge_cents"]),
            (&json!("publication"), &json!(0))
        );
        assert_eq!(balance(server, &ws, &customer), 500, "preview mode charges nothing");

        set_mode(server, "live");
        let (status, queued, _) = publish(server, &customer, "second", &body);
        assert_eq!(status, 201, "{queued}");
        assert_eq!(
            (
                &queued["publication"]["state"],
                &queued["publication"]["charge_cents"],
                &queued["decision"]["outcome"]
            ),
            (&json!("queued"), &json!(4), &json!("allow"))
        );
        assert_eq!(balance(server, &ws, &customer), 496);

        let (status, again, _) = publish(server, &customer, "second", &body);
        assert_eq!(
            (status, &again["publication"]["id"]),
            (201, &queued["publication"]["id"]),
            "a retry replays the first answer"
        );
        assert!(server.transcript.lock().unwrap().contains("\"idempotent-replayed\": \"true\""));
        assert_eq!(balance(server, &ws, &customer), 496, "and is never charged twice");

        let other = json!({"draft_id": body["draft_id"], "destination_id": "dst_other"});
        let (status, reused, _) = publish(server, &customer, "second", &other);
        assert_eq!((status, &reused["type"]), (422, &json!("/problems/idempotency_key_reused")));
        let (status, missing, _) = server.call("POST", "/v1/publications", Some(&customer), Some(body.clone()));
        assert_eq!((status, &missing["type"]), (400, &json!("/problems/idempotency_key_required")));

        let (_, ledger, _) = server.call("GET", &format!("/v1/workspaces/{ws}/ledger"), Some(&customer), None);
        let charges: Vec<&Value> = ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "charge")
            .collect();
        assert_eq!(charges.len(), 1);
        assert_eq!(
            (&charges[0]["amount_cents"], &charges[0]["balance_after_cents"]),
            (&json!(-4), &json!(496))
        );
        let (_, report, _) = server.call("GET", "/v1/decisions/verify", Some(&server.operator), None);
        assert_eq!(report["broken"], json!([]), "{report}");

        let publication = queued["publication"]["id"].as_str().unwrap();
        let (status, read, _) = server.call("GET", &format!("/v1/publications/{publication}"), Some(&customer), None);
        assert_eq!((status, &read["decision_id"]), (200, &queued["decision"]["id"]));
        let (_, stranger) = workspace(server, "Stranger");
        assert_eq!(
            server
                .call("GET", &format!("/v1/publications/{publication}"), Some(&stranger), None)
                .0,
            404
        );
        let decision = queued["decision"]["id"].as_str().unwrap();
        assert_eq!(
            server.call("GET", &format!("/v1/decisions/{decision}"), Some(&customer), None).1["outcome"],
            "allow"
        );
        assert_eq!(
            server.call("GET", &format!("/v1/decisions/{decision}"), Some(&stranger), None).0,
            404
        );
        let (_, allows, _) = server.call("GET", "/v1/decisions?outcome=allow", Some(&customer), None);
        assert_eq!(allows["decisions"].as_array().map(Vec::len), Some(1));
        let (_, denies, _) = server.call(
            "GET",
            "/v1/decisions?outcome=deny&since=2000-01-01T00:00:00Z",
            Some(&customer),
            None,
        );
        assert_eq!(denies["decisions"].as_array().map(Vec::len), Some(1));
        let (_, future, _) = server.call("GET", "/v1/decisions?since=2999-01-01T00:00:00Z", Some(&customer), None);
        assert_eq!(future["decisions"], json!([]));
        assert_eq!(server.call("GET", "/v1/decisions?since=yesterday", Some(&customer), None).0, 422);
        set_mode(server, "preview");
    });
}

#[test]
fn pending_charges_nothing() {
    each_backend(|server| {
        let (ws, customer, body) = ready(server, 500);
        set_mode(server, "live");
        let (_, destination, _) = server.call(
            "PUT",
            &format!("/v1/destinations/{}/review", body["destination_id"].as_str().unwrap()),
            Some(&server.operator),
            Some(json!({"state": "pending"})),
        );
        assert_eq!(destination["provider_review"], "pending");
        let (status, waiting, _) = publish(server, &customer, "p1", &body);
        assert_eq!((status, &waiting["decision"]["outcome"]), (202, &json!("pending")), "{waiting}");
        assert_eq!(balance(server, &ws, &customer), 500);
        set_mode(server, "preview");
    });
}

#[test]
fn racing_requests_never_overdraw_and_racing_retries_charge_once() {
    each_backend(|server| {
        const K: usize = 3;
        let (ws, customer, body) = ready(server, 4 * K as i64);
        set_mode(server, "live");
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4 * K)
                .map(|i| {
                    let (customer, body) = (&customer, &body);
                    scope.spawn(move || publish(server, customer, &format!("race-{i}"), body).0)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), K, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 3 * K, "{statuses:?}");
        assert_eq!(balance(server, &ws, &customer), 0, "exactly K charges, never negative");

        server.call(
            "POST",
            &format!("/v1/workspaces/{ws}/credits"),
            Some(&server.operator),
            Some(json!({"amount_cents": 40, "reference": "more"})),
        );
        let ids: Vec<Value> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..5)
                .map(|_| {
                    let (customer, body) = (&customer, &body);
                    scope.spawn(move || publish(server, customer, "same-key", body).1["publication"]["id"].clone())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| id.is_string() && *id == ids[0]), "{ids:?}");
        assert_eq!(balance(server, &ws, &customer), 36, "five racing retries, one charge");
        set_mode(server, "preview");
    });
}

/// The code the gate named `gate` gave in a denied publication's decision.
fn code_of(denied: &Value, gate: &str) -> String {
    let gates: Value = serde_json::from_str(denied["decision"]["gates"].as_str().unwrap()).unwrap();
    gates
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == gate)
        .map(|g| g["code"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn each_gate_denies_its_case_and_nothing_is_charged() {
    each_backend(|server| {
        set_mode(server, "live");
        // approval: a draft never submitted.
        let (ws, customer, body) = ready(server, 500);
        let (_, fresh, _) = server.call("POST", "/v1/drafts", Some(&customer), Some(json!({"text": "unsubmitted"})));
        let unsubmitted = json!({"draft_id": fresh["id"], "destination_id": body["destination_id"]});
        let (status, denied, _) = publish(server, &customer, "a", &unsubmitted);
        assert_eq!((status, code_of(&denied, "approval")), (403, "approval_missing".into()), "{denied}");
        // provider-review: rejected by the provider.
        let destination = body["destination_id"].as_str().unwrap();
        server.call(
            "PUT",
            &format!("/v1/destinations/{destination}/review"),
            Some(&server.operator),
            Some(json!({"state": "rejected"})),
        );
        let (_, denied, _) = publish(server, &customer, "b", &body);
        assert_eq!(code_of(&denied, "provider-review"), "review_rejected");
        server.call(
            "PUT",
            &format!("/v1/destinations/{destination}/review"),
            Some(&server.operator),
            Some(json!({"state": "approved"})),
        );
        // flags: the kill switch.
        server.call(
            "PUT",
            "/v1/flags",
            Some(&server.operator),
            Some(json!({"publishing_mode": "live", "kill_switch": true, "blocked_terms": []})),
        );
        let (_, denied, _) = publish(server, &customer, "c", &body);
        assert_eq!(code_of(&denied, "flags"), "kill_switch");
        set_mode(server, "live");
        // destination: disconnected by the customer.
        server.call("DELETE", &format!("/v1/destinations/{destination}"), Some(&customer), None);
        let (_, denied, _) = publish(server, &customer, "d", &body);
        assert_eq!(code_of(&denied, "destination"), "destination_disconnected");
        assert_eq!(balance(server, &ws, &customer), 500, "no deny charged anything");
        // credit: three cents.
        let (poor_ws, poor, poor_body) = ready(server, 3);
        let (status, denied, _) = publish(server, &poor, "e", &poor_body);
        assert_eq!((status, code_of(&denied, "credit")), (403, "insufficient_credit".into()));
        assert_eq!(balance(server, &poor_ws, &poor), 3);
        set_mode(server, "preview");
    });
}

/// Polls a publication until it leaves `queued` and `delivering`.
fn settled(server: &Server, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, publication, _) = server.call("GET", &format!("/v1/publications/{id}"), Some(token), None);
        assert_eq!(status, 200, "{publication}");
        if !matches!(publication["state"].as_str(), Some("queued" | "delivering")) {
            return publication;
        }
        assert!(std::time::Instant::now() < deadline, "never delivered: {publication}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn live_publications_are_delivered_once_and_unsent_ones_refunded() {
    each_backend_in(|server, data_dir| {
        let (ws, customer, body) = ready(server, 500);
        set_mode(server, "live");
        let queue = |key: &str, body: &Value| {
            let (status, queued, _) = publish(server, &customer, key, body);
            assert_eq!(status, 201, "{queued}");
            queued["publication"]["id"].as_str().unwrap().to_owned()
        };

        let id = queue("delivered", &body);
        let delivered = settled(server, &customer, &id);
        assert_eq!(delivered["state"], "delivered", "{delivered}");
        assert_eq!(delivered["provider_post_id"], format!("sandbox-post-{id}"));
        let outbox: Value =
            serde_json::from_str(&std::fs::read_to_string(data_dir.join(format!("sandbox-outbox/{id}.json"))).unwrap()).unwrap();
        assert_eq!(
            (&outbox["text"], &outbox["post_id"]),
            (&json!("Launch day!"), &delivered["provider_post_id"])
        );
        assert_eq!(balance(server, &ws, &customer), 496);

        // Refused before the provider accepted it: failed, and the charge comes back.
        let refused =
            json!({"draft_id": approved_draft(server, &customer, "Sale! #sandbox-refuse"), "destination_id": body["destination_id"]});
        let id = queue("refused", &refused);
        let failed = settled(server, &customer, &id);
        assert_eq!(
            (&failed["state"], &failed["provider_post_id"]),
            (&json!("failed"), &Value::Null),
            "{failed}"
        );
        assert_eq!(balance(server, &ws, &customer), 496, "the charge is reversed");
        let (_, ledger, _) = server.call("GET", &format!("/v1/workspaces/{ws}/ledger"), Some(&customer), None);
        let reversals: Vec<&Value> = ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "reversal")
            .collect();
        assert_eq!(reversals.len(), 1, "{ledger}");
        assert_eq!(
            (&reversals[0]["amount_cents"], &reversals[0]["reference"]),
            (&json!(4), &json!(format!("reversal:{id}")))
        );

        // No answer: the outcome is unknown, it is not sent again, and the charge stands.
        let silent =
            json!({"draft_id": approved_draft(server, &customer, "Soon #sandbox-timeout"), "destination_id": body["destination_id"]});
        let id = queue("silent", &silent);
        let unknown = settled(server, &customer, &id);
        assert_eq!(unknown["state"], "unknown", "{unknown}");
        assert_eq!(balance(server, &ws, &customer), 492);

        // The operator asks the provider and settles it: never received, so the charge comes back, once.
        let resolve = format!("/v1/publications/{id}/resolve");
        let failed = json!({"outcome": "failed", "detail": "the provider has no such post"});
        let (status, _, _) = server.call("POST", &resolve, Some(&customer), Some(failed.clone()));
        assert_eq!(status, 403, "only the operator settles");
        let (status, problem, _) = server.call(
            "POST",
            &resolve,
            Some(&server.operator),
            Some(json!({"outcome": "failed", "detail": ""})),
        );
        assert_eq!((status, &problem["type"]), (422, &json!("/problems/invalid_request")), "{problem}");
        let (status, settled_now, _) = server.call("POST", &resolve, Some(&server.operator), Some(failed.clone()));
        assert_eq!((status, &settled_now["state"]), (200, &json!("failed")), "{settled_now}");
        assert_eq!(balance(server, &ws, &customer), 496);
        let (status, again, _) = server.call("POST", &resolve, Some(&server.operator), Some(failed.clone()));
        assert_eq!((status, &again["type"]), (409, &json!("/problems/conflict")), "{again}");
        let (status, missing, _) = server.call("POST", "/v1/publications/pub_missing/resolve", Some(&server.operator), Some(failed));
        assert_eq!((status, &missing["type"]), (404, &json!("/problems/not_found")), "{missing}");
        assert_eq!(balance(server, &ws, &customer), 496, "reversed once");
        let (_, audit, _) = server.call("GET", "/v1/audit", Some(&customer), None);
        assert!(audit.to_string().contains("publication.resolved.failed"), "{audit}");
        let report = server.get("/v1/decisions/verify");
        assert_eq!(report["broken"], json!([]), "{report}");
        set_mode(server, "preview");
    });
}
