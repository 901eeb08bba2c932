//! How the column families ([`Cf`]) are laid out in RocksDB: all of them share one RocksDB
//! column family, each key prefixed by its family's tag byte. One RocksDB family means every
//! flush is a consistent cut of every family (a memtable holds whole write batches and
//! flushes install in order), which is what lets the applied index and the data it covers
//! reach disk together without RocksDB's atomic flush — and atomic flush forbids merging
//! several small memtables into one L0 file, the setting that makes a memtable insert cheap.

use super::{Cf, KeyRange};

/// Keys up to this length are prefixed on the stack.
const INLINE: usize = 128;

pub(crate) fn tag(cf: Cf) -> u8 {
    cf.idx() as u8
}

/// Appends `cf`'s prefixed form of `key` to `out` (cleared first).
pub(crate) fn prefixed_into(out: &mut Vec<u8>, cf: Cf, key: &[u8]) {
    out.clear();
    out.reserve(key.len() + 1);
    out.push(tag(cf));
    out.extend_from_slice(key);
}

pub(crate) fn prefixed(cf: Cf, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prefixed_into(&mut out, cf, key);
    out
}

/// Calls `f` with `cf`'s prefixed form of `key`, built on the stack when it is short.
pub(crate) fn with_prefixed<R>(cf: Cf, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if key.len() < INLINE {
        let mut buf = [0u8; INLINE];
        buf[0] = tag(cf);
        buf[1..=key.len()].copy_from_slice(key);
        f(&buf[..=key.len()])
    } else {
        f(&prefixed(cf, key))
    }
}

/// `[start, end)` of `range` inside `cf`'s part of the key space; an unbounded end stops at
/// the next family's tag.
pub(crate) fn bounds(cf: Cf, range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    let start = prefixed(cf, &range.start);
    let end = match &range.end {
        Some(e) => prefixed(cf, e),
        None => vec![tag(cf) + 1],
    };
    (start, end)
}

/// The family-local key of a stored one (its tag dropped).
pub(crate) fn unprefixed(stored: &[u8]) -> &[u8] {
    &stored[1..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_keys_keep_their_order_inside_a_family_and_never_meet_another_family() {
        let a = prefixed(Cf::Data, b"a");
        let b = prefixed(Cf::Data, b"b\xff\xff");
        let raft_empty = prefixed(Cf::Raft, b"");
        assert!(a < b && b < raft_empty);
        let (start, end) = bounds(Cf::Data, &KeyRange::all());
        assert!(start <= a && b < end && end <= raft_empty);
        let (start, end) = bounds(Cf::Raft, &KeyRange::new("k", Some(b"m".to_vec())));
        assert!(start < prefixed(Cf::Raft, b"l") && prefixed(Cf::Raft, b"m") >= end);
        assert_eq!(unprefixed(&prefixed(Cf::Txn, b"xyz")), b"xyz");
    }

    #[test]
    fn short_and_long_keys_are_prefixed_alike() {
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 5] {
            let key = vec![9u8; len];
            let on_stack = with_prefixed(Cf::Lock, &key, |k| k.to_vec());
            assert_eq!(on_stack, prefixed(Cf::Lock, &key), "key length {len}");
        }
    }
}
