//! [`RocksStateEngine`]: the state engine on RocksDB. Writes skip RocksDB's WAL (the Raft log
//! is the durable record); `atomic_flush` keeps all column families consistent with each
//! other on disk, so the applied index and the data it covers are flushed together.

use super::applied::AppliedTracker;
use super::batch::{decode_applied, BatchOp};
use super::{Cf, KeyRange, StateEngine, StateSnapshot, WriteBatch, APPLIED_PREFIX};
use crate::error::rocks_err;
use crate::{Error, Result};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction,
    FlushOptions, IteratorMode, Options, ReadOptions, SnapshotWithThreadMode, WriteOptions, DB,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Knobs of the RocksDB state engine.
#[derive(Clone, Debug)]
pub struct StateOptions {
    pub dir: PathBuf,
    /// Shared LRU block cache, bytes.
    pub block_cache_bytes: usize,
    /// Memtable size per column family, bytes. 16 MiB: a memtable insert is a skiplist walk
    /// whose cost is its cache misses, and at 64 MiB (with the default base level) a write
    /// cost ~30% more CPU (`cargo bench --bench apply_floor`, docs/benchmarks.md).
    pub write_buffer_bytes: usize,
    pub background_jobs: i32,
}

impl StateOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateOptions {
            dir: dir.into(),
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 16 << 20,
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

fn cf_options(opts: &StateOptions, cache: &Cache, cf: Cf) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    // LZ4 everywhere: with dynamic level sizing a young database compacts straight into the
    // bottommost level, and ZSTD there measured as the top CPU cost of a write-heavy run.
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_bottommost_compression_type(DBCompressionType::Lz4);
    let small = matches!(cf, Cf::Raft);
    let memtable = if small {
        opts.write_buffer_bytes / 8
    } else {
        opts.write_buffer_bytes
    };
    o.set_write_buffer_size(memtable);
    // RocksDB's sizing rule: the level L0 compacts into holds about what L0 does when its
    // compaction triggers (4 memtables); a larger one makes every L0 compaction rewrite it.
    o.set_max_bytes_for_level_base(4 * memtable as u64);
    o
}

impl RocksStateEngine {
    /// Opens (creating if needed) the engine in `opts.dir`. RocksDB's own LOCK file makes a
    /// second opener fail with [`Error::Locked`].
    pub fn open(opts: StateOptions) -> Result<Self> {
        std::fs::create_dir_all(&opts.dir)
            .map_err(|e| Error::io(format!("create {}", opts.dir.display()), e))?;
        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_atomic_flush(true);
        db_opts.set_max_background_jobs(opts.background_jobs);
        db_opts.set_bytes_per_sync(1 << 20);
        let cfs = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(&opts, &cache, *cf)));
        let db = DB::open_cf_descriptors(&db_opts, &opts.dir, cfs).map_err(|e| {
            let msg = e.into_string();
            if msg.contains("lock") && msg.contains("LOCK") {
                Error::Locked(opts.dir.clone())
            } else {
                Error::Rocks(msg)
            }
        })?;
        let mut on_disk = HashMap::new();
        {
            let cf = db.cf_handle(Cf::Raft.name()).expect("created at open");
            for item in db.iterator_cf(cf, IteratorMode::From(APPLIED_PREFIX, Direction::Forward)) {
                let (k, v) = item.map_err(rocks_err)?;
                let Some(g) = k.strip_prefix(APPLIED_PREFIX) else {
                    break;
                };
                if let (Ok(g), Some(i)) = (<[u8; 8]>::try_from(g), decode_applied(&v)) {
                    on_disk.insert(u64::from_be_bytes(g), i);
                }
            }
        }
        Ok(RocksStateEngine {
            read_opts: ReadOptions::default(),
            db,
            applied: AppliedTracker::recovered(on_disk),
            dir: opts.dir,
        })
    }

    fn cf(&self, cf: Cf) -> &ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn scan_with(
    iter: impl Iterator<Item = std::result::Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
    limit: usize,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    for item in iter.take(limit) {
        let (k, v) = item.map_err(rocks_err)?;
        if !f(&k, &v) {
            break;
        }
    }
    Ok(())
}

fn range_read_opts(range: &KeyRange) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if let Some(end) = &range.end {
        ro.set_iterate_upper_bound(end.clone());
    }
    ro
}

impl StateEngine for RocksStateEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf_opt(self.cf(cf), key, &self.read_opts)
            .map_err(rocks_err)
    }

    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        // Callers that read a run of keys pass them sorted; RocksDB then skips its own sort.
        let sorted = keys.windows(2).all(|w| w[0] < w[1]);
        self.db
            .batched_multi_get_cf_opt(self.cf(cf), keys.iter().copied(), sorted, &self.read_opts)
            .into_iter()
            .map(|r| r.map(|v| v.map(|s| s.to_vec())).map_err(rocks_err))
            .collect()
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                BatchOp::Put(cf, k, v) => wb.put_cf(self.cf(*cf), k, v),
                BatchOp::Delete(cf, k) => wb.delete_cf(self.cf(*cf), k),
                BatchOp::DeleteRange(cf, s, e) => wb.delete_range_cf(self.cf(*cf), s, e),
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
        let mode = IteratorMode::From(&range.start, Direction::Forward);
        scan_with(
            self.db
                .iterator_cf_opt(self.cf(cf), range_read_opts(range), mode),
            limit,
            f,
        )
    }

    fn snapshot(&self) -> Box<dyn StateSnapshot + '_> {
        Box::new(RocksSnapshot {
            engine: self,
            snap: self.db.snapshot(),
        })
    }

    fn flush(&self) -> Result<()> {
        let covered = self.applied.before_flush();
        let cfs: Vec<&ColumnFamily> = Cf::ALL.iter().map(|c| self.cf(*c)).collect();
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &fo).map_err(rocks_err)?;
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
    engine: &'a RocksStateEngine,
    snap: SnapshotWithThreadMode<'a, DB>,
}

impl StateSnapshot for RocksSnapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snap.get_cf(self.engine.cf(cf), key).map_err(rocks_err)
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let mode = IteratorMode::From(&range.start, Direction::Forward);
        let iter = self
            .snap
            .iterator_cf_opt(self.engine.cf(cf), range_read_opts(range), mode);
        scan_with(iter, limit, f)
    }
}
