//! Ways to open, and restart, each engine implementation under test.

use tempfile::TempDir;
use tessera_storage::{
    FileLogEngine, IoMode, LogEngine, LogEntry, LogOptions, MemLogEngine, MemStateEngine,
    RocksStateEngine, StateEngine, StateOptions,
};

/// Opens a log engine and restarts it, keeping what it acknowledged.
pub trait LogHarness {
    type E: LogEngine;
    fn open(&mut self) -> Self::E;
    fn restart(&mut self, e: Self::E) -> Self::E;
}

pub struct MemLog;

impl LogHarness for MemLog {
    type E = MemLogEngine;
    fn open(&mut self) -> MemLogEngine {
        MemLogEngine::new()
    }
    fn restart(&mut self, e: MemLogEngine) -> MemLogEngine {
        e.crash_copy()
    }
}

pub struct FileLog {
    pub dir: TempDir,
    pub mode: IoMode,
    pub segment_size: u64,
    pub gc_rewrite_ratio: f64,
}

impl FileLog {
    pub fn new(mode: IoMode) -> Self {
        FileLog {
            dir: tempfile::tempdir().expect("temp dir"),
            mode,
            segment_size: 64 << 10,
            gc_rewrite_ratio: 0.3,
        }
    }

    pub fn options(&self) -> LogOptions {
        let mut o = LogOptions::new(self.dir.path());
        o.io_mode = self.mode;
        o.segment_size = self.segment_size;
        o.cache_bytes_per_group = 4 << 10;
        o.gc_rewrite_ratio = self.gc_rewrite_ratio;
        o
    }
}

impl LogHarness for FileLog {
    type E = FileLogEngine;
    fn open(&mut self) -> FileLogEngine {
        FileLogEngine::open(self.options()).expect("open file log")
    }
    fn restart(&mut self, e: FileLogEngine) -> FileLogEngine {
        drop(e);
        self.open()
    }
}

/// Opens a state engine, "crashes" it (keeping only what was flushed) and restores
/// checkpoints.
pub trait StateHarness {
    type E: StateEngine;
    fn open(&mut self) -> Self::E;
    /// Restart after a crash: only flushed state survives (a clean close may keep more).
    fn crash(&mut self, e: Self::E) -> Self::E;
    fn open_checkpoint(&mut self, dir: &std::path::Path) -> Self::E;
}

pub struct MemState;

impl StateHarness for MemState {
    type E = MemStateEngine;
    fn open(&mut self) -> MemStateEngine {
        MemStateEngine::new()
    }
    fn crash(&mut self, e: MemStateEngine) -> MemStateEngine {
        e.crash_copy()
    }
    fn open_checkpoint(&mut self, dir: &std::path::Path) -> MemStateEngine {
        MemStateEngine::open_checkpoint(dir).expect("open checkpoint")
    }
}

pub struct RocksState {
    pub dir: TempDir,
}

impl RocksState {
    pub fn new() -> Self {
        RocksState {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn options(dir: &std::path::Path) -> StateOptions {
        let mut o = StateOptions::new(dir);
        o.block_cache_bytes = 8 << 20;
        o.write_buffer_bytes = 4 << 20;
        o
    }
}

impl StateHarness for RocksState {
    type E = RocksStateEngine;
    fn open(&mut self) -> RocksStateEngine {
        RocksStateEngine::open(Self::options(&self.dir.path().join("db"))).expect("open rocks")
    }
    /// In-process, the closest to a crash is close-and-reopen (a clean close flushes, which
    /// the contract allows). The real kill -9 of a writer process is in `log_crash`.
    fn crash(&mut self, e: RocksStateEngine) -> RocksStateEngine {
        drop(e);
        self.open()
    }
    fn open_checkpoint(&mut self, dir: &std::path::Path) -> RocksStateEngine {
        RocksStateEngine::open(Self::options(dir)).expect("open checkpoint")
    }
}

/// Deterministic payload for (group, index, term): lets a reader verify what it got.
pub fn payload(group: u64, index: u64, term: u64, len: usize) -> Vec<u8> {
    tessera::testkit::payload(group, index ^ (term << 40), len)
}

pub fn entries(group: u64, first: u64, n: u64, term: u64, len: usize) -> Vec<LogEntry> {
    (first..first + n)
        .map(|i| LogEntry::new(i, term, payload(group, i, term, len)))
        .collect()
}
