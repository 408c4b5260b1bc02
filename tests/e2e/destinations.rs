//! Destinations: the sandbox consent flow, disconnection, provider review,
//! and the provider token that never leaves the server.

use serde_json::{Value, json};

use crate::api::{each_backend_in, funded_key};
use crate::fixtures::workspace;
use crate::support::Server;

fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let (status, body, _) = server.call(method, path, token, body);
    (status, body)
}

/// Starts the consent flow as `customer` and completes it with `code`, as the provider's redirect would.
fn connect(server: &Server, customer: &str, code: &str) -> Value {
    let (status, started) = call(
        server,
        "POST",
        "/v1/destinations/connect",
        Some(customer),
        Some(json!({"provider": "sandbox"})),
    );
    assert_eq!(status, 201, "{started}");
    let state = started["state"].as_str().unwrap();
    assert_eq!(started["consent_url"], format!("/sandbox/consent?state={state}"));
    let (status, destination) = call(
        server,
        "GET",
        &format!("/v1/destinations/callback?state={state}&code={code}"),
        None,
        None,
    );
    assert_eq!(status, 201, "{destination}");
    let (status, _) = call(
        server,
        "GET",
        &format!("/v1/destinations/callback?state={state}&code={code}"),
        None,
        None,
    );
    assert_eq!(status, 404, "a consent is used once");
    destination
}

#[test]
fn the_consent_flow_connects_and_the_token_never_leaves() {
    each_backend_in(|server, data_dir| {
        let (ws, customer, reader) = funded_key(server, json!(["destinations:read"]));
        let planted = "PLANTED-code-7c1e";
        let token = format!("sandbox-token-{planted}");

        // The sandbox's own consent page grants consent through a link to the callback.
        let (status, page, content_type) = server.raw("GET", "/sandbox/consent?state=abc", None, None, "");
        assert!(status == 200 && content_type.starts_with("text/html") && page.is_null());
        assert!(
            server
                .transcript
                .lock()
                .unwrap()
                .contains("/v1/destinations/callback?state=abc&amp;code=code-")
        );

        let destination = connect(server, &customer, planted);
        let id = destination["id"].as_str().unwrap().to_owned();
        assert_eq!(
            (
                &destination["connected"],
                &destination["provider_review"],
                &destination["workspace_id"]
            ),
            (&json!(true), &json!("none"), &json!(ws))
        );

        let (status, listed) = call(server, "GET", "/v1/destinations", Some(&reader), None);
        assert_eq!((status, &listed["items"][0]["id"]), (200, &json!(id)));
        let (status, all) = call(server, "GET", "/v1/destinations", Some(&server.operator), None);
        assert!(status == 200 && all["items"].as_array().unwrap().iter().any(|d| d["id"] == json!(id)));
        let (_, other_customer) = workspace(server, "Other");
        let (_, theirs) = call(server, "GET", "/v1/destinations", Some(&other_customer), None);
        assert_eq!(theirs["items"], json!([]));

        let (_, draft) = call(
            server,
            "POST",
            "/v1/drafts",
            Some(&customer),
            Some(json!({"text": "to the sandbox"})),
        );
        let (status, preview) = call(
            server,
            "GET",
            &format!("/v1/drafts/{}/preview?destination={id}", draft["id"].as_str().unwrap()),
            Some(&customer),
            None,
        );
        assert_eq!(
            (status, &preview["provider"], &preview["count"]),
            (200, &json!("sandbox"), &json!(14)),
            "{preview}"
        );
        assert_eq!(
            call(
                server,
                "GET",
                &format!("/v1/drafts/{}/preview?destination=dst_elsewhere", draft["id"].as_str().unwrap()),
                Some(&customer),
                None
            )
            .0,
            404
        );

        let review = format!("/v1/destinations/{id}/review");
        assert_eq!(
            call(server, "PUT", &review, Some(&customer), Some(json!({"state": "approved"}))).0,
            403
        );
        assert_eq!(
            call(server, "PUT", &review, Some(&server.operator), Some(json!({"state": "great"}))).0,
            422
        );
        let (status, reviewed) = call(server, "PUT", &review, Some(&server.operator), Some(json!({"state": "approved"})));
        assert_eq!((status, &reviewed["provider_review"]), (200, &json!("approved")));

        assert_eq!(
            call(server, "DELETE", &format!("/v1/destinations/{id}"), Some(&reader), None).0,
            403
        );
        assert_eq!(
            call(server, "DELETE", &format!("/v1/destinations/{id}"), Some(&other_customer), None).0,
            404
        );
        let (status, gone) = call(server, "DELETE", &format!("/v1/destinations/{id}"), Some(&customer), None);
        assert_eq!((status, &gone["connected"]), (200, &json!(false)));

        assert!(
            !server.transcript.lock().unwrap().contains(&token),
            "the provider token is in a response"
        );
        assert!(!server.log.lock().unwrap().contains(&token), "the provider token is in the log");
        for file in ["postgate.db", "postgate.db-wal"] {
            if let Ok(bytes) = std::fs::read(data_dir.join(file)) {
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "the token is stored in the clear in {file}"
                );
            }
        }
    });
}

#[test]
fn only_the_customer_connects_and_bad_callbacks_are_refused() {
    each_backend_in(|server, _| {
        let (_, customer, agent) = funded_key(server, json!(["destinations:read", "drafts:write", "publish:request"]));
        let sandbox = json!({"provider": "sandbox"});
        let (status, problem) = call(server, "POST", "/v1/destinations/connect", Some(&agent), Some(sandbox.clone()));
        assert_eq!(status, 403, "an API key cannot connect an account: {problem}");
        assert_eq!(
            call(server, "POST", "/v1/destinations/connect", Some(&server.operator), Some(sandbox)).0,
            403
        );
        assert_eq!(
            call(
                server,
                "POST",
                "/v1/destinations/connect",
                Some(&customer),
                Some(json!({"provider": "myspace"}))
            )
            .0,
            422
        );
        assert_eq!(
            call(server, "GET", "/v1/destinations/callback?state=cst_forged&code=x", None, None).0,
            404
        );
        assert_eq!(call(server, "GET", "/v1/destinations/callback?code=x", None, None).0, 422);
        let (status, started) = call(
            server,
            "POST",
            "/v1/destinations/connect",
            Some(&customer),
            Some(json!({"provider": "sandbox"})),
        );
        assert_eq!(status, 201);
        let state = started["state"].as_str().unwrap();
        let (status, _) = call(
            server,
            "GET",
            &format!("/v1/destinations/callback?state={state}&code=bad%20code%3B"),
            None,
            None,
        );
        assert_eq!(status, 422, "the provider refuses a malformed code");
    });
}
