//! What committed commands mean. The Raft store is agnostic: it hands each committed
//! command's bytes to a [`StateMachine`], which reads through an [`ApplyContext`] (seeing the
//! writes of earlier commands in the same apply round) and writes into the round's batch.
//! Apply must be deterministic — same bytes, same state, same reply on every replica.
//! [`KvStateMachine`] is the plain put/delete machine used by the store's own tests and
//! benches; the Redis command layer plugs in its own.

use crate::shard::ShardDesc;
use bytes::{BufMut, Bytes};
use std::collections::HashMap;
use tessera_storage::{BatchOp, Cf, StateEngine, WriteBatch};

/// Reads and writes of one apply round.
pub struct ApplyContext<'a> {
    state: &'a dyn StateEngine,
    batch: WriteBatch,
    /// (cf, key) → position of its latest put/delete in `batch`. Built on the round's first
    /// read, so write-only rounds pay nothing for read-your-writes.
    index: Option<HashMap<(Cf, Vec<u8>), usize>>,
    /// Range deletes of this round: (cf, start, end, position in `batch`).
    ranges: Vec<(Cf, Vec<u8>, Vec<u8>, usize)>,
}

impl<'a> ApplyContext<'a> {
    pub(crate) fn new(state: &'a dyn StateEngine) -> Self {
        ApplyContext {
            state,
            batch: WriteBatch::new(),
            index: None,
            ranges: Vec::new(),
        }
    }

    /// The value as of the previous command (this round's writes included).
    pub fn get(&mut self, cf: Cf, key: &[u8]) -> tessera_storage::Result<Option<Vec<u8>>> {
        let batch = &self.batch;
        let index = self.index.get_or_insert_with(|| {
            let mut idx = HashMap::new();
            for (pos, op) in batch.ops().iter().enumerate() {
                match op {
                    BatchOp::Put(cf, k, _) | BatchOp::Delete(cf, k) => {
                        idx.insert((*cf, k.clone()), pos);
                    }
                    BatchOp::DeleteRange(..) => {}
                }
            }
            idx
        });
        let latest = index.get(&(cf, key.to_vec())).copied();
        let range_deleted = self.ranges.iter().any(|(rcf, start, end, pos)| {
            *rcf == cf
                && key >= start.as_slice()
                && key < end.as_slice()
                && latest.is_none_or(|l| *pos > l)
        });
        if range_deleted {
            return Ok(None);
        }
        match latest.map(|pos| &batch.ops()[pos]) {
            Some(BatchOp::Put(_, _, v)) => Ok(Some(v.clone())),
            Some(_) => Ok(None),
            None => self.state.get(cf, key),
        }
    }

    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.batch.put(cf, key, value);
        self.note_write(cf, key);
    }

    pub fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.batch.delete(cf, key);
        self.note_write(cf, key);
    }

    /// Scans the state as of the previous round (this round's writes are not visible).
    pub fn scan_committed(
        &self,
        cf: Cf,
        range: &tessera_storage::KeyRange,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> tessera_storage::Result<()> {
        self.state.scan(cf, range, limit, f)
    }

    /// Deletes `[start, end)` in `cf`; later reads of this round see the keys gone.
    pub fn delete_range(&mut self, cf: Cf, start: &[u8], end: &[u8]) {
        self.batch.delete_range(cf, start, end);
        self.ranges
            .push((cf, start.to_vec(), end.to_vec(), self.batch.len() - 1));
    }

    fn note_write(&mut self, cf: Cf, key: &[u8]) {
        if let Some(idx) = &mut self.index {
            idx.insert((cf, key.to_vec()), self.batch.len() - 1);
        }
    }

    /// The round's batch, for the apply loop's own metadata writes (drops the read index,
    /// which is rebuilt on the next read).
    pub(crate) fn batch_mut(&mut self) -> &mut WriteBatch {
        self.index = None;
        &mut self.batch
    }

    pub(crate) fn take_batch(&mut self) -> WriteBatch {
        self.index = None;
        self.ranges.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::static_layout;
    use tessera_storage::MemStateEngine;

    #[test]
    fn reads_see_earlier_writes_of_the_same_round() {
        let state = MemStateEngine::new();
        let mut wb = WriteBatch::new();
        wb.put(Cf::Data, "old", "on disk");
        state.write(wb).unwrap();
        let mut ctx = ApplyContext::new(&state);
        ctx.put(Cf::Data, b"a", b"1");
        assert_eq!(ctx.get(Cf::Data, b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            ctx.get(Cf::Data, b"old").unwrap().as_deref(),
            Some(&b"on disk"[..])
        );
        ctx.delete(Cf::Data, b"old");
        ctx.put(Cf::Data, b"a", b"2");
        assert_eq!(
            ctx.get(Cf::Data, b"old").unwrap(),
            None,
            "deleted in this round"
        );
        assert_eq!(
            ctx.get(Cf::Data, b"a").unwrap().as_deref(),
            Some(&b"2"[..]),
            "latest write wins"
        );
        assert_eq!(
            ctx.get(Cf::Lock, b"a").unwrap(),
            None,
            "column families are separate"
        );
        ctx.batch_mut().put(Cf::Raft, "meta", "m");
        assert_eq!(
            ctx.get(Cf::Data, b"a").unwrap().as_deref(),
            Some(&b"2"[..]),
            "index rebuilt"
        );
        let batch = ctx.take_batch();
        assert_eq!(batch.len(), 4);
    }

    #[test]
    fn range_deletes_hide_earlier_writes_but_not_later_ones() {
        let state = MemStateEngine::new();
        let mut wb = WriteBatch::new();
        wb.put(Cf::Data, "b-disk", "x");
        state.write(wb).unwrap();
        let mut ctx = ApplyContext::new(&state);
        ctx.put(Cf::Data, b"b-early", b"1");
        ctx.delete_range(Cf::Data, b"b", b"c");
        ctx.put(Cf::Data, b"b-late", b"2");
        assert_eq!(ctx.get(Cf::Data, b"b-disk").unwrap(), None);
        assert_eq!(ctx.get(Cf::Data, b"b-early").unwrap(), None);
        assert_eq!(
            ctx.get(Cf::Data, b"b-late").unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(ctx.get(Cf::Data, b"c").unwrap(), None);
        assert_eq!(ctx.get(Cf::Raft, b"b-disk").unwrap(), None);
    }

    #[test]
    fn kv_machine_deletes_what_it_put_in_the_same_round() {
        let state = MemStateEngine::new();
        let shard = static_layout(1, &[1]).remove(0);
        let mut ctx = ApplyContext::new(&state);
        let mut sm = KvStateMachine;
        assert_eq!(
            &sm.apply(&mut ctx, &shard, 6, &kv_put(b"k", b"v"))[..],
            b"OK"
        );
        assert_eq!(&sm.apply(&mut ctx, &shard, 7, &kv_delete(b"k"))[..], b"1");
        assert_eq!(&sm.apply(&mut ctx, &shard, 8, &kv_delete(b"k"))[..], b"0");
        assert_eq!(
            &sm.apply(&mut ctx, &shard, 9, b"\x01\xff")[..],
            b"ERR truncated command"
        );
        assert_eq!(
            &sm.apply(&mut ctx, &shard, 10, b"")[..],
            b"ERR empty command"
        );
    }
}
