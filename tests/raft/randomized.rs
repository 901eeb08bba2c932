//! Seeded randomised runs: message loss, duplication, delay/reordering, partitions and node
//! restarts while clients write; at the end the Raft invariants must hold: at most one
//! leader per term (sampled throughout), every replica applied the same state, the logs
//! match, and no acknowledged write is lost. The seed is printed; set TESSERA_SEED to replay
//! a run's fault decisions.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tessera::raftstore::{kv_put, StoreConfig};
use tessera::testkit::cluster::{wait_for, Cluster, ClusterOptions, Engines};
use tessera::transport::sim::Faults;
use tessera_storage::{Cf, KeyRange};

const GROUPS: u64 = 2;

fn sample_leaders(c: &Cluster, seen: &mut HashMap<(u64, u64), u64>, seed: u64) {
    for id in c.running() {
        for g in 1..=GROUPS {
            if let Some(s) = c.status(id, g).filter(|s| s.is_leader) {
                let first = *seen.entry((g, s.term)).or_insert(id);
                assert_eq!(
                    first, id,
                    "seed {seed}: two leaders of shard {g} in term {}",
                    s.term
                );
            }
        }
    }
}

fn dump(c: &Cluster, id: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    c.node(id)
        .unwrap()
        .state
        .scan(Cf::Data, &KeyRange::all(), usize::MAX, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    out
}

/// Where committed entries are applied: on the store loop's thread (the default) or on the
/// apply thread.
#[derive(Clone, Copy, Debug)]
enum Apply {
    Inline,
    Thread,
}

/// Compact aggressively so restarted or partitioned nodes often need a snapshot.
fn compact_aggressively(c: &mut StoreConfig) {
    c.compact_log_threshold = 10;
    c.maintenance_ticks = 5;
    c.log_flush_bytes = 0;
}

fn run(seed: u64, engines: Engines, steps: usize, apply: Apply) {
    let seed = std::env::var("TESSERA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(seed);
    eprintln!("randomized raft run: seed {seed}, {engines:?}, apply {apply:?}");
    let mut o = ClusterOptions::new(3, GROUPS, engines);
    o.seed = seed;
    o.configure = match apply {
        Apply::Inline => compact_aggressively,
        Apply::Thread => |c| {
            compact_aggressively(c);
            c.apply_inline = false;
        },
    };
    let mut c = Cluster::start(o).unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    c.net.set_faults(Faults {
        drop_rate: 0.05,
        duplicate_rate: 0.05,
        max_delay: Duration::from_millis(20),
    });
    let mut acked: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut leaders = HashMap::new();
    for step in 0..steps {
        sample_leaders(&c, &mut leaders, seed);
        match rng.random_range(0..12u32) {
            0 => {
                let id = rng.random_range(1..=3u64);
                c.restart(id).unwrap();
            }
            1 => {
                let id = rng.random_range(1..=3u64);
                let others: Vec<u64> = (1..=3).filter(|o| *o != id).collect();
                c.net.partition(&[id], &others);
            }
            2 => {
                c.net.heal();
                c.net.set_faults(Faults {
                    drop_rate: 0.05,
                    duplicate_rate: 0.05,
                    max_delay: Duration::from_millis(20),
                });
            }
            _ => {
                let key = format!(
                    "{}/step{step}",
                    char::from(b'a' + rng.random_range(0..26u8))
                )
                .into_bytes();
                let value = format!("v{step}").into_bytes();
                if c.propose(&key, kv_put(&key, &value), Duration::from_secs(2))
                    .is_ok()
                {
                    acked.insert(key, value);
                }
            }
        }
    }
    c.net.heal();
    for g in 1..=GROUPS {
        c.wait_leader(g, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    sample_leaders(&c, &mut leaders, seed);
    assert!(!acked.is_empty(), "seed {seed}: nothing was acknowledged");
    for (k, v) in &acked {
        let got = c
            .read(k, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("seed {seed}: read: {e}"));
        assert_eq!(
            got.as_ref(),
            Some(v),
            "seed {seed}: acknowledged write {} lost",
            String::from_utf8_lossy(k)
        );
    }
    // Every replica converges to the same applied state and the same log.
    for g in 1..=GROUPS {
        let commit = c.status(c.leader(g).unwrap(), g).unwrap().commit;
        assert!(
            c.wait_applied(g, commit, Duration::from_secs(20)),
            "seed {seed}: shard {g} did not converge"
        );
    }
    let converged = wait_for(Duration::from_secs(10), || {
        let d1 = dump(&c, 1);
        (dump(&c, 2) == d1 && dump(&c, 3) == d1).then_some(())
    });
    assert!(
        converged.is_some(),
        "seed {seed}: replicas applied different states"
    );
    for g in 1..=GROUPS {
        let commit = (1..=3)
            .map(|id| c.status(id, g).unwrap().commit)
            .min()
            .unwrap();
        let mut logs = Vec::new();
        for id in 1..=3u64 {
            let mut out = Vec::new();
            let log = &c.node(id).unwrap().log;
            let first = log.first_index(g).unwrap_or(commit + 1);
            if first <= commit {
                log.entries(g, first, commit + 1, None, &mut out).unwrap();
            }
            logs.push(out);
        }
        // Log matching: where two replicas both still hold a committed index, they agree.
        for a in 0..3 {
            for b in a + 1..3 {
                for x in &logs[a] {
                    if let Some(y) = logs[b].iter().find(|y| y.index == x.index) {
                        assert_eq!(
                            x, y,
                            "seed {seed}: shard {g} entry {} differs between replicas",
                            x.index
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn randomized_faults_memory_seed_1() {
    run(1, Engines::Memory, 60, Apply::Inline);
}

#[test]
fn randomized_faults_memory_seed_2() {
    run(2, Engines::Memory, 60, Apply::Thread);
}

#[test]
fn randomized_faults_memory_seed_3() {
    run(3, Engines::Memory, 60, Apply::Inline);
}

#[test]
fn randomized_faults_real_storage() {
    run(11, Engines::Real, 40, Apply::Inline);
}

#[test]
fn randomized_faults_real_storage_apply_thread() {
    run(12, Engines::Real, 40, Apply::Thread);
}
