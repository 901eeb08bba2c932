//! Bookkeeping of applied indexes: the latest written per group and the latest known to be
//! durable (as of the last completed flush). Shared by both state engines.

use parking_lot::Mutex;
use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct AppliedTracker {
    written: Mutex<HashMap<u64, u64>>,
    durable: Mutex<HashMap<u64, u64>>,
}

impl AppliedTracker {
    /// Starts with everything on disk durable.
    pub fn recovered(on_disk: HashMap<u64, u64>) -> Self {
        AppliedTracker {
            written: Mutex::new(on_disk.clone()),
            durable: Mutex::new(on_disk),
        }
    }

    pub fn wrote(&self, applied: &[(u64, u64)]) {
        if applied.is_empty() {
            return;
        }
        let mut w = self.written.lock();
        for (g, i) in applied {
            w.insert(*g, *i);
        }
    }

    /// Call before a flush starts: what the flush is certain to cover.
    pub fn before_flush(&self) -> HashMap<u64, u64> {
        self.written.lock().clone()
    }

    pub fn flushed(&self, covered: HashMap<u64, u64>) {
        let mut d = self.durable.lock();
        for (g, i) in covered {
            let e = d.entry(g).or_insert(0);
            *e = (*e).max(i);
        }
    }

    pub fn written(&self, group: u64) -> Option<u64> {
        self.written.lock().get(&group).copied()
    }

    pub fn durable(&self, group: u64) -> u64 {
        self.durable.lock().get(&group).copied().unwrap_or(0)
    }
}
