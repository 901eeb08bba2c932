//! [`MemLogEngine`]: the log engine in memory, for deterministic tests and simulation. It
//! keeps the same contract as the file engine (same validation, same errors); "durable"
//! means "applied", and [`MemLogEngine::crash_copy`] models a restart that keeps everything
//! acknowledged.

use super::batch::{GroupOp, LogBatch};
use super::index::Bounds;
use super::writer::DurableTicket;
use super::{GcStats, HardState, IoBackend, LogEngine, LogEntry, LogStatus};
use crate::Result;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
struct MemGroup {
    first: u64,
    entries: VecDeque<LogEntry>,
    compacted_to: u64,
    hard_state: Option<HardState>,
}

impl MemGroup {
    fn last_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first + self.entries.len() as u64 - 1)
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            first: (!self.entries.is_empty()).then_some(self.first),
            last: self.last_index(),
            compacted: self.compacted_to,
        }
    }

    fn check_range(&self, group: u64, low: u64, high: u64) -> Result<()> {
        self.bounds().check_read(group, low, high)
    }
}

#[derive(Default)]
struct State {
    groups: BTreeMap<u64, MemGroup>,
    batches: u64,
}

/// The in-memory log engine. Clones share the same log.
#[derive(Clone, Default)]
pub struct MemLogEngine {
    state: Arc<Mutex<State>>,
}

impl MemLogEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent engine holding exactly what this one holds: a restart after a crash
    /// (everything acknowledged survives, nothing is shared afterwards).
    pub fn crash_copy(&self) -> Self {
        let s = self.state.lock();
        MemLogEngine {
            state: Arc::new(Mutex::new(State {
                groups: s.groups.clone(),
                batches: 0,
            })),
        }
    }
}

impl LogEngine for MemLogEngine {
    fn submit(&self, batch: LogBatch) -> Result<DurableTicket> {
        batch.validate()?;
        let mut s = self.state.lock();
        let mut bounds: BTreeMap<u64, Bounds> = BTreeMap::new();
        for (group, op) in batch.ops() {
            let b = bounds
                .entry(*group)
                .or_insert_with(|| s.groups.get(group).map(|g| g.bounds()).unwrap_or_default());
            match op {
                GroupOp::Append(es) => b.append(*group, es[0].index, es.len() as u64)?,
                GroupOp::Compact(to) => b.compact(*to),
                GroupOp::Reset(to) => b.reset(*to),
                GroupOp::HardState(_) => {}
            }
        }
        for (group, op) in batch.ops {
            let g = s.groups.entry(group).or_default();
            match op {
                GroupOp::Append(es) => {
                    let first = es[0].index;
                    if g.entries.is_empty() || first < g.first {
                        g.entries.clear();
                        g.first = first;
                    } else {
                        g.entries.truncate((first - g.first) as usize);
                    }
                    g.entries.extend(es);
                }
                GroupOp::HardState(hs) => g.hard_state = Some(hs),
                GroupOp::Compact(to) if to > g.compacted_to => {
                    g.compacted_to = to;
                    let drop_n = to.saturating_sub(g.first).min(g.entries.len() as u64);
                    g.entries.drain(..drop_n as usize);
                    g.first = g.first.max(to);
                }
                GroupOp::Compact(_) => {}
                GroupOp::Reset(to) => {
                    g.entries.clear();
                    g.compacted_to = g.compacted_to.max(to);
                    g.first = g.compacted_to;
                }
            }
        }
        s.batches += 1;
        Ok(DurableTicket::done(Ok(())))
    }

    fn first_index(&self, group: u64) -> Option<u64> {
        let s = self.state.lock();
        s.groups
            .get(&group)
            .filter(|g| !g.entries.is_empty())
            .map(|g| g.first)
    }

    fn last_index(&self, group: u64) -> Option<u64> {
        self.state
            .lock()
            .groups
            .get(&group)
            .and_then(|g| g.last_index())
    }

    fn compacted_to(&self, group: u64) -> u64 {
        self.state
            .lock()
            .groups
            .get(&group)
            .map_or(0, |g| g.compacted_to)
    }

    fn term(&self, group: u64, index: u64) -> Result<u64> {
        let s = self.state.lock();
        let g = s.groups.get(&group).cloned().unwrap_or_default();
        g.check_range(group, index, index + 1)?;
        Ok(g.entries[(index - g.first) as usize].term)
    }

    fn entries(
        &self,
        group: u64,
        low: u64,
        high: u64,
        max_bytes: Option<u64>,
        out: &mut Vec<LogEntry>,
    ) -> Result<()> {
        if low >= high {
            return Ok(());
        }
        let s = self.state.lock();
        let empty = MemGroup::default();
        let g = s.groups.get(&group).unwrap_or(&empty);
        g.check_range(group, low, high)?;
        let mut size = 0u64;
        for e in g
            .entries
            .range((low - g.first) as usize..(high - g.first) as usize)
        {
            out.push(e.clone());
            size += e.data.len() as u64;
            if max_bytes.is_some_and(|m| size >= m) {
                break;
            }
        }
        Ok(())
    }

    fn hard_state(&self, group: u64) -> Option<HardState> {
        self.state
            .lock()
            .groups
            .get(&group)
            .and_then(|g| g.hard_state)
    }

    fn groups(&self) -> Vec<u64> {
        self.state.lock().groups.keys().copied().collect()
    }

    fn gc(&self) -> Result<GcStats> {
        Ok(GcStats::default())
    }

    fn status(&self) -> LogStatus {
        let s = self.state.lock();
        LogStatus {
            backend: IoBackend::Memory,
            fallback_reason: None,
            segments: 1,
            bytes: s
                .groups
                .values()
                .flat_map(|g| g.entries.iter())
                .map(|e| e.data.len() as u64)
                .sum(),
            groups: s.groups.len(),
            sync_rounds: s.batches,
            batches: s.batches,
            direct_io: false,
        }
    }
}
