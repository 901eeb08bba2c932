//! The command table: every command Tessera knows, with Redis's arity, flags and key
//! positions (what `COMMAND INFO` reports), and how the server must route it. A name that is
//! not here is an unknown command — nothing answers a fake OK.

use super::Cmd;
use crate::fasthash::FastMap;
use std::sync::LazyLock;

/// Where a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Connection state or node-local facts (PING, HELLO, CLIENT, INFO, ...).
    Local,
    /// Reads keys of one shard (split per shard when it names several keys).
    Read,
    /// Writes keys of one shard through Raft (split per shard where that stays correct).
    Write,
    /// Touches every shard (KEYS, SCAN, DBSIZE, FLUSHDB, RANDOMKEY).
    AllShards,
}

pub struct Spec {
    pub name: &'static str,
    pub cmd: Cmd,
    /// Redis arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub route: Route,
}

impl Spec {
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Indices of the key arguments in a request of `argc` arguments.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let (first, step) = (self.first_key.max(0) as usize, self.step.max(1) as usize);
        let last = if self.last_key < 0 {
            argc as i64 + self.last_key as i64
        } else {
            self.last_key as i64
        };
        let range = if first == 0 {
            0..0
        } else {
            first..(last.max(0) as usize + 1).min(argc)
        };
        range.step_by(step)
    }
}

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WD: &[&str] = &["write"];
const WDF: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const L: &[&str] = &["fast"];
const LN: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth"];

macro_rules! spec {
    ($name:literal, $cmd:ident, $arity:expr, $flags:expr, $f:expr, $l:expr, $s:expr, $route:ident) => {
        Spec {
            name: $name,
            cmd: Cmd::$cmd,
            arity: $arity,
            flags: $flags,
            first_key: $f,
            last_key: $l,
            step: $s,
            route: Route::$route,
        }
    };
}

pub static COMMANDS: &[Spec] = &[
    // connection and server
    spec!("ping", Ping, -1, L, 0, 0, 0, Local),
    spec!("echo", Echo, 2, L, 0, 0, 0, Local),
    spec!("hello", Hello, -1, LN, 0, 0, 0, Local),
    spec!("auth", Auth, -2, LN, 0, 0, 0, Local),
    spec!("select", Select, 2, L, 0, 0, 0, Local),
    spec!("quit", Quit, -1, LN, 0, 0, 0, Local),
    spec!("reset", Reset, 1, LN, 0, 0, 0, Local),
    spec!("client", Client, -2, L, 0, 0, 0, Local),
    spec!("command", Command, -1, L, 0, 0, 0, Local),
    spec!("config", Config, -2, L, 0, 0, 0, Local),
    spec!("info", Info, -1, L, 0, 0, 0, Local),
    spec!("time", Time, 1, L, 0, 0, 0, Local),
    spec!("lastsave", Lastsave, 1, L, 0, 0, 0, Local),
    spec!("function", Function, -2, L, 0, 0, 0, Local),
    spec!("dbsize", Dbsize, 1, R, 0, 0, 0, AllShards),
    spec!("flushdb", Flushdb, -1, WD, 0, 0, 0, AllShards),
    spec!("flushall", Flushall, -1, WD, 0, 0, 0, AllShards),
    // strings
    spec!("get", Get, 2, RF, 1, 1, 1, Read),
    spec!("set", Set, -3, W, 1, 1, 1, Write),
    spec!("setnx", Setnx, 3, WF, 1, 1, 1, Write),
    spec!("setex", Setex, 4, W, 1, 1, 1, Write),
    spec!("psetex", Psetex, 4, W, 1, 1, 1, Write),
    spec!("getset", Getset, 3, WF, 1, 1, 1, Write),
    spec!("getdel", Getdel, 2, WDF, 1, 1, 1, Write),
    spec!("getex", Getex, -2, WDF, 1, 1, 1, Write),
    spec!("mget", Mget, -2, RF, 1, -1, 1, Read),
    spec!("mset", Mset, -3, W, 1, -1, 2, Write),
    spec!("msetnx", Msetnx, -3, W, 1, -1, 2, Write),
    spec!("incr", Incr, 2, WF, 1, 1, 1, Write),
    spec!("decr", Decr, 2, WF, 1, 1, 1, Write),
    spec!("incrby", Incrby, 3, WF, 1, 1, 1, Write),
    spec!("decrby", Decrby, 3, WF, 1, 1, 1, Write),
    spec!("incrbyfloat", Incrbyfloat, 3, WF, 1, 1, 1, Write),
    spec!("append", Append, 3, WF, 1, 1, 1, Write),
    spec!("strlen", Strlen, 2, RF, 1, 1, 1, Read),
    spec!("getrange", Getrange, 4, R, 1, 1, 1, Read),
    spec!("setrange", Setrange, 4, W, 1, 1, 1, Write),
    // keys
    spec!("del", Del, -2, WD, 1, -1, 1, Write),
    spec!("unlink", Unlink, -2, WDF, 1, -1, 1, Write),
    spec!("exists", Exists, -2, RF, 1, -1, 1, Read),
    spec!("type", Type, 2, RF, 1, 1, 1, Read),
    spec!("touch", Touch, -2, RF, 1, -1, 1, Read),
    spec!("expire", Expire, -3, WDF, 1, 1, 1, Write),
    spec!("pexpire", Pexpire, -3, WDF, 1, 1, 1, Write),
    spec!("expireat", Expireat, -3, WDF, 1, 1, 1, Write),
    spec!("pexpireat", Pexpireat, -3, WDF, 1, 1, 1, Write),
    spec!("ttl", Ttl, 2, RF, 1, 1, 1, Read),
    spec!("pttl", Pttl, 2, RF, 1, 1, 1, Read),
    spec!("expiretime", Expiretime, 2, RF, 1, 1, 1, Read),
    spec!("pexpiretime", Pexpiretime, 2, RF, 1, 1, 1, Read),
    spec!("persist", Persist, 2, WDF, 1, 1, 1, Write),
    spec!("rename", Rename, 3, WD, 1, 2, 1, Write),
    spec!("renamenx", Renamenx, 3, WDF, 1, 2, 1, Write),
    spec!("keys", Keys, 2, R, 0, 0, 0, AllShards),
    spec!("scan", Scan, -2, R, 0, 0, 0, AllShards),
    spec!("randomkey", Randomkey, 1, R, 0, 0, 0, AllShards),
    // internal (node to node)
    spec!("tessera.internal", TesseraInternal, 1, L, 0, 0, 0, Local),
    spec!("tessera.expired", TesseraExpired, -2, WDF, 1, -1, 1, Write),
    spec!("tessera.scanshard", TesseraScanShard, -4, R, 0, 0, 0, Local),
    spec!(
        "tessera.flushshard",
        TesseraFlushShard,
        2,
        WD,
        0,
        0,
        0,
        Local
    ),
];

/// Names hash with FNV-1a (see `fasthash`): the table is fixed at start.
static BY_NAME: LazyLock<FastMap<&'static str, &'static Spec>> =
    LazyLock::new(|| COMMANDS.iter().map(|s| (s.name, s)).collect());

/// The command named `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > 32 {
        return None;
    }
    let mut lower = [0u8; 32];
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower = std::str::from_utf8(&lower[..name.len()]).ok()?;
    BY_NAME.get(lower).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_exact() {
        assert_eq!(lookup(b"GeT").unwrap().cmd, Cmd::Get);
        assert!(lookup(b"gett").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        assert_eq!(COMMANDS.len(), BY_NAME.len(), "names are unique");
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let mset = lookup(b"mset").unwrap();
        assert_eq!(mset.key_positions(5).collect::<Vec<_>>(), vec![1, 3]);
        let rename = lookup(b"rename").unwrap();
        assert_eq!(rename.key_positions(3).collect::<Vec<_>>(), vec![1, 2]);
        let del = lookup(b"del").unwrap();
        assert_eq!(del.key_positions(4).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(lookup(b"ping").unwrap().key_positions(2).count(), 0);
        assert!(mset.arity_ok(3) && !mset.arity_ok(2));
        assert!(lookup(b"get").unwrap().arity_ok(2) && !lookup(b"get").unwrap().arity_ok(3));
    }
}
