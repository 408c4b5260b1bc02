//! The wasmtime engine every gate runs in, and how it is configured.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::cache::{Cache, Origin};
use super::chain::Chain;
use super::gate::{GateLoadError, Inspection, LoadedGate};
use crate::policy::{GateSpec, Limits, Policy};

/// How often the epoch advances: the granularity of gate deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Gate evaluations that may be in flight at once. Each takes one pool slot per
/// gate; a decision that finds the pool exhausted fails closed. 1,000 slots
/// serve 200 concurrent five-gate decisions, far beyond what two cores run.
const POOL_SLOTS: u32 = 1_000;

/// Bytes of each pooled linear memory kept mapped between instances and reset
/// in place (only dirty pages, where `PAGEMAP_SCAN` is available). A gate's
/// stack and heap fit in it, so a fresh instance takes no page faults; without
/// it two threads decide slower than one (see PERFORMANCE.md).
const KEEP_RESIDENT: usize = 512 << 10;

/// Host stack a gate's wasm may use: ample for a check, small enough that
/// runaway recursion traps quickly.
const MAX_WASM_STACK: usize = 256 << 10;

/// Settings of a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where precompiled gates are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
}

/// The wasmtime engine and the precompiled-gate cache.
pub struct Runtime {
    engine: wasmtime::Engine,
    cache: Option<Cache>,
}

impl Runtime {
    /// An engine with pooled, resident instance memory, fuel metering and
    /// epoch deadlines, and an epoch ticker thread that ends with the engine.
    pub fn new(options: &RuntimeOptions) -> anyhow::Result<Self> {
        let engine = wasmtime::Engine::new(&config())
            .map_err(anyhow::Error::from)
            .context("cannot configure wasmtime")?;
        let cache = match &options.cache_dir {
            Some(dir) => Some(Cache::open(dir, &engine).with_context(|| format!("cannot open cache `{}`", dir.display()))?),
            None => None,
        };
        let weak = engine.weak();
        thread::Builder::new().name("postgate-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })?;
        Ok(Self { engine, cache })
    }

    /// The wasmtime engine.
    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Compiles `bytes` (sha256 `digest`), or loads them precompiled from the cache.
    pub(crate) fn compile(&self, digest: &str, bytes: &[u8]) -> wasmtime::Result<(Component, Origin)> {
        match &self.cache {
            Some(cache) => cache.load(&self.engine, digest, bytes),
            None => Ok((Component::new(&self.engine, bytes)?, Origin::Compiled)),
        }
    }

    /// Loads every gate of `policy`. A gate that cannot be loaded stays in the
    /// chain as broken and denies every request; callers that must not serve
    /// such a chain check [`Chain::faults`].
    pub fn load(&self, policy: &Policy) -> Chain {
        self.load_with(policy, super::gate::read_component)
    }

    /// Loads every gate of `policy` from the bytes `component` gives for each,
    /// as [`Runtime::load`] does from the component files.
    pub fn load_with(&self, policy: &Policy, component: impl Fn(&GateSpec) -> Result<Vec<u8>, GateLoadError>) -> Chain {
        let gates = policy
            .gates
            .iter()
            .map(|spec| component(spec).and_then(|bytes| LoadedGate::load(self, spec, &bytes)))
            .collect();
        Chain::new(self.engine.clone(), policy, gates)
    }

    /// Describes a component file for `postgate gate inspect`.
    pub fn inspect(&self, bytes: &[u8]) -> Result<Inspection, GateLoadError> {
        Inspection::of(self, bytes)
    }
}

fn config() -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_SLOTS)
        .total_core_instances(POOL_SLOTS * 8)
        .max_core_instances_per_component(16)
        .total_memories(POOL_SLOTS * 2)
        .max_memories_per_component(4)
        .total_tables(POOL_SLOTS * 4)
        .max_tables_per_component(8)
        .max_memory_size((Limits::MAX_MEMORY_MIB as usize) << 20)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .cranelift_opt_level(OptLevel::Speed)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}
