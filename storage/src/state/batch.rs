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
}

pub(crate) fn decode_applied(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_le_bytes)
}
