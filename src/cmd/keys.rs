//! Generic key commands on one shard: DEL UNLINK EXISTS TYPE TOUCH, the EXPIRE family with
//! NX/XX/GT/LT, TTL PTTL EXPIRETIME PEXPIRETIME PERSIST, RENAME RENAMENX, and the internal
//! `TESSERA.EXPIRED` that the leader proposes to delete a key whose time has come. Commands
//! that span the whole keyspace (KEYS SCAN RANDOMKEY DBSIZE FLUSH*) live in `scan`.

use super::errors::{self, invalid_expire};
use super::value::{encode, int_arg};
use super::Ctx;
use crate::resp::Reply;
use bytes::Bytes;

/// DEL and UNLINK (the same here: deletes are already cheap, background-free).
pub fn del(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &args[1..] {
        match ctx.live(key) {
            Err(e) => return e,
            Ok(Some(_)) => {
                ctx.delete(key);
                n += 1;
            }
            Ok(None) => {}
        }
    }
    Reply::Int(n)
}

/// EXISTS and TOUCH: how many of the named keys exist (repeats count again).
pub fn exists(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &args[1..] {
        match ctx.live(key) {
            Err(e) => return e,
            Ok(Some(_)) => n += 1,
            Ok(None) => {}
        }
    }
    Reply::Int(n)
}

pub fn type_of(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.live(&args[1]) {
        Err(e) => e,
        Ok(Some(l)) => Reply::Simple(l.type_name().into()),
        Ok(None) => Reply::Simple("none".into()),
    }
}

/// Units of an EXPIRE-family time argument.
#[derive(Clone, Copy)]
pub enum TimeArg {
    RelativeSecs,
    RelativeMillis,
    AbsoluteSecs,
    AbsoluteMillis,
}

pub fn expire(ctx: &mut Ctx, args: &[Bytes], unit: TimeArg) -> Reply {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let n = match int_arg(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Reply::err(format!(
                    "ERR Unsupported option {}",
                    errors::printable(opt, 64)
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::err(errors::NX_XX_GT_LT);
    }
    if gt && lt {
        return Reply::err(errors::GT_LT);
    }
    let now = ctx.now_ms as i64;
    let at = match unit {
        TimeArg::RelativeSecs => n.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
        TimeArg::RelativeMillis => n.checked_add(now),
        TimeArg::AbsoluteSecs => n.checked_mul(1000),
        TimeArg::AbsoluteMillis => Some(n),
    };
    let Some(at) = at else {
        return Reply::err(invalid_expire(&name));
    };
    let live = match ctx.live(&args[1]) {
        Ok(Some(l)) => l,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    // No expiry counts as an infinite TTL for GT and LT.
    let current = if live.expire_at == 0 {
        None
    } else {
        Some(live.expire_at as i64)
    };
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| at <= c))
        || (lt && current.is_some_and(|c| at >= c));
    if refused {
        return Reply::Int(0);
    }
    if at <= now {
        ctx.delete(&args[1]);
    } else {
        ctx.put(&args[1], &encode(live.kind, at as u64, &live.payload));
    }
    Reply::Int(1)
}

/// TTL PTTL EXPIRETIME PEXPIRETIME: -2 missing, -1 no expiry.
pub fn ttl(ctx: &mut Ctx, args: &[Bytes], millis: bool, absolute: bool) -> Reply {
    let live = match ctx.live(&args[1]) {
        Ok(Some(l)) => l,
        Ok(None) => return Reply::Int(-2),
        Err(e) => return e,
    };
    if live.expire_at == 0 {
        return Reply::Int(-1);
    }
    let at = live.expire_at as i64;
    Reply::Int(match (absolute, millis) {
        (true, true) => at,
        (true, false) => at / 1000,
        (false, true) => at - ctx.now_ms as i64,
        (false, false) => (at - ctx.now_ms as i64 + 500) / 1000,
    })
}

pub fn persist(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.live(&args[1]) {
        Err(e) => e,
        Ok(Some(l)) if l.expire_at != 0 => {
            ctx.put(&args[1], &encode(l.kind, 0, &l.payload));
            Reply::Int(1)
        }
        Ok(_) => Reply::Int(0),
    }
}

/// RENAME / RENAMENX (both keys on one shard); the TTL moves with the value.
pub fn rename(ctx: &mut Ctx, args: &[Bytes], nx: bool) -> Reply {
    let live = match ctx.live(&args[1]) {
        Ok(Some(l)) => l,
        Ok(None) => return Reply::err(errors::NO_SUCH_KEY),
        Err(e) => return e,
    };
    let done = || if nx { Reply::Int(1) } else { Reply::ok() };
    if args[1] == args[2] {
        return if nx { Reply::Int(0) } else { done() };
    }
    if nx {
        match ctx.live(&args[2]) {
            Ok(Some(_)) => return Reply::Int(0),
            Ok(None) => {}
            Err(e) => return e,
        }
    }
    ctx.put(&args[2], &encode(live.kind, live.expire_at, &live.payload));
    ctx.delete(&args[1]);
    done()
}

/// `TESSERA.EXPIRED key...`: deletes each key that is expired as of this command's
/// timestamp (the proposing leader's clock); replies with how many were deleted.
pub fn expired(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &args[1..] {
        match ctx.stored(key) {
            Err(e) => return e,
            Ok(Some(s)) if s.expired(ctx.now_ms) => {
                ctx.delete(key);
                n += 1;
            }
            Ok(_) => {}
        }
    }
    Reply::Int(n)
}
