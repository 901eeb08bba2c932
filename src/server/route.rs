//! Running keyed commands where their shards live. A session hands over a run of pipelined
//! commands of one kind (all reads or all writes); each command is split per shard where
//! Redis semantics allow it (MGET, DEL, EXISTS, TOUCH, UNLINK), or refused with CROSSSHARD
//! where atomicity would be lost (MSET, MSETNX, RENAME across shards). Every part starts at
//! once — local writes are proposed, local reads ask for a read index, parts led elsewhere
//! go to their leader as one pipelined batch per node — and replies are gathered in order.
//! A part that met a leader change is retried (re-resolving the leader) when that is safe:
//! always for reads, for writes only when the store reports the entry was not applied.

use super::forward::{forward_batch, ForwardError};
use super::node::{now_ms, Node, Target};
use super::prefetch::Prefetched;
use crate::cmd::{errors, Cmd, Route, Spec};
use crate::raftstore::StoreError;
use crate::resp::Reply;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a part keeps retrying through leader changes before giving up.
const RETRY_FOR: Duration = Duration::from_secs(8);

/// One command's work on one shard.
struct Part {
    cmd: usize,
    shard: u64,
    args: Vec<Bytes>,
    /// For split commands: where this part's keys sit in the original request.
    positions: Vec<usize>,
}

enum Pending {
    Done(Reply),
    /// The part's position in its shard's batched proposal.
    Write(u64, usize),
    /// Waits for its shard's (shared) read index.
    Read(u64),
    Remote(SocketAddr, usize),
    Retry,
}

/// One proposal per shard: the commands of this group's local write parts, in order.
#[derive(Default)]
struct ShardBatch {
    /// Indices into the group's parts.
    parts: Vec<usize>,
    proposed: Option<oneshot::Receiver<Result<Bytes, StoreError>>>,
    replies: Option<Result<Vec<Reply>, StoreError>>,
}

async fn batch_reply(batch: &mut ShardBatch, i: usize) -> Result<Reply, StoreError> {
    if batch.replies.is_none() {
        let rx = batch.proposed.take().expect("proposed once");
        let r = rx.await.unwrap_or(Err(StoreError::Stopped));
        let n = batch.parts.len();
        batch.replies = Some(r.map(|bytes| decode_applied(&bytes, n)));
    }
    // Each part takes its own reply once: move it out rather than copy it.
    match batch.replies.as_mut().expect("set above") {
        Ok(v) => Ok(std::mem::replace(&mut v[i], Reply::Nil)),
        Err(e) => Err(e.clone()),
    }
}

async fn read_ready(reads: &mut BTreeMap<u64, ReadIndex>, shard: u64) -> Result<(), StoreError> {
    let entry = reads.get_mut(&shard).expect("requested");
    if let ReadIndex::Waiting(rx) = entry {
        let r = rx.await.unwrap_or(Err(StoreError::Stopped));
        *entry = ReadIndex::Ready(r);
    }
    match entry {
        ReadIndex::Ready(r) => r.clone(),
        ReadIndex::Waiting(_) => unreachable!("resolved above"),
    }
}

/// One linearizable-read request per shard per group, shared by all its reads.
enum ReadIndex {
    Waiting(oneshot::Receiver<Result<(), StoreError>>),
    Ready(Result<(), StoreError>),
}

/// Commands whose keys may be handled shard by shard, and how to combine the answers.
fn splittable(cmd: Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Mget | Cmd::Del | Cmd::Unlink | Cmd::Exists | Cmd::Touch | Cmd::TesseraExpired
    )
}

/// Appends `args`' parts to `parts`: the request itself when its keys share a shard (the
/// common case: no copy), else one part per shard.
fn split(
    node: &Node,
    idx: usize,
    spec: &Spec,
    args: Vec<Bytes>,
    parts: &mut Vec<Part>,
) -> Result<(), Reply> {
    let mut keys = spec.key_positions(args.len());
    let first_pos = keys.next().expect("keyed commands have a key");
    let first = node.shard_of(&args[first_pos]).id;
    if keys.all(|p| node.shard_of(&args[p]).id == first) {
        parts.push(Part {
            cmd: idx,
            shard: first,
            args,
            positions: Vec::new(),
        });
        return Ok(());
    }
    if !splittable(spec.cmd) {
        return Err(Reply::err(errors::CROSSSHARD));
    }
    let mut by_shard: BTreeMap<u64, Part> = BTreeMap::new();
    for (n, p) in spec.key_positions(args.len()).enumerate() {
        let shard = node.shard_of(&args[p]).id;
        let part = by_shard.entry(shard).or_insert_with(|| Part {
            cmd: idx,
            shard,
            args: vec![args[0].clone()],
            positions: Vec::new(),
        });
        part.args.push(args[p].clone());
        part.positions.push(n);
    }
    parts.extend(by_shard.into_values());
    Ok(())
}

fn store_error_reply(e: &StoreError) -> Reply {
    match e {
        StoreError::Timeout(g) => Reply::err(format!(
            "ERR shard {g} did not answer in time; a write may or may not have been applied"
        )),
        StoreError::Stopped => Reply::err("ERR server is shutting down"),
        other => Reply::err(format!("ERR {other}")),
    }
}

fn retryable(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::NotLeader { .. } | StoreError::Dropped(_) | StoreError::UnknownShard(_)
    )
}

fn no_leader(shard: u64) -> Reply {
    Reply::err(format!(
        "TRYAGAIN shard {shard} has no leader on this node; retry"
    ))
}

fn is_tryagain(r: &Reply) -> bool {
    matches!(r, Reply::Error(e) if e.starts_with("TRYAGAIN"))
}

fn decode_applied(bytes: &[u8], n: usize) -> Vec<Reply> {
    crate::cmd::machine::decode_replies(bytes, n)
}

/// The shard every key of `cmds` lives on; `None` when they span shards.
fn sole_shard(node: &Node, cmds: &[(&'static Spec, Vec<Bytes>)]) -> Option<u64> {
    let mut shard = None;
    for (spec, args) in cmds {
        for p in spec.key_positions(args.len()) {
            let s = node.shard_of(&args[p]).id;
            if *shard.get_or_insert(s) != s {
                return None;
            }
        }
    }
    shard
}

/// The common run of reads: every key on one shard this node leads under a valid lease.
/// Served at once, without the bookkeeping the general path keeps for split commands,
/// read-index waits and forwarding; `None` leaves the run to the general path.
fn lease_reads_on_one_shard(
    node: &Node,
    cmds: &[(&'static Spec, Vec<Bytes>)],
) -> Option<Vec<Reply>> {
    let shard = sole_shard(node, cmds)?;
    if !matches!(node.target(shard), Target::Local) || !node.store.local_reads(shard) {
        return None;
    }
    let keys = cmds
        .iter()
        .flat_map(|(spec, args)| spec.key_positions(args.len()).map(|p| &args[p][..]))
        .collect();
    let ahead = node.prefetch(keys);
    let now = now_ms();
    Some(
        cmds.iter()
            .map(|(spec, args)| node.exec_read(shard, spec.cmd, args, now, ahead.as_ref()))
            .collect(),
    )
}

/// The common run of writes: every key on one shard this node leads, proposed as one
/// entry. `None` leaves the run to the general path — also when the proposal failed
/// without being applied (a leader change), which retries it there.
async fn writes_on_one_shard(
    node: &Node,
    cmds: &[(&'static Spec, Vec<Bytes>)],
) -> Option<Vec<Reply>> {
    let shard = sole_shard(node, cmds)?;
    if !matches!(node.target(shard), Target::Local) {
        return None;
    }
    let args: Vec<&[Bytes]> = cmds.iter().map(|(_, a)| &a[..]).collect();
    let error = match node.propose(shard, &args).await {
        Ok(Ok(bytes)) => return Some(decode_applied(&bytes, cmds.len())),
        Ok(Err(e)) if retryable(&e) => return None,
        Ok(Err(e)) => store_error_reply(&e),
        Err(_) => store_error_reply(&StoreError::Stopped),
    };
    Some(vec![error; cmds.len()])
}

/// Runs `cmds` (all reads or all writes); `internal` sessions never forward.
pub async fn run_group(
    node: &Arc<Node>,
    cmds: Vec<(&'static Spec, Vec<Bytes>)>,
    internal: bool,
) -> Vec<Reply> {
    let write = cmds.first().is_some_and(|(s, _)| s.route == Route::Write);
    let fast = if write {
        writes_on_one_shard(node, &cmds).await
    } else {
        lease_reads_on_one_shard(node, &cmds)
    };
    if let Some(replies) = fast {
        return replies;
    }
    let mut early: Vec<Option<Reply>> = vec![None; cmds.len()];
    // What `combine` needs of each command once its arguments moved into parts.
    let shapes: Vec<(&'static Spec, usize)> = cmds.iter().map(|(s, a)| (*s, a.len())).collect();
    let mut parts = Vec::with_capacity(cmds.len());
    for (i, (spec, args)) in cmds.into_iter().enumerate() {
        if let Err(r) = split(node, i, spec, args, &mut parts) {
            early[i] = Some(r);
        }
    }
    // Start every part: one proposal or read index per local shard, one batch per remote node.
    let mut remote: BTreeMap<SocketAddr, Vec<Vec<Bytes>>> = BTreeMap::new();
    let mut writes: BTreeMap<u64, ShardBatch> = BTreeMap::new();
    let mut reads: BTreeMap<u64, ReadIndex> = BTreeMap::new();
    // The keys each local shard's reads name, read together once its read index is in.
    let mut read_keys: BTreeMap<u64, Vec<&[u8]>> = BTreeMap::new();
    let mut ahead: BTreeMap<u64, Prefetched> = BTreeMap::new();
    let mut pending = Vec::with_capacity(parts.len());
    // Leadership looked up once per shard per group (the status map is shared by threads).
    let mut targets: BTreeMap<u64, Target> = BTreeMap::new();
    for (pi, part) in parts.iter().enumerate() {
        let target = *targets
            .entry(part.shard)
            .or_insert_with(|| node.target(part.shard));
        pending.push(match target {
            Target::Local if write => {
                let batch = writes.entry(part.shard).or_default();
                batch.parts.push(pi);
                Pending::Write(part.shard, batch.parts.len() - 1)
            }
            Target::Local => {
                reads.entry(part.shard).or_insert_with(|| {
                    // Served from the lease: ready now, no channel or callback needed.
                    if node.store.local_reads(part.shard) {
                        ReadIndex::Ready(Ok(()))
                    } else {
                        ReadIndex::Waiting(node.read_index(part.shard))
                    }
                });
                let spec = shapes[part.cmd].0;
                let keys = read_keys.entry(part.shard).or_default();
                keys.extend(
                    spec.key_positions(part.args.len())
                        .map(|p| &part.args[p][..]),
                );
                Pending::Read(part.shard)
            }
            Target::Remote(_, addr) if !internal => {
                let batch = remote.entry(addr).or_default();
                batch.push(part.args.clone());
                Pending::Remote(addr, batch.len() - 1)
            }
            _ if internal => Pending::Done(no_leader(part.shard)),
            _ => Pending::Retry,
        });
    }
    for (shard, batch) in writes.iter_mut() {
        let cmds: Vec<&[Bytes]> = batch.parts.iter().map(|i| &parts[*i].args[..]).collect();
        batch.proposed = Some(node.propose(*shard, &cmds));
    }
    let mut batches: BTreeMap<SocketAddr, _> = BTreeMap::new();
    for (addr, reqs) in remote {
        // Read only when something is forwarded: local groups skip the shared settings lock.
        let password = node.settings.read().requirepass.clone();
        node.stats
            .forwarded
            .fetch_add(reqs.len() as u64, Ordering::Relaxed);
        batches.insert(
            addr,
            tokio::task::spawn_local(forward_batch(addr, password, reqs)),
        );
    }
    let mut results: BTreeMap<SocketAddr, Result<Vec<Reply>, ForwardError>> = BTreeMap::new();
    for (addr, h) in batches {
        let r = h
            .await
            .unwrap_or_else(|e| Err(ForwardError::NotSent(e.to_string())));
        results.insert(addr, r);
    }
    // Gather in order. Reads of the group share one reading of the clock, taken once the
    // first of them may run.
    let mut now: Option<u64> = None;
    let mut part_replies = Vec::with_capacity(parts.len());
    for (part, p) in parts.iter().zip(pending) {
        let spec = shapes[part.cmd].0;
        let reply = match p {
            Pending::Done(r) => r,
            Pending::Write(shard, i) => {
                let batch = writes.get_mut(&shard).expect("batched");
                match batch_reply(batch, i).await {
                    Ok(reply) => reply,
                    Err(e) if retryable(&e) && !internal => retry_part(node, spec, part).await,
                    Err(e) if retryable(&e) => no_leader(part.shard),
                    Err(e) => store_error_reply(&e),
                }
            }
            Pending::Read(shard) => match read_ready(&mut reads, shard).await {
                Ok(()) => {
                    let now = *now.get_or_insert_with(now_ms);
                    if let Some(pre) = read_keys.remove(&shard).and_then(|k| node.prefetch(k)) {
                        ahead.insert(shard, pre);
                    }
                    let pre = ahead.get(&shard);
                    node.exec_read(part.shard, spec.cmd, &part.args, now, pre)
                }
                Err(e) if retryable(&e) && !internal => retry_part(node, spec, part).await,
                Err(e) if retryable(&e) => no_leader(part.shard),
                Err(e) => store_error_reply(&e),
            },
            Pending::Remote(addr, i) => match &results[&addr] {
                Ok(replies) if is_tryagain(&replies[i]) => retry_part(node, spec, part).await,
                Ok(replies) => replies[i].clone(),
                Err(ForwardError::NotSent(_)) => retry_part(node, spec, part).await,
                Err(ForwardError::Lost(_)) if !write => retry_part(node, spec, part).await,
                Err(ForwardError::Lost(e)) => Reply::err(format!(
                    "ERR lost the shard leader ({e}); the write may or may not have been applied"
                )),
            },
            Pending::Retry => retry_part(node, spec, part).await,
        };
        part_replies.push(reply);
    }
    combine(&shapes, early, &parts, part_replies)
}

/// Runs one part alone until it gets an answer that is not "no leader here", re-resolving
/// the leader each time, for at most [`RETRY_FOR`].
async fn retry_part(node: &Arc<Node>, spec: &'static Spec, part: &Part) -> Reply {
    let write = spec.route == Route::Write;
    let deadline = Instant::now() + RETRY_FOR;
    let mut backoff = Duration::from_millis(10);
    loop {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(200));
        let reply = match node.target(part.shard) {
            Target::Local if write => match node.propose(part.shard, &[&part.args]).await {
                Ok(Ok(bytes)) => decode_applied(&bytes, 1).remove(0),
                Ok(Err(e)) if retryable(&e) => no_leader(part.shard),
                Ok(Err(e)) => store_error_reply(&e),
                Err(_) => store_error_reply(&StoreError::Stopped),
            },
            Target::Local => match node.read_index(part.shard).await {
                Ok(Ok(())) => node.exec_read(part.shard, spec.cmd, &part.args, now_ms(), None),
                Ok(Err(e)) if retryable(&e) => no_leader(part.shard),
                Ok(Err(e)) => store_error_reply(&e),
                Err(_) => store_error_reply(&StoreError::Stopped),
            },
            Target::Remote(_, addr) => {
                node.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                let password = node.settings.read().requirepass.clone();
                match forward_batch(addr, password, vec![part.args.clone()]).await {
                    Ok(mut r) => r.pop().unwrap_or_else(|| no_leader(part.shard)),
                    Err(ForwardError::NotSent(_)) => no_leader(part.shard),
                    Err(ForwardError::Lost(_)) if !write => no_leader(part.shard),
                    Err(ForwardError::Lost(e)) => {
                        return Reply::err(format!(
                            "ERR lost the shard leader ({e}); the write may or may not have been applied"
                        ))
                    }
                }
            }
            Target::NoLeader => no_leader(part.shard),
        };
        if !is_tryagain(&reply) || Instant::now() >= deadline {
            return reply;
        }
    }
}

/// Folds part replies back into one reply per command.
fn combine(
    cmds: &[(&'static Spec, usize)],
    mut out: Vec<Option<Reply>>,
    parts: &[Part],
    replies: Vec<Reply>,
) -> Vec<Reply> {
    let mut count = vec![0usize; cmds.len()];
    for p in parts {
        count[p.cmd] += 1;
    }
    for (part, reply) in parts.iter().zip(replies) {
        let i = part.cmd;
        if count[i] == 1 {
            out[i] = Some(reply);
            continue;
        }
        let slot = out[i].get_or_insert_with(|| match cmds[i].0.cmd {
            Cmd::Mget => Reply::Array(vec![Reply::Nil; cmds[i].1 - 1]),
            _ => Reply::Int(0),
        });
        match (slot, reply) {
            (Reply::Error(_), _) => {}
            (slot, e @ Reply::Error(_)) => *slot = e,
            (Reply::Int(sum), Reply::Int(n)) => *sum += n,
            (Reply::Array(all), Reply::Array(got)) => {
                for (pos, r) in part.positions.iter().zip(got) {
                    all[*pos] = r;
                }
            }
            (slot, _) => *slot = Reply::err("ERR inconsistent replies from shards"),
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Reply::err("ERR no reply")))
        .collect()
}
