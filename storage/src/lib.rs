//! `tessera-storage` owns everything Tessera keeps on disk: the segmented Raft log engine
//! (shared by every Raft group of a node, written through io_uring with group commit) and the
//! RocksDB state engine. It is the only crate that names `rocksdb` or `io_uring`; callers see
//! the [`LogEngine`] and [`StateEngine`] traits, plain value types and [`Error`].
//!
//! Both traits have an in-memory implementation ([`MemLogEngine`], [`MemStateEngine`]) for fast
//! deterministic tests; the shared conformance suite in `tests/storage` holds every
//! implementation to the same contract.

mod dirlock;
mod error;
pub mod log;
pub mod state;

pub use error::{Error, Result};
pub use log::{
    DurableTicket, FileLogEngine, GcStats, HardState, IoBackend, IoMode, LogBatch, LogEngine,
    LogEntry, LogOptions, LogStatus, MemLogEngine,
};
pub use state::{
    BatchOp, Cf, KeyRange, MemStateEngine, RocksStateEngine, StateEngine, StateOptions,
    StateSnapshot, WriteBatch,
};
