//! Fuzzes the reply parser used for forwarding: arbitrary bytes must never panic or
//! allocate from a claimed length, and every reply it accepts must re-encode (RESP3) into
//! bytes that parse back to the same reply.
#![no_main]

#[path = "../../src/resp/mod.rs"]
#[allow(dead_code, unused_imports)]
mod resp;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::{parse_reply, Protocol, Reply};

/// Replies whose RESP3 encoding is deliberately lossy: NaN (never equal to itself), the
/// null array (RESP3 has a single null), and status/error lines with CR or LF (the encoder
/// replaces them with spaces so they cannot break the framing).
fn lossy(r: &Reply) -> bool {
    match r {
        Reply::Double(d) => d.is_nan(),
        Reply::Simple(s) | Reply::Error(s) => s.contains(['\r', '\n']),
        Reply::NilArray => true,
        Reply::Array(v) | Reply::Set(v) => v.iter().any(lossy),
        Reply::Map(m) => m.iter().any(|(k, v)| lossy(k) || lossy(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(reply)) = parse_reply(&mut buf) {
        if lossy(&reply) {
            continue;
        }
        let wire = reply.to_bytes(Protocol::Resp3);
        let mut again = BytesMut::from(&wire[..]);
        let back = parse_reply(&mut again).expect("re-encoded reply parses");
        assert_eq!(back.as_ref(), Some(&reply));
    }
});
