//! Client request framing: RESP multibulk (`*N\r\n$len\r\n...`) and inline commands, with
//! Redis's limits and error texts. The parser is restartable: given the bytes received so far
//! it returns one complete request and how many bytes it used, `None` when more bytes are
//! needed, or a [`ProtocolError`] after which the connection must be closed. It never
//! allocates more than the bytes already received.

use bytes::{Bytes, BytesMut};

/// Limits on what a client may send.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest bulk argument (Redis `proto-max-bulk-len`, 512 MB by default).
    pub max_bulk_len: usize,
    /// Most arguments in one request (Redis caps the multibulk count at 1024*1024... and
    /// `INT_MAX`; we use a smaller default that no real command needs to exceed).
    pub max_args: usize,
    /// Largest inline request or header line without a newline (Redis: 64 KB).
    pub max_inline: usize,
    /// Before AUTH on a password-protected server: at most this many arguments...
    pub unauth_max_args: usize,
    /// ...each at most this long (Redis: 10 and 16384).
    pub unauth_max_bulk: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 << 20,
            max_args: 1 << 20,
            max_inline: 64 << 10,
            unauth_max_args: 10,
            unauth_max_bulk: 16 << 10,
        }
    }
}

/// A request: the command name and its arguments (never empty).
pub type Request = Vec<Bytes>;

/// A protocol violation. The connection is answered with `-ERR {message}` and closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn perr(s: impl Into<String>) -> ProtocolError {
    ProtocolError(s.into())
}

/// Parses one request from the front of `buf` and removes its bytes. `Ok(None)` means the
/// request is incomplete (nothing is removed). Empty requests (`*0`, blank inline lines) are
/// consumed and skipped. `authenticated` selects Redis's stricter pre-AUTH limits.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
) -> Result<Option<Request>, ProtocolError> {
    let mut out = Vec::with_capacity(1);
    match parse_requests(buf, limits, authenticated, 1, &mut out) {
        Some(e) => Err(e),
        None => Ok(out.pop()),
    }
}

/// Parses up to `max` complete requests from the front of `buf` into `out` and removes their
/// bytes — one split of the buffer for all of them, so a pipeline's arguments share one
/// frozen frame. Returns the protocol error that stopped parsing, if any: the requests before
/// it are in `out` (and are answered before the error, as Redis does).
pub fn parse_requests(
    buf: &mut BytesMut,
    limits: &Limits,
    authenticated: bool,
    max: usize,
    out: &mut Vec<Request>,
) -> Option<ProtocolError> {
    // Every argument's span in `buf`, and where each request's spans end.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    let mut used = 0;
    let mut error = None;
    while ends.len() < max && used < buf.len() {
        let rest = &buf[used..];
        let parsed = if rest[0] == b'*' {
            parse_multibulk(rest, limits, authenticated)
        } else {
            parse_inline(rest, limits)
        };
        match parsed {
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
            Ok(Some((args, n))) => {
                // Empty requests (`*0`, blank lines) are consumed and skipped.
                if !args.is_empty() {
                    spans.extend(args.iter().map(|(s, e)| (used + s, used + e)));
                    ends.push(spans.len());
                }
                used += n;
            }
        }
    }
    if used == 0 {
        return error;
    }
    let frame = buf.split_to(used).freeze();
    let mut first = 0;
    for end in ends {
        let mut request = Vec::with_capacity(end - first);
        request.extend(spans[first..end].iter().map(|&(s, e)| frame.slice(s..e)));
        out.push(request);
        first = end;
    }
    error
}

/// Position of the `\r\n` ending the line that starts at `from`, if received.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        at += buf.get(at..)?.iter().position(|&b| b == b'\r')?;
        if *buf.get(at + 1)? == b'\n' {
            return Some(at);
        }
        at += 1;
    }
}

/// A decimal as Redis's `string2ll` accepts it: optional '-', digits, no leading '+' or
/// spaces, no leading zero, fits an i64. Parsed digit by digit (no UTF-8 pass): every bulk
/// header of every request goes through here.
fn parse_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if negative {
            v.checked_sub(i64::from(d))?
        } else {
            v.checked_add(i64::from(d))?
        };
    }
    Some(v)
}

/// Where a request's arguments sit in the buffer: the first few inline (most commands have
/// at most eight arguments, so parsing one allocates only the request itself).
#[derive(Default)]
struct Spans {
    inline: [(usize, usize); 8],
    len: usize,
    more: Vec<(usize, usize)>,
}

impl Spans {
    fn push(&mut self, span: (usize, usize)) {
        if self.len < self.inline.len() {
            self.inline[self.len] = span;
        } else {
            self.more.push(span);
        }
        self.len += 1;
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let first = self.len.min(self.inline.len());
        self.inline[..first].iter().chain(&self.more).copied()
    }
}

fn parse_multibulk(
    buf: &[u8],
    limits: &Limits,
    authenticated: bool,
) -> Result<Option<(Spans, usize)>, ProtocolError> {
    let Some(end) = line_end(buf, 1) else {
        if buf.len() > limits.max_inline {
            return Err(perr("too big mbulk count string"));
        }
        return Ok(None);
    };
    let count = parse_int(&buf[1..end])
        .filter(|n| *n <= i32::MAX as i64)
        .ok_or_else(|| perr("invalid multibulk length"))?;
    if !authenticated && count > limits.unauth_max_args as i64 {
        return Err(perr("unauthenticated multibulk length"));
    }
    if count > limits.max_args as i64 {
        return Err(perr("invalid multibulk length"));
    }
    let mut pos = end + 2;
    // Grows with what has arrived, never with the count the client claims.
    let mut args = Spans::default();
    if count <= 0 {
        return Ok(Some((args, pos)));
    }
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(perr(format!(
                "expected '$', got '{}'",
                char::from(buf[pos])
            )));
        }
        let Some(end) = line_end(buf, pos + 1) else {
            if buf.len() - pos > limits.max_inline {
                return Err(perr("too big bulk count string"));
            }
            return Ok(None);
        };
        let len = parse_int(&buf[pos + 1..end]).ok_or_else(|| perr("invalid bulk length"))?;
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return Err(perr("invalid bulk length"));
        }
        if !authenticated && len as u64 > limits.unauth_max_bulk as u64 {
            return Err(perr("unauthenticated bulk length"));
        }
        let start = end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        // Redis does not check the two bytes after a bulk; neither do we.
        args.push((start, stop));
        pos = stop + 2;
    }
    Ok(Some((args, pos)))
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Option<(Spans, usize)>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline {
            return Err(perr("too big inline request"));
        }
        return Ok(None);
    };
    let line_stop = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let spans = split_inline(&buf[..line_stop])?;
    Ok(Some((spans, nl + 1)))
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`, but only for unquoted
/// words: quoted arguments (which need unescaping) are rejected unless plain, keeping every
/// argument a slice of the received bytes.
fn split_inline(line: &[u8]) -> Result<Spans, ProtocolError> {
    let mut spans = Spans::default();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        if line[i] == b'"' || line[i] == b'\'' {
            let quote = line[i];
            let start = i + 1;
            let Some(len) = line[start..].iter().position(|&b| b == quote) else {
                return Err(perr("unbalanced quotes in request"));
            };
            let stop = start + len;
            if line[start..stop].contains(&b'\\') {
                return Err(perr("escapes in quoted inline arguments are not supported"));
            }
            if stop + 1 < line.len() && !line[stop + 1].is_ascii_whitespace() {
                return Err(perr("unbalanced quotes in request"));
            }
            spans.push((start, stop));
            i = stop + 1;
        } else {
            let start = i;
            while i < line.len() && !line[i].is_ascii_whitespace() {
                i += 1;
            }
            spans.push((start, i));
        }
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn parse_all(input: &[u8], authed: bool) -> (Vec<Request>, Result<(), ProtocolError>) {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match parse_request(&mut buf, &Limits::default(), authed) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    fn words(r: &Request) -> Vec<&[u8]> {
        r.iter().map(|b| b.as_ref()).collect()
    }

    #[test]
    fn multibulk_and_inline_requests() {
        let (reqs, res) = parse_all(
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nPING\r\n  get   'a b' \n*0\r\n\r\n",
            true,
        );
        res.unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(words(&reqs[0]), vec![&b"SET"[..], b"k", b""]);
        assert_eq!(words(&reqs[1]), vec![&b"PING"[..]]);
        assert_eq!(words(&reqs[2]), vec![&b"get"[..], b"a b"]);
    }

    #[test]
    fn every_split_point_waits_for_more_bytes() {
        let full = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(
                parse_request(&mut buf, &Limits::default(), true),
                Ok(None),
                "cut {cut}"
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn redis_error_texts() {
        let cases: [(&[u8], bool, &str); 9] = [
            (b"*x\r\n", true, "invalid multibulk length"),
            (b"*3000000000\r\n", true, "invalid multibulk length"),
            (b"*1\r\n$-1\r\n", true, "invalid bulk length"),
            (b"*1\r\n$999999999999\r\n", true, "invalid bulk length"),
            (b"*1\r\nfoo\r\n", true, "expected '$', got 'f'"),
            (b"*11\r\n", false, "unauthenticated multibulk length"),
            (b"*1\r\n$20000\r\n", false, "unauthenticated bulk length"),
            (b"set 'a\r\n", true, "unbalanced quotes in request"),
            (b"*1\r\n$+1\r\n", true, "invalid bulk length"),
        ];
        for (input, authed, msg) in cases {
            let (_, res) = parse_all(input, authed);
            assert_eq!(res, Err(ProtocolError(msg.into())), "{input:?}");
            assert_eq!(
                res.unwrap_err().to_string(),
                format!("Protocol error: {msg}")
            );
        }
    }

    #[test]
    fn oversized_lines_are_refused_without_buffering_forever() {
        let (_, res) = parse_all(&vec![b'a'; (64 << 10) + 1], true);
        assert_eq!(res, Err(ProtocolError("too big inline request".into())));
        let mut big = b"*1\r\n$".to_vec();
        big.extend(vec![b'1'; (64 << 10) + 1]);
        let (_, res) = parse_all(&big, true);
        assert_eq!(res, Err(ProtocolError("too big bulk count string".into())));
    }

    #[test]
    fn huge_claimed_lengths_allocate_nothing_up_front() {
        // A claimed 512 MB argument and a million arguments: incomplete, not allocated.
        let (reqs, res) = parse_all(b"*1\r\n$536870912\r\nabc", true);
        assert!(reqs.is_empty() && res.is_ok());
        let (reqs, res) = parse_all(b"*1048576\r\n$1\r\na\r\n", true);
        assert!(reqs.is_empty() && res.is_ok());
    }

    /// What `parse_int` must accept: Rust's own i64 parsing, narrowed to Redis's rules.
    fn parse_int_oracle(s: &[u8]) -> Option<i64> {
        std::str::from_utf8(s)
            .ok()?
            .parse::<i64>()
            .ok()
            .filter(|_| !s.is_empty() && s[0] != b'+' && !(s.len() > 1 && s[0] == b'0'))
    }

    #[test]
    fn integers_parse_as_redis_string2ll_does() {
        for case in [
            &b"0"[..],
            b"7",
            b"-1",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b"-",
            b"",
            b" 1",
            b"1 ",
            b"9223372036854775807",
            b"9223372036854775808",
            b"-9223372036854775808",
            b"-9223372036854775809",
            b"12a",
        ] {
            assert_eq!(parse_int(case), parse_int_oracle(case), "{case:?}");
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..50_000 {
            let s = random_bytes(&mut rng, b"-+0123456789 x", 22);
            assert_eq!(parse_int(&s), parse_int_oracle(&s), "{s:?}");
        }
    }

    #[test]
    fn many_arguments_and_stray_carriage_returns() {
        let mut input = b"*12\r\n".to_vec();
        for i in 0..12 {
            input.extend(format!("$2\r\na{}\r\n", i % 10).as_bytes());
        }
        input.extend(b"*2\r\n$4\r\nECHO\r\n$3\r\na\rb\r\n*1\rx\r\n");
        let (reqs, res) = parse_all(&input, true);
        assert_eq!(res, Err(ProtocolError("invalid multibulk length".into())));
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            reqs[0].len(),
            12,
            "arguments past the inline eight are kept"
        );
        assert_eq!(&reqs[0][11][..], b"a1");
        assert_eq!(words(&reqs[1]), vec![&b"ECHO"[..], b"a\rb"]);
    }

    #[test]
    fn a_pipeline_parses_in_one_pass_up_to_its_limit_and_its_error() {
        let input = b"*1\r\n$4\r\nPING\r\n*0\r\nGET a\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*x\r\n";
        let mut buf = BytesMut::from(&input[..]);
        let mut out = Vec::new();
        assert_eq!(
            parse_requests(&mut buf, &Limits::default(), true, 2, &mut out),
            None
        );
        assert_eq!(out.len(), 2, "stops at the limit");
        assert_eq!(
            words(&out[1]),
            vec![&b"GET"[..], b"a"],
            "the empty request is skipped"
        );
        let err = parse_requests(&mut buf, &Limits::default(), true, 100, &mut out);
        assert_eq!(err, Some(ProtocolError("invalid multibulk length".into())));
        assert_eq!(out.len(), 3, "the request before the error is kept");
        assert_eq!(words(&out[2]), vec![&b"GET"[..], b"b"]);
        assert_eq!(&buf[..], b"*x\r\n", "the bad request is not consumed");
        // An incomplete tail stays in the buffer for the next read.
        let mut buf = BytesMut::from(&b"PING\r\n*2\r\n$3\r\nGET"[..]);
        let mut out = Vec::new();
        assert_eq!(
            parse_requests(&mut buf, &Limits::default(), true, 100, &mut out),
            None
        );
        assert_eq!(out.len(), 1);
        assert_eq!(&buf[..], b"*2\r\n$3\r\nGET");
    }

    /// Up to `max_len - 1` bytes drawn from `alphabet`.
    fn random_bytes(rng: &mut impl RngExt, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = rng.random_range(0..max_len);
        (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect()
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let input = random_bytes(&mut rng, b"*$\r\n0123456789-+ '\"abc", 40);
            let _ = parse_all(&input, rng.random_bool(0.5));
        }
    }
}
