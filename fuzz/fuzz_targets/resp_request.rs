//! Fuzzes the client request parser: arbitrary bytes, fed whole and in two pieces, with and
//! without authentication and with small limits, must never panic, never consume bytes
//! that do not form requests, and give the same requests however the input is split.
//! The protocol module is compiled standalone (it needs only `bytes` and `thiserror`), so
//! fuzzing does not build RocksDB.
#![no_main]

#[path = "../../src/resp/mod.rs"]
#[allow(dead_code, unused_imports)]
mod resp;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::{parse_request, Limits};

fn parse_all(chunks: &[&[u8]], limits: &Limits, authed: bool) -> (Vec<Vec<Vec<u8>>>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match parse_request(&mut buf, limits, authed) {
                Ok(Some(r)) => {
                    assert!(buf.len() < before, "a request consumed bytes");
                    assert!(!r.is_empty(), "requests are never empty");
                    out.push(r.iter().map(|a| a.to_vec()).collect());
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let authed = data[0] & 1 == 1;
    let limits = if data[0] & 2 == 2 {
        Limits {
            max_bulk_len: 64,
            max_args: 8,
            max_inline: 128,
            unauth_max_args: 3,
            unauth_max_bulk: 16,
        }
    } else {
        Limits::default()
    };
    let body = &data[1..];
    let whole = parse_all(&[body], &limits, authed);
    let cut = (data[0] as usize * 7) % (body.len() + 1);
    let split = parse_all(&[&body[..cut], &body[cut..]], &limits, authed);
    // Splitting may only change how far an erroring stream got, never what it parsed.
    if !whole.1 && !split.1 {
        assert_eq!(whole.0, split.0, "split at {cut}");
    }
});
