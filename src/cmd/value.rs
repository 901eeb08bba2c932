//! How a key's value is stored in the data column family, and the number parsing/formatting
//! rules of Redis strings. A stored value is `[type:u8][expire_at_ms:u64 LE][payload]`;
//! `expire_at_ms == 0` means no expiry. Expiry times are absolute and replicated, so every
//! replica agrees on when a key dies; whether it is dead *now* is decided by the caller's
//! clock (the leader's, or the timestamp the leader stamped on a command).

use super::errors;
use crate::resp::Reply;

/// The type byte of a stored value. Only strings exist today; the byte is there so that
/// hashes, lists and the rest can be added without rewriting data.
pub const TYPE_STRING: u8 = 0;
const HEADER: usize = 9;

/// A decoded stored value, borrowing its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored<'a> {
    pub kind: u8,
    pub expire_at: u64,
    pub payload: &'a [u8],
}

impl<'a> Stored<'a> {
    /// Decodes a stored value; `None` for bytes no version of Tessera wrote.
    pub fn decode(raw: &'a [u8]) -> Option<Self> {
        if raw.len() < HEADER {
            return None;
        }
        Some(Stored {
            kind: raw[0],
            expire_at: u64::from_le_bytes(raw[1..HEADER].try_into().ok()?),
            payload: &raw[HEADER..],
        })
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            TYPE_STRING => "string",
            _ => "unknown",
        }
    }
}

pub fn encode(kind: u8, expire_at: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + payload.len());
    v.push(kind);
    v.extend_from_slice(&expire_at.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn encode_string(expire_at: u64, payload: &[u8]) -> Vec<u8> {
    encode(TYPE_STRING, expire_at, payload)
}

/// A strict decimal i64 as Redis's `string2ll` reads it: no spaces, no '+', no leading
/// zeros, at most 20 characters.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 || b[0] == b'+' {
        return None;
    }
    let digits = if b[0] == b'-' { &b[1..] } else { b };
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    if b == b"-0" {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// An integer argument, or Redis's "not an integer" error.
pub fn int_arg(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or_else(|| Reply::err(errors::NOT_INTEGER))
}

/// A float as Redis's `string2ld` reads it: no surrounding spaces, no NaN; `inf` allowed.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.trim() != s || s.len() > 5000 {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Formats an INCRBYFLOAT result as Redis does (no exponent, no trailing zeros).
pub fn format_float_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e17 {
        return format!("{}", v as i64);
    }
    let s = format!("{v}");
    if s.contains('e') {
        // Spell out exponents the way `%.17Lf`-then-trim would.
        let s = format!("{v:.17}");
        return s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_roundtrip_and_expire() {
        let raw = encode_string(1_000, b"v");
        let s = Stored::decode(&raw).unwrap();
        assert_eq!(
            (s.kind, s.expire_at, s.payload),
            (TYPE_STRING, 1_000, &b"v"[..])
        );
        assert!(!s.expired(999) && s.expired(1_000));
        assert!(!Stored::decode(&encode_string(0, b""))
            .unwrap()
            .expired(u64::MAX));
        assert_eq!(Stored::decode(b"short"), None);
    }

    #[test]
    fn integers_parse_strictly() {
        for ok in [
            "0",
            "-1",
            "9223372036854775807",
            "-9223372036854775808",
            "42",
        ] {
            assert_eq!(parse_i64(ok.as_bytes()), ok.parse().ok(), "{ok}");
        }
        for bad in [
            "",
            " 1",
            "1 ",
            "+1",
            "01",
            "-0",
            "9223372036854775808",
            "1.0",
            "abc",
        ] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn floats_parse_and_format_like_redis() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(format_float_value(10.5 + 0.1), "10.6");
        assert_eq!(format_float_value(3.0), "3");
        assert_eq!(format_float_value(5000.0), "5000");
    }
}
