//! Measurements: one HDR histogram of latencies (µs) per operation type, error counts by
//! error type, and verify failures; merged across connections and printed as a table or JSON.

use crate::workload::Op;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Default)]
pub struct Stats {
    pub latency: BTreeMap<Op, Histogram<u64>>,
    /// Server errors by their first word (`ERR`, `NOAUTH`, ...), plus client-side kinds.
    pub errors: BTreeMap<String, u64>,
    pub lost: u64,
    pub corrupted: u64,
}

impl Stats {
    pub fn record(&mut self, op: Op, latency: Duration) {
        let h = self.latency.entry(op).or_insert_with(|| {
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
        });
        let _ = h.record(latency.as_micros().clamp(1, 60_000_000) as u64);
    }

    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        for (op, h) in &other.latency {
            match self.latency.get_mut(op) {
                Some(mine) => {
                    let _ = mine.add(h);
                }
                None => {
                    self.latency.insert(*op, h.clone());
                }
            }
        }
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        self.lost += other.lost;
        self.corrupted += other.corrupted;
    }

    pub fn operations(&self) -> u64 {
        self.latency.values().map(|h| h.len()).sum()
    }

    pub fn table(&self, phase: &str, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut t = format!(
            "{phase}: {} operations in {:.2} s = {:.0} ops/s\n",
            self.operations(),
            secs,
            self.operations() as f64 / secs
        );
        t.push_str(
            "| operation | count | ops/s | p50 µs | p95 µs | p99 µs | p99.9 µs | max µs |\n",
        );
        t.push_str("|---|---|---|---|---|---|---|---|\n");
        for (op, h) in &self.latency {
            t.push_str(&format!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} |\n",
                op.name(),
                h.len(),
                h.len() as f64 / secs,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.95),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            ));
        }
        for (k, n) in &self.errors {
            t.push_str(&format!("errors {k}: {n}\n"));
        }
        t.push_str(&format!(
            "verify: {} lost, {} corrupted\n",
            self.lost, self.corrupted
        ));
        t
    }

    pub fn json(&self, phase: &str, elapsed: Duration) -> serde_json::Value {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ops: serde_json::Map<String, serde_json::Value> = self
            .latency
            .iter()
            .map(|(op, h)| {
                (
                    op.name().to_string(),
                    serde_json::json!({
                        "count": h.len(),
                        "ops_per_sec": h.len() as f64 / secs,
                        "p50_us": h.value_at_quantile(0.5),
                        "p95_us": h.value_at_quantile(0.95),
                        "p99_us": h.value_at_quantile(0.99),
                        "p999_us": h.value_at_quantile(0.999),
                        "max_us": h.max(),
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "phase": phase,
            "seconds": secs,
            "operations": self.operations(),
            "ops_per_sec": self.operations() as f64 / secs,
            "per_operation": ops,
            "errors": self.errors,
            "verify": { "lost": self.lost, "corrupted": self.corrupted },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_merging() {
        let mut a = Stats::default();
        for us in 1..=1000u64 {
            a.record(Op::Read, Duration::from_micros(us));
        }
        let mut b = Stats::default();
        b.record(Op::Read, Duration::from_millis(50));
        b.error("ERR");
        b.lost = 2;
        a.merge(&b);
        let h = &a.latency[&Op::Read];
        assert_eq!(h.len(), 1001);
        let p50 = h.value_at_quantile(0.5);
        assert!((495..=505).contains(&p50), "{p50}");
        assert!(h.max() >= 49_900);
        assert_eq!(a.errors["ERR"], 1);
        assert_eq!(a.lost, 2);
        let j = a.json("run", Duration::from_secs(1));
        assert_eq!(j["operations"], 1001);
        assert!(a
            .table("run", Duration::from_secs(1))
            .contains("| READ | 1001 |"));
    }
}
