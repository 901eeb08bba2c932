//! What committed commands mean. The Raft store is agnostic: it hands each committed
//! command's bytes to a [`StateMachine`], which reads through an [`ApplyContext`] (seeing the
//! writes of earlier commands in the same apply round) and writes into the round's batch.
//! Apply must be deterministic — same bytes, same state, same reply on every replica.
//! [`KvStateMachine`] is the plain put/delete machine used by the store's own tests and
//! benches; the Redis command layer plugs in its own.

use crate::shard::ShardDesc;
use bytes::{BufMut, Bytes};
use std::collections::HashMap;
use tessera_storage::{Cf, StateEngine, WriteBatch};

/// Reads and writes of one apply round.
pub struct ApplyContext<'a> {
    state: &'a dyn StateEngine,
    pub(crate) batch: WriteBatch,
    overlay: HashMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> ApplyContext<'a> {
    pub(crate) fn new(state: &'a dyn StateEngine) -> Self {
        ApplyContext {
            state,
            batch: WriteBatch::new(),
            overlay: HashMap::new(),
        }
    }

    /// The value as of the previous command (this round's writes included).
    pub fn get(&self, cf: Cf, key: &[u8]) -> tessera_storage::Result<Option<Vec<u8>>> {
        match self.overlay.get(&(cf, key.to_vec())) {
            Some(v) => Ok(v.clone()),
            None => self.state.get(cf, key),
        }
    }

    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.overlay
            .insert((cf, key.to_vec()), Some(value.to_vec()));
        self.batch.put(cf, key, value);
    }

    pub fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.overlay.insert((cf, key.to_vec()), None);
        self.batch.delete(cf, key);
    }

    pub(crate) fn take_batch(&mut self) -> WriteBatch {
        self.overlay.clear();
        std::mem::take(&mut self.batch)
    }
}

/// The meaning of committed commands.
pub trait StateMachine: Send + 'static {
    /// Applies one command of `shard`, committed at `index`; returns the proposer's reply.
    /// Must not panic on malformed input: reply with an error instead.
    fn apply(
        &mut self,
        ctx: &mut ApplyContext<'_>,
        shard: &ShardDesc,
        index: u64,
        cmd: &[u8],
    ) -> Bytes;
}

/// Put/delete on raw keys in [`Cf::Data`]. Command: `1 klen:u32 key value` (put) or
/// `2 klen:u32 key` (delete). Replies: `OK`, `1`/`0` (deleted or not), or `ERR ...`.
#[derive(Default)]
pub struct KvStateMachine;

pub fn kv_put(key: &[u8], value: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(5 + key.len() + value.len());
    b.put_u8(1);
    b.put_u32_le(key.len() as u32);
    b.put_slice(key);
    b.put_slice(value);
    b.into()
}

pub fn kv_delete(key: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(5 + key.len());
    b.put_u8(2);
    b.put_u32_le(key.len() as u32);
    b.put_slice(key);
    b.into()
}

impl StateMachine for KvStateMachine {
    fn apply(
        &mut self,
        ctx: &mut ApplyContext<'_>,
        shard: &ShardDesc,
        _index: u64,
        cmd: &[u8],
    ) -> Bytes {
        let Some((&op, rest)) = cmd.split_first() else {
            return Bytes::from_static(b"ERR empty command");
        };
        if rest.len() < 4 {
            return Bytes::from_static(b"ERR truncated command");
        }
        let klen = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let Some(key) = rest[4..].get(..klen) else {
            return Bytes::from_static(b"ERR truncated key");
        };
        if !shard.contains(key) {
            return Bytes::from_static(b"ERR key not in shard");
        }
        match op {
            1 => {
                ctx.put(Cf::Data, key, &rest[4 + klen..]);
                Bytes::from_static(b"OK")
            }
            2 => match ctx.get(Cf::Data, key) {
                Ok(Some(_)) => {
                    ctx.delete(Cf::Data, key);
                    Bytes::from_static(b"1")
                }
                Ok(None) => Bytes::from_static(b"0"),
                Err(e) => Bytes::from(format!("ERR {e}")),
            },
            _ => Bytes::from_static(b"ERR unknown command"),
        }
    }
}
