//! The `tessera` crate: everything above storage. Today it holds the command-line front
//! (`cli`), the storage self-check (`storage_check`) and helpers shared with tests
//! (`testkit`). It never names a RocksDB or io_uring type: storage is reached only through
//! `tessera_storage`'s traits.

pub mod cli;
pub mod cmd;
pub mod raftstore;
pub mod resp;
pub mod shard;
pub mod storage_check;
pub mod testkit;
pub mod transport;
