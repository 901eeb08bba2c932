//! The state engine: where applied Raft commands land. Four column families keep user data,
//! Raft apply state and shard metadata, locks, and transaction records apart (in RocksDB
//! they are key prefixes of one RocksDB column family). Writes are
//! atomic batches across families; the applied index of a group travels in the same batch
//! as the data it covers, so the Raft log can be the only fsync'd path: on a crash the state
//! engine falls back to its last flush, and the log replays from there. [`StateEngine`] is
//! the seam; [`RocksStateEngine`] is the real one, [`MemStateEngine`] the in-memory twin.

mod applied;
mod batch;
mod family_keys;
mod mem;
mod rocks;

pub use batch::{BatchOp, WriteBatch};
pub use mem::MemStateEngine;
pub use rocks::{RocksStateEngine, StateOptions};

use crate::Result;
use std::path::Path;

/// Column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// User keys and values.
    Data,
    /// Raft apply state and shard metadata.
    Raft,
    /// Lock keys (leases, fencing tokens).
    Lock,
    /// Transaction records.
    Txn,
}

impl Cf {
    pub const ALL: [Cf; 4] = [Cf::Data, Cf::Raft, Cf::Lock, Cf::Txn];

    pub fn name(self) -> &'static str {
        match self {
            // RocksDB always has "default"; user data lives there.
            Cf::Data => "default",
            Cf::Raft => "raft",
            Cf::Lock => "lock",
            Cf::Txn => "txn",
        }
    }

    pub(crate) fn idx(self) -> usize {
        self as usize
    }
}

/// A half-open key range `[start, end)`; `end == None` means unbounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    pub fn new(start: impl Into<Vec<u8>>, end: Option<Vec<u8>>) -> Self {
        KeyRange {
            start: start.into(),
            end,
        }
    }

    /// Every key.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|e| key < e)
    }
}

/// Key of a group's applied index in [`Cf::Raft`].
pub(crate) fn applied_key(group: u64) -> Vec<u8> {
    let mut k = b"applied/".to_vec();
    k.extend_from_slice(&group.to_be_bytes());
    k
}

pub(crate) const APPLIED_PREFIX: &[u8] = b"applied/";

/// A consistent, read-only view of the engine at one moment.
pub trait StateSnapshot: Send {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Calls `f` for each pair in `range`, in key order, until it returns `false` or `limit`
    /// pairs have been visited.
    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;
}

/// The contract between the apply loop and a state engine.
///
/// Invariants every implementation keeps:
/// * [`StateEngine::write`] is atomic across column families and visible to reads when it
///   returns; it need not be durable.
/// * [`StateEngine::flush`] makes every write that returned before it durable, atomically
///   across column families; after a crash the engine holds exactly the state of some flush
///   at or after the last completed one (never a mix of two batches' halves).
/// * [`StateEngine::durable_applied`] never exceeds what a crash would keep, so the log
///   may purge every entry at or below it.
/// * Snapshots never change, whatever is written after they were taken.
pub trait StateEngine: Send + Sync + 'static {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Point reads of several keys of one column family, answered in order. RocksDB's
    /// batched MultiGet pays its per-read setup (super-version, thread-locals) once.
    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(cf, k)).collect()
    }
    fn write(&self, batch: WriteBatch) -> Result<()>;
    /// As [`StateSnapshot::scan`], on the current state.
    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;
    fn snapshot(&self) -> Box<dyn StateSnapshot + '_>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;
    /// The applied index last written for `group` (durable or not).
    fn applied(&self, group: u64) -> Result<Option<u64>>;
    /// The applied index for `group` that is known to survive a crash.
    fn durable_applied(&self, group: u64) -> u64;
    /// Writes a durable, self-contained copy of the whole engine into `dir` (which must not
    /// exist), openable with the implementation's own open/restore call.
    fn checkpoint(&self, dir: &Path) -> Result<()>;
}
