//! Connection and server commands that need no shard: PING ECHO HELLO AUTH SELECT CLIENT
//! COMMAND CONFIG INFO TIME LASTSAVE FUNCTION. They read or change the session's state
//! ([`Conn`]) and the node's settings, with Redis's reply shapes and error texts.

use super::clients::ClientInfo;
use super::node::{now_ms, Node};
use crate::cmd::errors::{self, unknown_subcommand};
use crate::cmd::table::COMMANDS;
use crate::cmd::value::parse_i64;
use crate::cmd::{lookup, Cmd, Spec};
use crate::resp::{glob_match, Protocol, Reply};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a session knows about its client.
pub struct Conn {
    pub proto: Protocol,
    pub authed: bool,
    /// A node-to-node forwarding connection: never forwards again.
    pub internal: bool,
    /// Close after the replies are written (QUIT).
    pub closing: bool,
    pub info: Arc<ClientInfo>,
}

/// The Redis version Tessera reports (its command semantics follow Redis 7).
pub const REDIS_VERSION: &str = "7.2.0";

fn s(text: &str) -> Reply {
    Reply::bulk(Bytes::copy_from_slice(text.as_bytes()))
}

pub fn run(node: &Arc<Node>, conn: &mut Conn, spec: &Spec, args: &[Bytes]) -> Reply {
    match spec.cmd {
        Cmd::Ping => match args.len() {
            1 => Reply::Simple("PONG".into()),
            2 => Reply::Bulk(args[1].clone()),
            _ => Reply::err(errors::wrong_arity("ping")),
        },
        Cmd::Echo => Reply::Bulk(args[1].clone()),
        Cmd::Hello => hello(node, conn, args),
        Cmd::Auth => auth(node, conn, args),
        Cmd::Select => match parse_i64(&args[1]) {
            Some(0) => Reply::ok(),
            Some(_) => Reply::err(errors::DB_RANGE),
            None => Reply::err(errors::NOT_INTEGER),
        },
        Cmd::Quit => {
            conn.closing = true;
            Reply::ok()
        }
        Cmd::Reset => {
            conn.proto = Protocol::Resp2;
            conn.authed = node.settings.read().requirepass.is_none();
            conn.info.name.lock().clear();
            conn.info.resp.store(2, Ordering::Relaxed);
            Reply::Simple("RESET".into())
        }
        Cmd::Client => client(node, conn, args),
        Cmd::Command => command(args),
        Cmd::Config => config(node, args),
        Cmd::Info => Reply::Verbatim(super::info::render(node, &args[1..])),
        Cmd::Time => {
            let us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            Reply::Array(vec![
                s(&(us / 1_000_000).to_string()),
                s(&(us % 1_000_000).to_string()),
            ])
        }
        Cmd::Lastsave => Reply::Int((now_ms() / 1000) as i64),
        Cmd::Function => {
            if args[1].eq_ignore_ascii_case(b"flush") && args.len() <= 3 {
                Reply::ok()
            } else {
                Reply::err(format!(
                    "ERR FUNCTION {} is not supported by Tessera",
                    errors::printable(&args[1], 32).to_uppercase()
                ))
            }
        }
        Cmd::TesseraInternal => {
            conn.internal = true;
            Reply::ok()
        }
        _ => Reply::err("ERR command cannot run here"),
    }
}

fn check_password(node: &Node, user: &[u8], pass: &[u8]) -> Result<(), Reply> {
    match &node.settings.read().requirepass {
        None => Err(Reply::err(errors::AUTH_NO_PASSWORD)),
        Some(pw) if user == b"default" && pass == pw.as_bytes() => Ok(()),
        Some(_) => Err(Reply::err(errors::WRONGPASS)),
    }
}

fn auth(node: &Node, conn: &mut Conn, args: &[Bytes]) -> Reply {
    let (user, pass) = match args.len() {
        2 => (&b"default"[..], &args[1][..]),
        3 => (&args[1][..], &args[2][..]),
        _ => return Reply::err(errors::SYNTAX),
    };
    match check_password(node, user, pass) {
        Ok(()) => {
            conn.authed = true;
            Reply::ok()
        }
        Err(e) => e,
    }
}

fn hello(node: &Node, conn: &mut Conn, args: &[Bytes]) -> Reply {
    let mut proto = conn.proto;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        proto = match parse_i64(v) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Reply::err(errors::NOPROTO),
            None => return Reply::err("ERR Protocol version is not an integer or out of range"),
        };
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                if let Err(e) = check_password(node, &args[i + 1], &args[i + 2]) {
                    return e;
                }
                conn.authed = true;
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => return Reply::err(errors::SYNTAX),
        }
    }
    if !conn.authed {
        return Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = name {
        *conn.info.name.lock() = String::from_utf8_lossy(&n).into_owned();
    }
    conn.proto = proto;
    conn.info.resp.store(
        if proto == Protocol::Resp3 { 3 } else { 2 },
        Ordering::Relaxed,
    );
    Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(REDIS_VERSION)),
        (
            s("proto"),
            Reply::Int(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (s("id"), Reply::Int(conn.info.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(vec![])),
    ])
}

fn client(node: &Node, conn: &mut Conn, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    let info = &conn.info;
    match (sub.as_slice(), args.len()) {
        (b"ID", 2) => Reply::Int(info.id as i64),
        (b"GETNAME", 2) => {
            let n = info.name.lock();
            if n.is_empty() {
                Reply::Nil
            } else {
                s(&n)
            }
        }
        (b"SETNAME", 3) => {
            if args[2].iter().any(|b| *b <= b' ' || *b > b'~') {
                return Reply::err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            *info.name.lock() = String::from_utf8_lossy(&args[2]).into_owned();
            Reply::ok()
        }
        (b"SETINFO", 4) => {
            let value = String::from_utf8_lossy(&args[3]).into_owned();
            if value.contains(' ') || value.contains('\n') {
                return Reply::err("ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.");
            }
            match args[2].to_ascii_uppercase().as_slice() {
                b"LIB-NAME" => *info.lib_name.lock() = value,
                b"LIB-VER" => *info.lib_ver.lock() = value,
                _ => {
                    return Reply::err(format!(
                        "ERR Unrecognized option '{}'",
                        errors::printable(&args[2], 64)
                    ))
                }
            }
            Reply::ok()
        }
        (b"INFO", 2) => Reply::Verbatim(info.line() + "\n"),
        (b"LIST", _) => {
            let mut text = String::new();
            for c in node.clients.all() {
                text.push_str(&c.line());
                text.push('\n');
            }
            Reply::Verbatim(text)
        }
        (b"KILL", _) => client_kill(node, conn, &args[2..]),
        (b"NO-EVICT" | b"NO-TOUCH", 3) => Reply::ok(),
        _ => Reply::err(unknown_subcommand("client", &args[1])),
    }
}

fn client_kill(node: &Node, conn: &mut Conn, args: &[Bytes]) -> Reply {
    let all = node.clients.all();
    if args.len() == 1 {
        // Old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(&args[0]);
        return match all.iter().find(|c| c.addr.to_string() == addr) {
            Some(c) => {
                c.kill();
                Reply::ok()
            }
            None => Reply::err("ERR No such client"),
        };
    }
    if args.is_empty() || args.len() % 2 != 0 {
        return Reply::err(errors::SYNTAX);
    }
    let mut killed = 0;
    for c in &all {
        let mut matches = true;
        for pair in args.chunks(2) {
            let v = String::from_utf8_lossy(&pair[1]);
            matches &= match pair[0].to_ascii_uppercase().as_slice() {
                b"ID" => v.parse::<u64>().ok() == Some(c.id),
                b"ADDR" => c.addr.to_string() == v,
                b"LADDR" => c.laddr.to_string() == v,
                b"SKIPME" => !(v.eq_ignore_ascii_case("yes") && c.id == conn.info.id),
                b"USER" => v == "default",
                _ => return Reply::err(errors::SYNTAX),
            };
        }
        if matches {
            c.kill();
            killed += 1;
        }
    }
    Reply::Int(killed)
}

fn command_info(spec: &Spec) -> Reply {
    Reply::Array(vec![
        s(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(
            spec.flags
                .iter()
                .map(|f| Reply::Simple((*f).into()))
                .collect(),
        ),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn public() -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter().filter(|c| !c.name.starts_with("tessera."))
}

fn command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(public().map(command_info).collect());
    };
    let named = || args[2..].iter().map(|n| lookup(n));
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" => Reply::Int(public().count() as i64),
        b"LIST" => Reply::Array(public().map(|c| s(c.name)).collect()),
        b"INFO" if args.len() == 2 => Reply::Array(public().map(command_info).collect()),
        b"INFO" => Reply::Array(
            named()
                .map(|c| c.map_or(Reply::Nil, command_info))
                .collect(),
        ),
        b"DOCS" => {
            let specs: Vec<&Spec> = if args.len() == 2 {
                public().collect()
            } else {
                named().flatten().collect()
            };
            Reply::Map(
                specs
                    .into_iter()
                    .map(|c| {
                        let doc = Reply::Map(vec![
                            (s("summary"), s("")),
                            (s("since"), s("1.0.0")),
                            (
                                s("group"),
                                s(if c.key_positions(3).count() > 0 {
                                    "keyspace"
                                } else {
                                    "server"
                                }),
                            ),
                        ]);
                        (s(c.name), doc)
                    })
                    .collect(),
            )
        }
        _ => Reply::err(unknown_subcommand("command", sub)),
    }
}

/// Parameters CONFIG GET knows, with whether CONFIG SET may change them.
const PARAMS: &[(&str, bool)] = &[
    ("requirepass", true),
    ("maxclients", true),
    ("proto-max-bulk-len", true),
    ("client-query-buffer-limit", true),
    ("databases", false),
    ("appendonly", false),
    ("save", false),
    ("timeout", false),
    ("port", false),
    ("bind", false),
    ("dir", false),
];

fn param_value(node: &Node, name: &str) -> String {
    let st = node.settings.read();
    match name {
        "requirepass" => st.requirepass.clone().unwrap_or_default(),
        "maxclients" => st.maxclients.to_string(),
        "proto-max-bulk-len" => st.proto_max_bulk_len.to_string(),
        "client-query-buffer-limit" => st.client_query_buffer_limit.to_string(),
        "databases" => "1".into(),
        // Every acknowledged write is in the fsync'd Raft log.
        "appendonly" => "yes".into(),
        "save" => String::new(),
        "timeout" => "0".into(),
        "port" => node.config.resp_addr.port().to_string(),
        "bind" => node.config.resp_addr.ip().to_string(),
        "dir" => node.config.data_dir.display().to_string(),
        _ => String::new(),
    }
}

fn config(node: &Node, args: &[Bytes]) -> Reply {
    let sub = args[1].to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" if args.len() >= 3 => {
            let mut out = Vec::new();
            for (name, _) in PARAMS {
                if args[2..]
                    .iter()
                    .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                {
                    out.push((s(name), s(&param_value(node, name))));
                }
            }
            Reply::Map(out)
        }
        b"SET" if args.len() >= 4 && args.len() % 2 == 0 => {
            for pair in args[2..].chunks(2) {
                let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                if !PARAMS.iter().any(|(n, settable)| *n == name && *settable) {
                    return Reply::err(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                        errors::printable(&pair[0], 64)
                    ));
                }
                let value = String::from_utf8_lossy(&pair[1]).into_owned();
                let num = || value.parse::<usize>().ok().filter(|n| *n > 0);
                let mut st = node.settings.write();
                let ok = match name.as_str() {
                    "requirepass" => {
                        st.requirepass = Some(value.clone()).filter(|v| !v.is_empty());
                        true
                    }
                    "maxclients" => num().map(|n| st.maxclients = n).is_some(),
                    "proto-max-bulk-len" => num().map(|n| st.proto_max_bulk_len = n).is_some(),
                    _ => num().map(|n| st.client_query_buffer_limit = n).is_some(),
                };
                if !ok {
                    return Reply::err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
                    ));
                }
            }
            Reply::ok()
        }
        b"RESETSTAT" if args.len() == 2 => {
            for c in [
                &node.stats.commands,
                &node.stats.connections,
                &node.stats.rejected_connections,
                &node.stats.forwarded,
                &node.stats.expired_keys,
            ] {
                c.store(0, Ordering::Relaxed);
            }
            Reply::ok()
        }
        b"GET" | b"SET" | b"RESETSTAT" => Reply::err(errors::wrong_arity(&format!(
            "config|{}",
            String::from_utf8_lossy(&sub).to_ascii_lowercase()
        ))),
        _ => Reply::err(unknown_subcommand("config", &args[1])),
    }
}
