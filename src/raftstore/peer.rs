//! One replica of one shard on this node: its `RawNode`, the proposals waiting for their
//! entries to commit, and the reads waiting for a read index.

use super::entry_batch::{self, BATCH_CONTEXT, MAX_BATCH_BYTES};
use super::keys::ApplyState;
use super::peer_storage::PeerStorage;
use super::snapshot::WorkerTask;
use super::{PeerChange, ProposeCallback, ReadCallback, ReadMode, StoreConfig, StoreError};
use crate::shard::ShardDesc;
use bytes::Bytes;
use crossbeam_channel::Sender;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use raft::eraftpb::{ConfState, HardState};
use raft::{RawNode, StateRole};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tessera_storage::LogEngine;

/// Committed entry bytes of one group handed to apply per round.
const MAX_COMMITTED_BYTES_PER_ROUND: u64 = 4 << 20;

pub(crate) struct Proposal {
    pub index: u64,
    pub term: u64,
    /// Position of its command in a batched entry (0 for a plain entry).
    pub slot: usize,
    /// A membership change (its entry must be a conf change, or raft refused it).
    pub conf: bool,
    pub cb: ProposeCallback,
    pub at: Instant,
}

pub(crate) struct Peer {
    pub desc: ShardDesc,
    /// This node was removed from the group: the replica no longer ticks or answers.
    pub removed: bool,
    pub raw: RawNode<PeerStorage>,
    pub proposals: VecDeque<Proposal>,
    /// Proposals of this round, not yet handed to raft: they become one entry.
    pending: Vec<(Bytes, ProposeCallback)>,
    pending_bytes: usize,
    reads: HashMap<u64, (ReadCallback, Instant)>,
    next_read: u64,
}

impl Peer {
    pub fn new(
        cfg: &StoreConfig,
        desc: ShardDesc,
        log: Arc<dyn LogEngine>,
        conf_state: ConfState,
        apply: ApplyState,
        worker: Sender<WorkerTask>,
        logger: &slog::Logger,
    ) -> anyhow::Result<Self> {
        let group = desc.id;
        let mut hs = log
            .hard_state(group)
            .map(|h| {
                let mut hs = HardState::default();
                (hs.term, hs.vote, hs.commit) = (h.term, h.vote, h.commit);
                hs
            })
            .unwrap_or_default();
        // What the state engine applied (a bootstrap point or a snapshot) was committed, in
        // a term at least that of the last applied entry, even if no hard state says so yet.
        hs.commit = hs.commit.max(apply.applied_index);
        hs.term = hs.term.max(apply.applied_term);
        let storage = PeerStorage {
            group,
            truncated: PeerStorage::truncated_point(log.as_ref(), group, &apply),
            log,
            hard_state: hs,
            conf_state,
            snap: Default::default(),
            worker,
        };
        let rc = raft::Config {
            id: cfg.node_id,
            election_tick: cfg.election_tick,
            heartbeat_tick: cfg.heartbeat_tick,
            applied: apply.applied_index,
            max_size_per_msg: cfg.max_size_per_msg,
            max_inflight_msgs: cfg.max_inflight_msgs,
            // A round applies at most this much of a group's committed entries (the rest in
            // the next rounds), so a replica catching up does not stall its store loop —
            // which applies inline by default — for long.
            max_committed_size_per_ready: MAX_COMMITTED_BYTES_PER_ROUND,
            check_quorum: true,
            pre_vote: true,
            read_only_option: match cfg.read_mode {
                ReadMode::ReadIndex => raft::ReadOnlyOption::Safe,
                ReadMode::Lease => raft::ReadOnlyOption::LeaseBased,
            },
            ..raft::Config::default()
        };
        let raw = RawNode::new(&rc, storage, &logger.new(slog::o!("shard" => group)))
            .map_err(|e| anyhow::anyhow!("shard {group}: cannot start raft: {e}"))?;
        Ok(Peer {
            removed: false,
            desc,
            raw,
            proposals: VecDeque::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            reads: HashMap::new(),
            next_read: 1,
        })
    }

    pub fn group(&self) -> u64 {
        self.desc.id
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    fn not_leader(&self) -> StoreError {
        let leader = self.raw.raft.leader_id;
        StoreError::NotLeader {
            group: self.group(),
            leader: (leader != raft::INVALID_ID).then_some(leader),
        }
    }

    /// Queues a proposal; the round's proposals are handed to raft together by
    /// [`Peer::flush_proposals`].
    pub fn propose(&mut self, cmd: Bytes, cb: ProposeCallback) {
        if !self.is_leader() {
            return cb(Err(self.not_leader()));
        }
        // A batch never grows past the limit by taking a proposal: a large one goes alone.
        if self.pending_bytes + 4 + cmd.len() > MAX_BATCH_BYTES {
            self.flush_proposals();
        }
        self.pending_bytes += 4 + cmd.len();
        self.pending.push((cmd, cb));
    }

    /// Proposes the queued proposals as one entry (a lone one as a plain entry).
    pub fn flush_proposals(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.pending_bytes = 0;
        let pending = std::mem::take(&mut self.pending);
        // Leadership may have moved since they were queued (a message of this round). A
        // follower's raft would forward them to the new leader, where they would commit at
        // an index nobody here tracks: fail them instead, as `propose` does.
        let proposed = self.is_leader()
            && if let [(cmd, _)] = pending.as_slice() {
                self.raw.propose(vec![], cmd.to_vec()).is_ok()
            } else {
                let data = entry_batch::encode(pending.iter().map(|(c, _)| c));
                self.raw.propose(BATCH_CONTEXT.to_vec(), data).is_ok()
            };
        if !proposed {
            for (_, cb) in pending {
                cb(Err(self.not_leader()));
            }
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        let term = self.raw.raft.term;
        let at = Instant::now();
        for (slot, (_, cb)) in pending.into_iter().enumerate() {
            self.proposals.push_back(Proposal {
                index,
                term,
                slot,
                conf: false,
                cb,
                at,
            });
        }
    }

    pub fn propose_conf_change(&mut self, changes: &[PeerChange], cb: ProposeCallback) {
        if !self.is_leader() {
            return cb(Err(self.not_leader()));
        }
        // Proposals that arrived before it go first.
        self.flush_proposals();
        let singles: Vec<ConfChangeSingle> = changes
            .iter()
            .map(|c| {
                let mut s = ConfChangeSingle::default();
                let (t, node) = match *c {
                    PeerChange::AddVoter(n) => (ConfChangeType::AddNode, n),
                    PeerChange::AddLearner(n) => (ConfChangeType::AddLearnerNode, n),
                    PeerChange::Remove(n) => (ConfChangeType::RemoveNode, n),
                };
                s.set_change_type(t);
                s.node_id = node;
                s
            })
            .collect();
        let mut cc = ConfChangeV2::default();
        cc.set_changes(singles.into());
        if let Err(e) = self.raw.propose_conf_change(vec![], cc) {
            return cb(Err(StoreError::ConfChangeRejected {
                group: self.group(),
                reason: e.to_string(),
            }));
        }
        self.proposals.push_back(Proposal {
            index: self.raw.raft.raft_log.last_index(),
            term: self.raw.raft.term,
            slot: 0,
            conf: true,
            cb,
            at: Instant::now(),
        });
    }

    pub fn read(&mut self, cb: ReadCallback) {
        if !self.is_leader() {
            return cb(Err(self.not_leader()));
        }
        let id = self.next_read;
        self.next_read += 1;
        self.reads.insert(id, (cb, Instant::now()));
        self.raw.read_index(id.to_le_bytes().to_vec());
    }

    /// The callback of a read whose index is known.
    pub fn take_read(&mut self, ctx: &[u8]) -> Option<ReadCallback> {
        let id = u64::from_le_bytes(ctx.try_into().ok()?);
        self.reads.remove(&id).map(|(cb, _)| cb)
    }

    /// Proposals whose entries are at or below `index` (they are committed or lost).
    pub fn take_proposals_upto(&mut self, index: u64) -> Vec<Proposal> {
        let n = self
            .proposals
            .iter()
            .take_while(|p| p.index <= index)
            .count();
        self.proposals.drain(..n).collect()
    }

    /// Fails requests older than `deadline`, and every read if leadership was lost (a
    /// follower never answers them).
    pub fn expire(&mut self, deadline: Instant) {
        let group = self.group();
        while self.proposals.front().is_some_and(|p| p.at < deadline) {
            let p = self.proposals.pop_front().expect("checked");
            (p.cb)(Err(StoreError::Timeout(group)));
        }
        let leader = self.is_leader();
        let stale: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, (_, at))| *at < deadline || !leader)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let (cb, _) = self.reads.remove(&id).expect("listed");
            cb(Err(if leader {
                StoreError::Timeout(group)
            } else {
                self.not_leader()
            }));
        }
    }

    /// Fails everything pending (store stopping).
    pub fn fail_all(&mut self, err: StoreError) {
        for (_, cb) in self.pending.drain(..) {
            cb(Err(err.clone()));
        }
        for p in self.proposals.drain(..) {
            (p.cb)(Err(err.clone()));
        }
        for (_, (cb, _)) in self.reads.drain() {
            cb(Err(err.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Message, MessageType};
    use std::sync::mpsc;

    fn sole_voter() -> Peer {
        let desc = ShardDesc {
            id: 1,
            peers: vec![1],
            ..ShardDesc::default()
        };
        let conf = ConfState {
            voters: vec![1],
            ..Default::default()
        };
        let (worker, _) = crossbeam_channel::unbounded();
        let mut p = Peer::new(
            &StoreConfig::new(1),
            desc,
            Arc::new(tessera_storage::MemLogEngine::new()),
            conf,
            ApplyState::default(),
            worker,
            &super::super::raft_log_bridge::logger(),
        )
        .unwrap();
        p.raw.campaign().unwrap();
        assert!(p.is_leader(), "a sole voter elects itself");
        p
    }

    fn capture() -> (ProposeCallback, mpsc::Receiver<Result<Bytes, StoreError>>) {
        let (tx, rx) = mpsc::channel();
        (Box::new(move |r| tx.send(r).unwrap()), rx)
    }

    #[test]
    fn queued_proposals_of_a_leader_that_stepped_down_fail_as_not_leader() {
        let mut p = sole_voter();
        let (cb, rx) = capture();
        p.propose(Bytes::from_static(b"cmd"), cb);
        assert!(rx.try_recv().is_err(), "queued, not answered yet");
        // A leader of a later term speaks up in the same round.
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        (m.from, m.to, m.term) = (2, 1, p.raw.raft.term + 1);
        p.raw.step(m).unwrap();
        assert!(!p.is_leader());
        p.flush_proposals();
        match rx.try_recv() {
            Ok(Err(StoreError::NotLeader { leader, .. })) => assert_eq!(leader, Some(2)),
            other => panic!("expected NotLeader, got {other:?}"),
        }
        assert!(
            p.proposals.is_empty(),
            "nothing tracked for a forwarded entry"
        );
    }

    #[test]
    fn a_round_of_proposals_is_one_entry_with_one_slot_each() {
        let mut p = sole_voter();
        let before = p.raw.raft.raft_log.last_index();
        for cmd in [&b"a"[..], b"bb", b"ccc"] {
            p.propose(Bytes::copy_from_slice(cmd), Box::new(|_| {}));
        }
        p.flush_proposals();
        assert_eq!(p.raw.raft.raft_log.last_index(), before + 1);
        let slots: Vec<(u64, usize)> = p.proposals.iter().map(|q| (q.index, q.slot)).collect();
        assert_eq!(
            slots,
            vec![(before + 1, 0), (before + 1, 1), (before + 1, 2)]
        );
    }

    #[test]
    fn a_proposal_that_would_overfill_the_batch_starts_the_next_entry() {
        let mut p = sole_voter();
        let before = p.raw.raft.raft_log.last_index();
        let big = Bytes::from(vec![1u8; MAX_BATCH_BYTES / 2]);
        for _ in 0..3 {
            p.propose(big.clone(), Box::new(|_| {}));
        }
        p.flush_proposals();
        // Two halves and their length prefixes exceed the limit: each half is an entry.
        let indexes: Vec<u64> = p.proposals.iter().map(|q| q.index).collect();
        assert_eq!(indexes, vec![before + 1, before + 2, before + 3]);
        p.propose(big, Box::new(|_| {}));
        p.propose(Bytes::from_static(b"s"), Box::new(|_| {}));
        p.flush_proposals();
        let last: Vec<(u64, usize)> = p
            .proposals
            .iter()
            .skip(3)
            .map(|q| (q.index, q.slot))
            .collect();
        assert_eq!(last, vec![(before + 4, 0), (before + 4, 1)]);
    }
}
