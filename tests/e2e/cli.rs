//! `postgate eval`: the right outcome and exit code for an allow, a pending
//! and a deny of each gate, and invalid input told apart from internal errors.

use std::io::Write as _;

use serde_json::{Value, json};

use crate::support::{allow_json, postgate, run, stderr, stdout, texts};

/// Runs `postgate eval` on the default policy with the example request patched by `patch`.
fn eval(patch: Value) -> (i32, Value, String) {
    let data = tempfile::tempdir().unwrap();
    let mut request = allow_json();
    json_patch::merge(&mut request, &patch);
    let mut input = tempfile::NamedTempFile::new().unwrap();
    input.write_all(request.to_string().as_bytes()).unwrap();
    let output = run(postgate(data.path())
        .args(["eval", "--policy", "policies/default.toml", "--input"])
        .arg(input.path()));
    let decision = serde_json::from_str(&stdout(&output)).unwrap_or(Value::Null);
    (output.status.code().unwrap(), decision, stderr(&output))
}

#[test]
fn the_example_request_is_allowed() {
    let (code, decision, _) = eval(json!({}));
    assert_eq!(code, 0);
    assert_eq!(decision["outcome"], "allow");
    let gates: Vec<&str> = texts(&decision["gates"], "gate");
    assert_eq!(gates, ["approval", "provider-review", "destination", "credit", "flags"]);
    for gate in decision["gates"].as_array().unwrap() {
        assert_eq!(gate["outcome"], "allow", "{gate}");
        assert!(gate["fuel"].as_u64().unwrap() > 0, "fuel is recorded: {gate}");
        assert!(gate["duration_us"].is_u64(), "time is recorded: {gate}");
        assert_eq!(gate["digest"].as_str().unwrap().len(), 64);
        assert!(!gate["message"].as_str().unwrap().is_empty());
    }
    assert!(decision["revision"].as_str().unwrap().starts_with("rev_"));
}

#[test]
fn each_gate_denies_its_own_case() {
    let cases = [
        (json!({"approval": {"status": "rejected"}}), "approval", "approval_rejected"),
        (json!({"draft": {"content_digest": "0".repeat(64)}}), "approval", "approval_stale"),
        (
            json!({"destination": {"provider_review": "rejected"}}),
            "provider-review",
            "review_rejected",
        ),
        (
            json!({"destination": {"connected": false}}),
            "destination",
            "destination_disconnected",
        ),
        (
            json!({"destination": {"workspace_id": "ws_2"}}),
            "destination",
            "destination_foreign",
        ),
        (
            json!({"destination": {"provider": "myspace"}}),
            "destination",
            "provider_unsupported",
        ),
        (json!({"account": {"balance_cents": 3}}), "credit", "insufficient_credit"),
        (json!({"flags": {"publishing_mode": "preview"}}), "flags", "publishing_blocked"),
        (json!({"flags": {"kill_switch": true}}), "flags", "kill_switch"),
        (json!({"draft": {"text": "GUARANTEED returns!"}}), "flags", "blocked_term"),
    ];
    for (patch, gate, reason) in cases {
        let (code, decision, _) = eval(patch.clone());
        assert_eq!((code, &decision["outcome"]), (1, &json!("deny")), "{patch}");
        for result in decision["gates"].as_array().unwrap() {
            if result["gate"] == gate {
                assert_eq!((&result["outcome"], &result["code"]), (&json!("deny"), &json!(reason)), "{patch}");
            } else {
                assert_eq!(result["outcome"], "allow", "only `{gate}` denies {patch}: {result}");
            }
        }
    }
}

#[test]
fn credit_evidence_shows_balance_and_price() {
    let (_, decision, _) = eval(json!({"account": {"balance_cents": 3}}));
    let credit = &decision["gates"][3];
    assert_eq!(credit["evidence"], json!({"balance_cents": "3", "price_cents": "4"}));
}

#[test]
fn waiting_on_a_human_is_pending() {
    let (code, decision, _) = eval(json!({"approval": {"status": "pending"}, "destination": {"provider_review": "pending"}}));
    assert_eq!((code, &decision["outcome"]), (3, &json!("pending")));
    assert_eq!(decision["gates"][0]["code"], "approval_pending");
    assert_eq!(decision["gates"][1]["code"], "review_pending");
}

#[test]
fn deny_beats_pending() {
    let (code, decision, _) = eval(json!({"approval": {"status": "pending"}, "account": {"balance_cents": 0}}));
    assert_eq!((code, &decision["outcome"]), (1, &json!("deny")));
}

#[test]
fn invalid_requests_name_the_field() {
    let (code, decision, err) = eval(json!({"account": {"balance_cents": "lots"}}));
    assert_eq!((code, decision), (64, Value::Null));
    assert!(
        err.starts_with("error: ") && err.contains("account.balance_cents: invalid type: string"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let (code, _, err) = eval(json!({"flags": null}));
    assert_eq!(code, 64);
    assert!(err.contains("flags"), "{err}");

    let (code, _, err) = eval(json!({"approval": {"status": "maybe"}}));
    assert_eq!(code, 64);
    assert!(err.contains("approval.status: unknown variant `maybe`"), "{err}");

    let (code, _, err) = eval(json!({"surprise": 1}));
    assert_eq!(code, 64);
    assert!(err.contains("unknown field `surprise`"), "{err}");
}

#[test]
fn unreadable_input_and_policy_are_invalid_input() {
    let data = tempfile::tempdir().unwrap();
    let output = run(postgate(data.path()).args(["eval", "--input", "no/such/request.json"]));
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).contains("cannot read request `no/such/request.json`"),
        "{}",
        stderr(&output)
    );

    let output = run(postgate(data.path()).args(["eval", "--input", "examples/allow.json", "--policy", "no/such.toml"]));
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("no/such.toml: cannot read"), "{}", stderr(&output));

    let output = run(postgate(data.path()).args(["eval", "--input", "Cargo.toml"]));
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("invalid request"), "{}", stderr(&output));

    let output = run(postgate(data.path()).args(["eval", "--bogus"]));
    assert_eq!(output.status.code(), Some(64), "a usage error is invalid input too");
}

#[test]
fn help_documents_the_exit_codes() {
    let data = tempfile::tempdir().unwrap();
    let output = run(postgate(data.path()).args(["eval", "--help"]));
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    for line in [
        "0   success; for `eval`, the chain allows",
        "1   `eval`: the chain denies",
        "3   `eval`: the chain is pending",
        "64  invalid input",
        "70  internal error",
    ] {
        assert!(help.contains(line), "missing `{line}` in:\n{help}");
    }
}

#[test]
fn preview_renders_counts_and_flags_violations() {
    let data = tempfile::tempdir().unwrap();
    let draft = |text: &str| {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(json!({"text": text, "media": []}).to_string().as_bytes()).unwrap();
        file
    };
    let fits = draft("Launch day! 你好 https://example.com");
    let output = run(postgate(data.path())
        .args(["preview", "--provider", "x", "--input"])
        .arg(fits.path()));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let preview: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        (preview["count"].as_u64(), preview["limit"].as_u64()),
        (Some(12 + 4 + 1 + 23), Some(280))
    );
    assert_eq!(preview["payload"]["text"], "Launch day! 你好 https://example.com");

    let long = draft(&"a".repeat(301));
    let output = run(postgate(data.path())
        .args(["preview", "--provider", "bluesky", "--input"])
        .arg(long.path()));
    assert_eq!(output.status.code(), Some(1));
    let preview: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(preview["violations"][0]["code"], "text_too_long");

    let output = run(postgate(data.path())
        .args(["preview", "--provider", "youtube", "--input"])
        .arg(fits.path()));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("provider_unsupported"));

    let output = run(postgate(data.path()).args(["preview", "--provider", "x", "--input", "examples/allow.json"]));
    assert_eq!(output.status.code(), Some(64), "a request is not a draft");
    assert!(stderr(&output).contains("invalid draft: unknown field"), "{}", stderr(&output));
}
