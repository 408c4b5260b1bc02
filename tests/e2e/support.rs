//! Shared helpers: paths, the binary, policies written on the fly.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use postgate::engine::{Runtime, RuntimeOptions};
use postgate::model::GateRequest;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn built(dir: &str, name: &str) -> PathBuf {
    let path = root().join("target").join(dir).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `./dev test`, which builds the gates and fixtures first",
        path.display()
    );
    path
}

/// A reference gate built from `gates/NAME`.
pub fn gate(name: &str) -> PathBuf {
    built("gates", name)
}

/// A hostile fixture gate built from `tests/gates/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    built("fixtures", name)
}

/// The sha256 of a file, lowercase hex.
pub fn digest(path: &Path) -> String {
    postgate::engine::sha256_hex(&std::fs::read(path).unwrap())
}

/// The example request every reference gate allows.
pub fn allow_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("examples/allow.json")).unwrap()).unwrap()
}

/// The example request with a JSON merge patch applied.
pub fn request_with(patch: serde_json::Value) -> GateRequest {
    let mut request = allow_json();
    json_patch::merge(&mut request, &patch);
    GateRequest::from_json(&request.to_string()).unwrap()
}

/// A runtime with its own cache directory.
pub fn runtime(cache: &Path) -> Runtime {
    Runtime::new(&RuntimeOptions {
        cache_dir: Some(cache.to_owned()),
    })
    .unwrap()
}

/// One `[[gate]]` of a policy written by a test.
pub struct GateEntry {
    /// The gate's name.
    pub name: String,
    /// Its component.
    pub component: PathBuf,
    /// Extra TOML lines (config, limits, on_error, a different sha256).
    pub extra: String,
}

impl GateEntry {
    /// A gate pinned to its component's digest.
    pub fn new(name: &str, component: PathBuf) -> Self {
        Self {
            name: name.into(),
            component,
            extra: String::new(),
        }
    }

    /// Adds TOML lines to the gate's table.
    pub fn with(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self.extra.push('\n');
        self
    }
}

/// The five reference gates as the default policy chains them.
pub fn reference_gates() -> Vec<GateEntry> {
    vec![
        GateEntry::new("approval", gate("approval")),
        GateEntry::new("provider-review", gate("provider-review")),
        GateEntry::new("destination", gate("destination")).with(r#"config = { providers = ["x", "bluesky", "sandbox"] }"#),
        GateEntry::new("credit", gate("credit")).with("config = { price_cents = 4 }"),
        GateEntry::new("flags", gate("flags")),
    ]
}

/// Writes a policy named `name` to `dir/name.toml`, pinning each component unless its extra lines set `sha256`.
pub fn write_policy(dir: &Path, name: &str, gates: &[GateEntry]) -> PathBuf {
    let mut text = format!("version = 1\nname = \"{name}\"\n");
    for gate in gates {
        text.push_str(&format!(
            "\n[[gate]]\nname = \"{}\"\ncomponent = {:?}\n",
            gate.name,
            gate.component.display().to_string()
        ));
        if !gate.extra.contains("sha256") {
            let pin = std::fs::read(&gate.component)
                .map(|b| postgate::engine::sha256_hex(&b))
                .unwrap_or_else(|_| "0".repeat(64));
            text.push_str(&format!("sha256 = \"{pin}\"\n"));
        }
        text.push_str(&gate.extra);
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The `postgate` binary, run from the repository root with a private data directory.
pub fn postgate(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postgate"));
    command
        .current_dir(root())
        .env("POSTGATE_DATA_DIR", data_dir)
        .env_remove("POSTGATE_POLICY");
    command
}

/// Runs a command to completion with no stdin.
pub fn run(command: &mut Command) -> Output {
    command.stdin(std::process::Stdio::null()).output().unwrap()
}

/// A command's stdout, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running `postgate serve` on an ephemeral port, killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
    /// Its operator token.
    pub operator: String,
    /// The database it runs on.
    pub database_url: String,
    /// Every response so far: status, headers and body, as text.
    pub transcript: Mutex<String>,
    agent: ureq::Agent,
}

impl Server {
    /// Starts the server on `policy`, its data in `data_dir`, on SQLite unless `database_url` says otherwise.
    pub fn start(data_dir: &Path, policy: &Path, database_url: Option<&str>) -> Self {
        let operator = postgate::auth::mint(postgate::auth::TokenKind::Operator).secret;
        let mut command = postgate(data_dir);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--policy"])
            .arg(policy)
            .env("POSTGATE_OPERATOR_TOKEN", &operator)
            .env_remove("DATABASE_URL");
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command
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
        let base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line `{first}`: {}", log.lock().unwrap()))
            .to_owned();
        // A fresh connection per call: the server may close one whose request
        // body it refused unread (401/403 before the body), as HTTP allows.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .build()
            .into();
        let database_url = database_url.map_or_else(|| format!("sqlite://{}", data_dir.join("postgate.db").display()), str::to_owned);
        Self {
            child,
            base,
            log,
            operator,
            database_url,
            transcript: Mutex::new(String::new()),
            agent,
        }
    }

    /// GETs `path` as the operator and reads JSON, failing on any error status.
    pub fn get(&self, path: &str) -> Value {
        let (status, body, _) = self.call("GET", path, Some(&self.operator), None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Calls the API: status, JSON body (Null when not JSON) and content type.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value, String) {
        let raw = body.map(|b| b.to_string());
        self.raw(method, path, token, raw.as_deref().map(str::as_bytes), "application/json")
    }

    /// Calls the API with a raw body and content type.
    pub fn raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>, content_type: &str) -> (u16, Value, String) {
        self.send(method, path, token, body, content_type, &[])
    }

    /// Posts a form as a browser would, with extra headers (a session cookie, say).
    pub fn post_form(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value, String) {
        self.send(
            "POST",
            path,
            None,
            Some(body.as_bytes()),
            "application/x-www-form-urlencoded",
            headers,
        )
    }

    /// Calls the API with a JSON body and extra headers.
    pub fn raw_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, String) {
        self.send(method, path, token, body, "application/json", headers)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value, String) {
        self.try_send(method, path, token, body, content_type, headers).unwrap()
    }

    /// Calls the API with a JSON body and extra headers; `None` when no answer came (the server died).
    pub fn try_call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let raw = body.to_string();
        self.try_send(method, path, token, Some(raw.as_bytes()), "application/json", headers)
            .ok()
            .map(|(status, body, _)| (status, body))
    }

    fn try_send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value, String), ureq::Error> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = match body {
            Some(body) => self
                .agent
                .run(request.header("Content-Type", content_type).body(body.to_vec()).unwrap()),
            None => self.agent.run(request.body(()).unwrap()),
        };
        let mut response = response?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let mut transcript = self.transcript.lock().unwrap();
        transcript.push_str(&format!("{method} {path} -> {status}\n{:?}\n{text}\n", response.headers()));
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null), content_type))
    }

    /// Sends a signal by name, e.g. `HUP`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the log holds `text` `times` times, failing after 30 s.
    pub fn await_log(&self, text: &str, times: usize) {
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

/// The string `field` of every item of the JSON array `items`, in order.
pub fn texts<'a>(items: &'a Value, field: &str) -> Vec<&'a str> {
    items.as_array().unwrap().iter().map(|item| item[field].as_str().unwrap()).collect()
}
