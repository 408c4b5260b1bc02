//! Money and the decision log under the hard cases: a policy swapped while
//! publications run, two host processes on one PostgreSQL database, and a
//! server killed mid-burst.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::each_backend_in;
use crate::fixtures::{FreshPostgres, ready, set_mode};
use crate::support::{GateEntry, Server, gate, reference_gates, write_policy};

/// Every item of a paginated list, following `next_cursor`.
fn all(server: &Server, token: &str, path: &str, field: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page, _) = server.call("GET", &format!("{path}?limit=200{after}"), Some(token), None);
        assert_eq!(status, 200, "{page}");
        items.extend(page[field].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => return items,
        }
    }
}

/// Publishes `body` from `threads` threads with fresh idempotency keys until
/// `stop` is set or the server stops answering: the statuses answered.
fn burst(server: &Server, token: &str, body: &Value, threads: usize, stop: &AtomicBool) -> Vec<u16> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut statuses = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("burst-{}", next.fetch_add(1, Ordering::Relaxed));
                        match server.try_call_with("POST", "/v1/publications", Some(token), body, &[("Idempotency-Key", &key)]) {
                            Some((status, _)) => statuses.push(status),
                            None => break,
                        }
                    }
                    statuses
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    })
}

/// The workspace's books balance: the ledger sums to the balance, every
/// charge belongs to an allowed publication decision and every such
/// decision to one charge, and the decision chains verify.
fn assert_consistent(server: &Server, ws: &str, customer: &str) {
    let ledger = all(server, customer, &format!("/v1/workspaces/{ws}/ledger"), "entries");
    let (_, balance, _) = server.call("GET", &format!("/v1/workspaces/{ws}/balance"), Some(customer), None);
    let sum: i64 = ledger.iter().map(|e| e["amount_cents"].as_i64().unwrap()).sum();
    assert_eq!(sum, balance["balance_cents"].as_i64().unwrap(), "the ledger sums to the balance");
    let charges = ledger.iter().filter(|e| e["kind"] == "charge").count();
    let decisions = all(server, customer, "/v1/decisions", "decisions");
    let charged: Vec<&Value> = decisions.iter().filter(|d| d["charge_cents"].as_i64().unwrap() > 0).collect();
    assert!(charged.iter().all(|d| d["outcome"] == "allow" && d["kind"] == "publication"));
    assert_eq!(charges, charged.len(), "one charge per allowed publication, no more, no fewer");
    let report = server.get("/v1/decisions/verify");
    assert_eq!(report["broken"], json!([]), "{report}");
}

/// The price the credit gate saw, from a decision's recorded gate results.
fn credit_price(decision: &Value) -> String {
    let gates: Value = serde_json::from_str(decision["gates"].as_str().unwrap()).unwrap();
    let credit = gates.as_array().unwrap().iter().find(|g| g["gate"] == "credit").unwrap();
    credit["evidence"]["price_cents"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_policy_swapped_mid_burst_never_mixes_within_a_publication() {
    let mut dear = reference_gates();
    dear[3] = GateEntry::new("credit", gate("credit")).with("config = { price_cents = 5 }");
    each_backend_in(|server, dir| {
        let policy = dir.join("api.toml");
        let cheap_text = std::fs::read_to_string(&policy).unwrap();
        let (ws, customer, body) = ready(server, 1_000_000);
        set_mode(server, "live");
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let publishing = scope.spawn(|| burst(server, &customer, &body, 4, &stop));
            std::thread::sleep(Duration::from_millis(300));
            write_policy(dir, "api", &dear);
            server.signal("HUP");
            server.await_log("policy swapped", 1);
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
            let statuses = publishing.join().unwrap();
            assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
        });
        std::fs::write(&policy, cheap_text).unwrap();

        // Each revision ran one credit gate, and charged its price.
        let mut price_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for decision in all(server, &customer, "/v1/decisions", "decisions") {
            let price = credit_price(&decision);
            assert_eq!(decision["charge_cents"].as_i64().unwrap().to_string(), price, "{decision}");
            let gates: Value = serde_json::from_str(decision["gates"].as_str().unwrap()).unwrap();
            assert_eq!(gates.as_array().unwrap().len(), 5, "{decision}");
            price_of
                .entry(decision["revision"].as_str().unwrap().to_owned())
                .or_default()
                .insert(price);
        }
        let prices: Vec<&BTreeSet<String>> = price_of.values().collect();
        assert_eq!(prices.len(), 2, "both policies decided: {price_of:?}");
        assert!(prices.iter().all(|p| p.len() == 1), "no revision mixed two prices: {price_of:?}");
        assert_consistent(server, &ws, &customer);
        set_mode(server, "preview");
    });
}

#[test]
fn two_processes_on_one_postgres_charge_exactly_the_balance() {
    let Ok(base) = std::env::var("POSTGATE_TEST_POSTGRES_URL") else {
        eprintln!("POSTGATE_TEST_POSTGRES_URL is not set: two processes need a shared PostgreSQL database");
        return;
    };
    const K: usize = 25;
    let database = FreshPostgres::create(&base);
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "api", &reference_gates());
    // One data directory: both processes seal and open destination tokens with its key.
    let first = Server::start(dir.path(), &policy, Some(&database.url));
    let second = Server::start(dir.path(), &policy, Some(&database.url));
    let (ws, customer, body) = ready(&first, 4 * K as i64);
    set_mode(&first, "live");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4 * K)
            .map(|i| {
                let (server, customer, body) = (if i % 2 == 0 { &first } else { &second }, &customer, &body);
                scope.spawn(move || {
                    let key = format!("race-{i}");
                    server
                        .try_call_with("POST", "/v1/publications", Some(customer), body, &[("Idempotency-Key", &key)])
                        .unwrap()
                        .0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), K, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 3 * K, "{statuses:?}");
    for server in [&first, &second] {
        let (_, balance, _) = server.call("GET", &format!("/v1/workspaces/{ws}/balance"), Some(&customer), None);
        assert_eq!(balance["balance_cents"], 0);
    }
    assert_consistent(&second, &ws, &customer);
    // Both processes' workers deliver, and each publication goes out once.
    let outbox = dir.path().join("sandbox-outbox");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&outbox).map_or(0, Iterator::count) < K {
        assert!(std::time::Instant::now() < deadline, "not all {K} publications were delivered");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), K);
    let delivered = [&first, &second]
        .iter()
        .map(|s| s.log.lock().unwrap().matches(" delivered publication=").count())
        .sum::<usize>();
    assert_eq!(delivered, K, "each publication was handed to the provider once");
    set_mode(&first, "preview");
}

#[test]
fn a_server_killed_mid_burst_restarts_with_consistent_books() {
    each_backend_in(|server, dir| {
        let (ws, customer, body) = ready(server, 1_000_000);
        set_mode(server, "live");
        let stop = AtomicBool::new(false);
        let answered = std::thread::scope(|scope| {
            let publishing = scope.spawn(|| burst(server, &customer, &body, 8, &stop));
            std::thread::sleep(Duration::from_millis(400));
            server.signal("KILL");
            publishing.join().unwrap()
        });
        assert!(answered.iter().all(|s| *s == 201), "{answered:?}");
        assert!(!answered.is_empty(), "the burst was under way when the server died");
        let restarted = Server::start(dir, &dir.join("api.toml"), Some(&server.database_url));
        restarted.await_log("database ready", 1);
        assert_consistent(&restarted, &ws, &customer);
        let charged = all(&restarted, &customer, &format!("/v1/workspaces/{ws}/ledger"), "entries")
            .iter()
            .filter(|e| e["kind"] == "charge")
            .count();
        assert!(
            charged >= answered.len(),
            "every answered publication survived: {charged} < {}",
            answered.len()
        );
        set_mode(&restarted, "preview");
    });
}
