//! The Redis state machine: what a committed Raft entry of a shard means. An entry is a
//! [`Proposal`] — the leader's timestamp and a write command's arguments — and applying it
//! runs the command (`cmd::execute`) against the apply round, so every replica makes the
//! same change at the same logical time. The reply travels back to the proposer encoded as
//! RESP3 (it is parsed back into a [`Reply`] there).

use super::{execute, lookup, Ctx, Keyspace, Route};
use crate::raftstore::{ApplyContext, StateMachine};
use crate::resp::{Protocol, Reply};
use crate::shard::ShardDesc;
use bytes::{Buf, BufMut, Bytes};
use tessera_storage::{Cf, KeyRange};

const VERSION: u8 = 1;

/// The largest key that a range delete of an unbounded shard covers in one operation; keys
/// above it (64 × 0xff…) are deleted one by one.
const RANGE_END_SENTINEL: [u8; 64] = [0xff; 64];

/// Write commands as they are replicated: one or more commands (a client's pipelined
/// writes to one shard travel as one entry), applied in order at the leader's timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub now_ms: u64,
    pub cmds: Vec<Vec<Bytes>>,
}

impl Proposal {
    pub fn encode(&self) -> Bytes {
        let cmds: Vec<&[Bytes]> = self.cmds.iter().map(|c| c.as_slice()).collect();
        encode_commands(self.now_ms, &cmds)
    }

    /// Decodes an entry; the arguments share one copy of the entry's bytes.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let mut cmds = Vec::new();
        let now_ms = walk_commands(raw, |_, args| cmds.push(args.to_vec()))?;
        Some(Proposal { now_ms, cmds })
    }
}

/// Reads an encoded proposal's header and checks that its commands fill it exactly;
/// returns the timestamp, the command count and where the commands start. Lengths are
/// checked against the bytes present: nothing is allocated from them.
fn check_commands(raw: &[u8]) -> Option<(u64, usize, usize)> {
    let mut b = raw;
    if b.remaining() < 13 || b.get_u8() != VERSION {
        return None;
    }
    let now_ms = b.get_u64_le();
    let n = b.get_u32_le() as usize;
    let start = raw.len() - b.remaining();
    for _ in 0..n {
        if b.remaining() < 4 {
            return None;
        }
        for _ in 0..b.get_u32_le() {
            if b.remaining() < 4 {
                return None;
            }
            let len = b.get_u32_le() as usize;
            if b.remaining() < len {
                return None;
            }
            b.advance(len);
        }
    }
    b.is_empty().then_some((now_ms, n, start))
}

/// Calls `f` with the timestamp and each command of an encoded proposal, in order, and
/// returns the timestamp; `None` (and no call at all) when the encoding is malformed. The
/// arguments share one copy of the bytes and come in one reused buffer, so applying a run
/// of commands allocates once per entry, not once per command.
fn walk_commands(raw: &[u8], mut f: impl FnMut(u64, &[Bytes])) -> Option<u64> {
    let (now_ms, n, start) = check_commands(raw)?;
    let whole = Bytes::copy_from_slice(raw);
    let mut b = &raw[start..];
    let mut args = Vec::new();
    for _ in 0..n {
        let argc = b.get_u32_le();
        args.clear();
        for _ in 0..argc {
            let len = b.get_u32_le() as usize;
            let at = raw.len() - b.remaining();
            args.push(whole.slice(at..at + len));
            b.advance(len);
        }
        f(now_ms, &args);
    }
    Some(now_ms)
}

/// Encodes a [`Proposal`] straight from borrowed commands (no copies of the arguments
/// besides the encoding itself).
pub fn encode_commands(now_ms: u64, cmds: &[&[Bytes]]) -> Bytes {
    let size = 13
        + cmds
            .iter()
            .map(|c| 4 + c.iter().map(|a| 4 + a.len()).sum::<usize>())
            .sum::<usize>();
    let mut b = Vec::with_capacity(size);
    b.put_u8(VERSION);
    b.put_u64_le(now_ms);
    b.put_u32_le(cmds.len() as u32);
    for c in cmds {
        b.put_u32_le(c.len() as u32);
        for a in c.iter() {
            b.put_u32_le(a.len() as u32);
            b.put_slice(a);
        }
    }
    b.into()
}

/// The replies of an applied [`Proposal`], one per command, in order.
pub fn decode_replies(bytes: &[u8], expected: usize) -> Vec<Reply> {
    let malformed = || vec![Reply::err("ERR malformed reply from the state machine"); expected];
    match crate::resp::parse_reply_slice(bytes) {
        Ok(Some(Reply::Array(v))) if v.len() == expected => v,
        Ok(Some(e @ Reply::Error(_))) => vec![e; expected],
        _ => malformed(),
    }
}

/// Applies [`Proposal`]s to the data column family.
#[derive(Default)]
pub struct RedisStateMachine;

struct ApplyKeyspace<'r, 'a> {
    ctx: &'r mut ApplyContext<'a>,
}

impl Keyspace for ApplyKeyspace<'_, '_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, String> {
        self.ctx
            .get(Cf::Data, key)
            .map(|v| v.map(Bytes::from))
            .map_err(|e| e.to_string())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.ctx.put(Cf::Data, key, value)
    }
    fn delete(&mut self, key: &[u8]) {
        self.ctx.delete(Cf::Data, key)
    }
}

impl RedisStateMachine {
    fn apply_reply(ctx: &mut ApplyContext<'_>, shard: &ShardDesc, cmd: &[u8]) -> Reply {
        let mut replies = Vec::new();
        match walk_commands(cmd, |now_ms, args| {
            replies.push(Self::apply_one(ctx, shard, now_ms, args))
        }) {
            Some(_) => Reply::Array(replies),
            None => Reply::err("ERR malformed replicated command"),
        }
    }

    fn apply_one(
        ctx: &mut ApplyContext<'_>,
        shard: &ShardDesc,
        now_ms: u64,
        args: &[Bytes],
    ) -> Reply {
        let Some(spec) = args.first().and_then(|n| lookup(n)) else {
            return Reply::err("ERR unknown replicated command");
        };
        if !spec.arity_ok(args.len()) {
            return Reply::err(super::errors::wrong_arity(spec.name));
        }
        if spec.cmd == super::Cmd::TesseraFlushShard {
            flush_shard(ctx, shard);
            return Reply::ok();
        }
        if spec.route != Route::Write {
            return Reply::err("ERR not a write command");
        }
        if spec
            .key_positions(args.len())
            .any(|i| !shard.contains(&args[i]))
        {
            return Reply::err(format!(
                "TRYAGAIN key is not in shard {} (routing is stale)",
                shard.id
            ));
        }
        let mut kv = ApplyKeyspace { ctx };
        let mut c = Ctx::new(&mut kv, now_ms);
        execute(spec.cmd, &mut c, args)
    }
}

/// Deletes every key of `shard` (FLUSHDB, one shard at a time).
fn flush_shard(ctx: &mut ApplyContext<'_>, shard: &ShardDesc) {
    if !shard.end.is_empty() {
        ctx.delete_range(Cf::Data, &shard.start, &shard.end);
        return;
    }
    let start = if shard.start.as_slice() > RANGE_END_SENTINEL.as_slice() {
        shard.start.clone()
    } else {
        ctx.delete_range(Cf::Data, &shard.start, &RANGE_END_SENTINEL);
        RANGE_END_SENTINEL.to_vec()
    };
    // Keys at or past the sentinel, if any, one by one.
    let mut rest = Vec::new();
    let range = KeyRange::new(start, None);
    let _ = ctx.scan_committed(Cf::Data, &range, usize::MAX, &mut |k, _| {
        rest.push(k.to_vec());
        true
    });
    for k in rest {
        ctx.delete(Cf::Data, &k);
    }
}

impl StateMachine for RedisStateMachine {
    fn apply(
        &mut self,
        ctx: &mut ApplyContext<'_>,
        shard: &ShardDesc,
        _index: u64,
        cmd: &[u8],
    ) -> Bytes {
        Self::apply_reply(ctx, shard, cmd).to_bytes(Protocol::Resp3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::static_layout;
    use tessera_storage::{MemStateEngine, StateEngine};

    fn apply(
        sm: &mut RedisStateMachine,
        ctx: &mut ApplyContext<'_>,
        shard: &ShardDesc,
        now_ms: u64,
        args: &[&str],
    ) -> Reply {
        let p = Proposal {
            now_ms,
            cmds: vec![args.iter().map(|a| Bytes::from(a.to_string())).collect()],
        };
        let out = sm.apply(ctx, shard, 10, &p.encode());
        decode_replies(&out, 1).remove(0)
    }

    #[test]
    fn proposals_roundtrip_and_reject_truncation() {
        let p = Proposal {
            now_ms: 42,
            cmds: vec![
                vec![Bytes::from("SET"), Bytes::from("k"), Bytes::new()],
                vec![Bytes::from("INCR"), Bytes::from("n")],
            ],
        };
        let enc = p.encode();
        assert_eq!(Proposal::decode(&enc), Some(p));
        for cut in 0..enc.len() {
            assert_eq!(Proposal::decode(&enc[..cut]), None);
        }
    }

    #[test]
    fn a_malformed_entry_applies_none_of_its_commands() {
        let state = MemStateEngine::new();
        let shard = static_layout(1, &[1]).remove(0);
        let mut ctx = ApplyContext::new(&state);
        let p = Proposal {
            now_ms: 1,
            cmds: vec![
                vec![Bytes::from("SET"), Bytes::from("a"), Bytes::from("1")],
                vec![Bytes::from("SET"), Bytes::from("b"), Bytes::from("2")],
            ],
        };
        let enc = p.encode();
        // Cut inside the second command: the first is whole but must not run either.
        let out = RedisStateMachine.apply(&mut ctx, &shard, 1, &enc[..enc.len() - 1]);
        assert_eq!(
            decode_replies(&out, 2),
            vec![Reply::err("ERR malformed replicated command"); 2]
        );
        assert_eq!(ctx.get(Cf::Data, b"a").unwrap(), None);
        let out = RedisStateMachine.apply(&mut ctx, &shard, 2, &enc);
        assert_eq!(decode_replies(&out, 2), vec![Reply::ok(), Reply::ok()]);
        assert!(ctx.get(Cf::Data, b"b").unwrap().is_some());
    }

    #[test]
    fn writes_apply_at_the_leaders_timestamp() {
        let state = MemStateEngine::new();
        let shard = static_layout(1, &[1]).remove(0);
        let mut sm = RedisStateMachine;
        let mut ctx = ApplyContext::new(&state);
        assert_eq!(
            apply(
                &mut sm,
                &mut ctx,
                &shard,
                1_000,
                &["SET", "k", "v", "PX", "100"]
            ),
            Reply::ok()
        );
        assert_eq!(
            apply(&mut sm, &mut ctx, &shard, 1_050, &["APPEND", "k", "w"]),
            Reply::Int(2)
        );
        // At 1,100 the key is gone for every replica, whatever their own clocks say.
        assert_eq!(
            apply(&mut sm, &mut ctx, &shard, 1_100, &["INCR", "k"]),
            Reply::Int(1)
        );
        assert_eq!(
            apply(&mut sm, &mut ctx, &shard, 1_100, &["GET", "k"]),
            Reply::err("ERR not a write command")
        );
        assert_eq!(
            apply(&mut sm, &mut ctx, &shard, 1_100, &["SET", "k"]),
            Reply::err("ERR wrong number of arguments for 'set' command")
        );
    }

    #[test]
    fn a_batch_applies_in_order_with_one_reply_each() {
        let state = MemStateEngine::new();
        let shard = static_layout(1, &[1]).remove(0);
        let mut ctx = ApplyContext::new(&state);
        let cmds: Vec<Vec<Bytes>> = [&["SET", "k", "1"][..], &["INCR", "k"], &["GET", "k"]]
            .iter()
            .map(|c| c.iter().map(|a| Bytes::from(a.to_string())).collect())
            .collect();
        let out =
            RedisStateMachine.apply(&mut ctx, &shard, 9, &Proposal { now_ms: 1, cmds }.encode());
        assert_eq!(
            decode_replies(&out, 3),
            vec![
                Reply::ok(),
                Reply::Int(2),
                Reply::err("ERR not a write command")
            ]
        );
        assert_eq!(
            decode_replies(&out, 2).len(),
            2,
            "a count mismatch is an error per command"
        );
    }

    #[test]
    fn flush_removes_the_shards_keys_only() {
        let state = MemStateEngine::new();
        let layout = static_layout(2, &[1]);
        let mut sm = RedisStateMachine;
        let mut ctx = ApplyContext::new(&state);
        for (shard, key) in [(&layout[0], "a"), (&layout[1], "\u{ff}z")] {
            apply(&mut sm, &mut ctx, shard, 1, &["SET", key, "v"]);
        }
        state.write(ctx.take_batch()).unwrap();
        let mut ctx = ApplyContext::new(&state);
        apply(
            &mut sm,
            &mut ctx,
            &layout[1],
            2,
            &["TESSERA.FLUSHSHARD", "2"],
        );
        assert_eq!(
            apply(&mut sm, &mut ctx, &layout[1], 2, &["SETNX", "\u{ff}z", "w"]),
            Reply::Int(1),
            "flushed within the round"
        );
        state.write(ctx.take_batch()).unwrap();
        assert!(state.get(Cf::Data, b"a").unwrap().is_some());
    }
}
