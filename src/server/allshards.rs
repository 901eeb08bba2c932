//! Commands over the whole keyspace — KEYS, SCAN, DBSIZE, RANDOMKEY, FLUSHDB, FLUSHALL —
//! built from per-shard calls that run on each shard's leader (`TESSERA.SCANSHARD` walks a
//! bounded number of keys after a linearizable read; `TESSERA.FLUSHSHARD` deletes a shard's
//! range through Raft). SCAN cursors are numbers handed out by this node that map to a
//! (shard, next key) position; they live in a bounded table, so a cursor left unused for a
//! long time (100,000 newer ones) is refused with `ERR invalid cursor`.

use super::forward::forward_batch;
use super::node::{now_ms, Node, Target};
use crate::cmd::errors;
use crate::cmd::scan::Walk;
use crate::cmd::value::parse_i64;
use crate::resp::Reply;
use bytes::Bytes;
use rand::RngExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CURSORS_KEPT: usize = 100_000;
const CHUNK: usize = 10_000;

#[derive(Default)]
pub struct CursorTable {
    next: u64,
    positions: HashMap<u64, (usize, Vec<u8>)>,
    order: VecDeque<u64>,
}

impl CursorTable {
    fn issue(&mut self, shard_idx: usize, from: Vec<u8>) -> u64 {
        self.next += 1;
        let id = self.next;
        self.positions.insert(id, (shard_idx, from));
        self.order.push_back(id);
        while self.order.len() > CURSORS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.positions.remove(&old);
            }
        }
        id
    }
}

/// Runs a `TESSERA.*SHARD` command on `shard`'s leader, wherever it is, retrying through
/// elections for a few seconds (both commands are safe to repeat).
async fn on_shard(node: &Arc<Node>, shard: u64, args: Vec<Bytes>) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let reply = match node.target(shard) {
            Target::Local => local_shard_command(node, &args).await,
            Target::Remote(_, addr) => {
                let pw = node.settings.read().requirepass.clone();
                match forward_batch(addr, pw, vec![args.clone()]).await {
                    Ok(mut r) => r.pop().unwrap_or(Reply::Nil),
                    Err(e) => Reply::err(format!("TRYAGAIN {e}")),
                }
            }
            Target::NoLeader => Reply::err(format!("TRYAGAIN shard {shard} has no leader")),
        };
        let again = matches!(&reply, Reply::Error(e) if e.starts_with("TRYAGAIN"));
        if !again || Instant::now() >= deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `TESSERA.SCANSHARD id from count [MATCH p] [TYPE t] [COUNTONLY]` and
/// `TESSERA.FLUSHSHARD id`, on a node that leads the shard (else `TRYAGAIN`).
/// SCANSHARD answers `[next-or-nil, [keys…] or count]`.
pub async fn local_shard_command(node: &Arc<Node>, args: &[Bytes]) -> Reply {
    let Some(shard) = parse_i64(&args[1])
        .filter(|n| *n > 0)
        .and_then(|id| node.shard(id as u64))
        .cloned()
    else {
        return Reply::err("ERR no such shard");
    };
    let flush = args[0].eq_ignore_ascii_case(b"tessera.flushshard");
    if node.target(shard.id) != Target::Local {
        return Reply::err(format!("TRYAGAIN not the leader of shard {}", shard.id));
    }
    if flush {
        return match node.propose(shard.id, &[args]).await {
            Ok(Ok(bytes)) => crate::cmd::machine::decode_replies(&bytes, 1).remove(0),
            Ok(Err(e)) => Reply::err(format!("TRYAGAIN {e}")),
            Err(_) => Reply::err("ERR server is shutting down"),
        };
    }
    let Some(count) = parse_i64(&args[3]).filter(|n| *n > 0) else {
        return Reply::err(errors::SYNTAX);
    };
    let (mut pattern, mut type_name, mut count_only) = (None, None, false);
    let mut i = 4;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"MATCH" if i + 1 < args.len() => pattern = Some(&args[i + 1][..]),
            b"TYPE" if i + 1 < args.len() => type_name = Some(&args[i + 1][..]),
            b"COUNTONLY" => {
                count_only = true;
                i += 1;
                continue;
            }
            _ => return Reply::err(errors::SYNTAX),
        }
        i += 2;
    }
    match node.read_index(shard.id).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Reply::err(format!("TRYAGAIN {e}")),
        Err(_) => return Reply::err("ERR server is shutting down"),
    }
    let w = Walk {
        from: &args[2],
        count: count as usize,
        pattern,
        type_name,
        now_ms: now_ms(),
    };
    let r = match node.walk(&shard, &w) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if !r.expired.is_empty() {
        node.delete_expired(shard.id, r.expired);
    }
    let next = r.next.map_or(Reply::Nil, Reply::bulk);
    let keys = if count_only {
        Reply::Int(r.keys.len() as i64)
    } else {
        Reply::Array(r.keys.into_iter().map(Reply::Bulk).collect())
    };
    Reply::Array(vec![next, keys])
}

fn scan_args(shard: u64, from: &[u8], count: usize, extra: &[Bytes]) -> Vec<Bytes> {
    let mut a = vec![
        Bytes::from_static(b"TESSERA.SCANSHARD"),
        Bytes::from(shard.to_string()),
        Bytes::copy_from_slice(from),
        Bytes::from(count.to_string()),
    ];
    a.extend_from_slice(extra);
    a
}

/// The `[next, keys-or-count]` of a SCANSHARD reply.
fn unpack(r: Reply) -> Result<(Option<Vec<u8>>, Reply), Reply> {
    match r {
        Reply::Array(mut v) if v.len() == 2 => {
            let keys = v.pop().expect("two");
            let next = match v.pop().expect("two") {
                Reply::Bulk(b) => Some(b.to_vec()),
                _ => None,
            };
            Ok((next, keys))
        }
        e @ Reply::Error(_) => Err(e),
        _ => Err(Reply::err("ERR malformed shard scan reply")),
    }
}

/// Visits every key of every shard in chunks; `f` gets each chunk's keys-or-count reply.
async fn for_each_chunk(
    node: &Arc<Node>,
    extra: &[Bytes],
    mut f: impl FnMut(Reply),
) -> Result<(), Reply> {
    for shard in &node.layout {
        let mut from = Vec::new();
        loop {
            let r = on_shard(node, shard.id, scan_args(shard.id, &from, CHUNK, extra)).await;
            let (next, keys) = unpack(r)?;
            f(keys);
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
    }
    Ok(())
}

pub async fn keys(node: &Arc<Node>, pattern: &Bytes) -> Reply {
    let mut all = Vec::new();
    let extra = [Bytes::from_static(b"MATCH"), pattern.clone()];
    let res = for_each_chunk(node, &extra, |r| {
        if let Reply::Array(v) = r {
            all.extend(v);
        }
    })
    .await;
    res.map_or_else(|e| e, |()| Reply::Array(all))
}

pub async fn dbsize(node: &Arc<Node>) -> Reply {
    let mut n = 0;
    let extra = [Bytes::from_static(b"COUNTONLY")];
    let res = for_each_chunk(node, &extra, |r| {
        if let Reply::Int(c) = r {
            n += c;
        }
    })
    .await;
    res.map_or_else(|e| e, |()| Reply::Int(n))
}

pub async fn flush(node: &Arc<Node>, args: &[Bytes]) -> Reply {
    if args.len() > 2
        || args
            .get(1)
            .is_some_and(|a| !a.eq_ignore_ascii_case(b"sync") && !a.eq_ignore_ascii_case(b"async"))
    {
        return Reply::err(errors::SYNTAX);
    }
    for shard in &node.layout {
        let args = vec![
            Bytes::from_static(b"TESSERA.FLUSHSHARD"),
            Bytes::from(shard.id.to_string()),
        ];
        let r = on_shard(node, shard.id, args).await;
        if r.is_error() {
            return r;
        }
    }
    Reply::ok()
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
pub async fn scan(node: &Arc<Node>, args: &[Bytes]) -> Reply {
    let Some(cursor) = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::err(errors::INVALID_CURSOR);
    };
    let mut count = 10usize;
    let mut extra = Vec::new();
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Reply::err(errors::SYNTAX);
        };
        match args[i].to_ascii_uppercase().as_slice() {
            b"COUNT" => match parse_i64(value) {
                Some(n) if n >= 1 => count = (n as usize).min(1 << 20),
                Some(_) => return Reply::err(errors::SYNTAX),
                None => return Reply::err(errors::NOT_INTEGER),
            },
            b"MATCH" => extra.extend([Bytes::from_static(b"MATCH"), value.clone()]),
            b"TYPE" => extra.extend([Bytes::from_static(b"TYPE"), value.clone()]),
            _ => return Reply::err(errors::SYNTAX),
        }
        i += 2;
    }
    let (mut shard_idx, mut from) = if cursor == 0 {
        (0, Vec::new())
    } else {
        match node.cursors.lock().positions.get(&cursor) {
            Some(p) => p.clone(),
            None => return Reply::err(errors::INVALID_CURSOR),
        }
    };
    let mut keys = Vec::new();
    while shard_idx < node.layout.len() && keys.len() < count {
        let id = node.layout[shard_idx].id;
        let r = on_shard(node, id, scan_args(id, &from, count, &extra)).await;
        let (next, got) = match unpack(r) {
            Ok(x) => x,
            Err(e) => return e,
        };
        if let Reply::Array(v) = got {
            keys.extend(v);
        }
        match next {
            Some(n) => {
                from = n;
                break;
            }
            None => {
                shard_idx += 1;
                from = Vec::new();
            }
        }
    }
    let next = if shard_idx >= node.layout.len() {
        0
    } else {
        node.cursors.lock().issue(shard_idx, from)
    };
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(keys)])
}

/// RANDOMKEY: a key near a random position of a random non-empty shard.
pub async fn randomkey(node: &Arc<Node>) -> Reply {
    let mut order: Vec<usize> = (0..node.layout.len()).collect();
    let start: Vec<u8>;
    {
        let mut rng = rand::rng();
        let first = rng.random_range(0..order.len());
        order.rotate_left(first);
        start = (0..rng.random_range(1..6)).map(|_| rng.random()).collect();
    }
    for idx in order {
        let shard = &node.layout[idx];
        for from in [&start[..], &[][..]] {
            let r = on_shard(node, shard.id, scan_args(shard.id, from, 16, &[])).await;
            match unpack(r) {
                Ok((_, Reply::Array(v))) if !v.is_empty() => return v[0].clone(),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    }
    Reply::Nil
}
