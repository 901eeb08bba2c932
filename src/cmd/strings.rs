//! String commands: GET SET (all options) SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET
//! MSETNX INCR DECR INCRBY DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SETRANGE. Each runs on
//! one shard's keys through a [`Ctx`]; the same code serves reads on the leader and writes
//! at apply time on every replica, so it must stay deterministic (time comes from the ctx).

use super::errors::{self, invalid_expire};
use super::value::{self, encode_string, format_float_value, int_arg, parse_f64, parse_i64};
use super::{Ctx, Live};
use crate::resp::Reply;
use bytes::Bytes;

/// Largest string value (Redis's default proto-max-bulk-len).
pub const MAX_STRING: usize = 512 << 20;

fn string_or_wrongtype(live: Option<Live>) -> Result<Option<Live>, Reply> {
    match live {
        Some(l) if l.kind != value::TYPE_STRING => Err(Reply::err(errors::WRONGTYPE)),
        other => Ok(other),
    }
}

fn bulk_or_nil(live: Option<Live>) -> Reply {
    match live {
        Some(l) => Reply::Bulk(l.payload),
        None => Reply::Nil,
    }
}

pub fn get(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(l) => bulk_or_nil(l),
        Err(e) => e,
    }
}

/// Expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expiry {
    Unchanged,
    Keep,
    Persist,
    At(u64),
}

/// Reads `EX s | PX ms | EXAT s | PXAT ms` at `args[i]` (with its value at `i+1`).
fn expiry_option(ctx: &Ctx, name: &str, args: &[Bytes], i: usize) -> Result<Expiry, Reply> {
    let opt = args[i].to_ascii_uppercase();
    let n = args.get(i + 1).ok_or_else(|| Reply::err(errors::SYNTAX))?;
    let n = int_arg(n)?;
    if n <= 0 {
        return Err(Reply::err(invalid_expire(name)));
    }
    let n = n as u64;
    let at = match opt.as_slice() {
        b"EX" => n
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(ctx.now_ms)),
        b"PX" => n.checked_add(ctx.now_ms),
        b"EXAT" => n.checked_mul(1000),
        _ => Some(n),
    };
    match at {
        Some(at) if at <= i64::MAX as u64 => Ok(Expiry::At(at)),
        _ => Err(Reply::err(invalid_expire(name))),
    }
}

pub fn set(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut expiry = Expiry::Unchanged;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get = true,
            b"KEEPTTL" if expiry == Expiry::Unchanged => expiry = Expiry::Keep,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if expiry == Expiry::Unchanged => {
                match expiry_option(ctx, "set", args, i) {
                    Ok(e) => expiry = e,
                    Err(e) => return e,
                }
                i += 1;
            }
            _ => return Reply::err(errors::SYNTAX),
        }
        i += 1;
    }
    // A plain SET (no NX/XX/GET/KEEPTTL) does not depend on the old value: skip the read.
    let needs_old = nx || xx || get || expiry == Expiry::Keep;
    let old = if needs_old {
        match ctx.live(&args[1]) {
            Ok(l) => l,
            Err(e) => return e,
        }
    } else {
        None
    };
    if get && old.as_ref().is_some_and(|l| l.kind != value::TYPE_STRING) {
        return Reply::err(errors::WRONGTYPE);
    }
    let exists = old.is_some();
    if (nx && exists) || (xx && !exists) {
        return if get { bulk_or_nil(old) } else { Reply::Nil };
    }
    let expire_at = match (expiry, &old) {
        (Expiry::At(at), _) => at,
        (Expiry::Keep, Some(l)) => l.expire_at,
        _ => 0,
    };
    ctx.put(&args[1], &encode_string(expire_at, &args[2]));
    if get {
        bulk_or_nil(old)
    } else {
        Reply::ok()
    }
}

pub fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.live(&args[1]) {
        Err(e) => e,
        Ok(Some(_)) => Reply::Int(0),
        Ok(None) => {
            ctx.put(&args[1], &encode_string(0, &args[2]));
            Reply::Int(1)
        }
    }
}

/// SETEX key seconds value / PSETEX key ms value.
pub fn setex(ctx: &mut Ctx, args: &[Bytes], millis: bool) -> Reply {
    let name = if millis { "psetex" } else { "setex" };
    let n = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let ms = if millis { Some(n) } else { n.checked_mul(1000) };
    let at = ms
        .filter(|ms| *ms > 0)
        .and_then(|ms| (ms as u64).checked_add(ctx.now_ms))
        .filter(|at| *at <= i64::MAX as u64);
    match at {
        Some(at) => {
            ctx.put(&args[1], &encode_string(at, &args[3]));
            Reply::ok()
        }
        None => Reply::err(invalid_expire(name)),
    }
}

pub fn getset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Err(e) => e,
        Ok(old) => {
            ctx.put(&args[1], &encode_string(0, &args[2]));
            bulk_or_nil(old)
        }
    }
}

pub fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Err(e) => e,
        Ok(old) => {
            if old.is_some() {
                ctx.delete(&args[1]);
            }
            bulk_or_nil(old)
        }
    }
}

pub fn getex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut expiry = Expiry::Unchanged;
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"PERSIST" if expiry == Expiry::Unchanged => expiry = Expiry::Persist,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if expiry == Expiry::Unchanged => {
                match expiry_option(ctx, "getex", args, i) {
                    Ok(e) => expiry = e,
                    Err(e) => return e,
                }
                i += 1;
            }
            _ => return Reply::err(errors::SYNTAX),
        }
        i += 1;
    }
    let live = match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(l) => l,
        Err(e) => return e,
    };
    if let Some(l) = &live {
        match expiry {
            Expiry::At(at) if at <= ctx.now_ms => ctx.delete(&args[1]),
            Expiry::At(at) => ctx.put(&args[1], &encode_string(at, &l.payload)),
            Expiry::Persist if l.expire_at != 0 => ctx.put(&args[1], &encode_string(0, &l.payload)),
            _ => {}
        }
    }
    bulk_or_nil(live)
}

pub fn mget(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        out.push(match ctx.live(key) {
            Ok(Some(l)) if l.kind == value::TYPE_STRING => Reply::Bulk(l.payload),
            Ok(_) => Reply::Nil,
            Err(e) => return e,
        });
    }
    Reply::Array(out)
}

pub fn mset(ctx: &mut Ctx, args: &[Bytes], only_if_none_exist: bool) -> Reply {
    if only_if_none_exist {
        for pair in args[1..].chunks(2) {
            match ctx.live(&pair[0]) {
                Err(e) => return e,
                Ok(Some(_)) => return Reply::Int(0),
                Ok(None) => {}
            }
        }
    }
    for pair in args[1..].chunks(2) {
        ctx.put(&pair[0], &encode_string(0, &pair[1]));
    }
    if only_if_none_exist {
        Reply::Int(1)
    } else {
        Reply::ok()
    }
}

/// INCR DECR INCRBY DECRBY: `delta` is the fixed step, or `None` to read it from args[2]
/// (negated when `negate`).
pub fn incr(ctx: &mut Ctx, args: &[Bytes], delta: Option<i64>, negate: bool) -> Reply {
    let delta = match delta {
        Some(d) => d,
        None => match int_arg(&args[2]) {
            Ok(d) if negate => match d.checked_neg() {
                Some(d) => d,
                None => return Reply::err(errors::OVERFLOW),
            },
            Ok(d) => d,
            Err(e) => return e,
        },
    };
    let live = match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let (current, expire_at) = match &live {
        Some(l) => match parse_i64(&l.payload) {
            Some(n) => (n, l.expire_at),
            None => return Reply::err(errors::NOT_INTEGER),
        },
        None => (0, 0),
    };
    let Some(new) = current.checked_add(delta) else {
        return Reply::err(errors::OVERFLOW);
    };
    ctx.put(
        &args[1],
        &encode_string(expire_at, new.to_string().as_bytes()),
    );
    Reply::Int(new)
}

pub fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(delta) = parse_f64(&args[2]) else {
        return Reply::err(errors::NOT_FLOAT);
    };
    let live = match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let (current, expire_at) = match &live {
        Some(l) => match parse_f64(&l.payload) {
            Some(n) => (n, l.expire_at),
            None => return Reply::err(errors::NOT_FLOAT),
        },
        None => (0.0, 0),
    };
    let new = current + delta;
    if !new.is_finite() {
        return Reply::err(errors::NAN_OR_INF);
    }
    let text = format_float_value(new);
    ctx.put(&args[1], &encode_string(expire_at, text.as_bytes()));
    Reply::bulk(text)
}

pub fn append(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let live = match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let (mut payload, expire_at) = live
        .map(|l| (l.payload.to_vec(), l.expire_at))
        .unwrap_or_default();
    if payload.len() + args[2].len() > MAX_STRING {
        return Reply::err(errors::TOO_BIG);
    }
    payload.extend_from_slice(&args[2]);
    ctx.put(&args[1], &encode_string(expire_at, &payload));
    Reply::Int(payload.len() as i64)
}

pub fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(l) => Reply::Int(l.map_or(0, |l| l.payload.len() as i64)),
        Err(e) => e,
    }
}

pub fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let payload = match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(Some(l)) => l.payload,
        Ok(None) => return Reply::bulk(Bytes::new()),
        Err(e) => return e,
    };
    let len = payload.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::bulk(Bytes::new());
    }
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (norm(start), norm(end).min(len - 1));
    if start > end || len == 0 {
        return Reply::bulk(Bytes::new());
    }
    Reply::Bulk(payload.slice(start as usize..=end as usize))
}

pub fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let offset = match int_arg(&args[2]) {
        Ok(o) if o >= 0 => o as usize,
        Ok(_) => return Reply::err(errors::OFFSET_RANGE),
        Err(e) => return e,
    };
    let live = match ctx.live(&args[1]).and_then(string_or_wrongtype) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let value = &args[3];
    let (mut payload, expire_at) = live
        .map(|l| (l.payload.to_vec(), l.expire_at))
        .unwrap_or_default();
    if value.is_empty() {
        return Reply::Int(payload.len() as i64);
    }
    if offset.saturating_add(value.len()) > MAX_STRING {
        return Reply::err(errors::TOO_BIG);
    }
    if payload.len() < offset + value.len() {
        payload.resize(offset + value.len(), 0);
    }
    payload[offset..offset + value.len()].copy_from_slice(value);
    ctx.put(&args[1], &encode_string(expire_at, &payload));
    Reply::Int(payload.len() as i64)
}
