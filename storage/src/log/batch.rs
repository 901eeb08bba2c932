//! [`LogBatch`]: the unit of atomic, group-committed writing — operations for any number of
//! groups, validated before they reach the writer.

use super::{HardState, LogEntry};
use crate::{Error, Result};

/// One operation on one group's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupOp {
    /// Append contiguous entries, discarding the group's entries from the first index on.
    Append(Vec<LogEntry>),
    /// Replace the group's hard state.
    HardState(HardState),
    /// Drop every entry below the index.
    Compact(u64),
    /// Drop every entry and move the compaction mark to the index (a snapshot replaced the
    /// log); appends resume there.
    Reset(u64),
}

/// Operations for many groups, written as one record with one fdatasync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogBatch {
    pub(crate) ops: Vec<(u64, GroupOp)>,
}

impl LogBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append entries to `group` (they must be contiguous).
    pub fn append(&mut self, group: u64, entries: Vec<LogEntry>) -> &mut Self {
        if !entries.is_empty() {
            self.ops.push((group, GroupOp::Append(entries)));
        }
        self
    }

    pub fn set_hard_state(&mut self, group: u64, hs: HardState) -> &mut Self {
        self.ops.push((group, GroupOp::HardState(hs)));
        self
    }

    /// Drop `group`'s entries below `index`.
    pub fn compact(&mut self, group: u64, index: u64) -> &mut Self {
        self.ops.push((group, GroupOp::Compact(index)));
        self
    }

    /// Drop all of `group`'s entries; its log resumes at `index` (after a snapshot install).
    pub fn reset(&mut self, group: u64, index: u64) -> &mut Self {
        self.ops.push((group, GroupOp::Reset(index)));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[(u64, GroupOp)] {
        &self.ops
    }

    /// Bytes of entry data carried.
    pub fn data_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|(_, op)| match op {
                GroupOp::Append(es) => es.iter().map(|e| e.data.len()).sum(),
                _ => 0,
            })
            .sum()
    }

    /// Checks what can be checked without the engine's state: contiguous entries, index > 0.
    pub(crate) fn validate(&self) -> Result<()> {
        for (group, op) in &self.ops {
            if let GroupOp::Append(es) = op {
                if es[0].index == 0 {
                    return Err(Error::InvalidBatch(format!(
                        "group {group}: entry index 0 is reserved"
                    )));
                }
                for w in es.windows(2) {
                    if w[1].index != w[0].index + 1 {
                        return Err(Error::InvalidBatch(format!(
                            "group {group}: entries not contiguous ({} then {})",
                            w[0].index, w[1].index
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
