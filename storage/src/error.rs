//! The storage layer's one error type. Expected outcomes (an entry that was compacted away, a
//! key that is absent) are values in the APIs, not errors; errors here mean the caller cannot
//! proceed: I/O failures, corruption, a locked directory, a poisoned writer.

use std::path::PathBuf;

/// Result alias for the storage crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong below the Raft store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed; `context` says which and on what.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A checksum or structural check failed somewhere other than a torn tail.
    #[error("log corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// Another process (or another engine in this one) holds the data directory.
    #[error("data directory {0} is locked by another process (is another tessera running?)")]
    Locked(PathBuf),
    /// A segment named by the sequence of segments is missing from the directory.
    #[error("log segment missing: expected {0}")]
    MissingSegment(PathBuf),
    /// A previous write or fsync failed; the engine refuses further writes because the state
    /// of the file is unknown (see PostgreSQL's "fsyncgate").
    #[error("log engine is poisoned after an earlier write failure: {0}")]
    Poisoned(String),
    /// The writer thread has stopped (the engine was closed).
    #[error("log engine is closed")]
    Closed,
    /// A requested entry lies below the group's first index (compacted away).
    #[error("group {group}: entry {index} is compacted (first index {first})")]
    Compacted { group: u64, index: u64, first: u64 },
    /// A requested entry lies above the group's last index.
    #[error("group {group}: entry {index} is unavailable (last index {last})")]
    Unavailable { group: u64, index: u64, last: u64 },
    /// A batch breaks an invariant of the log (e.g. entries that are not contiguous).
    #[error("invalid log batch: {0}")]
    InvalidBatch(String),
    /// io_uring was demanded explicitly but does not work on this kernel.
    #[error("io_uring is unavailable: {0}")]
    IoUringUnavailable(String),
    /// An error reported by RocksDB.
    #[error("rocksdb: {0}")]
    Rocks(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// RocksDB's error as ours; a function, not a `From` impl, so no rocksdb type appears in
/// this crate's public API.
pub(crate) fn rocks_err(e: rocksdb::Error) -> Error {
    Error::Rocks(e.into_string())
}
