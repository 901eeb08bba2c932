//! Record keys and self-checking values. A key is YCSB's `user<hash>`; a value carries its
//! key's checksum and a version, `v1:<version>:<checksum>:<filler>`, where the filler is
//! derived from key and version, so a reader can tell a correct value (any version) from a
//! corrupted or misplaced one without remembering what was written.

use crate::distribution::fnv64;

pub fn key(record: u64) -> String {
    format!("user{}", fnv64(record))
}

fn checksum(key: &[u8], version: u64, filler: &[u8]) -> u64 {
    let mut h = fnv64(version);
    for chunk in key.chunks(8).chain(filler.chunks(8)) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = fnv64(h ^ u64::from_le_bytes(w));
    }
    h
}

fn filler(key: &[u8], version: u64, len: usize) -> Vec<u8> {
    let mut state = fnv64(version ^ key.iter().fold(0u64, |a, b| a.rotate_left(5) ^ *b as u64));
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            b'a' + ((state >> 33) % 26) as u8
        })
        .collect()
}

/// A value of about `len` bytes for `key` at `version`.
pub fn value(key: &[u8], version: u64, len: usize) -> Vec<u8> {
    let fill = filler(key, version, len.saturating_sub(40));
    let mut v = format!("v1:{version}:{:016x}:", checksum(key, version, &fill)).into_bytes();
    v.extend_from_slice(&fill);
    v
}

/// Why a value read back is wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    Malformed,
    Corrupted,
}

/// Checks a value read for `key`; returns its version.
pub fn verify(key: &[u8], v: &[u8]) -> Result<u64, Bad> {
    let text = std::str::from_utf8(v.get(..v.len().min(64)).unwrap_or_default());
    let head = match text {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&v[..e.valid_up_to()]).unwrap_or_default(),
    };
    let mut parts = head.splitn(4, ':');
    let (Some("v1"), Some(ver), Some(sum)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Bad::Malformed);
    };
    let version: u64 = ver.parse().map_err(|_| Bad::Malformed)?;
    let sum = u64::from_str_radix(sum, 16).map_err(|_| Bad::Malformed)?;
    let header_len = 3 + ver.len() + 1 + 16 + 1;
    let fill = v.get(header_len..).ok_or(Bad::Malformed)?;
    if checksum(key, version, fill) != sum || filler(key, version, fill.len()) != fill {
        return Err(Bad::Corrupted);
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_verify_and_damage_is_caught() {
        let k = key(17);
        assert!(k.starts_with("user"));
        let v = value(k.as_bytes(), 5, 100);
        assert_eq!(verify(k.as_bytes(), &v), Ok(5));
        let mut flipped = v.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(verify(k.as_bytes(), &flipped), Err(Bad::Corrupted));
        assert_eq!(
            verify(key(18).as_bytes(), &v),
            Err(Bad::Corrupted),
            "another key's value"
        );
        assert_eq!(verify(k.as_bytes(), b"garbage"), Err(Bad::Malformed));
        assert_eq!(verify(k.as_bytes(), &v[..10]), Err(Bad::Malformed));
    }
}
