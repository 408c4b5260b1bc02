//! Drafts, previews and the approval queue over real HTTP, on each backend.

use serde_json::{Value, json};

use crate::api::{each_backend, funded_key};
use crate::fixtures::workspace;
use crate::support::{Server, texts};

fn call(server: &Server, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let (status, body, _) = server.call(method, path, Some(token), body);
    (status, body)
}

#[test]
fn an_agent_drafts_previews_and_submits_and_only_the_customer_approves() {
    each_backend(|server| {
        let (_, customer, agent) = funded_key(server, json!(["drafts:write", "drafts:read"]));
        let draft = json!({"text": "Launch day! 🚀 https://example.com", "media": [{"kind": "image", "location": "https://cdn.example/a.png", "alt_text": "the launch"}]});
        let (status, created) = call(server, "POST", "/v1/drafts", &agent, Some(draft));
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["content_digest"].as_str().unwrap().len(), 64);

        let (status, preview) = call(server, "GET", &format!("/v1/drafts/{id}/preview?provider=x"), &agent, None);
        assert_eq!((status, preview["count"].as_u64()), (200, Some(12 + 2 + 1 + 23)), "{preview}");
        assert_eq!(preview["violations"], json!([]));
        let (_, bluesky) = call(server, "GET", &format!("/v1/drafts/{id}/preview?provider=bluesky"), &agent, None);
        assert_eq!(bluesky["payload"]["embed"]["images"][0]["alt"], "the launch");
        let (status, _) = call(server, "GET", &format!("/v1/drafts/{id}/preview"), &agent, None);
        assert_eq!(status, 422, "a preview names its provider");

        let (status, item) = call(server, "POST", &format!("/v1/drafts/{id}/submit"), &agent, None);
        assert_eq!(
            (status, &item["status"], &item["current"]),
            (201, &json!("pending"), &json!(true)),
            "{item}"
        );
        let approval = item["id"].as_str().unwrap().to_owned();
        let (status, again) = call(server, "POST", &format!("/v1/drafts/{id}/submit"), &agent, None);
        assert_eq!(
            (status, &again["id"]),
            (201, &json!(approval)),
            "submitting the same content twice queues it once"
        );

        let (status, problem) = call(server, "POST", &format!("/v1/approvals/{approval}/approve"), &agent, None);
        assert_eq!(
            (status, &problem["type"]),
            (403, &json!("/problems/forbidden")),
            "an API key can never approve"
        );
        let (status, approved) = call(server, "POST", &format!("/v1/approvals/{approval}/approve"), &customer, None);
        assert_eq!((status, &approved["status"]), (200, &json!("approved")), "{approved}");
        let (status, _) = call(server, "POST", &format!("/v1/approvals/{approval}/reject"), &customer, None);
        assert_eq!(status, 409, "a decided item stays decided");

        // Editing the draft voids the approval, and the queue shows it.
        let (status, edited) = call(
            server,
            "PATCH",
            &format!("/v1/drafts/{id}"),
            &agent,
            Some(json!({"text": "Launch day! Guaranteed returns."})),
        );
        assert_eq!(status, 200, "{edited}");
        assert_ne!(edited["content_digest"], created["content_digest"]);
        assert_eq!(edited["media"], created["media"], "a patch keeps what it does not name");
        let (_, queue) = call(server, "GET", "/v1/approvals", &customer, None);
        assert_eq!(
            (&queue["items"][0]["status"], &queue["items"][0]["current"]),
            (&json!("approved"), &json!(false))
        );

        let (_, trail) = call(server, "GET", "/v1/audit", &customer, None);
        let actions: Vec<&str> = texts(&trail["records"], "action");
        assert!(
            actions.contains(&"draft.create") && actions.contains(&"draft.update") && actions.contains(&"approval.approve"),
            "{actions:?}"
        );

        let (_, resubmitted) = call(server, "POST", &format!("/v1/drafts/{id}/submit"), &agent, None);
        assert_ne!(resubmitted["id"], json!(approval));
        call(
            server,
            "PATCH",
            &format!("/v1/drafts/{id}"),
            &agent,
            Some(json!({"text": "changed again"})),
        );
        let (status, problem) = call(
            server,
            "POST",
            &format!("/v1/approvals/{}/approve", resubmitted["id"].as_str().unwrap()),
            &customer,
            None,
        );
        assert_eq!(status, 409, "content changed after submission cannot be approved: {problem}");
    });
}

#[test]
fn drafts_stay_in_their_workspace_and_scopes_hold() {
    each_backend(|server| {
        let (_, customer, writer) = funded_key(server, json!(["drafts:write"]));
        let (_, other_customer) = workspace(server, "Other");
        let (_, created) = call(server, "POST", "/v1/drafts", &customer, Some(json!({"text": "hello"})));
        let id = created["id"].as_str().unwrap();
        assert_eq!(call(server, "GET", &format!("/v1/drafts/{id}"), &customer, None).0, 200);
        assert_eq!(call(server, "GET", &format!("/v1/drafts/{id}"), &other_customer, None).0, 404);
        assert_eq!(
            call(server, "GET", &format!("/v1/drafts/{id}"), &writer, None).0,
            403,
            "reading needs drafts:read"
        );
        assert_eq!(
            call(server, "PATCH", &format!("/v1/drafts/{id}"), &writer, Some(json!({}))).0,
            403,
            "a patch answers with the draft: it needs drafts:read too"
        );
        assert_eq!(
            call(
                server,
                "GET",
                &format!("/v1/drafts/{id}/preview?destination=dst_x"),
                &customer,
                None
            )
            .0,
            404
        );
        assert_eq!(call(server, "GET", "/v1/drafts", &server.operator, None).0, 403);
        assert_eq!(
            call(
                server,
                "POST",
                "/v1/drafts",
                &writer,
                Some(json!({"text": "x", "media": [{"kind": "image", "location": ""}]}))
            )
            .0,
            422
        );
        assert_eq!(
            call(server, "POST", "/v1/drafts", &writer, Some(json!({"text": "x".repeat(10_001)}))).0,
            422
        );
        assert_eq!(
            call(
                server,
                "POST",
                "/v1/drafts",
                &writer,
                Some(json!({"text": "x", "media": [{"kind": "hologram", "location": "l"}]}))
            )
            .0,
            422
        );
        let (status, page) = call(server, "GET", "/v1/drafts?limit=1", &customer, None);
        assert_eq!((status, page["items"].as_array().map(Vec::len)), (200, Some(1)));
    });
}
