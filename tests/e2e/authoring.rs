//! The policy author's loop: scaffold a gate, build it, test it against
//! fixture cases, inspect it, and run the reference gates' own cases.

use crate::support::{fixture, gate, postgate, root, run, stderr, stdout};

#[test]
fn the_reference_gates_pass_their_fixture_cases() {
    let data = tempfile::tempdir().unwrap();
    let output = run(postgate(data.path()).args(["gate", "test"]));
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.contains("27 passed, 0 failed"), "{out}");
    assert!(out.contains("ok    flags :: a full-width blocked term is denied"), "{out}");
}

#[test]
fn a_scaffolded_gate_builds_tests_and_reports_failures() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("Cargo.toml"), "[workspace]\nresolver = \"3\"\nmembers = [\"gates/*\"]\n\n[profile.gate]\ninherits = \"release\"\nopt-level = \"s\"\nstrip = true\n").unwrap();
    let sdk = root().join("gates/sdk");
    let gates = work.path().join("gates");
    let new = run(postgate(work.path())
        .args(["gate", "new", "tone-check", "--dir"])
        .arg(&gates)
        .arg("--sdk")
        .arg(&sdk));
    assert_eq!(new.status.code(), Some(0), "{}", stderr(&new));
    assert!(gates.join("tone-check/src/lib.rs").exists());
    let again = run(postgate(work.path()).args(["gate", "new", "tone-check", "--dir"]).arg(&gates));
    assert_eq!(again.status.code(), Some(64), "an existing gate is never overwritten");

    // Its own cases reference `../../examples/allow.json`: give it one.
    std::fs::create_dir_all(work.path().join("examples")).unwrap();
    std::fs::copy(root().join("examples/allow.json"), work.path().join("examples/allow.json")).unwrap();
    // A separate target directory keeps this nested build off the outer build's lock.
    let target = root().join("target/scaffold-test");
    let out_dir = work.path().join("out");
    let test = |extra_case: &str| {
        if !extra_case.is_empty() {
            let cases = gates.join("tone-check/cases.json");
            let text = std::fs::read_to_string(&cases)
                .unwrap()
                .replacen("\"cases\": [", &format!("\"cases\": [\n    {extra_case},"), 1);
            std::fs::write(cases, text).unwrap();
        }
        run(postgate(work.path())
            .current_dir(work.path())
            .env("CARGO_TARGET_DIR", &target)
            .args(["gate", "test", "--dir"])
            .arg(&gates)
            .arg("--out")
            .arg(&out_dir))
    };
    let passing = test("");
    assert_eq!(passing.status.code(), Some(0), "{}{}", stdout(&passing), stderr(&passing));
    assert!(stdout(&passing).contains("2 passed, 0 failed"), "{}", stdout(&passing));

    let failing = test(r#"{ "name": "a wrong expectation", "patch": {}, "expect": { "outcome": "deny", "code": "nope" } }"#);
    assert_eq!(failing.status.code(), Some(1));
    let out = stdout(&failing);
    assert!(out.contains("FAIL  tone-check :: a wrong expectation"), "{out}");
    assert!(out.contains("expected deny `nope`, got allow `tone_check_ok`"), "{out}");
    assert!(out.contains("2 passed, 1 failed"), "{out}");

    let inspect = run(postgate(work.path()).args(["gate", "inspect"]).arg(out_dir.join("tone-check.wasm")));
    assert_eq!(inspect.status.code(), Some(0), "{}", stderr(&inspect));
    assert!(stdout(&inspect).contains("describes:   tone-check 0.1.0"), "{}", stdout(&inspect));
}

#[test]
fn inspect_shows_contract_imports_and_refusals() {
    let data = tempfile::tempdir().unwrap();
    let credit = run(postgate(data.path()).args(["gate", "inspect", "--json"]).arg(gate("credit")));
    assert_eq!(credit.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout(&credit)).unwrap();
    assert_eq!(json["description"]["name"], "credit");
    assert_eq!(json["exports"], serde_json::json!(["postgate:gate/gate@0.1.0"]));
    assert_eq!(json["digest"], crate::support::digest(&gate("credit")));
    for name in ["approval", "provider-review", "destination", "credit", "flags"] {
        let output = run(postgate(data.path()).args(["gate", "inspect", "--json"]).arg(gate(name)));
        let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(
            json["imports"],
            serde_json::json!(["postgate:gate/types@0.1.0"]),
            "`{name}` imports only the contract's types"
        );
    }

    let wasi = run(postgate(data.path()).args(["gate", "inspect"]).arg(fixture("wasi-import")));
    assert_eq!(wasi.status.code(), Some(64));
    let out = stdout(&wasi);
    assert!(out.contains("not a postgate gate: imports `wasi:"), "{out}");
    assert!(
        out.contains("wasi:filesystem/preopens@0.2.6  (refused: postgate never grants it)"),
        "{out}"
    );

    let not_wasm = run(postgate(data.path()).args(["gate", "inspect", "tests/fixtures/not-wasm.wasm"]));
    assert_eq!(not_wasm.status.code(), Some(64));
    assert!(
        stderr(&not_wasm).starts_with("error: `tests/fixtures/not-wasm.wasm`: not a valid WebAssembly component"),
        "{}",
        stderr(&not_wasm)
    );
}

#[test]
fn built_gates_embed_their_source_and_verify_rebuilds_them() {
    let data = tempfile::tempdir().unwrap();
    let credit = gate("credit");
    let source = postgate::provenance::embedded(&std::fs::read(&credit).unwrap()).unwrap().unwrap();
    assert_eq!(
        (source.package.as_str(), source.crate_dir.as_str()),
        ("postgate-gate-credit", "gates/credit")
    );
    for file in [
        "gates/credit/src/lib.rs",
        "gates/sdk/src/lib.rs",
        "wit/gate.wit",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        assert!(source.files.contains_key(file), "{file} is embedded");
    }
    assert!(
        source.files["Cargo.toml"].contains(r#"members = ["gates/credit", "gates/sdk"]"#),
        "{}",
        source.files["Cargo.toml"]
    );
    assert!(
        !source.files["Cargo.lock"].contains("name = \"wasmtime\""),
        "the lockfile is pruned to the gate's dependencies"
    );

    // One compiler at a time: the rebuild runs beside the other tests, some of them timed.
    let verify = |file: &std::path::Path| {
        run(postgate(data.path())
            .env("CARGO_BUILD_JOBS", "1")
            .arg("gate")
            .arg("verify")
            .arg(file))
    };
    let verified = verify(&credit);
    assert_eq!(verified.status.code(), Some(0), "{}{}", stdout(&verified), stderr(&verified));
    assert!(stdout(&verified).starts_with("ok: "), "{}", stdout(&verified));

    // The same source, but one byte of the code changed: the rebuild tells.
    let mut bytes = std::fs::read(&credit).unwrap();
    let at = bytes.windows(19).position(|w| w == b"insufficient_credit").unwrap();
    bytes[at] = b'I';
    let tampered = data.path().join("tampered.wasm");
    std::fs::write(&tampered, &bytes).unwrap();
    let mismatch = verify(&tampered);
    assert_eq!(mismatch.status.code(), Some(1), "{}{}", stdout(&mismatch), stderr(&mismatch));
    assert!(stdout(&mismatch).starts_with("mismatch: "), "{}", stdout(&mismatch));

    let bare = data.path().join("bare.wasm");
    std::fs::write(&bare, b"\0asm\x0d\0\x01\0").unwrap();
    let none = verify(&bare);
    assert_eq!(none.status.code(), Some(64));
    assert!(stderr(&none).contains("embeds no source"), "{}", stderr(&none));
}
