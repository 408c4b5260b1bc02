//! `postgate serve`: the real binary on an ephemeral port, over HTTP.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{GateEntry, postgate, reference_gates, write_policy};

/// A running server, killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(data_dir: &Path, policy: &Path) -> Self {
        let mut child = postgate(data_dir)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--policy"])
            .arg(policy)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let base = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line `{first}`: {}", log.lock().unwrap())).to_owned();
        Self { child, base, log }
    }

    fn get(&self, path: &str) -> Value {
        ureq::get(format!("{}{path}", self.base)).call().unwrap().body_mut().read_json().unwrap()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits until the log holds `text` `times` times, failing after 30 s.
    fn await_log(&self, text: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log.lock().unwrap().matches(text).count() < times {
            assert!(Instant::now() < deadline, "no `{text}` in the log:\n{}", self.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_health_and_the_active_chain_for_reviewers() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "reviewed", &reference_gates());
    let server = Server::start(dir.path(), &policy);
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
    let missing = ureq::get(format!("{}/v1/nothing", server.base)).call();
    assert!(matches!(missing, Err(ureq::Error::StatusCode(404))), "{missing:?}");
}

#[test]
fn sighup_swaps_the_policy_and_never_to_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "live", &reference_gates());
    let server = Server::start(dir.path(), &policy);
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
    let mut server = Server::start(dir.path(), &policy);
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
    drop(Server::start(dir.path(), &policy));
    let again = Server::start(dir.path(), &policy);
    again.await_log("from_cache=5", 1);
}
