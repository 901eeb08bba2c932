//! The `tessera` crate: everything above storage — the Redis protocol (`resp`), command
//! semantics (`cmd`), the server (`server`), the multi-Raft store (`raftstore`), transports,
//! shards, the command-line front (`cli`), the storage self-check and test helpers. It never names a RocksDB or io_uring type: storage is reached only through
//! `tessera_storage`'s traits.

pub mod cli;
pub mod cmd;
pub mod raftstore;
pub mod resp;
pub mod server;
pub mod shard;
pub mod storage_check;
pub mod testkit;
pub mod transport;
