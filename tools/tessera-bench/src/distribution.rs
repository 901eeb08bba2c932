//! Key choosers as YCSB defines them: uniform, zipfian (Gray et al.'s algorithm, YCSB's
//! `ZipfianGenerator`), scrambled zipfian (zipfian over a huge item space, hashed onto the
//! records so hot keys are spread out — YCSB's default), and latest (zipfian over recency:
//! the newest inserted records are the hottest).

use rand::{Rng, RngExt};

/// YCSB's zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;
/// Item space of the scrambled zipfian, and its precomputed zeta (YCSB's constants).
const SCRAMBLED_ITEMS: u64 = 10_000_000_000;
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// 64-bit FNV-1a over the little-endian bytes of `v` (YCSB's `fnvhash64`).
pub fn fnv64(v: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// Zipfian over `[0, items)`: item 0 is the most popular.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    pub fn new(items: u64, theta: f64) -> Self {
        Self::with_zetan(items, theta, zeta(items, theta))
    }

    fn with_zetan(items: u64, theta: f64, zetan: f64) -> Self {
        let items = items.max(1);
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let v = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.items - 1)
    }

    /// The probability of item `rank` (0-based) under this distribution.
    #[cfg(test)]
    pub fn probability(&self, rank: u64) -> f64 {
        1.0 / ((rank + 1) as f64).powf(self.theta) / self.zetan
    }
}

/// How record numbers are chosen.
#[derive(Clone, Debug)]
pub enum KeyChooser {
    Uniform {
        records: u64,
    },
    Zipfian {
        records: u64,
        zipf: Zipfian,
    },
    /// Zipfian over recency, relative to the newest record.
    Latest {
        zipf: Zipfian,
    },
}

impl KeyChooser {
    /// `name` is YCSB's `requestdistribution`: uniform, zipfian or latest.
    pub fn new(name: &str, records: u64) -> Result<Self, String> {
        let records = records.max(1);
        match name {
            "uniform" => Ok(KeyChooser::Uniform { records }),
            "zipfian" => Ok(KeyChooser::Zipfian {
                records,
                zipf: Zipfian::with_zetan(SCRAMBLED_ITEMS, ZIPFIAN_CONSTANT, SCRAMBLED_ZETAN),
            }),
            "latest" => Ok(KeyChooser::Latest {
                zipf: Zipfian::new(records, ZIPFIAN_CONSTANT),
            }),
            other => Err(format!(
                "unknown requestdistribution '{other}' (uniform, zipfian, latest)"
            )),
        }
    }

    /// A record number below `inserted` (the records that exist now).
    pub fn next(&self, rng: &mut impl Rng, inserted: u64) -> u64 {
        let inserted = inserted.max(1);
        match self {
            KeyChooser::Uniform { records } => rng.random_range(0..(*records).min(inserted)),
            KeyChooser::Zipfian { records, zipf } => {
                fnv64(zipf.next(rng)) % (*records).min(inserted)
            }
            KeyChooser::Latest { zipf } => {
                let back = zipf.next(rng) % inserted;
                inserted - 1 - back
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipfian_hot_items_match_theory() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let z = Zipfian::new(1000, ZIPFIAN_CONSTANT);
        let n = 200_000;
        let mut counts = vec![0u64; 1000];
        for _ in 0..n {
            counts[z.next(&mut rng) as usize] += 1;
        }
        // Gray et al.'s method is exact for the two hottest items and approximate beyond.
        for rank in 0..2u64 {
            let expected = z.probability(rank) * n as f64;
            let got = counts[rank as usize] as f64;
            assert!(
                (got - expected).abs() / expected < 0.03,
                "rank {rank}: {got} vs {expected:.0}"
            );
        }
        let top10: f64 = (0..10).map(|r| z.probability(r)).sum::<f64>() * n as f64;
        let got10 = counts[..10].iter().sum::<u64>() as f64;
        assert!(
            (got10 - top10).abs() / top10 < 0.10,
            "top 10: {got10} vs {top10:.0}"
        );
        let cold = counts[500..].iter().sum::<u64>() as f64;
        let cold_theory: f64 = (500..1000).map(|r| z.probability(r)).sum::<f64>() * n as f64;
        assert!(
            (cold - cold_theory).abs() / cold_theory < 0.15,
            "tail: {cold} vs {cold_theory:.0}"
        );
    }

    #[test]
    fn scrambled_zipfian_spreads_the_hot_keys_but_stays_skewed() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let c = KeyChooser::new("zipfian", 10_000).unwrap();
        let mut counts = vec![0u64; 10_000];
        for _ in 0..100_000 {
            counts[c.next(&mut rng, 10_000) as usize] += 1;
        }
        let hottest = counts
            .iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .unwrap()
            .0;
        assert_ne!(hottest, 0, "scrambled: the hottest record is not record 0");
        let mut sorted = counts.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let top_1pct: u64 = sorted[..100].iter().sum();
        assert!(
            top_1pct > 15_000,
            "the top 1% of keys get a large share: {top_1pct}"
        );
    }

    #[test]
    fn latest_prefers_the_newest_and_uniform_stays_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let latest = KeyChooser::new("latest", 1000).unwrap();
        let newest = (0..10_000)
            .filter(|_| latest.next(&mut rng, 500) >= 490)
            .count();
        assert!(newest > 3_000, "{newest}");
        let uniform = KeyChooser::new("uniform", 1000).unwrap();
        assert!((0..10_000).all(|_| uniform.next(&mut rng, 300) < 300));
        assert!(KeyChooser::new("bogus", 1).is_err());
    }
}
