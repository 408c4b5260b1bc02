//! The web console in a real browser: headless Chromium driven over
//! WebDriver (chromedriver) by fantoccini, against the real server.
//!
//! `./dev test` installs Debian's `chromium` and `chromium-driver` when they
//! are missing. Screenshots are saved under `target/artifacts/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::fixtures::{approved_destination, publish, set_mode, workspace};
use crate::lifecycle::{new_version, reviewer};
use crate::support::{Server, gate, reference_gates, root, write_policy};

/// A chromedriver process, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start chromedriver ({err}): `./dev test` installs Debian's chromium-driver"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `scenario` in a fresh headless Chromium session.
fn in_browser<F: AsyncFnOnce(&Client)>(scenario: F) {
    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"]}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap();
        scenario(&client).await;
        client.close().await.unwrap();
    });
}

/// Saves a screenshot of the page as `target/artifacts/NAME.png`: its path.
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = root().join("target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

async fn sign_in(client: &Client, server: &Server, token: &str) {
    client.goto(&format!("{}/console", server.base)).await.unwrap();
    type_into(client, "token", token).await;
    click(client, "Sign in").await;
    await_element(client, "//button[text()='Sign out']").await;
}

/// Clicks the button labelled `label`.
async fn click(client: &Client, label: &str) {
    let button = client.find(Locator::XPath(&format!("//button[text()='{label}']"))).await.unwrap();
    button.click().await.unwrap();
}

/// Types `text` into the field with id `id`.
async fn type_into(client: &Client, id: &str, text: &str) {
    client.find(Locator::Id(id)).await.unwrap().send_keys(text).await.unwrap();
}

/// Waits for an element matching `xpath`: the page after a form was sent.
async fn await_element(client: &Client, xpath: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap()
}

async fn heading(client: &Client) -> String {
    client.find(Locator::Css("h1")).await.unwrap().text().await.unwrap()
}

#[test]
fn a_customer_approves_a_draft_in_the_console_and_the_next_publication_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "console", &reference_gates());
    let server = Server::start(dir.path(), &policy, None);
    let (ws, customer) = workspace(&server, "Console customer");
    server.call(
        "POST",
        &format!("/v1/workspaces/{ws}/credits"),
        Some(&server.operator),
        Some(json!({"amount_cents": 600, "reference": "funding"})),
    );
    let destination = approved_destination(&server, &customer);
    let (_, draft, _) = server.call(
        "POST",
        "/v1/drafts",
        Some(&customer),
        Some(json!({"text": "Hello from the console <b>not bold</b>"})),
    );
    let draft = draft["id"].as_str().unwrap().to_owned();
    server.call("POST", &format!("/v1/drafts/{draft}/submit"), Some(&customer), None);
    set_mode(&server, "live");
    let body = json!({"draft_id": draft, "destination_id": destination});
    let (status, waiting, _) = publish(&server, &customer, "before", &body);
    assert_eq!((status, &waiting["decision"]["outcome"]), (202, &json!("pending")), "{waiting}");

    in_browser(async |client| {
        sign_in(client, &server, &customer).await;
        assert_eq!(heading(client).await, "Approval queue");
        let cookie = client.get_named_cookie("postgate_session").await.unwrap();
        assert_eq!(cookie.http_only(), Some(true), "scripts never read the session");
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)", "other sites never send it");
        let page = client.source().await.unwrap();
        assert!(page.contains("Preview for sandbox"), "the sandbox preview is rendered");
        assert!(page.contains("&lt;b&gt;not bold&lt;/b&gt;"), "draft text is escaped, never markup");
        screenshot(client, "console-approval-queue").await;
        click(client, "Approve").await;
        await_element(client, "//p[text()='Nothing waits for your approval.']").await;
        client.goto(&format!("{}/console/keys", server.base)).await.unwrap();
        type_into(client, "label", "from the console").await;
        client
            .find(Locator::Css("input[value='drafts:read']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        click(client, "Create key").await;
        let secret = await_element(client, "//*[@data-testid='new-key-secret']")
            .await
            .text()
            .await
            .unwrap();
        assert!(secret.starts_with("pgk_"), "{secret}");
        client.goto(&format!("{}/console/keys", server.base)).await.unwrap();
        let listed = client.source().await.unwrap();
        assert!(
            listed.contains("from the console") && listed.contains(&secret[..8]),
            "the key is listed by its prefix"
        );
        assert!(!listed.contains(&secret), "the secret is shown once");
        client.goto(&format!("{}/console/account", server.base)).await.unwrap();
        assert!(client.source().await.unwrap().contains("$6.00"), "the balance is shown");
    });

    let (status, published, _) = publish(&server, &customer, "after", &body);
    assert_eq!((status, &published["decision"]["outcome"]), (201, &json!("allow")), "{published}");
    let (_, keys, _) = server.call("GET", "/v1/api-keys", Some(&customer), None);
    assert_eq!(keys["items"][0]["label"], "from the console");
}

#[test]
fn a_reviewer_signs_off_in_the_console_and_the_strict_mode_revision_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "console", &reference_gates());
    let server = Server::start(dir.path(), &policy, None);
    let v2 = new_version(&gate("credit"), "console");
    let v2_digest = postgate::engine::sha256_hex(&v2);
    let active = server.get("/v1/policy");
    let manifest = active["revision"]["manifest"]
        .as_str()
        .unwrap()
        .replace(&crate::support::digest(&gate("credit")), &v2_digest);
    let upload = json!({
        "manifest": manifest,
        "components": [base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &v2)],
        "note": "credit v2",
    });
    let (status, refused, _) = server.call("PUT", "/v1/policy", Some(&server.operator), Some(upload.clone()));
    assert_eq!(status, 409, "{refused}");
    let bob = reviewer(&server, "Bob");
    for missing in refused["missing"].as_array().unwrap().iter().filter(|m| m["digest"] != v2_digest) {
        let path = format!("/v1/gates/{}/sign-off", missing["digest"].as_str().unwrap());
        assert_eq!(server.call("POST", &path, Some(&bob), Some(json!({"note": "unchanged"}))).0, 201);
    }
    let (status, still, _) = server.call("PUT", "/v1/policy", Some(&server.operator), Some(upload.clone()));
    assert_eq!((status, still["missing"].as_array().unwrap().len()), (409, 1), "{still}");

    let alice = reviewer(&server, "Alice");
    in_browser(async |client| {
        sign_in(client, &server, &alice).await;
        assert_eq!(heading(client).await, "Active chain");
        client.goto(&format!("{}/console/gates/{v2_digest}", server.base)).await.unwrap();
        assert_eq!(heading(client).await, "Gate credit");
        let shown = client
            .find(Locator::Css("[data-testid=digest]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(shown, v2_digest);
        assert!(
            client.source().await.unwrap().contains("world safety-gate"),
            "the WIT contract is shown"
        );
        type_into(client, "note", "compared with v1: same code, new version section").await;
        click(client, "Sign off").await;
        await_element(client, "//li[contains(., 'same code, new version section')]").await;
        screenshot(client, "console-gate-sign-off").await;
    });

    let (status, accepted, _) = server.call("PUT", "/v1/policy", Some(&server.operator), Some(upload));
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(server.get("/readyz")["revision"], accepted["id"]);

    in_browser(async |client| {
        sign_in(client, &server, &alice).await;
        client.goto(&format!("{}/console/revisions", server.base)).await.unwrap();
        let page = client.source().await.unwrap();
        assert!(page.contains(&format!("+ sha256 = \"{v2_digest}\"")), "the diff shows the new pin");
        assert!(page.contains("credit v2"), "and the operator's note");
        screenshot(client, "console-revisions").await;
    });
}

#[test]
fn console_forms_refuse_a_foreign_csrf_token_and_keys_cannot_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "console", &reference_gates());
    let server = Server::start(dir.path(), &policy, None);
    let (_, customer) = workspace(&server, "Forged");
    let cookie = format!("postgate_session={customer}");
    let (status, _, _) = server.post_form(
        "/console/keys",
        &[("Cookie", &cookie)],
        "csrf=0000&label=forged&scope=drafts%3Aread",
    );
    assert_eq!(status, 403, "a form not served to the session changes nothing");
    let (_, keys, _) = server.call("GET", "/v1/api-keys", Some(&customer), None);
    assert_eq!(keys["items"], json!([]));
    for token in [server.operator.clone(), "pgk_not_a_key".into()] {
        let (status, _, _) = server.post_form("/console/session", &[], &format!("token={token}"));
        assert!(status == 401 || status == 403, "{status}");
    }
    let (status, _, _) = server.post_form(
        "/console/session",
        &[("Sec-Fetch-Site", "cross-site")],
        &format!("token={customer}"),
    );
    assert_eq!(status, 403, "another site cannot sign this browser in");
}
