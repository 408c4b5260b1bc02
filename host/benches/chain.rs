//! The gate-chain benchmark: one run prints per-decision latency of the
//! five-gate chain (a fresh instance per gate per decision), the same five
//! checks as native Rust, their ratio, cold compile and warm cache load per
//! gate, a restart's policy load, throughput on one and two threads, and what
//! a hostile gate costs.
//!
//! Run it with `./dev bench` (it builds the gates first), or
//! `cargo bench -p postgate --bench chain` once they are built.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgate::engine::{Chain, Runtime, RuntimeOptions};
use postgate::model::{GateRequest, Outcome};
use postgate::policy::Policy;
use postgate_gate_sdk::{ConfigEntry, Gate, Request, Verdict, testing};

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).to_owned();
    let policy = Policy::load(&root.join("policies/default.toml"))?;
    let request = GateRequest::from_json(&std::fs::read_to_string(root.join("examples/allow.json"))?)?;
    let cache = tempfile::tempdir()?;

    println!(
        "postgate gate-chain benchmark ({} samples, {} cores)",
        SAMPLES,
        std::thread::available_parallelism()?.get()
    );
    println!();
    load_times(&policy, cache.path())?;

    let runtime = runtime(cache.path())?;
    let chain = Arc::new(runtime.load(&policy));
    anyhow::ensure!(
        chain.faults().is_empty(),
        "the default policy must load: {:?}",
        chain.faults().first().map(|f| f.1.to_string())
    );
    let decision = chain.evaluate(&request);
    anyhow::ensure!(decision.outcome == Outcome::Allow, "the example request must be allowed");
    let native = native_chain();
    let native_codes: Vec<String> = native.iter().map(|gate| gate(testing::request()).code).collect();
    let wasm_codes: Vec<String> = decision.gates.iter().map(|g| g.code.clone()).collect();
    anyhow::ensure!(
        native_codes == wasm_codes,
        "native {native_codes:?} and wasm {wasm_codes:?} must decide alike"
    );

    let wasm = sample(|| black_box(chain.evaluate(black_box(&request))).outcome);
    let floor = sample(|| {
        let request = testing::request();
        let mut outcomes = [None; 5];
        for (outcome, gate) in outcomes.iter_mut().zip(&native) {
            *outcome = Some(gate(black_box(request.clone())).outcome);
        }
        outcomes
    });
    println!("per decision, one thread         p50        p99");
    println!("  five wasm gates, fresh inst. {:>7.1} us {:>7.1} us", us(wasm.0), us(wasm.1));
    println!("  same checks, native Rust     {:>7.2} us {:>7.2} us", us(floor.0), us(floor.1));
    println!(
        "  ratio wasm / native          {:>7.0} x  {:>7.0} x",
        ratio(wasm.0, floor.0),
        ratio(wasm.1, floor.1)
    );
    per_gate(&chain, &request);
    println!();

    let one = throughput(&chain, &request, 1);
    let two = throughput(&chain, &request, 2);
    println!("throughput (decisions/s over {}s)", THROUGHPUT_WINDOW.as_secs());
    println!("  1 thread   {one:>9.0}");
    println!("  2 threads  {two:>9.0}   ({:.2}x one thread)", two / one);
    println!();

    hostile(&runtime, &root, &chain, &request, cache.path())?;
    Ok(())
}

fn runtime(cache: &Path) -> anyhow::Result<Runtime> {
    Runtime::new(&RuntimeOptions {
        cache_dir: Some(cache.to_owned()),
    })
}

/// Cold compile and warm (cached) load of each gate, and of the whole policy on restart.
fn load_times(policy: &Policy, cache: &Path) -> anyhow::Result<()> {
    println!("load per gate          cold compile   warm from cache");
    let cold = runtime(cache)?;
    let mut cold_total = Duration::ZERO;
    let mut warm_total = Duration::ZERO;
    for spec in &policy.gates {
        let single = Policy {
            gates: vec![spec.clone()],
            ..policy.clone()
        };
        let started = Instant::now();
        drop(cold.load(&single));
        let compile = started.elapsed();
        let warm = runtime(cache)?;
        let started = Instant::now();
        let chain = warm.load(&single);
        let load = started.elapsed();
        anyhow::ensure!(chain.cached_gates() == 1, "gate `{}` must come from the cache", spec.name);
        println!("  {:<18} {:>9.1} ms {:>13.2} ms", spec.name, ms(compile), ms(load));
        cold_total += compile;
        warm_total += load;
    }
    println!("  {:<18} {:>9.1} ms {:>13.2} ms", "all five", ms(cold_total), ms(warm_total));
    let started = Instant::now();
    let restarted = runtime(cache)?;
    let chain = restarted.load(&Policy::load(&policy.path)?);
    println!(
        "restart: engine + parse + load of the default policy from a warm cache: {:.1} ms ({} of 5 gates cached)",
        ms(started.elapsed()),
        chain.cached_gates()
    );
    println!();
    Ok(())
}

/// The five reference gates called natively, as plain Rust functions.
fn native_chain() -> Vec<Box<dyn Fn(Request) -> Verdict>> {
    let providers = || {
        vec![testing::texts(
            "providers",
            &["x", "bluesky", "mastodon", "linkedin", "threads", "telegram", "discord", "sandbox"],
        )]
    };
    let price = || vec![testing::integer("price_cents", 4)];
    let none = Vec::<ConfigEntry>::new;
    vec![
        Box::new(move |r| postgate_gate_approval::ApprovalGate::evaluate(none(), r)),
        Box::new(move |r| postgate_gate_provider_review::ProviderReviewGate::evaluate(none(), r)),
        Box::new(move |r| postgate_gate_destination::DestinationGate::evaluate(providers(), r)),
        Box::new(move |r| postgate_gate_credit::CreditGate::evaluate(price(), r)),
        Box::new(move |r| postgate_gate_flags::FlagsGate::evaluate(none(), r)),
    ]
}

/// p50 and p99 of `f`, timed one call at a time after a warm-up.
fn sample<T>(mut f: impl FnMut() -> T) -> (Duration, Duration) {
    for _ in 0..WARMUP {
        black_box(f());
    }
    let mut times: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            black_box(f());
            started.elapsed()
        })
        .collect();
    times.sort_unstable();
    (times[SAMPLES / 2], times[SAMPLES * 99 / 100])
}

/// Mean time and fuel of each gate over a batch of decisions.
fn per_gate(chain: &Chain, request: &GateRequest) {
    let decisions: Vec<_> = (0..2_000).map(|_| chain.evaluate(request)).collect();
    println!("  per gate (mean of 2,000): instantiate + call, fuel");
    for (i, gate) in decisions[0].gates.iter().enumerate() {
        let mean = decisions.iter().map(|d| d.gates[i].duration_us).sum::<u64>() as f64 / decisions.len() as f64;
        println!("    {:<18} {:>6.1} us  {:>7} fuel", gate.gate, mean, gate.fuel);
    }
}

/// Decisions per second with `threads` threads sharing one chain.
fn throughput(chain: &Arc<Chain>, request: &GateRequest, threads: usize) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (chain, request) = (Arc::clone(chain), request.clone());
            std::thread::spawn(move || {
                let mut decided = 0u64;
                while started.elapsed() < THROUGHPUT_WINDOW {
                    black_box(chain.evaluate(&request));
                    decided += 1;
                }
                decided
            })
        })
        .collect();
    let decided: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    decided as f64 / started.elapsed().as_secs_f64()
}

/// How long a runaway gate holds a decision, and what it leaves behind.
fn hostile(runtime: &Runtime, root: &Path, chain: &Chain, request: &GateRequest, dir: &Path) -> anyhow::Result<()> {
    let fixture = root.join("target/fixtures/infinite-loop.wasm");
    if !fixture.exists() {
        println!(
            "hostile gate: skipped ({} is not built; `./dev bench` builds it)",
            fixture.display()
        );
        return Ok(());
    }
    let digest = postgate::engine::sha256_hex(&std::fs::read(&fixture)?);
    let manifest = dir.join("hostile.toml");
    std::fs::write(
        &manifest,
        format!(
            "version = 1\nname = \"hostile\"\n[[gate]]\nname = \"loop\"\ncomponent = {:?}\nsha256 = \"{digest}\"\nlimits = {{ fuel = 10_000_000_000 }}\n",
            fixture.display().to_string()
        ),
    )?;
    let hostile = runtime.load(&Policy::load(&manifest)?);
    let before = sample(|| chain.evaluate(request).outcome);
    let stops: Vec<u64> = (0..20).map(|_| hostile.evaluate(request).gates[0].duration_us).collect();
    let after = sample(|| chain.evaluate(request).outcome);
    println!("hostile gate (infinite loop, 10 ms deadline, fuel 10^10: the deadline stops it)");
    println!(
        "  stopped after       {:.1} ms (max of 20 runs)",
        stops.iter().max().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!("  chain p50 before    {:.1} us, after {:.1} us", us(before.0), us(after.0));
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}
