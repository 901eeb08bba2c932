//! Redis commands over Tessera's keyspace. The table (`table`) names every command and how
//! it routes; keyed commands run through [`execute`] — one enum, one match — on a [`Ctx`]
//! that gives them one shard's keys and the time. The same code answers reads on a leader
//! (over the state engine) and applies writes on every replica (over the apply round's batch,
//! see `machine`), so a write's effect and reply are decided once, deterministically, from
//! the bytes and timestamp in the Raft log. This module knows nothing of sockets.

pub mod errors;
mod keys;
pub mod machine;
pub mod scan;
mod strings;
pub mod table;
pub mod value;

use crate::resp::Reply;
use bytes::{Buf, Bytes};
pub use table::{lookup, Route, Spec};
use value::Stored;

/// Every command Tessera implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmd {
    Ping,
    Echo,
    Hello,
    Auth,
    Select,
    Quit,
    Reset,
    Client,
    Command,
    Config,
    Info,
    Time,
    Lastsave,
    Function,
    Dbsize,
    Flushdb,
    Flushall,
    Get,
    Set,
    Setnx,
    Setex,
    Psetex,
    Getset,
    Getdel,
    Getex,
    Mget,
    Mset,
    Msetnx,
    Incr,
    Decr,
    Incrby,
    Decrby,
    Incrbyfloat,
    Append,
    Strlen,
    Getrange,
    Setrange,
    Del,
    Unlink,
    Exists,
    Type,
    Touch,
    Expire,
    Pexpire,
    Expireat,
    Pexpireat,
    Ttl,
    Pttl,
    Expiretime,
    Pexpiretime,
    Persist,
    Rename,
    Renamenx,
    Keys,
    Scan,
    Randomkey,
    TesseraInternal,
    TesseraExpired,
    TesseraScanShard,
    TesseraFlushShard,
}

/// Raw access to one shard's data: the state engine (reads) or an apply round (writes).
pub trait Keyspace {
    /// The stored value (shared, so a value read ahead is handed out without a copy).
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, String>;
    fn put(&mut self, key: &[u8], value: &[u8]);
    fn delete(&mut self, key: &[u8]);
}

/// A live (present, unexpired) value, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub kind: u8,
    pub expire_at: u64,
    pub payload: Bytes,
}

impl Live {
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    pub fn type_name(&self) -> &'static str {
        Stored {
            kind: self.kind,
            expire_at: self.expire_at,
            payload: &[],
        }
        .type_name()
    }
}

/// What a command runs against: one shard's keys and "now" — on apply, the timestamp the
/// leader stamped on the command; on a read, the leader's clock.
pub struct Ctx<'a> {
    pub kv: &'a mut dyn Keyspace,
    pub now_ms: u64,
    /// Keys this command found present but expired (a leader proposes their deletion).
    pub expired: Vec<Bytes>,
}

impl<'a> Ctx<'a> {
    pub fn new(kv: &'a mut dyn Keyspace, now_ms: u64) -> Self {
        Ctx {
            kv,
            now_ms,
            expired: Vec::new(),
        }
    }

    /// The stored value of `key`, expired or not.
    pub fn stored(&mut self, key: &[u8]) -> Result<Option<Live>, Reply> {
        let raw = self
            .kv
            .get(key)
            .map_err(|e| Reply::err(format!("ERR storage failure: {e}")))?;
        Ok(raw.and_then(|mut v| {
            let s = Stored::decode(&v)?;
            let (kind, expire_at, header) = (s.kind, s.expire_at, v.len() - s.payload.len());
            // The payload is the value read minus its header: a view, not a second copy.
            v.advance(header);
            Some(Live {
                kind,
                expire_at,
                payload: v,
            })
        }))
    }

    /// The value of `key` if present and not expired as of `now_ms`.
    pub fn live(&mut self, key: &[u8]) -> Result<Option<Live>, Reply> {
        match self.stored(key)? {
            Some(l) if l.expired(self.now_ms) => {
                self.expired.push(Bytes::copy_from_slice(key));
                Ok(None)
            }
            other => Ok(other),
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.kv.put(key, value)
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.kv.delete(key)
    }
}

/// Runs a keyed command (its keys all on one shard) and returns its reply. Arity has been
/// checked against the table by the caller.
pub fn execute(cmd: Cmd, ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    use keys::TimeArg::*;
    match cmd {
        Cmd::Get => strings::get(ctx, args),
        Cmd::Set => strings::set(ctx, args),
        Cmd::Setnx => strings::setnx(ctx, args),
        Cmd::Setex => strings::setex(ctx, args, false),
        Cmd::Psetex => strings::setex(ctx, args, true),
        Cmd::Getset => strings::getset(ctx, args),
        Cmd::Getdel => strings::getdel(ctx, args),
        Cmd::Getex => strings::getex(ctx, args),
        Cmd::Mget => strings::mget(ctx, args),
        Cmd::Mset | Cmd::Msetnx if args.len() % 2 == 0 => {
            Reply::err(errors::wrong_arity(if cmd == Cmd::Mset {
                "mset"
            } else {
                "msetnx"
            }))
        }
        Cmd::Mset => strings::mset(ctx, args, false),
        Cmd::Msetnx => strings::mset(ctx, args, true),
        Cmd::Incr => strings::incr(ctx, args, Some(1), false),
        Cmd::Decr => strings::incr(ctx, args, Some(-1), false),
        Cmd::Incrby => strings::incr(ctx, args, None, false),
        Cmd::Decrby => strings::incr(ctx, args, None, true),
        Cmd::Incrbyfloat => strings::incrbyfloat(ctx, args),
        Cmd::Append => strings::append(ctx, args),
        Cmd::Strlen => strings::strlen(ctx, args),
        Cmd::Getrange => strings::getrange(ctx, args),
        Cmd::Setrange => strings::setrange(ctx, args),
        Cmd::Del | Cmd::Unlink => keys::del(ctx, args),
        Cmd::Exists | Cmd::Touch => keys::exists(ctx, args),
        Cmd::Type => keys::type_of(ctx, args),
        Cmd::Expire => keys::expire(ctx, args, RelativeSecs),
        Cmd::Pexpire => keys::expire(ctx, args, RelativeMillis),
        Cmd::Expireat => keys::expire(ctx, args, AbsoluteSecs),
        Cmd::Pexpireat => keys::expire(ctx, args, AbsoluteMillis),
        Cmd::Ttl => keys::ttl(ctx, args, false, false),
        Cmd::Pttl => keys::ttl(ctx, args, true, false),
        Cmd::Expiretime => keys::ttl(ctx, args, false, true),
        Cmd::Pexpiretime => keys::ttl(ctx, args, true, true),
        Cmd::Persist => keys::persist(ctx, args),
        Cmd::Rename => keys::rename(ctx, args, false),
        Cmd::Renamenx => keys::rename(ctx, args, true),
        Cmd::TesseraExpired => keys::expired(ctx, args),
        other => Reply::err(format!("ERR {other:?} is not a keyed command")),
    }
}
