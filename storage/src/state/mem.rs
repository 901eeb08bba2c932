//! [`MemStateEngine`]: the state engine in memory. It models the real engine's durability:
//! writes are visible at once but only a [`StateEngine::flush`] makes them survive
//! [`MemStateEngine::crash_copy`]. Checkpoints are written to a file so a snapshot can be
//! shipped and restored exactly as with RocksDB.

use super::applied::AppliedTracker;
use super::batch::{decode_applied, BatchOp};
use super::{Cf, KeyRange, StateEngine, StateSnapshot, WriteBatch, APPLIED_PREFIX};
use crate::{Error, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; 4];

const CHECKPOINT_FILE: &str = "state.mem";
const CHECKPOINT_MAGIC: &[u8; 8] = b"TSMEMCP1";

pub struct MemStateEngine {
    live: RwLock<Arc<Tables>>,
    durable: Mutex<Arc<Tables>>,
    applied: AppliedTracker,
    /// Fault injection for tests: while set, every write fails.
    failing: AtomicBool,
}

impl Default for MemStateEngine {
    fn default() -> Self {
        Self::from_tables(Tables::default())
    }
}

impl MemStateEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn from_tables(t: Tables) -> Self {
        let mut on_disk = HashMap::new();
        for (k, v) in t[Cf::Raft.idx()].range(APPLIED_PREFIX.to_vec()..) {
            let Some(g) = k.strip_prefix(APPLIED_PREFIX) else {
                break;
            };
            if let (Ok(g), Some(i)) = (<[u8; 8]>::try_from(g), decode_applied(v)) {
                on_disk.insert(u64::from_be_bytes(g), i);
            }
        }
        let t = Arc::new(t);
        MemStateEngine {
            live: RwLock::new(t.clone()),
            durable: Mutex::new(t),
            applied: AppliedTracker::recovered(on_disk),
            failing: AtomicBool::new(false),
        }
    }

    /// Fault injection: while `on`, every write fails with an I/O error (as on a full or
    /// failing disk) and changes nothing. A crash copy starts without it.
    pub fn fail_writes(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// A new engine holding what a crash would have kept: the state of the last flush.
    pub fn crash_copy(&self) -> Self {
        Self::from_tables((**self.durable.lock()).clone())
    }

    /// Opens a checkpoint written by [`StateEngine::checkpoint`].
    pub fn open_checkpoint(dir: &Path) -> Result<Self> {
        let path = dir.join(CHECKPOINT_FILE);
        let b =
            std::fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let bad = |offset: usize, reason: &str| Error::Corruption {
            file: path.clone(),
            offset: offset as u64,
            reason: reason.into(),
        };
        if b.len() < 12 || &b[..8] != CHECKPOINT_MAGIC {
            return Err(bad(0, "not a memory-engine checkpoint"));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4")) {
            return Err(bad(0, "checkpoint checksum mismatch"));
        }
        let mut t = Tables::default();
        let mut pos = 8;
        let take = |n: usize, pos: &mut usize| -> Result<&[u8]> {
            let s = body
                .get(*pos..*pos + n)
                .ok_or_else(|| bad(*pos, "truncated checkpoint"))?;
            *pos += n;
            Ok(s)
        };
        while pos < body.len() {
            let cf = take(1, &mut pos)?[0] as usize;
            let kl = u32::from_le_bytes(take(4, &mut pos)?.try_into().expect("4")) as usize;
            let k = take(kl, &mut pos)?.to_vec();
            let vl = u32::from_le_bytes(take(4, &mut pos)?.try_into().expect("4")) as usize;
            let v = take(vl, &mut pos)?.to_vec();
            t.get_mut(cf)
                .ok_or_else(|| bad(pos, "unknown column family"))?
                .insert(k, v);
        }
        Ok(Self::from_tables(t))
    }

    fn tables(&self) -> Arc<Tables> {
        self.live.read().clone()
    }
}

fn scan_tables(
    t: &Tables,
    cf: Cf,
    range: &KeyRange,
    limit: usize,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) {
    for (k, v) in t[cf.idx()].range(range.start.clone()..).take(limit) {
        if !range.contains(k) || !f(k, v) {
            break;
        }
    }
}

impl StateEngine for MemStateEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.live.read()[cf.idx()].get(key).cloned())
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::Io {
                context: "state write (injected fault)".into(),
                source: std::io::Error::other("injected write failure"),
            });
        }
        let mut live = self.live.write();
        // Copy-on-write: snapshots keep the old tables.
        let t = Arc::make_mut(&mut live);
        for op in batch.ops {
            match op {
                BatchOp::Put(cf, k, v) => {
                    t[cf.idx()].insert(k, v);
                }
                BatchOp::Delete(cf, k) => {
                    t[cf.idx()].remove(&k);
                }
                BatchOp::DeleteRange(cf, s, e) => {
                    let doomed: Vec<Vec<u8>> =
                        t[cf.idx()].range(s..e).map(|(k, _)| k.clone()).collect();
                    for k in doomed {
                        t[cf.idx()].remove(&k);
                    }
                }
            }
        }
        self.applied.wrote(&batch.applied);
        Ok(())
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        scan_tables(&self.tables(), cf, range, limit, f);
        Ok(())
    }

    fn snapshot(&self) -> Box<dyn StateSnapshot + '_> {
        Box::new(MemSnapshot(self.tables()))
    }

    fn flush(&self) -> Result<()> {
        let covered = self.applied.before_flush();
        *self.durable.lock() = self.tables();
        self.applied.flushed(covered);
        Ok(())
    }

    fn applied(&self, group: u64) -> Result<Option<u64>> {
        Ok(self.applied.written(group))
    }

    fn durable_applied(&self, group: u64) -> u64 {
        self.applied.durable(group)
    }

    fn checkpoint(&self, dir: &Path) -> Result<()> {
        let t = self.tables();
        let mut b = CHECKPOINT_MAGIC.to_vec();
        for cf in Cf::ALL {
            for (k, v) in &t[cf.idx()] {
                b.push(cf.idx() as u8);
                b.extend_from_slice(&(k.len() as u32).to_le_bytes());
                b.extend_from_slice(k);
                b.extend_from_slice(&(v.len() as u32).to_le_bytes());
                b.extend_from_slice(v);
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        std::fs::create_dir(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        crate::log::write_file_durable(dir, &dir.join(CHECKPOINT_FILE), &b)?;
        let covered = self.applied.before_flush();
        *self.durable.lock() = t;
        self.applied.flushed(covered);
        Ok(())
    }
}

struct MemSnapshot(Arc<Tables>);

impl StateSnapshot for MemSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0[cf.idx()].get(key).cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        scan_tables(&self.0, cf, range, limit, f);
        Ok(())
    }
}
