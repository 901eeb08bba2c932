//! [`WriteBatch`]: the engine-neutral atomic batch the apply loop builds.

use super::{applied_key, Cf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
    /// Deletes `[start, end)`.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// Puts, deletes, range deletes and applied-index marks, applied atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<BatchOp>,
    pub(crate) applied: Vec<(u64, u64)>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Put(cf, key.into(), value.into()));
        self
    }

    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Delete(cf, key.into()));
        self
    }

    pub fn delete_range(
        &mut self,
        cf: Cf,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops
            .push(BatchOp::DeleteRange(cf, start.into(), end.into()));
        self
    }

    /// Records that `group` has applied through `index`, atomically with the rest.
    pub fn set_applied(&mut self, group: u64, index: u64) -> &mut Self {
        self.applied.push((group, index));
        self.ops.push(BatchOp::Put(
            Cf::Raft,
            applied_key(group),
            index.to_le_bytes().to_vec(),
        ));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Drops every put or delete that a later put or delete of the same key in this batch
    /// overrides. The batch is applied atomically, so nobody can see the dropped values:
    /// the state after it is unchanged (a key ends as the last operation that touched it,
    /// point or range, and that operation stays). A pipeline that writes one hot key many
    /// times then costs one memtable insert per round instead of one per write.
    pub fn drop_superseded(&mut self) {
        if self.ops.len() < 2 {
            return;
        }
        let mut order: Vec<usize> = (0..self.ops.len())
            .filter(|i| !matches!(self.ops[*i], BatchOp::DeleteRange(..)))
            .collect();
        // Stable: equal keys stay in batch order, so the last of a run is the survivor.
        order.sort_by(|a, b| point_key(&self.ops[*a]).cmp(&point_key(&self.ops[*b])));
        let mut dead = vec![false; self.ops.len()];
        let mut any = false;
        for w in order.windows(2) {
            if point_key(&self.ops[w[0]]) == point_key(&self.ops[w[1]]) {
                dead[w[0]] = true;
                any = true;
            }
        }
        if any {
            let mut i = 0;
            self.ops.retain(|_| {
                i += 1;
                !dead[i - 1]
            });
        }
    }
}

fn point_key(op: &BatchOp) -> (Cf, &[u8]) {
    match op {
        BatchOp::Put(cf, k, _) | BatchOp::Delete(cf, k) | BatchOp::DeleteRange(cf, k, _) => {
            (*cf, k)
        }
    }
}

pub(crate) fn decode_applied(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superseded_point_writes_are_dropped_and_the_last_of_each_key_stays() {
        let mut b = WriteBatch::new();
        b.put(Cf::Data, "k", "1")
            .put(Cf::Raft, "k", "other family")
            .delete(Cf::Data, "k")
            .delete_range(Cf::Data, "a", "z")
            .put(Cf::Data, "j", "only")
            .put(Cf::Data, "k", "2")
            .put(Cf::Data, "m", "x");
        b.set_applied(7, 3);
        b.set_applied(7, 4);
        b.drop_superseded();
        let ops: Vec<BatchOp> = vec![
            BatchOp::Put(Cf::Raft, b"k".to_vec(), b"other family".to_vec()),
            BatchOp::DeleteRange(Cf::Data, b"a".to_vec(), b"z".to_vec()),
            BatchOp::Put(Cf::Data, b"j".to_vec(), b"only".to_vec()),
            BatchOp::Put(Cf::Data, b"k".to_vec(), b"2".to_vec()),
            BatchOp::Put(Cf::Data, b"m".to_vec(), b"x".to_vec()),
            BatchOp::Put(Cf::Raft, applied_key(7), 4u64.to_le_bytes().to_vec()),
        ];
        assert_eq!(b.ops(), &ops[..]);
        assert_eq!(b.applied, vec![(7, 3), (7, 4)], "applied marks are kept");
    }

    #[test]
    fn a_range_delete_after_the_last_put_still_wins() {
        let mut b = WriteBatch::new();
        b.put(Cf::Data, "k", "1")
            .put(Cf::Data, "k", "2")
            .delete_range(Cf::Data, "a", "z");
        b.drop_superseded();
        assert_eq!(b.len(), 2);
        assert!(matches!(b.ops()[1], BatchOp::DeleteRange(..)));
    }
}
