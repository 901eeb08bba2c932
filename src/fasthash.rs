//! A cheap hasher for maps whose keys cannot be used to flood them: the fixed command table
//! (no inserts after start) and maps keyed by shard/group id (ids are not client-chosen).
//! SipHash, std's default, is built against hash flooding and showed in profiles of
//! pipelined commands; FNV-1a costs a multiply per byte.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed with [`Fnv1a`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv1a>>;

pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_with_the_cheap_hasher_behave_as_maps() {
        let mut m: FastMap<u64, u64> = FastMap::default();
        for i in 0..1000u64 {
            m.insert(i, i * 2);
        }
        assert_eq!(m.len(), 1000);
        assert!((0..1000u64).all(|i| m[&i] == i * 2));
        let mut h = Fnv1a::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 of \"a\"");
    }
}
