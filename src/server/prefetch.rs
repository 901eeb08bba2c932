//! Reads of a pipelined run of commands on one shard, fetched together. Once the shard's
//! read index is confirmed, every key the run's commands name is read in one batched
//! MultiGet (RocksDB pays its per-read setup once instead of per key, and a key named
//! twice is read once); each command then runs against those values. That is as
//! linearizable as reading each key on its own: the values are no older than the read
//! index, and every command of the run was sent before they were read. A key not
//! prefetched is read from the engine as before.

use crate::cmd::Keyspace;
use bytes::Bytes;
use tessera_storage::{Cf, StateEngine};

/// Values read ahead for one shard, sorted by key (the keys borrowed from the requests).
#[derive(Default)]
pub struct Prefetched<'k> {
    values: Vec<(&'k [u8], Option<Bytes>)>,
}

impl<'k> Prefetched<'k> {
    /// Reads `keys` (any order, duplicates allowed). On an engine error nothing is kept:
    /// each command then reads, and reports the error, itself.
    pub fn read(state: &dyn StateEngine, mut keys: Vec<&'k [u8]>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        match state.multi_get(Cf::Data, &keys) {
            Ok(values) => Prefetched {
                values: keys
                    .into_iter()
                    .zip(values.into_iter().map(|v| v.map(Bytes::from)))
                    .collect(),
            },
            Err(_) => Prefetched::default(),
        }
    }

    /// A value read ahead: shared with every command of the run that reads it, not copied.
    fn get(&self, key: &[u8]) -> Option<Option<Bytes>> {
        let i = self.values.binary_search_by(|(k, _)| (*k).cmp(key)).ok()?;
        Some(self.values[i].1.clone())
    }
}

/// Reads of one command on local state (after a read index or a local-read check).
pub struct ReadKeyspace<'a> {
    pub state: &'a dyn StateEngine,
    pub ahead: Option<&'a Prefetched<'a>>,
}

impl Keyspace for ReadKeyspace<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, String> {
        if let Some(v) = self.ahead.and_then(|p| p.get(key)) {
            return Ok(v);
        }
        self.state
            .get(Cf::Data, key)
            .map(|v| v.map(Bytes::from))
            .map_err(|e| e.to_string())
    }
    fn put(&mut self, _key: &[u8], _value: &[u8]) {
        debug_assert!(false, "a read command wrote");
    }
    fn delete(&mut self, _key: &[u8]) {
        debug_assert!(false, "a read command deleted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::{MemStateEngine, WriteBatch};

    fn put(state: &MemStateEngine, key: &[u8], value: &[u8]) {
        let mut wb = WriteBatch::new();
        wb.put(Cf::Data, key.to_vec(), value.to_vec());
        state.write(wb).unwrap();
    }

    #[test]
    fn prefetched_values_serve_every_read_of_the_run() {
        let state = MemStateEngine::new();
        put(&state, b"a", b"1");
        let keys = vec![&b"b"[..], b"a", b"a"];
        let pre = Prefetched::read(&state, keys);
        put(&state, b"a", b"2");
        let mut kv = ReadKeyspace {
            state: &state,
            ahead: Some(&pre),
        };
        let a1 = Some(Bytes::from_static(b"1"));
        assert_eq!(kv.get(b"a").unwrap(), a1, "the prefetched value");
        assert_eq!(kv.get(b"a").unwrap(), a1, "again, within the same run");
        assert_eq!(kv.get(b"b").unwrap(), None, "a prefetched miss");
        put(&state, b"c", b"3");
        let c = kv.get(b"c").unwrap();
        assert_eq!(
            c,
            Some(Bytes::from_static(b"3")),
            "not prefetched: read directly"
        );
    }
}
