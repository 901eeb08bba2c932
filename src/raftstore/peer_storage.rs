//! [`PeerStorage`]: raft-rs's view of one group's durable state — hard state and entries
//! from the shared log engine, conf state and truncation point from the state engine.
//! Entries are stored in the log as the transport codec's entry encoding.

use super::keys::ApplyState;
use super::snapshot::{SharedSlot, SnapSlot, WorkerTask};
use crate::transport::codec::{decode_entry, encode_entry};
use bytes::{Bytes, BytesMut};
use crossbeam_channel::Sender;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::sync::Arc;
use tessera_storage::{Error as StorageErr, LogEngine, LogEntry};

pub struct PeerStorage {
    pub group: u64,
    pub log: Arc<dyn LogEngine>,
    pub hard_state: HardState,
    pub conf_state: ConfState,
    /// (index, term) of the last entry covered by compaction or a snapshot; entries start
    /// right after it.
    pub truncated: (u64, u64),
    pub snap: SharedSlot,
    pub worker: Sender<WorkerTask>,
}

impl PeerStorage {
    /// Where the log starts: after a snapshot install, the state engine says (its apply
    /// state); after a compaction, the log does — compaction keeps the entry at the
    /// compaction point as an anchor, so its term stays known.
    pub fn truncated_point(log: &dyn LogEngine, group: u64, apply: &ApplyState) -> (u64, u64) {
        let c = log.compacted_to(group);
        if c > apply.truncated_index + 1 && log.first_index(group) == Some(c) {
            if let Ok(term) = log.term(group, c) {
                return (c, term);
            }
        }
        (apply.truncated_index, apply.truncated_term)
    }
}

/// A raft entry as the log engine stores it.
pub fn to_log_entry(e: &Entry) -> LogEntry {
    let mut b = BytesMut::with_capacity(32 + e.data.len() + e.context.len());
    encode_entry(e, &mut b);
    LogEntry::new(e.index, e.term, b.freeze())
}

fn from_log_entry(e: LogEntry) -> raft::Result<Entry> {
    let mut data: Bytes = e.data;
    decode_entry(&mut data).map_err(|err| raft::Error::Store(StorageError::Other(Box::new(err))))
}

fn storage_err(e: StorageErr) -> raft::Error {
    match e {
        StorageErr::Compacted { .. } => raft::Error::Store(StorageError::Compacted),
        StorageErr::Unavailable { .. } => raft::Error::Store(StorageError::Unavailable),
        other => raft::Error::Store(StorageError::Other(Box::new(other))),
    }
}

impl raft::Storage for PeerStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        self.log
            .entries(self.group, low, high, max_size.into(), &mut out)
            .map_err(storage_err)?;
        out.into_iter().map(from_log_entry).collect()
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.log.term(self.group, idx).map_err(storage_err)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self
            .log
            .last_index(self.group)
            .unwrap_or(0)
            .max(self.truncated.0))
    }

    /// Served from the group's slot once the worker has built a snapshot at least as new as
    /// `request_index`; until then "temporarily unavailable" (raft asks again later).
    ///
    /// A snapshot whose membership does not include `to` is useless to it (raft refuses to
    /// restore it): that happens when the snapshot was cut before the change adding `to`
    /// was applied here, so a newer one is built.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let mut slot = self.snap.lock();
        if let SnapSlot::Ready(s) = &*slot {
            let md = s.get_metadata();
            let cs = md.get_conf_state();
            let includes_to = cs.voters.contains(&to) || cs.learners.contains(&to);
            if md.index >= request_index && md.index >= self.truncated.0 && includes_to {
                return Ok(s.clone());
            }
        }
        if !matches!(*slot, SnapSlot::Generating) {
            *slot = SnapSlot::Generating;
            let _ = self.worker.send(WorkerTask::Generate {
                group: self.group,
                slot: self.snap.clone(),
            });
        }
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
