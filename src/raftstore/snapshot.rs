//! Shard snapshots and storage maintenance, off the store thread.
//!
//! A leader whose follower needs compacted entries asks its `PeerStorage` for a snapshot;
//! the first ask answers "temporarily unavailable" and queues a request here. This worker
//! takes a consistent state-engine snapshot, reads the group's apply state, conf state and
//! descriptor from it, and serialises every key of the shard's range in each column family;
//! raft-rs picks the result up on its next attempt. The same worker flushes the state
//! engine and garbage-collects the log when the store asks, so neither blocks the loop.
//!
//! Snapshot data: `desc:bytes (cf:u8 n:u32 (key:bytes value:bytes)*)*`, built in memory.
//! Over TCP it travels in chunks on its own connection (`transport::snapshot_stream`).

use super::keys;
use crate::shard::ShardDesc;
use bytes::{Buf, BufMut, Bytes};
use crossbeam_channel::Receiver;
use parking_lot::Mutex;
use raft::eraftpb::Snapshot;
use std::sync::Arc;
use tessera_storage::{Cf, KeyRange, LogEngine, StateEngine};

/// Column families a shard snapshot carries (the `raft` family is per-replica metadata).
const SNAPSHOT_CFS: [Cf; 3] = [Cf::Data, Cf::Lock, Cf::Txn];

/// A group's snapshot cell, shared between its `PeerStorage` and the worker.
#[derive(Default)]
pub enum SnapSlot {
    #[default]
    Idle,
    Generating,
    Ready(Snapshot),
    Failed,
}

pub type SharedSlot = Arc<Mutex<SnapSlot>>;

pub(crate) enum WorkerTask {
    Generate {
        group: u64,
        slot: SharedSlot,
    },
    /// Flush the state engine (advancing durable applied indexes), then GC the log.
    Maintain,
}

pub(crate) fn run_worker(
    rx: Receiver<WorkerTask>,
    state: Arc<dyn StateEngine>,
    log: Arc<dyn LogEngine>,
) {
    while let Ok(task) = rx.recv() {
        match task {
            WorkerTask::Generate { group, slot } => {
                let result = generate(state.as_ref(), group);
                *slot.lock() = match result {
                    Ok(s) => SnapSlot::Ready(s),
                    Err(e) => {
                        tracing::error!("shard {group}: snapshot generation failed: {e:#}");
                        SnapSlot::Failed
                    }
                };
            }
            WorkerTask::Maintain => {
                if let Err(e) = state.flush() {
                    tracing::error!("state engine flush failed: {e}");
                }
                if let Err(e) = log.gc() {
                    tracing::error!("log gc failed: {e}");
                }
            }
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

/// Builds a snapshot of `group` as of the state engine's current applied index.
pub(crate) fn generate(state: &dyn StateEngine, group: u64) -> anyhow::Result<Snapshot> {
    let view = state.snapshot();
    let apply = keys::load_apply_state_from(view.as_ref(), group)?
        .ok_or_else(|| anyhow::anyhow!("shard {group} has no apply state"))?;
    let conf = keys::load_conf_state_from(view.as_ref(), group)?
        .ok_or_else(|| anyhow::anyhow!("shard {group} has no conf state"))?;
    let desc = keys::load_shard_from(view.as_ref(), group)?
        .ok_or_else(|| anyhow::anyhow!("shard {group} has no descriptor"))?;
    let mut data = Vec::new();
    put_bytes(&mut data, &desc.encode());
    let range = KeyRange::new(
        desc.start.clone(),
        (!desc.end.is_empty()).then(|| desc.end.clone()),
    );
    for cf in SNAPSHOT_CFS {
        let mut kvs = Vec::new();
        let mut n = 0u32;
        view.scan(cf, &range, usize::MAX, &mut |k, v| {
            put_bytes(&mut kvs, k);
            put_bytes(&mut kvs, v);
            n += 1;
            true
        })?;
        data.put_u8(cf as u8);
        data.put_u32_le(n);
        data.extend_from_slice(&kvs);
    }
    let mut snap = Snapshot {
        data: data.into(),
        ..Default::default()
    };
    let md = snap.mut_metadata();
    md.index = apply.applied_index;
    md.term = apply.applied_term;
    md.set_conf_state(conf);
    Ok(snap)
}

/// A decoded snapshot payload.
pub(crate) struct SnapshotData {
    pub desc: ShardDesc,
    pub kvs: Vec<(Cf, Bytes, Bytes)>,
}

pub(crate) fn decode(mut b: Bytes) -> anyhow::Result<SnapshotData> {
    fn take(b: &mut Bytes) -> anyhow::Result<Bytes> {
        anyhow::ensure!(b.remaining() >= 4, "snapshot truncated");
        let n = b.get_u32_le() as usize;
        anyhow::ensure!(b.remaining() >= n, "snapshot truncated");
        Ok(b.split_to(n))
    }
    let desc = ShardDesc::decode(&take(&mut b)?)?;
    let mut kvs = Vec::new();
    while b.has_remaining() {
        anyhow::ensure!(b.remaining() >= 5, "snapshot truncated");
        let cf = match b.get_u8() {
            x if x == Cf::Data as u8 => Cf::Data,
            x if x == Cf::Lock as u8 => Cf::Lock,
            x if x == Cf::Txn as u8 => Cf::Txn,
            x => anyhow::bail!("snapshot names unknown column family {x}"),
        };
        let n = b.get_u32_le();
        for _ in 0..n {
            let k = take(&mut b)?;
            let v = take(&mut b)?;
            kvs.push((cf, k, v));
        }
    }
    Ok(SnapshotData { desc, kvs })
}
