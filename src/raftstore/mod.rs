//! The multi-Raft store: one raft-rs `RawNode` per shard replica on this node, driven by a
//! single batch loop (`store_loop`) that — per round — steps every incoming message and
//! proposal, collects every group's `Ready`, sends the leader's messages at once (before its
//! own fsync: Raft thesis §10.2.1), writes all groups' entries and hard states to the log
//! engine as ONE batch with ONE fdatasync, then sends the messages that had to wait for
//! persistence. Committed entries are applied (`apply`) at the end of the round — on the
//! store thread by default, or on an apply thread (`StoreConfig::apply_inline`) — many
//! groups' results to the state engine in one batch per round, with each group's applied
//! index in the same batch, and only then are the clients answered.
//!
//! This module owns Raft; it never touches sockets (see `transport`) or RocksDB types.

mod answers;
mod apply;
mod entry_batch;
mod hard_states;
pub mod keys;
mod peer;
mod peer_storage;
mod raft_log_bridge;
mod snapshot;
pub mod state_machine;
mod store_loop;

pub use answers::after_answers;
pub use state_machine::{kv_delete, kv_put, ApplyContext, KvStateMachine, StateMachine};

use crate::fasthash::FastMap;
use crate::shard::ShardDesc;
use crate::transport::{MessageBatch, Transport};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::RwLock;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tessera_storage::{LogEngine, StateEngine};

/// Why a request to the store did not succeed. All of these are safe to retry (elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("not leader of shard {group} (leader: {leader:?})")]
    NotLeader { group: u64, leader: Option<u64> },
    #[error("shard {0} is not on this node")]
    UnknownShard(u64),
    /// The entry was overwritten by a new leader, or leadership changed before it committed;
    /// it was not applied.
    #[error("proposal to shard {0} was dropped (leadership changed); it was not applied")]
    Dropped(u64),
    #[error("request to shard {0} timed out")]
    Timeout(u64),
    #[error("the raft store is stopped")]
    Stopped,
    #[error("storage failure: {0}")]
    Storage(String),
    /// Raft refused the membership change (e.g. another one is still in progress).
    #[error("membership change of shard {group} rejected: {reason}")]
    ConfChangeRejected { group: u64, reason: String },
}

/// One step of a membership change. Several in one request use joint consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerChange {
    AddVoter(u64),
    AddLearner(u64),
    Remove(u64),
}

/// Called with a committed command's reply from the state machine.
pub type ProposeCallback = Box<dyn FnOnce(Result<Bytes, StoreError>) + Send>;
/// Called once a linearizable read may be served from the local state engine.
pub type ReadCallback = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// How reads are made linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: the leader confirms leadership with a quorum round (no log write).
    ReadIndex,
    /// Leader lease: the leader answers from its lease (check-quorum keeps it honest).
    Lease,
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub node_id: u64,
    pub tick_interval: Duration,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub max_inflight_msgs: usize,
    pub max_size_per_msg: u64,
    pub read_mode: ReadMode,
    /// Proposals and reads still unanswered after this fail with [`StoreError::Timeout`].
    pub request_timeout: Duration,
    /// A group's log is compacted once this many applied (and durably flushed) entries
    /// follow its truncation point; a follower that falls further behind gets a snapshot.
    pub compact_log_threshold: u64,
    /// Every this many ticks: compact logs, and — once the log holds `log_flush_bytes` —
    /// flush the state engine (so logs may compact further) and GC the log.
    pub maintenance_ticks: u64,
    pub log_flush_bytes: u64,
    /// Apply committed entries on the store loop's thread at the end of each round (default)
    /// instead of handing them to an apply thread. Inline saves a thread hand-off per round
    /// — on a busy 2-vCPU host, the woken apply thread waited longer for a CPU than it ran —
    /// but serializes apply with the next log write: a lone replica with idle cores and
    /// hundreds of concurrent writers does better with the thread (docs/benchmarks.md).
    pub apply_inline: bool,
}

impl StoreConfig {
    pub fn new(node_id: u64) -> Self {
        StoreConfig {
            node_id,
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            max_inflight_msgs: 256,
            max_size_per_msg: 1 << 20,
            read_mode: ReadMode::ReadIndex,
            request_timeout: Duration::from_secs(5),
            compact_log_threshold: 10_000,
            maintenance_ticks: 50,
            log_flush_bytes: 128 << 20,
            apply_inline: true,
        }
    }
}

/// What the store reports about one of its replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStatus {
    pub group: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    /// Voters of the current configuration (the incoming one while joint), sorted.
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// In a joint configuration (a multi-step membership change not yet left).
    pub joint: bool,
    /// This replica is the only voter and leads, and an entry of its term is applied (so
    /// every entry any earlier leader acknowledged is applied): its state engine may answer
    /// linearizable reads directly — no other node can have acknowledged a write.
    pub local_reads: bool,
}

pub(crate) enum StoreMsg {
    Propose {
        group: u64,
        cmd: Bytes,
        cb: ProposeCallback,
    },
    Read {
        group: u64,
        cb: ReadCallback,
    },
    Raft(MessageBatch),
    Applied {
        group: u64,
        index: u64,
    },
    TransferLeader {
        group: u64,
        to: u64,
    },
    ChangePeers {
        group: u64,
        changes: Vec<PeerChange>,
        cb: ProposeCallback,
    },
    Campaign {
        group: u64,
    },
    /// An apply round's state-engine write failed (inline or on the apply thread): the
    /// store stops (fail-stop).
    ApplyFailed(String),
    Stop,
}

/// A cloneable handle through which a transport delivers inbound Raft messages.
#[derive(Clone)]
pub struct StoreInbox(Sender<StoreMsg>);

impl StoreInbox {
    pub fn deliver(&self, batch: MessageBatch) {
        let _ = self.0.send(StoreMsg::Raft(batch));
    }
}

/// The receiving end of a store's inbox (created with [`RaftStore::channel`]).
pub struct StoreReceiver(Receiver<StoreMsg>);

impl StoreReceiver {
    /// The next inbound Raft batch, for transport tests (other messages are skipped).
    #[cfg(test)]
    pub(crate) fn recv_batch(&self, timeout: Duration) -> Option<MessageBatch> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left).ok()? {
                StoreMsg::Raft(b) => return Some(b),
                _ => continue,
            }
        }
    }
}

pub(crate) struct Shared {
    pub status: RwLock<FastMap<u64, PeerStatus>>,
    /// Set when the store loop has ended (a stop, or a storage failure).
    pub halted: std::sync::atomic::AtomicBool,
}

/// One node's Raft store (its threads stop when this is dropped or [`RaftStore::stop`]ped).
pub struct RaftStore {
    node_id: u64,
    tx: Sender<StoreMsg>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Everything a store is built from.
pub struct StoreParts {
    pub config: StoreConfig,
    pub log: Arc<dyn LogEngine>,
    pub state: Arc<dyn StateEngine>,
    pub transport: Arc<dyn Transport>,
    pub state_machine: Box<dyn StateMachine>,
}

impl RaftStore {
    /// The inbox to hand the transport before [`RaftStore::start`], and its receiving end.
    pub fn channel() -> (StoreInbox, StoreReceiver) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (StoreInbox(tx), StoreReceiver(rx))
    }

    /// Starts the store on `parts`. `bootstrap` shards are created on first start (a node
    /// that already holds shards ignores it and recovers what it has).
    pub fn start(
        parts: StoreParts,
        inbox: StoreInbox,
        rx: StoreReceiver,
        bootstrap: &[ShardDesc],
    ) -> anyhow::Result<Self> {
        let node_id = parts.config.node_id;
        let shared = Arc::new(Shared {
            status: RwLock::new(FastMap::default()),
            halted: Default::default(),
        });
        let tx = inbox.0.clone();
        let threads = store_loop::spawn(parts, tx.clone(), rx.0, shared.clone(), bootstrap)?;
        Ok(RaftStore {
            node_id,
            tx,
            shared,
            threads,
        })
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Proposes `cmd` to shard `group`; `cb` gets the state machine's reply after apply.
    pub fn propose(&self, group: u64, cmd: Bytes, cb: ProposeCallback) {
        if let Err(e) = self.tx.send(StoreMsg::Propose { group, cmd, cb }) {
            if let StoreMsg::Propose { cb, .. } = e.into_inner() {
                cb(Err(StoreError::Stopped));
            }
        }
    }

    /// Proposes and waits for the reply.
    pub fn propose_wait(&self, group: u64, cmd: Bytes) -> Result<Bytes, StoreError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.propose(group, cmd, Box::new(move |r| drop(tx.send(r))));
        rx.recv().unwrap_or(Err(StoreError::Stopped))
    }

    /// Asks for a linearizable read of shard `group`; `cb` fires once this node's state
    /// engine reflects every write committed before the call — at once, without a store
    /// round trip, when this replica may read locally ([`RaftStore::local_reads`]).
    pub fn read(&self, group: u64, cb: ReadCallback) {
        if self.local_reads(group) {
            cb(Ok(()));
            return;
        }
        if let Err(e) = self.tx.send(StoreMsg::Read { group, cb }) {
            if let StoreMsg::Read { cb, .. } = e.into_inner() {
                cb(Err(StoreError::Stopped));
            }
        }
    }

    pub fn read_wait(&self, group: u64) -> Result<(), StoreError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.read(group, Box::new(move |r| drop(tx.send(r))));
        rx.recv().unwrap_or(Err(StoreError::Stopped))
    }

    /// Changes the membership of shard `group` through Raft (ConfChangeV2: one change is
    /// applied directly, several through a joint configuration that is left automatically).
    /// A node added as learner receives a snapshot first and does not vote until promoted.
    pub fn change_peers(&self, group: u64, changes: Vec<PeerChange>, cb: ProposeCallback) {
        if let Err(e) = self.tx.send(StoreMsg::ChangePeers { group, changes, cb }) {
            if let StoreMsg::ChangePeers { cb, .. } = e.into_inner() {
                cb(Err(StoreError::Stopped));
            }
        }
    }

    pub fn change_peers_wait(
        &self,
        group: u64,
        changes: Vec<PeerChange>,
    ) -> Result<Bytes, StoreError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.change_peers(group, changes, Box::new(move |r| drop(tx.send(r))));
        rx.recv().unwrap_or(Err(StoreError::Stopped))
    }

    pub fn transfer_leader(&self, group: u64, to: u64) {
        let _ = self.tx.send(StoreMsg::TransferLeader { group, to });
    }

    /// Starts an election for `group` on this node (tests and admin).
    pub fn campaign(&self, group: u64) {
        let _ = self.tx.send(StoreMsg::Campaign { group });
    }

    pub fn status(&self, group: u64) -> Option<PeerStatus> {
        self.shared.status.read().get(&group).cloned()
    }

    /// `(leader, this node is leader)` of `group`, without copying the whole status.
    pub fn leadership(&self, group: u64) -> Option<(Option<u64>, bool)> {
        self.shared
            .status
            .read()
            .get(&group)
            .map(|s| (s.leader, s.is_leader))
    }

    /// Whether reads of `group` may be served from local state without asking Raft
    /// (see [`PeerStatus::local_reads`]).
    pub fn local_reads(&self, group: u64) -> bool {
        self.shared
            .status
            .read()
            .get(&group)
            .is_some_and(|s| s.local_reads)
    }

    pub fn groups(&self) -> Vec<u64> {
        let mut g: Vec<u64> = self.shared.status.read().keys().copied().collect();
        g.sort_unstable();
        g
    }

    /// Whether the store loop has ended — asked to stop, or stopped by a failed log or
    /// state-engine write. A server whose store halted on its own should exit: a restart
    /// replays the log from what storage holds.
    pub fn halted(&self) -> bool {
        self.shared.halted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the threads; pending requests fail with [`StoreError::Stopped`].
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(StoreMsg::Stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RaftStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}
