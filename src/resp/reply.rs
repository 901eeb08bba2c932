//! Replies and their encoding. A [`Reply`] is protocol-neutral; [`Reply::encode`] writes it
//! as RESP2 or RESP3 (maps become flat arrays, nulls `$-1`/`*-1`, doubles bulk strings, and
//! booleans integers in RESP2), the way Redis downgrades RESP3 types for RESP2 clients.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

/// The protocol a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`-style status (borrowed when it is a fixed word: most replies are `+OK`).
    Simple(Cow<'static, str>),
    /// `-ERR ...`: the full text including its prefix word (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string (RESP3 `_`).
    Nil,
    /// Null array (RESP3 `_`), e.g. a failed `EXEC`.
    NilArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Bool(bool),
    /// Text with a format, e.g. `INFO` in RESP3 (`=len\r\ntxt:...`); a bulk string in RESP2.
    Verbatim(String),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => line(out, b':', itoa(*n).as_bytes()),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                items.iter().for_each(|r| r.encode(proto, out));
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => line(out, b':', if *b { b"1" } else { b"0" }),
            Reply::Verbatim(s) if resp3 => {
                header(out, b'=', s.len() + 4);
                out.put_slice(b"txt:");
                out.put_slice(s.as_bytes());
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(s) => bulk(out, s.as_bytes()),
        }
    }

    /// The RESP encoding as one buffer (tests, forwarding).
    pub fn to_bytes(&self, proto: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(proto, &mut out);
        out.freeze()
    }
}

/// Appends a client request (an array of bulk strings), as a client sends it.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    header(out, b'*', args.len());
    for a in args {
        bulk(out, a.as_ref());
    }
}

fn line(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(tag);
    // Status and error lines must not break the framing.
    for &b in body {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, tag: u8, n: usize) {
    out.put_u8(tag);
    out.put_slice(itoa(n as i64).as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    header(out, b'$', b.len());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// Decimal digits of `n` without allocating.
fn itoa(n: i64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut out = ItoaBuf {
        buf: [0u8; 21],
        len: 0,
    };
    if neg {
        out.buf[0] = b'-';
        out.len = 1;
    }
    let digits = &buf[pos..];
    out.buf[out.len..out.len + digits.len()].copy_from_slice(digits);
    out.len += digits.len();
    out
}

struct ItoaBuf {
    buf: [u8; 21],
    len: usize,
}

impl ItoaBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Doubles as Redis prints them: `inf`/`-inf`, integers without a fraction, otherwise the
/// shortest text that reads back as the same value (Redis uses `%.17g`, which may print
/// more digits; both parse to the same double).
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == d.trunc() && d.abs() < 1e17 {
        return format!("{}", d as i64);
    }
    format!("{d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> String {
        String::from_utf8(r.to_bytes(p).to_vec()).unwrap()
    }

    #[test]
    fn resp2_downgrades_resp3_types() {
        use Protocol::*;
        let m = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&m, Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Nil, Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::NilArray, Resp2), "*-1\r\n");
        assert_eq!(enc(&Reply::Nil, Resp3), "_\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Resp3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Bool(true), Resp2), ":1\r\n");
        assert_eq!(enc(&Reply::Bool(false), Resp3), "#f\r\n");
        assert_eq!(enc(&Reply::Verbatim("x".into()), Resp3), "=5\r\ntxt:x\r\n");
        assert_eq!(enc(&Reply::Set(vec![Reply::Int(1)]), Resp3), "~1\r\n:1\r\n");
    }

    #[test]
    fn status_lines_cannot_inject_frames() {
        let r = Reply::err("ERR bad\r\n+OK");
        assert_eq!(enc(&r, Protocol::Resp2), "-ERR bad  +OK\r\n");
    }

    #[test]
    fn integers_print_exactly() {
        for n in [0, 7, -7, 10, 1234567890, i64::MAX, i64::MIN] {
            assert_eq!(itoa(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn doubles_print_like_redis() {
        assert_eq!(format_double(10.0), "10");
        assert_eq!(format_double(3.25), "3.25");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(-0.1), "-0.1");
    }
}
