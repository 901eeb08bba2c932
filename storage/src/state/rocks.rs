//! [`RocksStateEngine`]: the state engine on RocksDB. Writes skip RocksDB's WAL (the Raft log
//! is the durable record). Every family lives in one RocksDB column family under its tag
//! byte (`family_keys`), so each flush is a consistent cut: the applied index and the data it
//! covers reach disk together. Memtables are small (cheap inserts) and several are merged
//! into each L0 file (`memtables_per_flush`), so flush and compaction see large files.

use super::applied::AppliedTracker;
use super::batch::{decode_applied, BatchOp};
use super::family_keys::{bounds, prefixed, prefixed_into, tag, unprefixed, with_prefixed};
use super::{Cf, KeyRange, StateEngine, StateSnapshot, WriteBatch, APPLIED_PREFIX};
use crate::error::rocks_err;
use crate::{Error, Result};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, FlushOptions,
    IteratorMode, Options, ReadOptions, SnapshotWithThreadMode, WriteOptions, DB,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Knobs of the RocksDB state engine.
#[derive(Clone, Debug)]
pub struct StateOptions {
    pub dir: PathBuf,
    /// Shared LRU block cache, bytes.
    pub block_cache_bytes: usize,
    /// Memtable bytes written out by one flush (one L0 file): 16 MiB. The level L0 compacts
    /// into is sized at four of them (RocksDB's own sizing rule).
    pub write_buffer_bytes: usize,
    /// How many memtables `write_buffer_bytes` is cut into (8: 2 MiB each). A memtable insert
    /// is a skiplist descent whose cost is its cache misses, so a small active memtable makes
    /// every insert cheaper, while merging them per flush keeps L0 files — and compaction —
    /// as they were. `cargo bench --bench apply_floor` (docs/benchmarks.md).
    pub memtables_per_flush: usize,
    pub background_jobs: i32,
}

impl StateOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateOptions {
            dir: dir.into(),
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 16 << 20,
            memtables_per_flush: 8,
            background_jobs: 2,
        }
    }
}

pub struct RocksStateEngine {
    db: DB,
    /// Default read options, made once (a point read would otherwise create and free one).
    read_opts: ReadOptions,
    applied: AppliedTracker,
    dir: PathBuf,
}

fn db_options(opts: &StateOptions) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(opts.block_cache_bytes));
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_max_background_jobs(opts.background_jobs);
    o.set_bytes_per_sync(1 << 20);
    o.set_block_based_table_factory(&table);
    // LZ4 everywhere: with dynamic level sizing a young database compacts straight into the
    // bottommost level, and ZSTD there measured as the top CPU cost of a write-heavy run.
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_bottommost_compression_type(DBCompressionType::Lz4);
    let merged = opts.memtables_per_flush.clamp(1, 64);
    o.set_write_buffer_size((opts.write_buffer_bytes / merged).max(64 << 10));
    o.set_min_write_buffer_number_to_merge(merged as i32);
    // Room for a second full set to fill while the first one flushes: with less, RocksDB
    // slows writes down (it stalls at one memtable short of the limit) whenever a flush
    // takes longer than filling the headroom, and a slowed apply stalls the store loop.
    // Memory stays what two 16 MiB memtables took before.
    o.set_max_write_buffer_number(2 * merged as i32);
    // A read looks through every unflushed memtable; a bloom filter over whole keys lets it
    // skip the ones that do not hold the key.
    o.set_memtable_whole_key_filtering(true);
    o.set_memtable_prefix_bloom_ratio(0.1);
    // RocksDB's sizing rule: the level L0 compacts into holds about what L0 does when its
    // compaction triggers (4 files); a larger one makes every L0 compaction rewrite it.
    o.set_max_bytes_for_level_base(4 * opts.write_buffer_bytes as u64);
    o
}

impl RocksStateEngine {
    /// Opens (creating if needed) the engine in `opts.dir`. RocksDB's own LOCK file makes a
    /// second opener fail with [`Error::Locked`].
    pub fn open(opts: StateOptions) -> Result<Self> {
        std::fs::create_dir_all(&opts.dir)
            .map_err(|e| Error::io(format!("create {}", opts.dir.display()), e))?;
        refuse_family_per_column_layout(&opts.dir)?;
        // Opened through a descriptor so the family has a handle (batched MultiGet needs one).
        let options = db_options(&opts);
        let default = ColumnFamilyDescriptor::new("default", options.clone());
        let db = DB::open_cf_descriptors(&options, &opts.dir, [default]).map_err(|e| {
            let msg = e.into_string();
            if msg.contains("lock") && msg.contains("LOCK") {
                Error::Locked(opts.dir.clone())
            } else {
                Error::Rocks(msg)
            }
        })?;
        let mut on_disk = HashMap::new();
        let from = prefixed(Cf::Raft, APPLIED_PREFIX);
        for item in db.iterator(IteratorMode::From(&from, Direction::Forward)) {
            let (k, v) = item.map_err(rocks_err)?;
            let Some(g) = k.strip_prefix(from.as_slice()) else {
                break;
            };
            if let (Ok(g), Some(i)) = (<[u8; 8]>::try_from(g), decode_applied(&v)) {
                on_disk.insert(u64::from_be_bytes(g), i);
            }
        }
        Ok(RocksStateEngine {
            read_opts: ReadOptions::default(),
            db,
            applied: AppliedTracker::recovered(on_disk),
            dir: opts.dir,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Data dirs written before the families shared one RocksDB column family had one column
/// family each; reading them as prefixed keys would silently see nothing, so they are refused.
fn refuse_family_per_column_layout(dir: &Path) -> Result<()> {
    if !dir.join("CURRENT").exists() {
        return Ok(());
    }
    let families = DB::list_cf(&Options::default(), dir).map_err(rocks_err)?;
    if families.iter().any(|f| f != "default") {
        return Err(Error::Rocks(format!(
            "{}: state written by an older Tessera (column families {}); this version keeps \
             every family in one column family under a key prefix and cannot read it — start \
             from an empty data dir",
            dir.display(),
            families.join(",")
        )));
    }
    Ok(())
}

fn scan_with(
    iter: impl Iterator<Item = std::result::Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
    limit: usize,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    for item in iter.take(limit) {
        let (k, v) = item.map_err(rocks_err)?;
        if !f(unprefixed(&k), &v) {
            break;
        }
    }
    Ok(())
}

/// Read options bounding an iterator to `range` of `cf`, and the key to seek to.
fn range_read_opts(cf: Cf, range: &KeyRange) -> (ReadOptions, Vec<u8>) {
    let (start, end) = bounds(cf, range);
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(end);
    (ro, start)
}

impl StateEngine for RocksStateEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        with_prefixed(cf, key, |k| self.db.get_opt(k, &self.read_opts)).map_err(rocks_err)
    }

    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        // Callers that read a run of keys pass them sorted (so are their prefixed forms);
        // RocksDB then skips its own sort.
        let sorted = keys.windows(2).all(|w| w[0] < w[1]);
        let mut buf = Vec::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
        let mut ends = Vec::with_capacity(keys.len());
        for k in keys {
            buf.push(tag(cf));
            buf.extend_from_slice(k);
            ends.push(buf.len());
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let stored = starts.zip(ends.iter()).map(|(s, e)| &buf[s..*e]);
        let default = self.db.cf_handle("default").expect("opened with a handle");
        self.db
            .batched_multi_get_cf_opt(default, stored, sorted, &self.read_opts)
            .into_iter()
            .map(|r| r.map(|v| v.map(|s| s.to_vec())).map_err(rocks_err))
            .collect()
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        let (mut key, mut end) = (Vec::new(), Vec::new());
        for op in &batch.ops {
            match op {
                BatchOp::Put(cf, k, v) => {
                    prefixed_into(&mut key, *cf, k);
                    wb.put(&key, v)
                }
                BatchOp::Delete(cf, k) => {
                    prefixed_into(&mut key, *cf, k);
                    wb.delete(&key)
                }
                BatchOp::DeleteRange(cf, s, e) => {
                    prefixed_into(&mut key, *cf, s);
                    prefixed_into(&mut end, *cf, e);
                    wb.delete_range(&key, &end)
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.db.write_opt(wb, &wo).map_err(rocks_err)?;
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
        let (ro, start) = range_read_opts(cf, range);
        let mode = IteratorMode::From(&start, Direction::Forward);
        scan_with(self.db.iterator_opt(mode, ro), limit, f)
    }

    fn snapshot(&self) -> Box<dyn StateSnapshot + '_> {
        Box::new(RocksSnapshot {
            snap: self.db.snapshot(),
        })
    }

    fn flush(&self) -> Result<()> {
        let covered = self.applied.before_flush();
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        self.db.flush_opt(&fo).map_err(rocks_err)?;
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
        // A checkpoint flushes the memtables first (WAL is off), so it is self-contained.
        let covered = self.applied.before_flush();
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(rocks_err)?;
        self.applied.flushed(covered);
        Ok(())
    }
}

struct RocksSnapshot<'a> {
    snap: SnapshotWithThreadMode<'a, DB>,
}

impl StateSnapshot for RocksSnapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        with_prefixed(cf, key, |k| self.snap.get(k)).map_err(rocks_err)
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let (ro, start) = range_read_opts(cf, range);
        let mode = IteratorMode::From(&start, Direction::Forward);
        scan_with(self.snap.iterator_opt(mode, ro), limit, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_with_a_column_family_per_family_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut o = Options::default();
            o.create_if_missing(true);
            o.create_missing_column_families(true);
            DB::open_cf(&o, dir.path(), ["default", "raft", "lock", "txn"]).unwrap();
        }
        let err = RocksStateEngine::open(StateOptions::new(dir.path()))
            .err()
            .expect("the old layout is refused");
        assert!(
            err.to_string().contains("older Tessera") && err.to_string().contains("raft"),
            "{err}"
        );
    }

    #[test]
    fn a_fresh_data_dir_opens_again_after_a_clean_close() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = RocksStateEngine::open(StateOptions::new(dir.path())).unwrap();
            let mut wb = WriteBatch::new();
            wb.put(Cf::Raft, "r", "1").put(Cf::Data, "d", "2");
            e.write(wb).unwrap();
        }
        let e = RocksStateEngine::open(StateOptions::new(dir.path())).unwrap();
        assert_eq!(e.get(Cf::Raft, b"r").unwrap(), Some(b"1".to_vec()));
        assert_eq!(e.get(Cf::Data, b"d").unwrap(), Some(b"2".to_vec()));
        assert_eq!(e.get(Cf::Data, b"r").unwrap(), None);
    }
}
