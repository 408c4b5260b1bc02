//! The policy lifecycle over real HTTP: a new gate version is uploaded,
//! refused until reviewers sign it off, tried in shadow on live traffic,
//! diffed against recorded decisions, activated, and rolled back, without a
//! restart; on two processes sharing one PostgreSQL database too.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::api::each_backend;
use crate::fixtures::{FreshPostgres, ready, set_mode};
use crate::support::{Server, gate, postgate, reference_gates, run, stderr, stdout, texts, write_policy};

/// The reference gates as an upload names them: by pin, with their configs.
fn reference_manifest(credit: &str) -> String {
    let mut text = String::from("version = 1\nname = \"lifecycle\"\n");
    for (name, component, extra) in [
        ("approval", gate("approval"), ""),
        ("provider-review", gate("provider-review"), ""),
        (
            "destination",
            gate("destination"),
            r#"config = { providers = ["x", "bluesky", "sandbox"] }"#,
        ),
        ("flags", gate("flags"), ""),
    ] {
        text.push_str(&format!(
            "\n[[gate]]\nname = \"{name}\"\nsha256 = \"{}\"\n{extra}\n",
            crate::support::digest(&component)
        ));
    }
    text.push_str(credit);
    text
}

/// A component that behaves as `component` but is a new version of it: the
/// same code with a custom section naming the version, so a new digest.
pub fn new_version(component: &Path, version: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(component).unwrap();
    let name = b"postgate-test-version";
    let mut payload = vec![u8::try_from(name.len()).unwrap()];
    payload.extend_from_slice(name);
    payload.extend_from_slice(version.as_bytes());
    bytes.push(0);
    bytes.push(u8::try_from(payload.len()).unwrap());
    bytes.extend_from_slice(&payload);
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    postgate::engine::sha256_hex(bytes)
}

fn upload(server: &Server, manifest: &str, components: &[&[u8]]) -> (u16, Value) {
    let encoded: Vec<String> = components
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
        .collect();
    let (status, body, _) = server.call(
        "PUT",
        "/v1/policy",
        Some(&server.operator),
        Some(json!({"manifest": manifest, "components": encoded, "note": "test upload"})),
    );
    (status, body)
}

/// Mints a reviewer: their token.
pub fn reviewer(server: &Server, label: &str) -> String {
    let (status, created, _) = server.call("POST", "/v1/reviewers", Some(&server.operator), Some(json!({"label": label})));
    assert_eq!(status, 201, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

/// Publishes, expecting an allow: the answer.
fn published(server: &Server, customer: &str, key: &str, body: &Value) -> Value {
    let (status, answer, _) = crate::fixtures::publish(server, customer, key, body);
    assert_eq!(status, 201, "{answer}");
    answer
}

/// A new version of the credit gate, and the manifests that try it.
struct CreditV2 {
    bytes: Vec<u8>,
    digest: String,
    /// The reference gates with v2 beside the credit gate as `credit-next`, in monitor mode,
    /// at a price no test balance covers.
    shadow: String,
}

impl CreditV2 {
    fn new() -> Self {
        let bytes = new_version(&gate("credit"), "2");
        let digest = sha256(&bytes);
        let credit = crate::support::digest(&gate("credit"));
        let shadow = reference_manifest(&format!(
            "\n[[gate]]\nname = \"credit\"\nsha256 = \"{credit}\"\nconfig = {{ price_cents = 4 }}\n\
             \n[[gate]]\nname = \"credit-next\"\nsha256 = \"{digest}\"\nmode = \"monitor\"\nconfig = {{ price_cents = 5000 }}\n"
        ));
        Self { bytes, digest, shadow }
    }

    /// The shadow policy with credit-next enforcing.
    fn enforcing(&self) -> String {
        self.shadow.replace("mode = \"monitor\"\n", "")
    }

    /// The reference gates with v2 as the credit gate, at `price`.
    fn swapped(&self, price: i64) -> String {
        reference_manifest(&format!(
            "\n[[gate]]\nname = \"credit\"\nsha256 = \"{}\"\nconfig = {{ price_cents = {price} }}\n",
            self.digest
        ))
    }
}

/// The credit-next verdict of a decision in a publication answer.
fn credit_next(answer: &Value) -> Value {
    let gates: Vec<Value> = serde_json::from_str(answer["decision"]["gates"].as_str().unwrap()).unwrap();
    gates.into_iter().find(|g| g["gate"] == "credit-next").unwrap()
}

/// Waits until `server` runs `revision`, as its readiness endpoint reports.
fn await_revision(server: &Server, revision: &str) -> Duration {
    let started = Instant::now();
    loop {
        let ready = server.get("/readyz");
        if ready["revision"] == revision {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still on {ready} after 10 s, not {revision}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_gate_version_is_signed_off_tried_in_shadow_diffed_activated_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let version = CreditV2::new();
    let (v2, v2_digest, shadow, candidate) = (&version.bytes, &version.digest, &version.shadow, version.enforcing());
    let swapped = version.swapped(5);
    std::fs::write(dir.path().join("credit-next.wasm"), v2).unwrap();
    each_backend(|server| {
        let (_, customer, body) = ready(server, 1_000);
        set_mode(server, "live");
        let first = server.get("/v1/policy");
        let bootstrap = first["revision"]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            (&first["activation"]["action"], &first["running"]),
            (&json!("bootstrap"), &json!(bootstrap)),
            "{first}"
        );
        assert_eq!(first["sign_offs_required"], 1, "strict mode is on by default");
        published(server, &customer, "before", &body);

        // Strict mode: nothing is signed off yet, so the upload lists all six components.
        let (status, refused) = upload(server, shadow, &[v2]);
        assert_eq!((status, &refused["type"]), (409, &json!("/problems/sign_off_missing")), "{refused}");
        let missing = refused["missing"].as_array().unwrap();
        assert_eq!(missing.len(), 6, "{refused}");
        assert!(missing.iter().all(|m| m["have"] == 0 && m["need"] == 1));
        assert!(refused["detail"].as_str().unwrap().contains(v2_digest.as_str()), "{refused}");
        assert_eq!(server.get("/readyz")["revision"], bootstrap, "a refused policy changes nothing");

        // Only reviewers sign off, and only what the server holds (the refused upload's components are held).
        let path = format!("/v1/gates/{v2_digest}/sign-off");
        let note = json!({"note": "read the source, rebuilt it, ran the cases"});
        assert_eq!(server.call("POST", &path, Some(&server.operator), Some(note.clone())).0, 403);
        assert_eq!(server.call("POST", &path, Some(&customer), Some(note.clone())).0, 403);
        let alice = reviewer(server, "Alice");
        let unknown = format!("/v1/gates/{}/sign-off", "0".repeat(64));
        assert_eq!(server.call("POST", &unknown, Some(&alice), Some(note.clone())).0, 404);
        assert_eq!(
            server.call("POST", "/v1/gates/credit/sign-off", Some(&alice), Some(note.clone())).0,
            422
        );
        assert_eq!(server.call("POST", &path, Some(&alice), Some(json!({"note": " "}))).0, 422);
        for m in missing {
            let path = format!("/v1/gates/{}/sign-off", m["digest"].as_str().unwrap());
            let (status, signed, _) = server.call("POST", &path, Some(&alice), Some(note.clone()));
            assert_eq!(status, 201, "{signed}");
        }
        assert_eq!(
            server.call("POST", &path, Some(&alice), Some(note.clone())).0,
            200,
            "a repeat changes nothing"
        );
        let detail = server.call("GET", &format!("/v1/gates/{v2_digest}"), Some(&alice), None).1;
        assert_eq!(
            (&detail["name"], &detail["world"], &detail["active"]),
            (&json!("credit"), &json!("postgate:gate/safety-gate@0.1.0"), &Value::Null),
            "{detail}"
        );
        assert_eq!(detail["sign_offs"][0]["note"], note["note"]);
        assert!(detail["wit"].as_str().unwrap().contains("world safety-gate"));
        let active_credit = server.call("GET", "/v1/gates/credit", Some(&customer), None).1;
        let lib = active_credit["source"]["files"]["gates/credit/src/lib.rs"].as_str().unwrap();
        assert!(lib.contains("insufficient_credit"), "the embedded source is the gate's own");
        assert_eq!(active_credit["active"]["config"], json!({"price_cents": 4}), "{active_credit}");

        // Signed off, the shadow revision goes live without its components: the server holds them.
        let (status, shadowed) = upload(server, shadow, &[]);
        assert_eq!(status, 201, "{shadowed}");
        let shadow_revision = shadowed["id"].as_str().unwrap().to_owned();
        assert_eq!(server.get("/readyz")["revision"], shadow_revision);
        let tried = published(server, &customer, "shadowed", &body);
        let next = credit_next(&tried);
        assert_eq!(
            (&next["mode"], &next["outcome"], &next["code"]),
            (&json!("monitor"), &json!("deny"), &json!("insufficient_credit"))
        );
        assert_eq!(
            (&tried["decision"]["outcome"], &tried["publication"]["charge_cents"]),
            (&json!("allow"), &json!(4)),
            "a monitor gate never decides"
        );
        let shown = server.call("GET", "/v1/gates/credit-next", Some(&customer), None).1;
        assert_eq!(shown["active"]["mode"], "monitor", "{shown}");

        // The diff replays both recorded publications: enforcing credit-next would deny them.
        let (status, report, _) = server.call(
            "POST",
            "/v1/policy/diff",
            Some(&server.operator),
            Some(json!({"manifest": candidate, "since": "1h"})),
        );
        assert_eq!(status, 200, "{report}");
        assert_eq!((&report["replayed"], &report["changed"]), (&json!(2), &json!(2)), "{report}");
        let diff = json!({"manifest": candidate, "since": "1h"});
        assert_eq!(
            server.call("POST", "/v1/policy/diff", Some(&alice), Some(diff)).0,
            403,
            "the operator's, like loading a policy"
        );
        assert_eq!(report["transitions"], json!({"allow→deny": 2}));
        assert_eq!(report["changes"][0]["reasons"], json!(["credit-next: insufficient_credit"]));
        let cli = run(postgate(dir.path())
            .args(["policy", "diff", "--since", "1h", "--database-url", &server.database_url])
            .arg(write_policy(dir.path(), "candidate", &with_credit_next(dir.path()))));
        assert_eq!(cli.status.code(), Some(1), "an outcome would change: {}", stderr(&cli));
        assert!(stdout(&cli).contains("2 of 2 decisions since"), "{}", stdout(&cli));
        assert!(
            stdout(&cli).contains("allow -> deny  (credit-next: insufficient_credit)"),
            "{}",
            stdout(&cli)
        );

        // The new version replaces the old one: the next publication is charged at its price.
        let (status, active) = upload(server, &swapped, &[]);
        assert_eq!(status, 201, "{active}");
        let swapped_revision = active["id"].as_str().unwrap().to_owned();
        assert_eq!(published(server, &customer, "swapped", &body)["publication"]["charge_cents"], 5);

        // Rollback: by default to the revision before; then to any earlier one by id.
        let (status, back, _) = server.call(
            "POST",
            "/v1/policy/rollback",
            Some(&server.operator),
            Some(json!({"note": "price"})),
        );
        assert_eq!((status, &back["id"]), (200, &json!(shadow_revision)), "{back}");
        assert_eq!(published(server, &customer, "rolled-back", &body)["publication"]["charge_cents"], 4);
        let to = |revision: &str| {
            server
                .call(
                    "POST",
                    "/v1/policy/rollback",
                    Some(&server.operator),
                    Some(json!({"revision": revision})),
                )
                .0
        };
        assert_eq!(to(&bootstrap), 200);
        assert_eq!(to(&bootstrap), 409, "already active");
        assert_eq!(to("rev_0000000000000000"), 404);
        assert_eq!(server.call("POST", "/v1/policy/rollback", Some(&alice), Some(json!({}))).0, 403);

        let history = server.call("GET", "/v1/policy/revisions", Some(&alice), None).1;
        let entries: Vec<(&str, &str, &str)> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["revision"].as_str().unwrap(),
                    e["action"].as_str().unwrap(),
                    e["actor"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                (bootstrap.as_str(), "rollback", "operator"),
                (shadow_revision.as_str(), "rollback", "operator"),
                (swapped_revision.as_str(), "upload", "operator"),
                (shadow_revision.as_str(), "upload", "operator"),
                (bootstrap.as_str(), "bootstrap", "host"),
            ]
        );
        let trail = server.call("GET", "/v1/audit?limit=200", Some(&server.operator), None).1;
        let actions: Vec<&str> = texts(&trail["records"], "action");
        assert_eq!(actions.iter().filter(|a| **a == "gate.sign_off").count(), 6, "{actions:?}");
        assert_eq!(actions.iter().filter(|a| a.starts_with("policy.")).count(), 5, "{actions:?}");
        let report = server.get("/v1/decisions/verify");
        assert_eq!(report["broken"], json!([]), "{report}");
    });
}

/// The reference gates with credit-next, enforcing, read from files: the CLI's candidate.
fn with_credit_next(dir: &Path) -> Vec<crate::support::GateEntry> {
    let mut gates: Vec<_> = reference_gates().into_iter().filter(|g| g.name != "credit").collect();
    gates.push(crate::support::GateEntry::new("credit", gate("credit")).with("config = { price_cents = 4 }"));
    gates.push(crate::support::GateEntry::new("credit-next", dir.join("credit-next.wasm")).with("config = { price_cents = 5000 }"));
    gates
}

#[test]
fn uploads_are_checked_before_anything_changes() {
    each_backend(|server| {
        let credit = crate::support::digest(&gate("credit"));
        // A second source section: no `gate build` writes that, and reviewers could not read it.
        let doubled = postgate::provenance::embed(&std::fs::read(gate("credit")).unwrap(), b"{}");
        let doubled_manifest = format!(
            "version = 1\nname = \"x\"\n[[gate]]\nname = \"credit\"\nsha256 = \"{}\"\n",
            sha256(&doubled)
        );
        let doubled_component = base64::engine::general_purpose::STANDARD.encode(&doubled);
        let cases: Vec<(Value, u16, &str)> = vec![
            (
                json!({"manifest": doubled_manifest, "components": [doubled_component]}),
                422,
                "two `postgate:source` sections",
            ),
            (
                json!({"manifest": "version = 1\nname = \"x\"\n[[gate]]\nname = \"credit\"\ncomponent = \"/etc/passwd\"\n"}),
                422,
                "has no `sha256`",
            ),
            (
                json!({"manifest": format!("version = 1\nname = \"x\"\n[[gate]]\nname = \"credit\"\nsha256 = \"{}\"\n", "1".repeat(64))}),
                422,
                "holds no component",
            ),
            (
                json!({"manifest": "version = 1\nname = \"x\"\n", "components": ["%%%"]}),
                422,
                "is not base64",
            ),
            (json!({"manifest": "version = 2\n"}), 422, "the only policy format"),
            (
                json!({"manifest": format!("version = 1\nname = \"x\"\n[[gate]]\nname = \"credit\"\nsha256 = \"{credit}\"\nconfig = {{ price_cents = -1 }}\n")}),
                422,
                "refused its configuration",
            ),
        ];
        for (body, status, detail) in cases {
            let (got, problem, _) = server.call("PUT", "/v1/policy", Some(&server.operator), Some(body.clone()));
            assert_eq!(got, status, "{body}: {problem}");
            assert!(problem["detail"].as_str().unwrap().contains(detail), "{body}: {problem}");
        }
        // A component no gate pins is never held; a pinned one is, once every gate loads,
        // even though strict mode refuses the policy.
        let stray = new_version(&gate("credit"), "stray");
        let held = new_version(&gate("credit"), "held");
        let (status, refused) = upload(
            server,
            &reference_manifest(&format!("\n[[gate]]\nname = \"credit\"\nsha256 = \"{}\"\n", sha256(&held))),
            &[&stray, &held],
        );
        assert_eq!(status, 409, "{refused}");
        let shown = |bytes: &[u8]| {
            server
                .call("GET", &format!("/v1/gates/{}", sha256(bytes)), Some(&server.operator), None)
                .0
        };
        assert_eq!(shown(&stray), 404, "the stray component is not held");
        assert_eq!(shown(&held), 200, "the refused policy's own component is held, for reviewers");
        let (_, customer) = crate::fixtures::workspace(server, "Not the operator");
        let (got, _, _) = server.call("PUT", "/v1/policy", Some(&customer), Some(json!({"manifest": ""})));
        assert_eq!(got, 403);
        assert_eq!(
            server.get("/v1/policy")["activation"]["action"],
            "bootstrap",
            "nothing was activated"
        );
    });
}

#[test]
fn two_processes_on_one_postgres_follow_uploads_and_rollbacks() {
    let Ok(base) = std::env::var("POSTGATE_TEST_POSTGRES_URL") else {
        eprintln!("POSTGATE_TEST_POSTGRES_URL is not set: this PostgreSQL-only test checks nothing");
        return;
    };
    let database = FreshPostgres::create(&base);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "shared", &reference_gates());
    // One data directory: both processes seal and open destination tokens with its key.
    let one = Server::start(dir.path(), &policy, Some(&database.url));
    let two = Server::start(dir.path(), &policy, Some(&database.url));
    let bootstrap = one.get("/v1/policy")["revision"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        two.get("/readyz")["revision"],
        bootstrap,
        "the second process starts on the stored revision"
    );
    assert_eq!(
        two.get("/v1/policy")["activation"]["action"],
        "bootstrap",
        "and does not store it again"
    );

    let (_, customer, body) = ready(&one, 1_000);
    set_mode(&one, "live");
    let alice = reviewer(&one, "Alice");
    let version = CreditV2::new();
    let (v2, shadow, swapped) = (&version.bytes, &version.shadow, version.swapped(7));

    // Uploaded through one process, refused until signed off through the other: one database.
    let (status, refused) = upload(&one, shadow, &[v2]);
    assert_eq!(status, 409, "{refused}");
    for m in refused["missing"].as_array().unwrap() {
        let path = format!("/v1/gates/{}/sign-off", m["digest"].as_str().unwrap());
        assert_eq!(two.call("POST", &path, Some(&alice), Some(json!({"note": "checked"}))).0, 201);
    }

    // Shadow: active on both within seconds; the other process records the monitor verdict.
    let (status, shadowed) = upload(&one, shadow, &[]);
    assert_eq!(status, 201, "{shadowed}");
    let shadow_revision = shadowed["id"].as_str().unwrap().to_owned();
    let noticed = await_revision(&two, &shadow_revision);
    eprintln!("the other process swapped {noticed:?} after the upload answered");
    assert!(noticed < Duration::from_secs(5), "the other process swapped after {noticed:?}");
    let tried = published(&two, &customer, "shadow-on-two", &body);
    assert_eq!(
        (&tried["decision"]["outcome"], &tried["publication"]["charge_cents"]),
        (&json!("allow"), &json!(4))
    );
    let next = credit_next(&tried);
    assert_eq!((&next["mode"], &next["outcome"]), (&json!("monitor"), &json!("deny")), "{next}");
    let (status, report, _) = two.call(
        "POST",
        "/v1/policy/diff",
        Some(&two.operator),
        Some(json!({"manifest": version.enforcing(), "since": "1h"})),
    );
    assert_eq!((status, &report["transitions"]), (200, &json!({"allow→deny": 1})), "{report}");

    // Active: the new version decides on both processes.
    let (status, active) = upload(&one, &swapped, &[]);
    assert_eq!(status, 201, "{active}");
    await_revision(&two, active["id"].as_str().unwrap());
    assert_eq!(published(&two, &customer, "on-two", &body)["publication"]["charge_cents"], 7);
    two.await_log("policy swapped: activated in the database", 2);

    // And back, through the other process.
    let (status, _, _) = two.call("POST", "/v1/policy/rollback", Some(&two.operator), Some(json!({"note": "back"})));
    assert_eq!(status, 200);
    await_revision(&one, &shadow_revision);
    assert_eq!(published(&one, &customer, "on-one", &body)["publication"]["charge_cents"], 4);
    let history = one.call("GET", "/v1/policy/revisions", Some(&alice), None).1;
    let actions: Vec<&str> = texts(&history["items"], "action");
    assert_eq!(actions, ["rollback", "upload", "upload", "bootstrap"]);
}

#[test]
fn the_database_revision_serves_even_when_the_policy_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "first", &reference_gates());
    let revision = {
        let server = Server::start(dir.path(), &policy, None);
        server.get("/readyz")["revision"].as_str().unwrap().to_owned()
    };
    std::fs::write(&policy, "not a policy").unwrap();
    let server = Server::start(dir.path(), &policy, None);
    assert_eq!(server.get("/readyz")["revision"], revision.as_str(), "the stored revision runs");
    server.await_log("the policy file cannot load", 1);

    let empty = tempfile::tempdir().unwrap();
    let refused = run(postgate(empty.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
        .arg(&policy));
    assert_eq!(refused.status.code(), Some(64), "with no revision stored, the file must load");
    assert!(stderr(&refused).contains("the policy file must load"), "{}", stderr(&refused));
}
