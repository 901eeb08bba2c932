//! The batch loop: one thread driving every `RawNode` on this node. Each round it
//! 1. takes every queued message (proposals, reads, inbound Raft batches, apply progress),
//! 2. ticks all groups when the tick interval has passed,
//! 3. collects the `Ready` of every group touched, sends the messages that may go before
//!    persistence (the leader's appends: followers write while the leader does),
//! 4. writes all groups' new entries and hard states to the log as ONE batch (one fdatasync),
//! 5. sends the messages that had to wait for it, advances each group, and hands committed
//!    entries (with their proposals) and confirmed reads to the applier, which applies them
//!    at the end of the round on this thread (or on the apply thread, if so configured).
//!
//! Groups nobody touched cost nothing but their tick.

use super::apply::{Applier, ApplyTask, ApplyWorker};
use super::hard_states::HardStates;
use super::keys::{self, ApplyState};
use super::peer::Peer;
use super::peer_storage::to_log_entry;
use super::snapshot::{self, WorkerTask};
use super::{PeerStatus, Shared, StoreConfig, StoreError, StoreMsg, StoreParts};
use crate::shard::ShardDesc;
use crate::transport::{MessageBatch, Transport};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType};
use raft::SnapshotStatus;
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
    let mut threads = Vec::new();
    let logger = super::raft_log_bridge::logger();
    let mut applier = if config.apply_inline {
        Applier::Inline {
            worker: Box::new(ApplyWorker::new(state.clone(), state_machine, tx.clone())),
            queue: Vec::new(),
        }
    } else {
        let (apply_tx, apply_rx) = crossbeam_channel::unbounded();
        let worker = ApplyWorker::new(state.clone(), state_machine, tx.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("tessera-apply-{}", config.node_id))
                .spawn(move || worker.run(apply_rx))?,
        );
        Applier::Thread(apply_tx)
    };
    let (worker_tx, worker_rx) = crossbeam_channel::unbounded();
    let (wstate, wlog) = (state.clone(), log.clone());
    let worker = std::thread::Builder::new()
        .name(format!("tessera-snap-{}", config.node_id))
        .spawn(move || snapshot::run_worker(worker_rx, wstate, wlog))?;
    let mut peers = HashMap::new();
    let mut tombstones = HashSet::new();
    for desc in shards {
        if !desc.peers.contains(&config.node_id) {
            tombstones.insert(desc.id);
            continue;
        }
        let group = desc.id;
        let apply = keys::load_apply_state(state.as_ref(), group)?.unwrap_or_default();
        let conf = match keys::load_conf_state(state.as_ref(), group)? {
            Some(cs) => cs,
            None => voters(&desc.peers),
        };
        applier.send(ApplyTask::Register {
            desc: desc.clone(),
            state: apply,
        });
        peers.insert(
            group,
            Peer::new(
                &config,
                desc,
                log.clone(),
                conf,
                apply,
                worker_tx.clone(),
                &logger,
            )?,
        );
    }
    let store = StoreLoop {
        dirty: peers.keys().copied().collect(),
        config,
        log,
        transport,
        peers,
        applier,
        worker_tx,
        state,
        shared,
        outbox: HashMap::new(),
        hard_states: HardStates::default(),
        ticks: 0,
        applied_since_maintenance: false,
        logger,
        tombstones,
        apply_failed: false,
    };
    let main = std::thread::Builder::new()
        .name(format!("tessera-store-{}", store.config.node_id))
        .spawn(move || store.run(rx))?;
    threads.extend([main, worker]);
    Ok(threads)
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
        keys::put_apply_state(&mut wb, d.id, &ApplyState::bootstrap());
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
    applier: Applier,
    worker_tx: Sender<WorkerTask>,
    state: Arc<dyn StateEngine>,
    shared: Arc<Shared>,
    dirty: HashSet<u64>,
    outbox: HashMap<u64, Vec<(u64, Message)>>,
    hard_states: HardStates,
    ticks: u64,
    applied_since_maintenance: bool,
    logger: slog::Logger,
    /// Shards this node was removed from: messages for them never recreate a replica.
    tombstones: HashSet<u64>,
    /// Apply reported a failed state-engine write: the loop ends at once.
    apply_failed: bool,
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
                if self.apply_failed {
                    break;
                }
                stopping |= self.handle(m);
            }
            if self.apply_failed {
                // Stop at once: nothing that arrived after the failure may reach the log.
                break;
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + tick;
                self.tick_all(now);
            }
            if let Err(e) = self.process_readies() {
                tracing::error!(
                    "node {}: a storage write failed, store stops: {e}",
                    self.config.node_id
                );
                break;
            }
        }
        // Nothing here leads or serves reads any more: the server must not answer reads
        // from this node's state on the strength of a status from before the stop.
        for s in self.shared.status.write().values_mut() {
            s.leader = None;
            s.is_leader = false;
            s.local_reads = false;
        }
        self.shared
            .halted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for p in self.peers.values_mut() {
            p.fail_all(StoreError::Stopped);
        }
        self.applier.flush();
        self.applier.stop();
        // A clean stop leaves the latest commit indexes in the log.
        let mut batch = LogBatch::new();
        self.hard_states.ride_along(&mut batch);
        if !batch.is_empty() {
            let _ = self.log.write(batch);
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
                    if !self.peers.contains_key(&group) && !self.create_peer(group, &m) {
                        continue;
                    }
                    let p = self.peers.get_mut(&group).expect("exists or created");
                    if p.removed {
                        continue;
                    }
                    if let Err(e) = p.raw.step(m) {
                        tracing::debug!("shard {group}: step: {e}");
                    }
                    self.dirty.insert(group);
                }
            }
            StoreMsg::ChangePeers { group, changes, cb } => match self.peers.get_mut(&group) {
                Some(p) => {
                    p.propose_conf_change(&changes, cb);
                    self.dirty.insert(group);
                }
                None => cb(Err(StoreError::UnknownShard(group))),
            },
            StoreMsg::Applied { group, index } => {
                if let Some(p) = self.peers.get_mut(&group) {
                    p.raw.advance_apply_to(index);
                    self.dirty.insert(group);
                    self.applied_since_maintenance = true;
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
            StoreMsg::ApplyFailed(why) => {
                tracing::error!("node {}: {why}; store stops", self.config.node_id);
                self.apply_failed = true;
                return true;
            }
            StoreMsg::Stop => return true,
        }
        false
    }

    /// A leader is talking to this node about a shard it does not hold: it was just added
    /// to that shard. Create an empty replica; the leader's snapshot fills it in.
    fn create_peer(&mut self, group: u64, m: &Message) -> bool {
        let from_leader = matches!(
            m.get_msg_type(),
            MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
        );
        if !from_leader || m.to != self.config.node_id || self.tombstones.contains(&group) {
            return false;
        }
        let desc = ShardDesc {
            id: group,
            ..ShardDesc::default()
        };
        let apply = ApplyState::default();
        match Peer::new(
            &self.config,
            desc.clone(),
            self.log.clone(),
            ConfState::default(),
            apply,
            self.worker_tx.clone(),
            &self.logger,
        ) {
            Ok(p) => {
                self.applier
                    .send(ApplyTask::Register { desc, state: apply });
                self.peers.insert(group, p);
                true
            }
            Err(e) => {
                tracing::error!("shard {group}: cannot create replica: {e:#}");
                false
            }
        }
    }

    fn tick_all(&mut self, now: Instant) {
        let deadline = now.checked_sub(self.config.request_timeout);
        for (group, p) in self.peers.iter_mut() {
            if p.removed {
                continue;
            }
            if p.raw.tick() {
                self.dirty.insert(*group);
            }
            if let Some(d) = deadline {
                p.expire(d);
            }
        }
        self.ticks += 1;
        if self.ticks % self.config.maintenance_ticks.max(1) == 0 {
            if let Err(e) = self.compact_logs() {
                tracing::error!("node {}: log compaction failed: {e}", self.config.node_id);
            }
            // Flushing the state engine lets logs compact; it is only worth it (and its
            // compaction churn) once the log has grown: RocksDB flushes full memtables anyway.
            let log_big = self.log.status().bytes >= self.config.log_flush_bytes;
            if log_big && std::mem::take(&mut self.applied_since_maintenance) {
                let _ = self.worker_tx.send(WorkerTask::Maintain);
            }
        }
    }

    /// Compacts every group's log up to what is both applied and durably flushed in the
    /// state engine, once that is `compact_log_threshold` entries past its truncation
    /// point. The entry at the new point stays as the anchor that keeps its term known.
    fn compact_logs(&mut self) -> tessera_storage::Result<()> {
        let mut batch = LogBatch::new();
        let mut moved = Vec::new();
        for (group, p) in &self.peers {
            let applied = p.raw.raft.raft_log.applied;
            let target = applied.min(self.state.durable_applied(*group));
            let (truncated, _) = p.raw.store().truncated;
            if target <= truncated + self.config.compact_log_threshold {
                continue;
            }
            if let Ok(term) = self.log.term(*group, target) {
                batch.compact(*group, target);
                moved.push((*group, target, term));
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.log.write(batch)?;
        for (group, index, term) in moved {
            if let Some(p) = self.peers.get_mut(&group) {
                p.raw.mut_store().truncated = (index, term);
            }
        }
        Ok(())
    }

    fn process_readies(&mut self) -> tessera_storage::Result<()> {
        let mut batch = LogBatch::new();
        let mut readies = Vec::new();
        let groups: Vec<u64> = self.dirty.drain().collect();
        // Groups that changed without a Ready (e.g. only their applied index moved) still
        // publish their status.
        let mut quiet = Vec::new();
        for group in groups {
            let Some(p) = self.peers.get_mut(&group) else {
                continue;
            };
            p.flush_proposals();
            if !p.raw.has_ready() {
                quiet.push(peer_status(p));
                continue;
            }
            let mut rd = p.raw.ready();
            for m in rd.take_messages() {
                self.outbox.entry(m.to).or_default().push((group, m));
            }
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                match self.applier.install(group, snap.clone()) {
                    Some(Ok(desc)) => {
                        let md = snap.get_metadata();
                        p.desc = desc;
                        let store = p.raw.mut_store();
                        store.truncated = (md.index, md.term);
                        store.conf_state = md.get_conf_state().clone();
                        batch.reset(group, md.index + 1);
                    }
                    Some(Err(e)) => {
                        return Err(tessera_storage::Error::Rocks(format!(
                            "shard {group}: snapshot install failed: {e:#}"
                        )))
                    }
                    None => return Err(tessera_storage::Error::Closed),
                }
            }
            let committed = rd.take_committed_entries();
            send_committed(&mut self.applier, self.config.node_id, p, committed);
            let entries = rd.take_entries();
            if !entries.is_empty() {
                batch.append(group, entries.iter().map(to_log_entry).collect());
            }
            if let Some(hs) = rd.hs() {
                let hs = HardState {
                    term: hs.term,
                    vote: hs.vote,
                    commit: hs.commit,
                };
                let logged = self.log.hard_state(group);
                self.hard_states.changed(group, hs, logged, &mut batch);
            }
            for rs in rd.take_read_states() {
                if let Some(cb) = p.take_read(&rs.request_ctx) {
                    self.applier.send(ApplyTask::Read {
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
            self.hard_states.ride_along(&mut batch);
            self.log.write(batch)?;
        }
        let mut status = quiet;
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
            send_committed(&mut self.applier, self.config.node_id, p, committed);
            if p.raw.has_ready() {
                self.dirty.insert(group);
            }
            status.push(peer_status(p));
        }
        self.flush_outbox();
        // Inline apply runs after this round's messages left (followers need not wait for it).
        self.applier.flush();
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
        let mut snapshots = Vec::new();
        for (to, messages) in self.outbox.drain() {
            for (group, m) in &messages {
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    snapshots.push((*group, to));
                }
            }
            self.transport.send(
                to,
                MessageBatch {
                    from_node: from,
                    messages,
                },
            );
        }
        // Handed to the transport: report it sent. If it is lost, the follower's reply
        // shows the gap and raft sends another.
        for (group, to) in snapshots {
            if let Some(p) = self.peers.get_mut(&group) {
                p.raw.report_snapshot(to, SnapshotStatus::Finish);
                self.dirty.insert(group);
            }
        }
    }
}

/// Hands committed entries (and the proposals they answer) to the apply thread. Membership
/// changes take effect in raft here, in log order, and the resulting conf state and shard
/// descriptor travel with the entries so the apply thread persists them atomically.
fn send_committed(applier: &mut Applier, node: u64, p: &mut Peer, entries: Vec<Entry>) {
    let Some(last) = entries.last().map(|e| e.index) else {
        return;
    };
    let mut conf = Vec::new();
    for e in &entries {
        let applied = match e.get_entry_type() {
            EntryType::EntryConfChangeV2 => ConfChangeV2::parse_from_bytes(&e.data)
                .map_err(|err| err.to_string())
                .and_then(|cc| p.raw.apply_conf_change(&cc).map_err(|err| err.to_string())),
            EntryType::EntryConfChange => ConfChange::parse_from_bytes(&e.data)
                .map_err(|err| err.to_string())
                .and_then(|cc| p.raw.apply_conf_change(&cc).map_err(|err| err.to_string())),
            EntryType::EntryNormal => continue,
        };
        let result = applied.map(|cs| {
            let mut peers: Vec<u64> = cs
                .voters
                .iter()
                .chain(&cs.learners)
                .chain(&cs.voters_outgoing)
                .chain(&cs.learners_next)
                .copied()
                .collect();
            peers.sort_unstable();
            peers.dedup();
            p.desc.peers = peers;
            p.desc.epoch.conf_ver += 1;
            p.removed = !p.desc.peers.contains(&node);
            p.raw.mut_store().conf_state = cs.clone();
            (cs, p.desc.clone())
        });
        conf.push((e.index, result));
    }
    let proposals = p.take_proposals_upto(last);
    applier.send(ApplyTask::Entries {
        group: p.group(),
        entries,
        proposals,
        conf,
    });
}

fn peer_status(p: &Peer) -> PeerStatus {
    let r = &p.raw.raft;
    let cs = r.prs().conf().to_conf_state();
    let sorted = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    let voters = sorted(&cs.voters);
    let applied_term = r.raft_log.term(r.raft_log.applied).unwrap_or(0);
    let local_reads = p.is_leader()
        && voters == [r.id]
        && cs.voters_outgoing.is_empty()
        && applied_term == r.term;
    PeerStatus {
        local_reads,
        group: p.group(),
        leader: (r.leader_id != raft::INVALID_ID).then_some(r.leader_id),
        is_leader: p.is_leader(),
        term: r.term,
        commit: r.raft_log.committed,
        applied: r.raft_log.applied,
        last_index: r.raft_log.last_index(),
        voters,
        learners: sorted(&cs.learners),
        joint: !cs.voters_outgoing.is_empty(),
    }
}
