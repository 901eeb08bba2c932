//! Shards: contiguous ranges of the raw key space, each replicated by one Raft group.
//! A [`ShardDesc`] carries the range, the replicas (node ids, which are also the Raft peer
//! ids) and an [`Epoch`] — `version` bumps when the range changes (split, merge), `conf_ver`
//! when membership changes — so a request routed with a stale view can be refused instead of
//! answered wrongly.

use bytes::{Buf, BufMut};

/// Version stamps of a shard descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch {
    pub version: u64,
    pub conf_ver: u64,
}

/// One shard: `[start, end)` (an empty `end` means unbounded) and its replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardDesc {
    pub id: u64,
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub epoch: Epoch,
    pub peers: Vec<u64>,
}

/// A descriptor that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed shard descriptor: {0}")]
pub struct DescError(String);

impl ShardDesc {
    pub fn contains(&self, key: &[u8]) -> bool {
        bound_cmp(&self.start, key).is_le()
            && (self.end.is_empty() || bound_cmp(&self.end, key).is_gt())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b =
            Vec::with_capacity(48 + self.start.len() + self.end.len() + 8 * self.peers.len());
        b.put_u64_le(self.id);
        b.put_u64_le(self.epoch.version);
        b.put_u64_le(self.epoch.conf_ver);
        for k in [&self.start, &self.end] {
            b.put_u32_le(k.len() as u32);
            b.put_slice(k);
        }
        b.put_u32_le(self.peers.len() as u32);
        for p in &self.peers {
            b.put_u64_le(*p);
        }
        b
    }

    pub fn decode(mut b: &[u8]) -> Result<Self, DescError> {
        let short = || DescError("truncated".into());
        let u64_ = |b: &mut &[u8]| {
            if b.remaining() >= 8 {
                Ok(b.get_u64_le())
            } else {
                Err(short())
            }
        };
        let id = u64_(&mut b)?;
        let epoch = Epoch {
            version: u64_(&mut b)?,
            conf_ver: u64_(&mut b)?,
        };
        let key = |b: &mut &[u8]| -> Result<Vec<u8>, DescError> {
            if b.remaining() < 4 {
                return Err(short());
            }
            let n = b.get_u32_le() as usize;
            if b.remaining() < n {
                return Err(short());
            }
            let k = b[..n].to_vec();
            b.advance(n);
            Ok(k)
        };
        let start = key(&mut b)?;
        let end = key(&mut b)?;
        if b.remaining() < 4 {
            return Err(short());
        }
        let n = b.get_u32_le() as usize;
        if b.remaining() != n.saturating_mul(8) {
            return Err(DescError("peer list length mismatch".into()));
        }
        let peers = (0..n).map(|_| b.get_u64_le()).collect();
        Ok(ShardDesc {
            id,
            start,
            end,
            epoch,
            peers,
        })
    }
}

/// `shards` descriptors (ids 1..=shards) splitting the whole key space into ranges at evenly
/// spaced two-byte boundaries, each replicated on every node of `peers`.
pub fn static_layout(shards: u64, peers: &[u64]) -> Vec<ShardDesc> {
    let shards = shards.clamp(1, 65_536);
    let boundary = |i: u64| -> Vec<u8> {
        if i == 0 || i == shards {
            return Vec::new();
        }
        ((i as u128 * 65_536 / shards as u128) as u16)
            .to_be_bytes()
            .to_vec()
    };
    (0..shards)
        .map(|i| ShardDesc {
            id: i + 1,
            start: boundary(i),
            end: boundary(i + 1),
            epoch: Epoch {
                version: 1,
                conf_ver: 1,
            },
            peers: peers.to_vec(),
        })
        .collect()
}

/// `bound.cmp(key)` in byte order, inline: range bounds are a few bytes and usually differ
/// from the key in the first, and every keyed command locates its shard this way, so a
/// byte loop beats a `memcmp` call here.
fn bound_cmp(bound: &[u8], key: &[u8]) -> std::cmp::Ordering {
    for (b, k) in bound.iter().zip(key) {
        if b != k {
            return b.cmp(k);
        }
    }
    bound.len().cmp(&key.len())
}

/// The shard whose range holds `key` (layouts cover the whole key space). Binary search
/// when the layout is sorted by start key, as layouts are; a linear scan otherwise.
pub fn locate<'a>(layout: &'a [ShardDesc], key: &[u8]) -> Option<&'a ShardDesc> {
    let i = layout.partition_point(|s| bound_cmp(&s.start, key).is_le());
    match i.checked_sub(1).map(|i| &layout[i]) {
        Some(s) if s.contains(key) => Some(s),
        _ => layout.iter().find(|s| s.contains(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_compare_in_byte_order() {
        let samples: [&[u8]; 12] = [
            b"",
            b"\x00",
            b"\x00\x00",
            b"a",
            b"a\x00",
            b"ab",
            b"b",
            b"\xff",
            b"\xff\xff\xff",
            b"abcdefgh",
            b"abcdefghi",
            b"abcdefgi",
        ];
        for a in samples {
            for b in samples {
                assert_eq!(bound_cmp(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn static_layout_covers_every_key_exactly_once() {
        for n in [1u64, 2, 3, 16, 300] {
            let l = static_layout(n, &[1, 2, 3]);
            assert_eq!(l.len() as u64, n);
            assert!(l[0].start.is_empty() && l[n as usize - 1].end.is_empty());
            for w in l.windows(2) {
                assert_eq!(w[0].end, w[1].start, "ranges are contiguous");
                assert!(w[0].end.is_empty() || w[0].start < w[0].end || w[0].start.is_empty());
            }
            for key in [&b""[..], b"\x00", b"a", b"user:1000", b"\xff\xff\xff"] {
                assert_eq!(
                    l.iter().filter(|s| s.contains(key)).count(),
                    1,
                    "{n} shards, key {key:?}"
                );
            }
        }
    }

    #[test]
    fn descriptors_roundtrip_and_reject_garbage() {
        let d = static_layout(4, &[1, 2, 3])[2].clone();
        assert_eq!(ShardDesc::decode(&d.encode()).unwrap(), d);
        let enc = d.encode();
        for cut in 0..enc.len() {
            assert!(ShardDesc::decode(&enc[..cut]).is_err());
        }
    }
}
