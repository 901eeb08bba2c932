//! The batch loop: one thread driving every `RawNode` on this node. Each round it
//! 1. takes every queued message (proposals, reads, inbound Raft batches, apply progress),
//! 2. ticks all groups when the tick interval has passed,
//! 3. collects the `Ready` of every group touched, sends the messages that may go before
//!    persistence (the leader's appends: followers write while the leader does),
//! 4. writes all groups' new entries and hard states to the log as ONE batch (one fdatasync),
//! 5. sends the messages that had to wait for it, advances each group, and hands committed
//!    entries (with their proposals) and confirmed reads to the apply thread.
//!
//! Groups nobody touched cost nothing but their tick.

use super::apply::{ApplyTask, ApplyWorker};
use super::keys::{self, ApplyState};
use super::peer::Peer;
use super::peer_storage::to_log_entry;
use super::{PeerStatus, Shared, StoreConfig, StoreError, StoreMsg, StoreParts};
use crate::shard::ShardDesc;
use crate::transport::{MessageBatch, Transport};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use raft::eraftpb::{ConfState, Entry, Message};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tessera_storage::{HardState, LogBatch, LogEngine, StateEngine, WriteBatch};

/// Upper bound on messages taken from the inbox in one round.
const MAX_MSGS_PER_ROUND: usize = 16_384;

pub(super) fn spawn(
    parts: StoreParts,
    tx: Sender<StoreMsg>,
    rx: Receiver<StoreMsg>,
    shared: Arc<Shared>,
    bootstrap: &[ShardDesc],
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let StoreParts {
        config,
        log,
        state,
        transport,
        state_machine,
    } = parts;
    let shards = load_or_bootstrap(&config, state.as_ref(), bootstrap)?;
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let (apply_tx, apply_rx) = crossbeam_channel::unbounded();
    let mut peers = HashMap::new();
    for desc in shards {
        let group = desc.id;
        let apply = keys::load_apply_state(state.as_ref(), group)?.unwrap_or_default();
        let conf = match keys::load_conf_state(state.as_ref(), group)? {
            Some(cs) => cs,
            None => voters(&desc.peers),
        };
        let _ = apply_tx.send(ApplyTask::Register {
            desc: desc.clone(),
            state: apply,
        });
        peers.insert(
            group,
            Peer::new(&config, desc, log.clone(), conf, apply, &logger)?,
        );
    }
    let worker = ApplyWorker::new(state, state_machine, tx);
    let apply = std::thread::Builder::new()
        .name(format!("tessera-apply-{}", config.node_id))
        .spawn(move || worker.run(apply_rx))?;
    let store = StoreLoop {
        dirty: peers.keys().copied().collect(),
        config,
        log,
        transport,
        peers,
        apply_tx,
        shared,
        outbox: HashMap::new(),
    };
    let main = std::thread::Builder::new()
        .name(format!("tessera-store-{}", store.config.node_id))
        .spawn(move || store.run(rx))?;
    Ok(vec![main, apply])
}

fn voters(peers: &[u64]) -> ConfState {
    ConfState {
        voters: peers.to_vec(),
        ..Default::default()
    }
}

/// The shards this node holds; on a node's first start, the bootstrap shards it is part of.
fn load_or_bootstrap(
    config: &StoreConfig,
    state: &dyn StateEngine,
    bootstrap: &[ShardDesc],
) -> anyhow::Result<Vec<ShardDesc>> {
    let shards = keys::load_shards(state)?;
    if !shards.is_empty() {
        return Ok(shards);
    }
    let mine: Vec<&ShardDesc> = bootstrap
        .iter()
        .filter(|d| d.peers.contains(&config.node_id))
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let mut wb = WriteBatch::new();
    for d in &mine {
        keys::put_shard(&mut wb, d);
        keys::put_conf_state(&mut wb, d.id, &voters(&d.peers));
        keys::put_apply_state(&mut wb, d.id, &ApplyState::default());
    }
    state.write(wb)?;
    state.flush()?;
    Ok(mine.into_iter().cloned().collect())
}

struct StoreLoop {
    config: StoreConfig,
    log: Arc<dyn LogEngine>,
    transport: Arc<dyn Transport>,
    peers: HashMap<u64, Peer>,
    apply_tx: Sender<ApplyTask>,
    shared: Arc<Shared>,
    dirty: HashSet<u64>,
    outbox: HashMap<u64, Vec<(u64, Message)>>,
}

impl StoreLoop {
    fn run(mut self, rx: Receiver<StoreMsg>) {
        let tick = self.config.tick_interval;
        let mut next_tick = Instant::now() + tick;
        let mut stopping = false;
        while !stopping {
            let wait = if self.dirty.is_empty() {
                next_tick.saturating_duration_since(Instant::now())
            } else {
                std::time::Duration::ZERO
            };
            match rx.recv_timeout(wait) {
                Ok(m) => stopping |= self.handle(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for m in rx.try_iter().take(MAX_MSGS_PER_ROUND) {
                stopping |= self.handle(m);
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + tick;
                self.tick_all(now);
            }
            if let Err(e) = self.process_readies() {
                tracing::error!(
                    "node {}: raft log write failed, store stops: {e}",
                    self.config.node_id
                );
                break;
            }
        }
        for p in self.peers.values_mut() {
            p.fail_all(StoreError::Stopped);
        }
    }

    /// Returns true on Stop.
    fn handle(&mut self, msg: StoreMsg) -> bool {
        match msg {
            StoreMsg::Propose { group, cmd, cb } => match self.peers.get_mut(&group) {
                Some(p) => {
                    p.propose(cmd, cb);
                    self.dirty.insert(group);
                }
                None => cb(Err(StoreError::UnknownShard(group))),
            },
            StoreMsg::Read { group, cb } => match self.peers.get_mut(&group) {
                Some(p) => {
                    p.read(cb);
                    self.dirty.insert(group);
                }
                None => cb(Err(StoreError::UnknownShard(group))),
            },
            StoreMsg::Raft(batch) => {
                for (group, m) in batch.messages {
                    if let Some(p) = self.peers.get_mut(&group) {
                        if let Err(e) = p.raw.step(m) {
                            tracing::debug!("shard {group}: step: {e}");
                        }
                        self.dirty.insert(group);
                    }
                }
            }
            StoreMsg::Applied { group, index } => {
                if let Some(p) = self.peers.get_mut(&group) {
                    p.raw.advance_apply_to(index);
                    self.dirty.insert(group);
                }
            }
            StoreMsg::TransferLeader { group, to } => {
                if let Some(p) = self.peers.get_mut(&group) {
                    p.raw.transfer_leader(to);
                    self.dirty.insert(group);
                }
            }
            StoreMsg::Campaign { group } => {
                if let Some(p) = self.peers.get_mut(&group) {
                    let _ = p.raw.campaign();
                    self.dirty.insert(group);
                }
            }
            StoreMsg::Stop => return true,
        }
        false
    }

    fn tick_all(&mut self, now: Instant) {
        let deadline = now.checked_sub(self.config.request_timeout);
        for (group, p) in self.peers.iter_mut() {
            if p.raw.tick() {
                self.dirty.insert(*group);
            }
            if let Some(d) = deadline {
                p.expire(d);
            }
        }
    }

    fn process_readies(&mut self) -> tessera_storage::Result<()> {
        let mut batch = LogBatch::new();
        let mut readies = Vec::new();
        let groups: Vec<u64> = self.dirty.drain().collect();
        for group in groups {
            let Some(p) = self.peers.get_mut(&group) else {
                continue;
            };
            if !p.raw.has_ready() {
                continue;
            }
            let mut rd = p.raw.ready();
            for m in rd.take_messages() {
                self.outbox.entry(m.to).or_default().push((group, m));
            }
            if !rd.snapshot().is_empty() {
                tracing::error!(
                    "shard {group}: received a snapshot, which this build cannot install yet"
                );
            }
            let committed = rd.take_committed_entries();
            send_committed(&self.apply_tx, p, committed);
            let entries = rd.take_entries();
            if !entries.is_empty() {
                batch.append(group, entries.iter().map(to_log_entry).collect());
            }
            if let Some(hs) = rd.hs() {
                batch.set_hard_state(
                    group,
                    HardState {
                        term: hs.term,
                        vote: hs.vote,
                        commit: hs.commit,
                    },
                );
            }
            for rs in rd.take_read_states() {
                if let Some(cb) = p.take_read(&rs.request_ctx) {
                    let _ = self.apply_tx.send(ApplyTask::Read {
                        group,
                        index: rs.index,
                        cb,
                    });
                }
            }
            readies.push((group, rd));
        }
        // The leader's appends leave before its own fsync (Raft thesis §10.2.1).
        self.flush_outbox();
        if !batch.is_empty() {
            self.log.write(batch)?;
        }
        let mut status = Vec::with_capacity(readies.len());
        for (group, mut rd) in readies {
            let p = self.peers.get_mut(&group).expect("ready groups exist");
            for m in rd.take_persisted_messages() {
                self.outbox.entry(m.to).or_default().push((group, m));
            }
            let mut light = p.raw.advance_append(rd);
            for m in light.take_messages() {
                self.outbox.entry(m.to).or_default().push((group, m));
            }
            let committed = light.take_committed_entries();
            send_committed(&self.apply_tx, p, committed);
            if p.raw.has_ready() {
                self.dirty.insert(group);
            }
            status.push(peer_status(p));
        }
        self.flush_outbox();
        if !status.is_empty() {
            let mut s = self.shared.status.write();
            for st in status {
                s.insert(st.group, st);
            }
        }
        Ok(())
    }

    fn flush_outbox(&mut self) {
        let from = self.config.node_id;
        for (to, messages) in self.outbox.drain() {
            self.transport.send(
                to,
                MessageBatch {
                    from_node: from,
                    messages,
                },
            );
        }
    }
}

fn send_committed(apply_tx: &Sender<ApplyTask>, p: &mut Peer, entries: Vec<Entry>) {
    let Some(last) = entries.last().map(|e| e.index) else {
        return;
    };
    let proposals = p.take_proposals_upto(last);
    let _ = apply_tx.send(ApplyTask::Entries {
        group: p.group(),
        entries,
        proposals,
    });
}

fn peer_status(p: &Peer) -> PeerStatus {
    let r = &p.raw.raft;
    PeerStatus {
        group: p.group(),
        leader: (r.leader_id != raft::INVALID_ID).then_some(r.leader_id),
        is_leader: p.is_leader(),
        term: r.term,
        commit: r.raft_log.committed,
        applied: r.raft_log.applied,
        last_index: r.raft_log.last_index(),
    }
}
