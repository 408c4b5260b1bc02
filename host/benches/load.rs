//! Load benchmark: drives `POST /v1/publications` on a real `postgate serve`
//! over loopback and reports allowed publications/s, latency, and where a
//! request's time goes.
//!
//! `./dev load [--backend sqlite|postgres] [--requests N] [--concurrency C]
//! [--seconds S] [--history N]`. PostgreSQL is the server named by
//! `POSTGATE_TEST_POSTGRES_URL` (a fresh database is made on it). With
//! `--history N`, N earlier allowed publications (decisions, ledger rows,
//! publications, idempotency keys) are written to the store first, so the
//! figures show whether cost grows with history. Every request is a distinct
//! allowed publication; afterwards the balance, the decision count and the
//! decision chains are checked, so a fast but lossy run fails.
#![expect(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark fails by panicking")]

#[path = "../../tests/e2e/support.rs"]
#[allow(dead_code, reason = "the benchmark uses part of the tests' helpers")]
mod support;

#[path = "../../tests/e2e/fixtures.rs"]
#[allow(dead_code, reason = "the benchmark uses part of the tests' fixtures")]
mod fixtures;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use fixtures::{FreshPostgres, ready, set_mode};
use support::{Server, root};

/// API keys the load is spread over (each may do 1,000 requests/s).
const KEYS: usize = 8;
/// The price of one publication in the default policy.
const PRICE_CENTS: i64 = 4;

struct Options {
    backend: String,
    requests: usize,
    concurrency: usize,
    seconds: u64,
    history: usize,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            backend: "sqlite".into(),
            requests: 30_000,
            concurrency: 16,
            seconds: 20,
            history: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            match arg.as_str() {
                "--backend" => options.backend = value(),
                "--requests" => options.requests = value().parse().expect("--requests takes a number"),
                "--concurrency" => options.concurrency = value().parse().expect("--concurrency takes a number"),
                "--seconds" => options.seconds = value().parse().expect("--seconds takes a number"),
                "--history" => options.history = value().parse().expect("--history takes a number"),
                // `cargo bench` passes `--bench`.
                "--bench" => {}
                other => panic!("unknown argument `{other}`"),
            }
        }
        options
    }
}

fn main() {
    let options = Options::parse();
    let dir = tempfile::tempdir().unwrap();
    let postgres = match options.backend.as_str() {
        "sqlite" => None,
        "postgres" => Some(FreshPostgres::create(
            &std::env::var("POSTGATE_TEST_POSTGRES_URL").expect("--backend postgres needs POSTGATE_TEST_POSTGRES_URL"),
        )),
        other => panic!("--backend takes sqlite or postgres, not `{other}`"),
    };
    let policy = root().join("policies/default.toml");
    let server = Server::start(dir.path(), &policy, postgres.as_ref().map(|p| p.url.as_str()));
    let cents = i64::try_from(options.requests).unwrap() * PRICE_CENTS + 500 * KEYS as i64;
    let (ws, customer, body) = ready(&server, cents.min(10_000_000));
    let mut funded = cents.min(10_000_000);
    while funded < cents {
        let amount = (cents - funded).min(10_000_000);
        let (status, answer, _) = server.call(
            "POST",
            &format!("/v1/workspaces/{ws}/credits"),
            Some(&server.operator),
            Some(json!({"amount_cents": amount, "reference": format!("funding-{funded}")})),
        );
        assert_eq!(status, 201, "{answer}");
        funded += amount;
    }
    let keys: Vec<String> = (0..KEYS)
        .map(|i| {
            let (status, key, _) = server.call(
                "POST",
                "/v1/api-keys",
                Some(&customer),
                Some(json!({"label": format!("load-{i}"), "scopes": ["publish:request"], "rate_limit_per_minute": 60_000})),
            );
            assert_eq!(status, 201, "{key}");
            key["secret"].as_str().unwrap().to_owned()
        })
        .collect();
    if options.history > 0 {
        let started = Instant::now();
        history::seed(&server, options.history);
        println!("seeded {} earlier publications in {:.1?}", options.history, started.elapsed());
    }
    set_mode(&server, "live");
    let before = balance(&server, &ws, &customer);
    let metrics_before = phases(&server);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let report = runtime.block_on(drive(&server.base, &keys, body.to_string(), &options));

    let metrics_after = phases(&server);
    let after = balance(&server, &ws, &customer);
    let allowed = report.statuses.get(&201).copied().unwrap_or(0);
    println!(
        "postgate load benchmark: POST /v1/publications, {} backend{}, {} connections, {} cores",
        options.backend,
        if options.history > 0 {
            format!(", {} earlier publications", options.history)
        } else {
            String::new()
        },
        options.concurrency,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    println!("  requests          {}  ({:?} by status)", report.latencies.len(), report.statuses);
    println!("  elapsed           {:.2?}", report.elapsed);
    println!("  allowed/s         {:.0}", allowed as f64 / report.elapsed.as_secs_f64());
    println!("  latency p50       {:.2?}", percentile(&report.latencies, 0.50));
    println!("  latency p99       {:.2?}", percentile(&report.latencies, 0.99));
    println!("  latency max       {:.2?}", report.latencies.last().copied().unwrap_or_default());
    println!("  mean time per request, by phase (server side):");
    for (phase, (sum, count)) in &metrics_after {
        let (sum_before, count_before) = metrics_before.get(phase).copied().unwrap_or_default();
        let n = count - count_before;
        if n > 0.0 {
            println!("    {phase:<12} {:>9.1} us", (sum - sum_before) / n * 1e6);
        }
    }

    // Fast is worthless if lossy: every allow charged once and on record.
    assert_eq!(
        before - after,
        i64::try_from(allowed).unwrap() * PRICE_CENTS,
        "balance moved by the allowed charges"
    );
    let report = server.get("/v1/decisions/verify");
    assert_eq!(report["broken"], json!([]), "decision chains verify: {report}");
    println!(
        "  checked: balance {before} -> {after} cents ({allowed} charges of {PRICE_CENTS}), {} decisions in verified chains",
        report["decisions"]
    );
    drop(server);
    drop(postgres);
}

struct Report {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    elapsed: Duration,
}

/// Sends up to `requests` publications from `concurrency` connections, stopping at `seconds`.
async fn drive(base: &str, keys: &[String], body: String, options: &Options) -> Report {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(options.concurrency)
        .build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let uri: hyper::Uri = format!("{base}/v1/publications").parse().unwrap();
    let body = Bytes::from(body);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let run = std::process::id();
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let (client, next, uri, body) = (client.clone(), Arc::clone(&next), uri.clone(), body.clone());
            let keys = keys.to_vec();
            let requests = options.requests;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses = BTreeMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests || Instant::now() >= deadline {
                        break;
                    }
                    let request = hyper::Request::post(uri.clone())
                        .header("authorization", format!("Bearer {}", keys[i % keys.len()]))
                        .header("content-type", "application/json")
                        .header("idempotency-key", format!("load-{run}-{i}"))
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let sent = Instant::now();
                    let response = client.request(request).await.expect("the server answers");
                    let status = response.status().as_u16();
                    let answer = response.into_body().collect().await.expect("the body arrives").to_bytes();
                    latencies.push(sent.elapsed());
                    assert_eq!(status, 201, "every request should be allowed: {}", String::from_utf8_lossy(&answer));
                    *statuses.entry(status).or_insert(0) += 1;
                }
                (latencies, statuses)
            })
        })
        .collect();
    let mut report = Report {
        latencies: Vec::new(),
        statuses: BTreeMap::new(),
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        let (latencies, statuses) = worker.await.unwrap();
        report.latencies.extend(latencies);
        for (status, n) in statuses {
            *report.statuses.entry(status).or_insert(0) += n;
        }
    }
    report.elapsed = started.elapsed();
    report.latencies.sort_unstable();
    report
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn balance(server: &Server, ws: &str, token: &str) -> i64 {
    server.call("GET", &format!("/v1/workspaces/{ws}/balance"), Some(token), None).1["balance_cents"]
        .as_i64()
        .unwrap()
}

/// The publication route's time by phase, and in total, from `/metrics`: name -> (seconds summed, count).
fn phases(server: &Server) -> BTreeMap<String, (f64, f64)> {
    let text = ureq::get(format!("{}/metrics", server.base))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let mut phases: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines().filter(|line| line.contains("route=\"/v1/publications\"")) {
        let (name, rest) = if let Some(rest) = line.strip_prefix("postgate_phase_duration_seconds_") {
            let Some(phase) = rest.split("phase=\"").nth(1).and_then(|p| p.split('"').next()) else {
                continue;
            };
            (phase.to_owned(), rest)
        } else if let Some(rest) = line.strip_prefix("postgate_http_request_duration_seconds_") {
            ("total".to_owned(), rest)
        } else {
            continue;
        };
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let entry = phases.entry(name).or_default();
        if rest.starts_with("sum") {
            entry.0 = value;
        } else if rest.starts_with("count") {
            entry.1 = value;
        }
    }
    phases
}

/// Earlier history, written straight into the store: a workspace of its own
/// with `n` allowed publications, each with its decision (in a valid hash
/// chain), its ledger charge, its publication row and its idempotency key.
mod history {
    use postgate::store::{DecisionRecord, new_id};
    use serde_json::Value;

    use crate::fixtures::{ready, set_mode};
    use crate::support::Server;

    /// Rows per INSERT statement.
    const BATCH: usize = 500;

    pub fn seed(server: &Server, n: usize) {
        // One real decision gives the rows their realistic content.
        let (ws, customer, body) = ready(server, 500);
        set_mode(server, "live");
        let (status, sample, _) = server.call("POST", "/v1/decisions/dry-run", Some(&customer), Some(body.clone()));
        assert_eq!(status, 200, "{sample}");
        set_mode(server, "preview");
        let draft = body["draft_id"].as_str().unwrap();
        let destination = body["destination_id"].as_str().unwrap();
        let text = |v: &Value| v.as_str().unwrap().to_owned();
        let mut prev_hash = text(&sample["hash"]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let url = server.database_url.clone();
        let mut statements = Vec::new();
        let mut done = 0;
        while done < n {
            let rows = BATCH.min(n - done);
            let (mut decisions, mut ledger, mut publications, mut keys) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for i in done..done + rows {
                let mut record = DecisionRecord {
                    seq: 0,
                    id: new_id("dec"),
                    workspace_id: ws.clone(),
                    kind: "publication".into(),
                    key_id: None,
                    draft_id: draft.to_owned(),
                    destination_id: destination.to_owned(),
                    request_digest: text(&sample["request_digest"]),
                    request: None,
                    policy: text(&sample["policy"]),
                    revision: text(&sample["revision"]),
                    outcome: "allow".into(),
                    gates: text(&sample["gates"]),
                    charge_cents: 4,
                    created_at: text(&sample["created_at"]),
                    prev_hash: prev_hash.clone(),
                    hash: String::new(),
                };
                record.hash = record.expected_hash();
                prev_hash = record.hash.clone();
                let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
                let publication = new_id("pub");
                decisions.push(format!(
                    "({}, {}, 'publication', NULL, {}, {}, {}, {}, {}, 'allow', {}, 4, {}, {}, {})",
                    q(&record.id),
                    q(&ws),
                    q(draft),
                    q(destination),
                    q(&record.request_digest),
                    q(&record.policy),
                    q(&record.revision),
                    q(&record.gates),
                    q(&record.created_at),
                    q(&record.prev_hash),
                    q(&record.hash)
                ));
                ledger.push(format!(
                    "({}, {}, 'charge', -4, 0, {}, {})",
                    q(&new_id("led")),
                    q(&ws),
                    q(&format!("publication:{publication}")),
                    q(&record.created_at)
                ));
                publications.push(format!(
                    "({}, {}, {}, {}, {}, 'delivered', 4, {})",
                    q(&publication),
                    q(&ws),
                    q(draft),
                    q(destination),
                    q(&record.id),
                    q(&record.created_at)
                ));
                keys.push(format!(
                    "({}, {}, 'seed', {}, {})",
                    q(&ws),
                    q(&format!("history-{i}")),
                    q(&record.id),
                    q(&record.created_at)
                ));
            }
            statements.push(format!(
                "INSERT INTO decisions (id, workspace_id, kind, key_id, draft_id, destination_id, request_digest, policy, revision, outcome, gates, charge_cents, created_at, prev_hash, hash) VALUES {};\n\
                 INSERT INTO ledger (id, workspace_id, kind, amount_cents, balance_after_cents, reference, created_at) VALUES {};\n\
                 INSERT INTO publications (id, workspace_id, draft_id, destination_id, decision_id, state, charge_cents, created_at) VALUES {};\n\
                 INSERT INTO idempotency (workspace_id, key, fingerprint, decision_id, created_at) VALUES {};",
                decisions.join(","),
                ledger.join(","),
                publications.join(","),
                keys.join(",")
            ));
            done += rows;
            if statements.len() == 20 || done == n {
                runtime.block_on(execute(&url, &format!("BEGIN;\n{}\nCOMMIT;", statements.join("\n"))));
                statements.clear();
            }
        }
        // Measure the steady state: the seed's WAL folded into the database, and fresh planner statistics.
        let settle = if url.starts_with("postgres") {
            "ANALYZE"
        } else {
            "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE"
        };
        runtime.block_on(execute(&url, settle));
    }

    /// Runs a script; it holds only generated ids, digests and a recorded decision.
    async fn execute(url: &str, script: &str) {
        let script = sqlx::raw_sql(sqlx::AssertSqlSafe(script.to_owned()));
        if url.starts_with("postgres") {
            let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
            script.execute(&mut connection).await.unwrap();
        } else {
            let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(url).await.unwrap();
            script.execute(&mut connection).await.unwrap();
        }
    }
}
