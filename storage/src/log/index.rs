//! Per-group in-memory index of the file log: for every live entry its term and where its
//! data lies on disk, plus the group's hard state, compaction mark and a bounded cache of
//! the newest entries' data (so followers and apply rarely touch the disk).

use super::HardState;
use crate::{Error, Result};
use bytes::Bytes;
use std::collections::VecDeque;

/// Where one entry's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    pub term: u64,
    pub seg: u64,
    /// File offset of the entry's data.
    pub offset: u64,
    pub len: u32,
}

/// The shape of a group's log, enough to validate a batch before it is written. Engines
/// validate a whole round of batches against these, applying each accepted op in turn.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bounds {
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub compacted: u64,
}

impl Bounds {
    /// Checks an append of `n` entries starting at `first` (the [`super::LogEngine`]
    /// invariants) and, when valid, applies it.
    pub fn append(&mut self, group: u64, first: u64, n: u64) -> Result<()> {
        if first < self.compacted {
            return Err(Error::InvalidBatch(format!(
                "group {group}: append at {first} is below the compaction mark {}",
                self.compacted
            )));
        }
        match (self.first, self.last) {
            (Some(f), Some(l)) if first < f || first > l + 1 => {
                return Err(Error::InvalidBatch(format!(
                    "group {group}: append at {first} leaves a gap or precedes the log [{f}, {l}]"
                )));
            }
            (Some(_), _) => {}
            _ => self.first = Some(first),
        }
        self.last = Some(first + n - 1);
        Ok(())
    }

    /// Bounds check for reading `[low, high)`, producing the trait's errors.
    pub fn check_read(&self, group: u64, low: u64, high: u64) -> Result<()> {
        let first = self.first.unwrap_or(self.compacted.max(1));
        if low < first {
            return Err(Error::Compacted {
                group,
                index: low,
                first,
            });
        }
        let last = self.last.unwrap_or(first - 1);
        if high > last + 1 {
            return Err(Error::Unavailable {
                group,
                index: high - 1,
                last,
            });
        }
        Ok(())
    }

    pub fn reset(&mut self, to: u64) {
        (self.first, self.last) = (None, None);
        self.compacted = self.compacted.max(to);
    }

    pub fn compact(&mut self, to: u64) {
        if to <= self.compacted {
            return;
        }
        self.compacted = to;
        match (self.first, self.last) {
            (Some(_), Some(l)) if to > l => (self.first, self.last) = (None, None),
            (Some(f), Some(_)) if to > f => self.first = Some(to),
            _ => {}
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct GroupIndex {
    /// Index of `entries[0]`.
    first: u64,
    entries: VecDeque<EntryMeta>,
    compacted_to: u64,
    /// Segment holding the latest compaction mark, if any.
    pub compact_seg: Option<u64>,
    hard_state: Option<HardState>,
    /// Segment holding the latest hard state.
    pub hard_state_seg: Option<u64>,
    cache_first: u64,
    cache: VecDeque<Bytes>,
    cache_bytes: usize,
}

impl GroupIndex {
    pub fn first_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then_some(self.first)
    }

    pub fn last_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first + self.entries.len() as u64 - 1)
    }

    pub fn compacted_to(&self) -> u64 {
        self.compacted_to
    }

    pub fn hard_state(&self) -> Option<HardState> {
        self.hard_state
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.hard_state.is_none() && self.compacted_to == 0
    }

    pub fn entries(&self) -> impl Iterator<Item = (u64, &EntryMeta)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, m)| (self.first + i as u64, m))
    }

    pub fn bounds(&self) -> Bounds {
        Bounds {
            first: self.first_index(),
            last: self.last_index(),
            compacted: self.compacted_to,
        }
    }

    /// Builds a group's index from replayed state; `entries` must be sorted and contiguous.
    pub fn restore(
        entries: impl IntoIterator<Item = (u64, EntryMeta)>,
        compacted_to: u64,
        compact_seg: Option<u64>,
        hard_state: Option<(HardState, u64)>,
    ) -> std::result::Result<Self, String> {
        let mut g = GroupIndex {
            compacted_to,
            compact_seg,
            hard_state: hard_state.map(|(hs, _)| hs),
            hard_state_seg: hard_state.map(|(_, seg)| seg),
            ..GroupIndex::default()
        };
        for (i, meta) in entries {
            match g.last_index() {
                None => g.first = i,
                Some(l) if i != l + 1 => {
                    return Err(format!("hole in the log after index {l} (next is {i})"))
                }
                Some(_) => {}
            }
            g.entries.push_back(meta);
        }
        Ok(g)
    }

    /// Discards entries `>= first`, then adds `metas` (with their data for the cache).
    /// The writer has validated that this leaves no gap.
    pub fn append(
        &mut self,
        first: u64,
        metas: &[EntryMeta],
        data: Option<&[Bytes]>,
        cache_limit: usize,
    ) {
        if self.entries.is_empty() || first < self.first {
            self.entries.clear();
            self.first = first;
        } else {
            self.entries.truncate((first - self.first) as usize);
        }
        self.entries.extend(metas.iter().copied());
        // Keep the cache a contiguous run ending at the last index.
        if first < self.cache_first + self.cache.len() as u64 && first >= self.cache_first {
            let keep = (first - self.cache_first) as usize;
            while self.cache.len() > keep {
                let b = self.cache.pop_back().expect("len checked");
                self.cache_bytes -= b.len();
            }
        } else if first != self.cache_first + self.cache.len() as u64 {
            self.clear_cache();
        }
        match data {
            Some(data) if cache_limit > 0 => {
                if self.cache.is_empty() {
                    self.cache_first = first;
                }
                for d in data {
                    self.cache_bytes += d.len();
                    self.cache.push_back(d.clone());
                }
                while self.cache_bytes > cache_limit {
                    let b = self.cache.pop_front().expect("non-empty while over budget");
                    self.cache_bytes -= b.len();
                    self.cache_first += 1;
                }
            }
            _ => self.clear_cache(),
        }
    }

    /// Points an entry at its new location after GC copied it.
    pub fn relocate(&mut self, index: u64, meta: EntryMeta) {
        if let Some(slot) = index
            .checked_sub(self.first)
            .and_then(|i| self.entries.get_mut(i as usize))
        {
            debug_assert_eq!(slot.term, meta.term);
            *slot = meta;
        }
    }

    pub fn compact(&mut self, to: u64, seg: u64) {
        self.compact_seg = Some(seg);
        if to <= self.compacted_to {
            return;
        }
        self.compacted_to = to;
        if let Some(last) = self.last_index() {
            if to > last {
                self.entries.clear();
                self.first = to;
            } else if to > self.first {
                self.entries.drain(..(to - self.first) as usize);
                self.first = to;
            }
        }
        while self.cache_first < to && !self.cache.is_empty() {
            let b = self.cache.pop_front().expect("non-empty");
            self.cache_bytes -= b.len();
            self.cache_first += 1;
        }
    }

    /// Drops every entry; the log resumes at `to` (or the older mark if higher).
    pub fn reset(&mut self, to: u64, seg: u64) {
        self.compact_seg = Some(seg);
        self.compacted_to = self.compacted_to.max(to);
        self.entries.clear();
        self.first = self.compacted_to;
        self.clear_cache();
    }

    pub fn set_hard_state(&mut self, hs: HardState, seg: u64) {
        self.hard_state = Some(hs);
        self.hard_state_seg = Some(seg);
    }

    pub fn meta(&self, index: u64) -> Option<&EntryMeta> {
        index
            .checked_sub(self.first)
            .and_then(|i| self.entries.get(i as usize))
    }

    pub fn cached(&self, index: u64) -> Option<&Bytes> {
        index
            .checked_sub(self.cache_first)
            .and_then(|i| self.cache.get(i as usize))
    }

    fn clear_cache(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
        self.cache_first = 0;
    }

    /// Bounds check for reads, producing the trait's errors.
    pub fn check_range(&self, group: u64, low: u64, high: u64) -> Result<()> {
        self.bounds().check_read(group, low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(term: u64) -> EntryMeta {
        EntryMeta {
            term,
            seg: 1,
            offset: 0,
            len: 1,
        }
    }

    #[test]
    fn append_truncates_conflicting_suffix_and_cache_follows() {
        let mut g = GroupIndex::default();
        let d: Vec<Bytes> = (0..5).map(|i| Bytes::from(vec![i as u8])).collect();
        g.append(1, &[m(1), m(1), m(1), m(1), m(1)], Some(&d), 1 << 20);
        g.append(3, &[m(2)], Some(&d[..1]), 1 << 20);
        assert_eq!(g.last_index(), Some(3));
        assert_eq!(g.meta(3).unwrap().term, 2);
        assert_eq!(g.cached(3).unwrap()[0], 0);
        assert_eq!(g.cached(2).unwrap()[0], 1);
        assert!(g.cached(4).is_none());
    }

    #[test]
    fn cache_is_bounded_and_compaction_moves_first() {
        let mut g = GroupIndex::default();
        let d: Vec<Bytes> = (0..10).map(|_| Bytes::from(vec![0u8; 10])).collect();
        let metas = vec![m(1); 10];
        g.append(1, &metas, Some(&d), 35);
        assert!(g.cached(10).is_some() && g.cached(7).is_none());
        g.compact(5, 2);
        assert_eq!(g.first_index(), Some(5));
        assert_eq!(g.compacted_to(), 5);
        assert!(g.check_range(7, 4, 5).is_err());
        assert!(g.check_range(7, 5, 11).is_ok());
        assert!(g.check_range(7, 5, 12).is_err());
    }
}
