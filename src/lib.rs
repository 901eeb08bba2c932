//! The `tessera` crate: everything above storage — the Redis protocol (`resp`), command
//! semantics (`cmd`), the server (`server`), the multi-Raft store (`raftstore`), transports,
//! shards, the command-line front (`cli`), the storage self-check and test helpers. It never
//! names a RocksDB type and reaches storage only through `tessera_storage`'s traits; its only
//! io_uring use is tokio-uring for client sockets (`server::netio`).

pub mod cli;
pub mod cmd;
pub mod fasthash;
pub mod raftstore;
pub mod resp;
pub mod server;
pub mod shard;
pub mod storage_check;
pub mod testkit;
pub mod transport;
