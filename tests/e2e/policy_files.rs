//! Policy manifests: golden errors for invalid files, `policy check` and `policy lock`.

use crate::support::{GateEntry, digest, gate, postgate, root, run, stderr, stdout, write_policy};

#[test]
fn invalid_manifests_give_their_golden_error() {
    let dir = root().join("tests/policies/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let relative = path.strip_prefix(root()).unwrap();
        let data = tempfile::tempdir().unwrap();
        let output = run(postgate(data.path()).arg("policy").arg("check").arg(relative));
        let expected = std::fs::read_to_string(path.with_extension("err")).unwrap();
        assert_eq!(output.status.code(), Some(64), "{}", relative.display());
        assert_eq!(stderr(&output), expected, "{}", relative.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} golden files");
}

#[test]
fn the_default_policy_checks() {
    let data = tempfile::tempdir().unwrap();
    let output = run(postgate(data.path()).args(["policy", "check", "policies/default.toml"]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("policy `default` rev_"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), 5, "{out}");
}

#[test]
fn check_refuses_a_policy_whose_gate_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let entry = GateEntry::new("credit", gate("credit")).with(&format!("sha256 = \"{}\"", "a".repeat(64)));
    let policy = write_policy(dir.path(), "stale", &[entry]);
    let output = run(postgate(dir.path()).arg("policy").arg("check").arg(&policy));
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).contains("gate `credit` digest mismatch: the policy pins aaaa"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn lock_pins_current_digests_and_keeps_comments() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("unpinned.toml");
    let text = format!(
        "# reviewed by the safety team\nversion = 1\nname = \"unpinned\"\n\n[[gate]]\nname = \"credit\" # the price check\ncomponent = {:?}\nconfig = {{ price_cents = 4 }}\n",
        gate("credit").display().to_string()
    );
    std::fs::write(&policy, text).unwrap();

    let output = run(postgate(dir.path()).arg("policy").arg("check").arg(&policy));
    assert_eq!(output.status.code(), Some(64), "an unpinned gate is refused");
    assert!(stderr(&output).contains("no sha256 pin"), "{}", stderr(&output));

    let output = run(postgate(dir.path()).arg("policy").arg("lock").arg(&policy));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let locked = std::fs::read_to_string(&policy).unwrap();
    assert!(locked.contains(&format!("sha256 = \"{}\"", digest(&gate("credit")))), "{locked}");
    assert!(
        locked.starts_with("# reviewed by the safety team") && locked.contains("# the price check"),
        "{locked}"
    );

    let output = run(postgate(dir.path()).arg("policy").arg("check").arg(&policy));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
