//! An in-process cluster of Raft stores for tests and benches: N nodes on the simulated
//! network or on real TCP over loopback, each with memory or real (file log + RocksDB) engines, that can be crashed,
//! restarted, partitioned and healed, with wait-for helpers that give up after a timeout.

use crate::raftstore::{
    KvStateMachine, PeerStatus, RaftStore, StoreConfig, StoreError, StoreParts,
};
use crate::shard::{locate, static_layout, ShardDesc};
use crate::transport::sim::SimNetwork;
use crate::transport::tcp::TcpTransport;
use crate::transport::Transport;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_storage::{
    Cf, FileLogEngine, LogEngine, LogOptions, MemLogEngine, MemStateEngine, RocksStateEngine,
    StateEngine, StateOptions,
};

/// How nodes talk to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// The in-process simulated network (faults, partitions).
    Sim,
    /// Real TCP over loopback (no fault injection).
    Tcp,
}

/// Which storage engines the nodes run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engines {
    Memory,
    Real,
}

pub struct ClusterOptions {
    pub nodes: u64,
    pub shards: u64,
    pub engines: Engines,
    pub net: Net,
    pub seed: u64,
    /// Adjusts each node's store configuration (default: 20 ms ticks for fast tests).
    pub configure: fn(&mut StoreConfig),
    /// Storage sizes of real engines (default: small, for tests).
    pub sizes: Sizes,
}

/// Segment, memtable and cache sizes of real engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizes {
    /// Small logs, memtables and caches: many nodes per test process, frequent rotation.
    Test,
    /// What `tessera server` runs with (benchmarks measure this).
    Server,
}

impl ClusterOptions {
    pub fn new(nodes: u64, shards: u64, engines: Engines) -> Self {
        ClusterOptions {
            nodes,
            shards,
            engines,
            net: Net::Sim,
            seed: 1,
            configure: |_| {},
            sizes: Sizes::Test,
        }
    }
}

/// What survives a node crash.
enum Persisted {
    Memory {
        log: MemLogEngine,
        state: Arc<MemStateEngine>,
    },
    Real {
        dir: PathBuf,
    },
}

pub struct Node {
    pub store: RaftStore,
    pub log: Arc<dyn LogEngine>,
    pub state: Arc<dyn StateEngine>,
    tcp: Option<Arc<TcpTransport>>,
}

pub struct Cluster {
    pub net: Arc<SimNetwork>,
    pub layout: Vec<ShardDesc>,
    nodes: BTreeMap<u64, Node>,
    persisted: BTreeMap<u64, Persisted>,
    configure: fn(&mut StoreConfig),
    sizes: Sizes,
    engines: Engines,
    kind: Net,
    tcp_addrs: BTreeMap<u64, SocketAddr>,
    prebound: BTreeMap<u64, TcpListener>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(opts: ClusterOptions) -> anyhow::Result<Self> {
        // Warnings and errors of the nodes show up in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
        let dir = tempfile::tempdir()?;
        let ids: Vec<u64> = (1..=opts.nodes).collect();
        let mut c = Cluster {
            net: SimNetwork::new(opts.seed),
            layout: static_layout(opts.shards, &ids),
            nodes: BTreeMap::new(),
            persisted: BTreeMap::new(),
            configure: opts.configure,
            sizes: opts.sizes,
            engines: opts.engines,
            kind: opts.net,
            tcp_addrs: BTreeMap::new(),
            prebound: BTreeMap::new(),
            _dir: dir,
        };
        if opts.net == Net::Tcp {
            for id in &ids {
                let l = TcpListener::bind("127.0.0.1:0")?;
                c.tcp_addrs.insert(*id, l.local_addr()?);
                c.prebound.insert(*id, l);
            }
        }
        for id in ids {
            c.add_node(id)?;
        }
        Ok(c)
    }

    /// Starts node `id` with empty storage. Nodes outside the initial layout hold no shard
    /// until a membership change adds them (simulated network only).
    pub fn add_node(&mut self, id: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.kind == Net::Sim || self.tcp_addrs.contains_key(&id),
            "nodes can join a TCP cluster only at start"
        );
        let p = match self.engines {
            Engines::Memory => Persisted::Memory {
                log: MemLogEngine::new(),
                state: Arc::new(MemStateEngine::new()),
            },
            Engines::Real => Persisted::Real {
                dir: self._dir.path().join(format!("node-{id}")),
            },
        };
        self.persisted.insert(id, p);
        self.boot(id)
    }

    fn boot(&mut self, id: u64) -> anyhow::Result<()> {
        let (log, state): (Arc<dyn LogEngine>, Arc<dyn StateEngine>) = match &self.persisted[&id] {
            Persisted::Memory { log, state } => (Arc::new(log.clone()), state.clone()),
            Persisted::Real { dir } => {
                let mut lo = LogOptions::new(dir.join("raft-log"));
                let mut so = StateOptions::new(dir.join("state"));
                if self.sizes == Sizes::Test {
                    lo.segment_size = 8 << 20;
                    so.block_cache_bytes = 8 << 20;
                    so.write_buffer_bytes = 4 << 20;
                }
                // Benches compare log I/O paths with TESSERA_LOG_IO=sync, appends without
                // zeros written ahead with TESSERA_LOG_PREFILL=0, and buffered appends with
                // TESSERA_LOG_DIRECT=0.
                if std::env::var("TESSERA_LOG_IO").as_deref() == Ok("sync") {
                    lo.io_mode = tessera_storage::IoMode::Sync;
                }
                if std::env::var("TESSERA_LOG_PREFILL").as_deref() == Ok("0") {
                    lo.prefill_segments = false;
                }
                if std::env::var("TESSERA_LOG_DIRECT").as_deref() == Ok("0") {
                    lo.direct_io = false;
                }
                (
                    Arc::new(FileLogEngine::open(lo)?),
                    Arc::new(RocksStateEngine::open(so)?),
                )
            }
        };
        let mut config = StoreConfig::new(id);
        config.tick_interval = Duration::from_millis(20);
        // Benches compare inline apply with the apply thread with TESSERA_APPLY_INLINE=0.
        if std::env::var("TESSERA_APPLY_INLINE").as_deref() == Ok("0") {
            config.apply_inline = false;
        }
        (self.configure)(&mut config);
        let (inbox, rx) = RaftStore::channel();
        let (transport, tcp): (Arc<dyn Transport>, _) = match self.kind {
            Net::Sim => {
                self.net.register(id, inbox.clone());
                (self.net.transport(id), None)
            }
            Net::Tcp => {
                let listener = match self.prebound.remove(&id) {
                    Some(l) => l,
                    None => TcpListener::bind(self.tcp_addrs[&id])?,
                };
                let t = TcpTransport::start(id, listener, inbox.clone())?;
                for (peer, addr) in &self.tcp_addrs {
                    if *peer != id {
                        t.set_peer(*peer, *addr);
                    }
                }
                (t.clone() as Arc<dyn Transport>, Some(t))
            }
        };
        let parts = StoreParts {
            config,
            log: log.clone(),
            state: state.clone(),
            transport,
            state_machine: Box::new(KvStateMachine),
        };
        let store = RaftStore::start(parts, inbox, rx, &self.layout)?;
        self.nodes.insert(
            id,
            Node {
                store,
                log,
                state,
                tcp,
            },
        );
        Ok(())
    }

    pub fn node(&self, id: u64) -> Option<&Node> {
        self.nodes.get(&id)
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Stops `id` as a crash would: the log keeps what it acknowledged; the state engine
    /// keeps only what it flushed (memory engines model exactly that; real engines close).
    pub fn crash(&mut self, id: u64) {
        self.net.unregister(id);
        if let Some(n) = self.nodes.remove(&id) {
            n.store.stop();
            if let Some(t) = n.tcp {
                t.stop();
            }
        }
        if let Some(Persisted::Memory { log, state }) = self.persisted.get_mut(&id) {
            *log = log.crash_copy();
            *state = Arc::new(state.crash_copy());
        }
    }

    /// Fault injection (memory engines only; returns false otherwise): while `on`, node
    /// `id`'s state-engine writes fail. A crash or restart clears it.
    pub fn fail_state_writes(&self, id: u64, on: bool) -> bool {
        match self.persisted.get(&id) {
            Some(Persisted::Memory { state, .. }) => {
                state.fail_writes(on);
                true
            }
            _ => false,
        }
    }

    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.crash(id);
        self.boot(id)
    }

    pub fn status(&self, node: u64, group: u64) -> Option<PeerStatus> {
        self.nodes.get(&node)?.store.status(group)
    }

    /// The running node that is leader of `group` in the highest term, if any.
    pub fn leader(&self, group: u64) -> Option<u64> {
        self.nodes
            .keys()
            .filter_map(|id| {
                self.status(*id, group)
                    .filter(|s| s.is_leader)
                    .map(|s| (s.term, *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Waits until a leader of `group` is known to every running member of `among`.
    pub fn wait_leader(&self, group: u64, timeout: Duration) -> anyhow::Result<u64> {
        wait_for(timeout, || {
            let l = self.leader(group)?;
            let term = self.status(l, group)?.term;
            self.nodes
                .keys()
                .all(|id| {
                    self.status(*id, group)
                        .is_some_and(|s| s.leader == Some(l) && s.term == term)
                })
                .then_some(l)
        })
        .ok_or_else(|| anyhow::anyhow!("no agreed leader for shard {group} within {timeout:?}"))
    }

    pub fn shard_of(&self, key: &[u8]) -> u64 {
        locate(&self.layout, key)
            .expect("layouts cover every key")
            .id
    }

    /// Proposes `cmd` for `key`'s shard, following leader changes until `timeout`.
    pub fn propose(&self, key: &[u8], cmd: Bytes, timeout: Duration) -> Result<Bytes, StoreError> {
        let group = self.shard_of(key);
        let deadline = Instant::now() + timeout;
        loop {
            let target = self
                .leader(group)
                .or_else(|| self.nodes.keys().next().copied());
            let res = match target.and_then(|t| self.nodes.get(&t)) {
                Some(n) => n.store.propose_wait(group, cmd.clone()),
                None => Err(StoreError::Stopped),
            };
            match res {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(StoreError::NotLeader { .. }) | Err(StoreError::Stopped) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                // Dropped/Timeout: the outcome is unknown to the caller; retrying a put is
                // idempotent for these tests' unique values.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// A linearizable read of `key` through `key`'s shard leader.
    pub fn read(&self, key: &[u8], timeout: Duration) -> Result<Option<Vec<u8>>, StoreError> {
        let group = self.shard_of(key);
        let deadline = Instant::now() + timeout;
        loop {
            let res = match self.leader(group).and_then(|l| self.nodes.get(&l)) {
                Some(n) => n.store.read_wait(group).map(|_| n),
                None => Err(StoreError::NotLeader {
                    group,
                    leader: None,
                }),
            };
            match res {
                Ok(n) => {
                    return n
                        .state
                        .get(Cf::Data, key)
                        .map_err(|e| StoreError::Storage(e.to_string()))
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Waits until every running node has applied at least `index` of `group`.
    pub fn wait_applied(&self, group: u64, index: u64, timeout: Duration) -> bool {
        wait_for(timeout, || {
            self.nodes
                .keys()
                .all(|id| self.status(*id, group).is_some_and(|s| s.applied >= index))
                .then_some(())
        })
        .is_some()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.crash(id);
        }
        self.net.stop();
    }
}

/// Polls `f` every 5 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
