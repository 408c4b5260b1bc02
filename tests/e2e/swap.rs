//! Swapping the active policy while decisions run: each decision runs wholly
//! on one policy, and a decision in flight finishes on the chain it started on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use postgate::lifecycle::ActivePolicy;
use postgate::model::Outcome;
use serde_json::json;

use crate::support::{GateEntry, gate, reference_gates, request_with, runtime, write_policy};

#[test]
fn decisions_never_mix_two_policies() {
    let dir = tempfile::tempdir().unwrap();
    let cheap = reference_gates();
    let mut dear = reference_gates();
    dear[3] = GateEntry::new("credit", gate("credit")).with("config = { price_cents = 10 }");
    let path = write_policy(dir.path(), "swapped", &dear);
    let dear_text = std::fs::read_to_string(&path).unwrap();
    write_policy(dir.path(), "swapped", &cheap);
    let cheap_text = std::fs::read_to_string(&path).unwrap();

    let active = Arc::new(ActivePolicy::load(runtime(&dir.path().join("cache")), path.clone()));
    let cheap_revision = active.current().revision().to_owned();

    // Held across the swap below: it must still decide on the cheap policy.
    let in_flight = active.current();
    std::fs::write(&path, &dear_text).unwrap();
    let dear_revision = active.install(1, active.read_file().unwrap().1).unwrap().revision().to_owned();
    assert_ne!(cheap_revision, dear_revision);
    let request = request_with(json!({"account": {"balance_cents": 5}}));
    let decision = in_flight.evaluate(&request);
    assert_eq!(
        (decision.revision.as_str(), decision.outcome),
        (cheap_revision.as_str(), Outcome::Allow)
    );
    assert_eq!(active.current().evaluate(&request).outcome, Outcome::Deny);

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (active, stop, request) = (Arc::clone(&active), Arc::clone(&stop), request.clone());
            let (cheap_revision, dear_revision) = (cheap_revision.clone(), dear_revision.clone());
            std::thread::spawn(move || {
                let mut seen = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let decision = active.current().evaluate(&request);
                    let price = decision.gates[3]
                        .evidence
                        .iter()
                        .find(|(k, _)| k == "price_cents")
                        .map(|(_, v)| v.clone());
                    if decision.revision == cheap_revision {
                        assert_eq!((price.as_deref(), decision.outcome), (Some("4"), Outcome::Allow), "{decision:#?}");
                        seen.0 += 1;
                    } else {
                        assert_eq!(decision.revision, dear_revision);
                        assert_eq!((price.as_deref(), decision.outcome), (Some("10"), Outcome::Deny), "{decision:#?}");
                        seen.1 += 1;
                    }
                }
                seen
            })
        })
        .collect();
    for round in 0..20 {
        std::fs::write(&path, if round % 2 == 0 { &cheap_text } else { &dear_text }).unwrap();
        // Each swap is a newer activation than the last.
        active.install(round + 2, active.read_file().unwrap().1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let (cheap, dear) = worker.join().unwrap();
        assert!(cheap + dear > 0, "the worker decided");
    }
}
