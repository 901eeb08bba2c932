//! How Raft messages travel between nodes. The store hands batches (many groups' messages to
//! one node) to a [`Transport`]; inbound batches are delivered to the store's inbox. Sending
//! never blocks the store loop: an unreachable peer's messages are dropped (Raft retries).
//!
//! Implementations: [`tcp::TcpTransport`] (production: one connection per peer node,
//! length-prefixed frames, reconnect with backoff) and [`sim::SimNetwork`], an in-process
//! network with seeded faults (drop, delay, duplicate, reorder, one-way and two-way
//! partitions) for tests.

pub mod codec;
pub mod sim;
pub mod snapshot_stream;
pub mod tcp;

pub use codec::MessageBatch;

/// Sends message batches to other nodes.
///
/// Invariants: `send` returns without waiting for the network; messages to one node arrive
/// in order unless a fault filter reorders them; lost messages are never reported as sent.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, to_node: u64, batch: MessageBatch);
}
