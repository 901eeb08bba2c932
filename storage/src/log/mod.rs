//! The Raft log engine: one append-only, segmented log shared by every Raft group on a node.
//!
//! A [`LogBatch`] carries, for any number of groups, new entries (which overwrite a
//! conflicting suffix, as Raft requires), a new hard state, and compaction marks. The
//! [`LogEngine`] trait is the seam the Raft store talks to; [`FileLogEngine`] is the real one
//! (CRC32C-framed records, a writer thread doing group commit through io_uring or a
//! pwrite+fdatasync fallback, an in-memory index, a tail cache, segment GC), and
//! [`MemLogEngine`] is the in-memory twin for deterministic tests.

mod aligned;
mod batch;
mod file_engine;
mod gc;
mod index;
mod io;
mod mem;
mod record;
mod recovery;
mod segment;
mod writer;

pub use batch::{GroupOp, LogBatch};
pub use file_engine::{FileLogEngine, LogOptions};
pub use gc::GcStats;
pub use io::{IoBackend, IoMode};
pub use mem::MemLogEngine;
pub use writer::DurableTicket;

pub(crate) use segment::write_atomic as write_file_durable;

use crate::Result;
use bytes::Bytes;

/// One Raft log entry as the log engine sees it: an index, a term and opaque bytes (the
/// Raft store encodes the entry type and payload into `data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    pub data: Bytes,
}

impl LogEntry {
    pub fn new(index: u64, term: u64, data: impl Into<Bytes>) -> Self {
        LogEntry {
            index,
            term,
            data: data.into(),
        }
    }
}

/// Raft's persistent hard state for one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// What an engine reports about itself (exposed by INFO and the admin tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStatus {
    /// The I/O path in use; a fallback from io_uring is visible here.
    pub backend: IoBackend,
    /// Why io_uring was not used, when it was not.
    pub fallback_reason: Option<String>,
    /// Number of segment files (1 for the in-memory engine).
    pub segments: usize,
    /// Bytes in all segment files.
    pub bytes: u64,
    /// Groups with any state in the log.
    pub groups: usize,
    /// Write rounds (one write + one fdatasync each) since open.
    pub sync_rounds: u64,
    /// Batches submitted since open; `batches / sync_rounds` is the group-commit factor.
    pub batches: u64,
    /// Appends bypass the page cache (`O_DIRECT`).
    pub direct_io: bool,
}

/// The contract between the Raft store and a log engine.
///
/// Invariants every implementation keeps:
/// * A batch is atomic: after a crash either all of its operations are visible or none are.
/// * A batch whose [`DurableTicket`] resolved `Ok` survives any later crash.
/// * Appending entries starting at index `i` for a group discards that group's entries
///   `>= i` (Raft's conflicting suffix) before adding the new ones; entries of one append
///   are contiguous, and the first one is at most `last_index + 1` (when a group has
///   entries) — otherwise the batch is rejected with [`crate::Error::InvalidBatch`].
/// * `compact(group, to)` drops entries `< to`; reads below the first index answer
///   [`crate::Error::Compacted`], above the last [`crate::Error::Unavailable`].
/// * Reads see a batch once its ticket has resolved; they never see half a batch.
pub trait LogEngine: Send + Sync + 'static {
    /// Queue a batch for the next group commit; the ticket resolves when it is durable.
    fn submit(&self, batch: LogBatch) -> Result<DurableTicket>;

    /// Submit and wait until durable.
    fn write(&self, batch: LogBatch) -> Result<()> {
        self.submit(batch)?.wait()
    }

    /// Index of the group's first entry, if it has any.
    fn first_index(&self, group: u64) -> Option<u64>;
    /// Index of the group's last entry, if it has any.
    fn last_index(&self, group: u64) -> Option<u64>;
    /// The compaction mark: every entry below it has been dropped (0 if never compacted).
    fn compacted_to(&self, group: u64) -> u64;
    /// The term of entry `index`.
    fn term(&self, group: u64, index: u64) -> Result<u64>;
    /// Entries `[low, high)`, appended to `out`; stops early (after at least one entry) once
    /// `max_bytes` of entry data have been collected.
    fn entries(
        &self,
        group: u64,
        low: u64,
        high: u64,
        max_bytes: Option<u64>,
        out: &mut Vec<LogEntry>,
    ) -> Result<()>;
    /// The latest hard state written for the group.
    fn hard_state(&self, group: u64) -> Option<HardState>;
    /// Every group with any state in the log, sorted.
    fn groups(&self) -> Vec<u64>;
    /// Reclaim space: delete segments nothing needs and rewrite sparse old ones.
    fn gc(&self) -> Result<GcStats>;
    /// Backend and counters.
    fn status(&self) -> LogStatus;
}
