//! Parsing replies (RESP2 and RESP3) back into [`Reply`] values: used when a node forwards a
//! command to a shard leader and must re-encode the answer in its own client's protocol.
//! Lengths are bounded by the bytes received, and nesting by a depth limit.

use super::Reply;
use bytes::{Buf, Bytes, BytesMut};

/// A reply that is not valid RESP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply: {0}")]
pub struct ReplyError(pub String);

const MAX_DEPTH: usize = 64;

/// Parses one reply from the front of `buf` and removes it; `Ok(None)` if incomplete.
pub fn parse_reply(buf: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        None => Ok(None),
        Some(r) => {
            buf.advance(pos);
            Ok(Some(r))
        }
    }
}

/// Parses the reply at the start of `buf` without consuming anything (for a buffer that
/// holds one whole reply, such as a state machine's answer).
pub fn parse_reply_slice(buf: &[u8]) -> Result<Option<Reply>, ReplyError> {
    parse_at(buf, &mut 0, 0)
}

fn bad(s: &str) -> ReplyError {
    ReplyError(s.into())
}

fn read_line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let start = *pos;
    let p = buf[start..].windows(2).position(|w| w == b"\r\n")?;
    *pos = start + p + 2;
    Some(&buf[start..start + p])
}

fn as_int(s: &[u8]) -> Result<i64, ReplyError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad integer"))
}

fn text(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Reply>, ReplyError> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply"));
    }
    if *pos >= buf.len() {
        return Ok(None);
    }
    let tag = buf[*pos];
    *pos += 1;
    let Some(l) = read_line(buf, pos) else {
        return Ok(None);
    };
    let reply = match tag {
        // The state machine's answer to most writes: no allocation for it.
        b'+' if l == b"OK" => Reply::ok(),
        b'+' => Reply::Simple(text(l).into()),
        b'-' => Reply::Error(text(l)),
        b':' => Reply::Int(as_int(l)?),
        b'_' => Reply::Nil,
        b'#' => Reply::Bool(l == b"t"),
        b',' => Reply::Double(
            std::str::from_utf8(l)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("bad double"))?,
        ),
        b'$' | b'=' | b'!' => {
            let n = as_int(l)?;
            if n < 0 {
                return Ok(Some(Reply::Nil));
            }
            let n = n as usize;
            if buf.len() < *pos + n + 2 {
                return Ok(None);
            }
            let body = &buf[*pos..*pos + n];
            *pos += n + 2;
            match tag {
                b'$' => Reply::Bulk(Bytes::copy_from_slice(body)),
                b'!' => Reply::Error(text(body)),
                _ => Reply::Verbatim(text(body.get(4..).unwrap_or_default())),
            }
        }
        b'*' | b'~' | b'>' | b'%' => {
            let n = as_int(l)?;
            if n < 0 {
                return Ok(Some(Reply::NilArray));
            }
            let items = if tag == b'%' { n * 2 } else { n } as usize;
            // Every element takes at least 3 bytes: refuse counts the buffer cannot hold.
            if items > (buf.len() - *pos) / 3 + 1 {
                return if buf.len() - *pos > (1 << 30) {
                    Err(bad("aggregate too long"))
                } else {
                    Ok(None)
                };
            }
            let mut v = Vec::with_capacity(items);
            for _ in 0..items {
                match parse_at(buf, pos, depth + 1)? {
                    Some(r) => v.push(r),
                    None => return Ok(None),
                }
            }
            match tag {
                b'%' => {
                    let mut pairs = Vec::with_capacity(v.len() / 2);
                    let mut it = v.into_iter();
                    while let (Some(k), Some(val)) = (it.next(), it.next()) {
                        pairs.push((k, val));
                    }
                    Reply::Map(pairs)
                }
                b'~' => Reply::Set(v),
                _ => Reply::Array(v),
            }
        }
        other => return Err(ReplyError(format!("unknown type byte {other:#x}"))),
    };
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::super::Protocol;
    use super::*;

    #[test]
    fn roundtrips_through_both_protocols() {
        let r = Reply::Array(vec![
            Reply::bulk("x"),
            Reply::Nil,
            Reply::Int(-3),
            Reply::Map(vec![(Reply::Simple("k".into()), Reply::Double(2.5))]),
            Reply::Set(vec![Reply::Bool(true)]),
            Reply::err("ERR nope"),
            Reply::Verbatim("info".into()),
        ]);
        let wire = r.to_bytes(Protocol::Resp3);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(parse_reply(&mut buf).unwrap(), Some(r));
        assert!(buf.is_empty());
        for cut in 0..wire.len() {
            let mut part = BytesMut::from(&wire[..cut]);
            assert_eq!(parse_reply(&mut part).unwrap(), None, "cut {cut}");
        }
    }

    #[test]
    fn rejects_garbage() {
        let mut buf = BytesMut::from(&b"?what\r\n"[..]);
        assert!(parse_reply(&mut buf).is_err());
        let mut deep = BytesMut::from(&b"*1\r\n".repeat(100)[..]);
        assert!(parse_reply(&mut deep).is_err());
    }
}
