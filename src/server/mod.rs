//! The database node as clients see it: configuration (`config`), the node and its Raft
//! store (`node`), the thread-per-core RESP listener (`runtime`) and its workers'
//! scheduling policy (`sched`), one session per connection (`session`), routing of keyed
//! commands to shard leaders — locally or forwarded over RESP (`route`, `forward`) —
//! whole-keyspace commands (`allshards`), connection and server commands (`admin`, `info`,
//! `clients`), answers from the store batched per worker (`inbox`), and `tessera up`, a
//! local multi-process cluster (`up`). Protocol parsing lives in `resp`, command semantics
//! in `cmd`.

mod admin;
pub mod allshards;
mod clients;
pub mod config;
mod forward;
mod inbox;
mod info;
pub mod netio;
pub mod node;
mod prefetch;
mod route;
pub mod runtime;
pub mod sched;
mod session;
pub mod up;

pub use config::ServerConfig;
pub use runtime::Server;
