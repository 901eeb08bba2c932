//! One database node: its engines, Raft transport and store (running the Redis state
//! machine), the shard layout, and the primitives sessions build on — where a shard's
//! leader is, propose a write, wait for a linearizable read, run a read on local state —
//! plus the active expiry cycle, which proposes deletion of expired keys on shards this node
//! leads, stamped with its own clock as leader.

use super::clients::ClientRegistry;
use super::config::ServerConfig;
use super::inbox::ReplyInbox;
use super::prefetch::{Prefetched, ReadKeyspace};
use crate::cmd::machine::{encode_commands, RedisStateMachine};
use crate::cmd::scan::{walk_shard, Walk, WalkResult};
use crate::cmd::{execute, Cmd, Ctx};
use crate::raftstore::{RaftStore, ReadMode, StoreConfig, StoreError, StoreParts};
use crate::resp::Reply;
use crate::shard::{locate, static_layout, ShardDesc};
use crate::transport::tcp::TcpTransport;
use crate::transport::Transport;
use anyhow::Context;
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tessera_storage::{
    FileLogEngine, IoMode, LogEngine, LogOptions, RocksStateEngine, StateEngine, StateOptions,
};
use tokio::sync::oneshot;

/// Where a shard's requests must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Local,
    Remote(u64, SocketAddr),
    /// No leader known right now (election in progress): retry shortly.
    NoLeader,
}

/// Settings that CONFIG SET may change at run time.
#[derive(Clone, Debug)]
pub struct Settings {
    pub requirepass: Option<String>,
    pub maxclients: usize,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
}

#[derive(Default)]
pub struct Stats {
    pub commands: AtomicU64,
    pub connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub forwarded: AtomicU64,
    pub expired_keys: AtomicU64,
}

pub struct Node {
    pub config: ServerConfig,
    pub settings: RwLock<Settings>,
    pub store: RaftStore,
    pub state: Arc<dyn StateEngine>,
    pub log: Arc<dyn LogEngine>,
    pub layout: Vec<ShardDesc>,
    pub stats: Stats,
    pub clients: ClientRegistry,
    pub started: Instant,
    pub cursors: parking_lot::Mutex<super::allshards::CursorTable>,
    /// How client sockets are served, and why not io_uring when it is not.
    pub net_backend: std::sync::OnceLock<(super::netio::NetBackend, Option<String>)>,
    /// The scheduling policy the connection workers run under (as INFO shows it).
    pub worker_sched: std::sync::OnceLock<String>,
    resp_addrs: HashMap<u64, SocketAddr>,
    transport: Arc<TcpTransport>,
    stopping: Arc<AtomicBool>,
    expiry: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Node {
    /// Opens the engines, starts Raft, and (on first start) creates the cluster's shards.
    pub fn open(config: ServerConfig) -> anyhow::Result<Arc<Node>> {
        config.validate()?;
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut lo = LogOptions::new(dir.join("raft-log"));
        lo.io_mode = match config.log_io.as_str() {
            "uring" => IoMode::IoUring,
            "sync" => IoMode::Sync,
            _ => IoMode::Auto,
        };
        lo.direct_io = config.log_direct_io;
        let log: Arc<dyn LogEngine> = Arc::new(FileLogEngine::open(lo)?);
        let state: Arc<dyn StateEngine> = Arc::new(RocksStateEngine::open(StateOptions::new(
            dir.join("state"),
        ))?);
        let (inbox, rx) = RaftStore::channel();
        let listener = TcpListener::bind(config.raft_addr)
            .with_context(|| format!("binding raft address {}", config.raft_addr))?;
        let transport = TcpTransport::start(config.node_id, listener, inbox.clone())?;
        let mut resp_addrs = HashMap::new();
        resp_addrs.insert(config.node_id, config.resp_addr);
        for p in &config.peers {
            transport.set_peer(p.id, p.raft_addr);
            resp_addrs.insert(p.id, p.resp_addr);
        }
        let mut sc = StoreConfig::new(config.node_id);
        sc.tick_interval = Duration::from_millis(config.tick_ms);
        sc.apply_inline = !config.apply_thread;
        sc.read_mode = if config.read_mode == "readindex" {
            ReadMode::ReadIndex
        } else {
            ReadMode::Lease
        };
        let layout = static_layout(config.shards, &config.members());
        let parts = StoreParts {
            config: sc,
            log: log.clone(),
            state: state.clone(),
            transport: transport.clone() as Arc<dyn Transport>,
            state_machine: Box::new(RedisStateMachine),
        };
        let store = RaftStore::start(parts, inbox, rx, &layout)?;
        let settings = Settings {
            requirepass: config.requirepass.clone(),
            maxclients: config.maxclients,
            proto_max_bulk_len: config.proto_max_bulk_len,
            client_query_buffer_limit: config.client_query_buffer_limit,
        };
        let node = Arc::new(Node {
            config,
            settings: RwLock::new(settings),
            store,
            state,
            log,
            layout,
            stats: Stats::default(),
            clients: ClientRegistry::default(),
            started: Instant::now(),
            cursors: Default::default(),
            net_backend: std::sync::OnceLock::new(),
            worker_sched: std::sync::OnceLock::new(),
            resp_addrs,
            transport,
            stopping: Arc::new(AtomicBool::new(false)),
            expiry: parking_lot::Mutex::new(None),
        });
        let n = node.clone();
        *node.expiry.lock() = Some(
            std::thread::Builder::new()
                .name("expiry".into())
                .spawn(move || expiry_cycle(n))?,
        );
        Ok(node)
    }

    pub fn id(&self) -> u64 {
        self.config.node_id
    }

    pub fn shard_of(&self, key: &[u8]) -> &ShardDesc {
        locate(&self.layout, key).expect("the layout covers every key")
    }

    pub fn shard(&self, id: u64) -> Option<&ShardDesc> {
        self.layout.iter().find(|s| s.id == id)
    }

    pub fn target(&self, shard: u64) -> Target {
        match self.store.leadership(shard) {
            Some((_, true)) => Target::Local,
            Some((leader, false)) => {
                match leader.and_then(|l| self.resp_addrs.get(&l).map(|a| (l, *a))) {
                    Some((l, _)) if l == self.id() => Target::NoLeader,
                    Some((l, a)) => Target::Remote(l, a),
                    None => Target::NoLeader,
                }
            }
            None => Target::NoLeader,
        }
    }

    /// Proposes write commands to `shard` as one entry, stamped with this leader's clock;
    /// the reply decodes with [`crate::cmd::machine::decode_replies`].
    pub fn propose(
        &self,
        shard: u64,
        cmds: &[&[Bytes]],
    ) -> oneshot::Receiver<Result<Bytes, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let cmd = encode_commands(now_ms(), cmds);
        // From a connection worker, the answer goes through its inbox (one wake-up per
        // batch of answers instead of one per answer).
        match ReplyInbox::here() {
            Some(inbox) => self
                .store
                .propose(shard, cmd, Box::new(move |r| inbox.push(tx, r))),
            None => self
                .store
                .propose(shard, cmd, Box::new(move |r| drop(tx.send(r)))),
        }
        rx
    }

    /// Resolves once `shard`'s local state may serve a linearizable read.
    pub fn read_index(&self, shard: u64) -> oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        self.store.read(shard, Box::new(move |r| drop(tx.send(r))));
        rx
    }

    /// Runs a read command on local state (after [`Node::read_index`]); expired keys it
    /// meets are proposed for deletion in the background.
    /// `now` is the leader's clock (read once per pipeline group by the caller).
    /// `ahead` holds values read together for the run of reads this one belongs to.
    pub fn exec_read(
        &self,
        shard: u64,
        cmd: Cmd,
        args: &[Bytes],
        now: u64,
        ahead: Option<&Prefetched<'_>>,
    ) -> Reply {
        let mut kv = ReadKeyspace {
            state: &*self.state,
            ahead,
        };
        let mut ctx = Ctx::new(&mut kv, now);
        let reply = execute(cmd, &mut ctx, args);
        if !ctx.expired.is_empty() {
            self.delete_expired(shard, ctx.expired);
        }
        reply
    }

    /// Reads `keys` of a run of reads together (after [`Node::read_index`]); `None` for a
    /// single key, which gains nothing from a batched read.
    pub fn prefetch<'k>(&self, keys: Vec<&'k [u8]>) -> Option<Prefetched<'k>> {
        (keys.len() > 1).then(|| Prefetched::read(&*self.state, keys))
    }

    /// Walks a shard's local keys (after [`Node::read_index`]).
    pub fn walk(&self, shard: &ShardDesc, w: &Walk<'_>) -> Result<WalkResult, Reply> {
        walk_shard(&*self.state, shard, w)
            .map_err(|e| Reply::err(format!("ERR storage failure: {e}")))
    }

    /// Proposes `TESSERA.EXPIRED` for keys seen expired (fire and forget: the apply re-checks
    /// each key against the proposal's timestamp).
    pub fn delete_expired(&self, shard: u64, keys: Vec<Bytes>) {
        let mut args = Vec::with_capacity(keys.len() + 1);
        args.push(Bytes::from_static(b"TESSERA.EXPIRED"));
        args.extend(keys);
        let cmd = encode_commands(now_ms(), &[&args]);
        self.store.propose(shard, cmd, Box::new(|_| {}));
    }

    pub fn resp_addr_of(&self, node: u64) -> Option<SocketAddr> {
        self.resp_addrs.get(&node).copied()
    }

    /// Stops background work, Raft and the transport.
    pub fn shutdown(self: Arc<Self>) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(t) = self.expiry.lock().take() {
            let _ = t.join();
        }
        self.transport.stop();
        match Arc::try_unwrap(self) {
            Ok(node) => node.store.stop(),
            Err(_) => tracing::warn!("node still referenced at shutdown; store stops on drop"),
        }
    }
}

/// Every 100 ms, on each shard this node leads, visit the next keys of the shard and propose
/// deletion of the expired ones; a full pass over a shard takes (keys / 200) cycles.
fn expiry_cycle(node: Arc<Node>) {
    const PER_SHARD: usize = 200;
    let mut cursors: HashMap<u64, Vec<u8>> = HashMap::new();
    while !node.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        for shard in &node.layout {
            if node.target(shard.id) != Target::Local {
                continue;
            }
            let from = cursors.remove(&shard.id).unwrap_or_default();
            let w = Walk {
                from: &from,
                count: PER_SHARD,
                pattern: None,
                type_name: None,
                now_ms: now_ms(),
            };
            let Ok(r) = node.walk(shard, &w) else {
                continue;
            };
            if !r.expired.is_empty() {
                node.stats
                    .expired_keys
                    .fetch_add(r.expired.len() as u64, Ordering::Relaxed);
                node.delete_expired(shard.id, r.expired);
            }
            if let Some(next) = r.next {
                cursors.insert(shard.id, next);
            }
        }
    }
}
