//! Where the Raft store keeps per-group metadata in the state engine's `raft` column
//! family, and how it is encoded. Written by the applier in the same batch as the data
//! it describes, so it is always consistent with the applied state.

use crate::shard::ShardDesc;
use crate::transport::codec::{decode_conf_state, encode_conf_state};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::eraftpb::ConfState;
use tessera_storage::{Cf, StateEngine, StateSnapshot, WriteBatch};

fn key(prefix: &[u8], group: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&group.to_be_bytes());
    k
}

const APPLY_STATE: &[u8] = b"apply_state/";
const CONF_STATE: &[u8] = b"conf_state/";
const SHARD: &[u8] = b"shard/";

/// How far a group has applied and where its log starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyState {
    pub applied_index: u64,
    pub applied_term: u64,
    /// Entries up to here are compacted (or covered by a snapshot).
    pub truncated_index: u64,
    pub truncated_term: u64,
}

/// Bootstrapped groups start with their log truncated at this index (term 5), as TiKV
/// does: no replica ever holds entries below it, so a replica added later must start from
/// a snapshot — which carries the shard descriptor and the initial membership that the
/// log itself never recorded.
pub const RAFT_INIT_INDEX: u64 = 5;

impl ApplyState {
    pub fn bootstrap() -> Self {
        ApplyState {
            applied_index: RAFT_INIT_INDEX,
            applied_term: RAFT_INIT_INDEX,
            truncated_index: RAFT_INIT_INDEX,
            truncated_term: RAFT_INIT_INDEX,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        for v in [
            self.applied_index,
            self.applied_term,
            self.truncated_index,
            self.truncated_term,
        ] {
            b.put_u64_le(v);
        }
        b
    }

    fn decode(mut b: &[u8]) -> Option<Self> {
        (b.len() == 32).then(|| ApplyState {
            applied_index: b.get_u64_le(),
            applied_term: b.get_u64_le(),
            truncated_index: b.get_u64_le(),
            truncated_term: b.get_u64_le(),
        })
    }
}

pub fn put_apply_state(wb: &mut WriteBatch, group: u64, s: &ApplyState) {
    wb.put(Cf::Raft, key(APPLY_STATE, group), s.encode());
    wb.set_applied(group, s.applied_index);
}

pub fn put_conf_state(wb: &mut WriteBatch, group: u64, cs: &ConfState) {
    let mut b = BytesMut::new();
    encode_conf_state(cs, &mut b);
    wb.put(Cf::Raft, key(CONF_STATE, group), b.to_vec());
}

pub fn put_shard(wb: &mut WriteBatch, desc: &ShardDesc) {
    wb.put(Cf::Raft, key(SHARD, desc.id), desc.encode());
}

/// Errors reading metadata mean a damaged state engine; callers surface them as such.
pub fn load_apply_state(state: &dyn StateEngine, group: u64) -> anyhow::Result<Option<ApplyState>> {
    decode_apply_state(group, state.get(Cf::Raft, &key(APPLY_STATE, group))?)
}

pub fn load_apply_state_from(
    view: &dyn StateSnapshot,
    group: u64,
) -> anyhow::Result<Option<ApplyState>> {
    decode_apply_state(group, view.get(Cf::Raft, &key(APPLY_STATE, group))?)
}

pub fn load_conf_state_from(
    view: &dyn StateSnapshot,
    group: u64,
) -> anyhow::Result<Option<ConfState>> {
    decode_conf(view.get(Cf::Raft, &key(CONF_STATE, group))?)
}

pub fn load_shard_from(view: &dyn StateSnapshot, group: u64) -> anyhow::Result<Option<ShardDesc>> {
    match view.get(Cf::Raft, &key(SHARD, group))? {
        None => Ok(None),
        Some(v) => Ok(Some(ShardDesc::decode(&v)?)),
    }
}

fn decode_apply_state(group: u64, v: Option<Vec<u8>>) -> anyhow::Result<Option<ApplyState>> {
    match v {
        None => Ok(None),
        Some(v) => ApplyState::decode(&v)
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("group {group}: malformed apply state")),
    }
}

pub fn load_conf_state(state: &dyn StateEngine, group: u64) -> anyhow::Result<Option<ConfState>> {
    decode_conf(state.get(Cf::Raft, &key(CONF_STATE, group))?)
}

fn decode_conf(v: Option<Vec<u8>>) -> anyhow::Result<Option<ConfState>> {
    match v {
        None => Ok(None),
        Some(v) => Ok(Some(decode_conf_state(&mut Bytes::from(v))?)),
    }
}

/// Every shard descriptor this node holds.
pub fn load_shards(state: &dyn StateEngine) -> anyhow::Result<Vec<ShardDesc>> {
    let mut out = Vec::new();
    let mut bad = None;
    let mut end = SHARD.to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    state.scan(
        Cf::Raft,
        &tessera_storage::KeyRange::new(SHARD.to_vec(), Some(end)),
        usize::MAX,
        &mut |_, v| match ShardDesc::decode(v) {
            Ok(d) => {
                out.push(d);
                true
            }
            Err(e) => {
                bad = Some(e);
                false
            }
        },
    )?;
    match bad {
        Some(e) => Err(e.into()),
        None => Ok(out),
    }
}
