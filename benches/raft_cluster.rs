//! Replicated write throughput of an in-process cluster on real storage (file log +
//! RocksDB) and loopback TCP: 128-byte writes from 1, 64 and 512 concurrent proposers
//! spread over 1 and 16 shards, at 3 replicas and at 1 replica. Prints throughput,
//! p50/p99 latency and CPU-µs per write (user+sys of this whole process, every node
//! included, divided by writes). Run: `cargo bench --bench raft_cluster`
//! (`RAFT_BENCH_SECS` sets the measured seconds per case, default 5; the nodes use the
//! server's storage sizes — 16 MiB flushed per memtable set — unless
//! `RAFT_BENCH_SIZES=test`). A proposal that fails (e.g. across a leader change) counts
//! as an error, and its group's later proposals go to the leader the cluster knows then.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crossbeam_channel::unbounded;
use std::cell::RefCell;
use std::time::{Duration, Instant};
use tessera::raftstore::kv_put;
use tessera::testkit::cluster::{Cluster, ClusterOptions, Engines, Net, Sizes};
use tessera::testkit::process_cpu_time;

struct Outcome {
    writes: u64,
    errors: u64,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    cpu_us_per_write: f64,
    /// Log write rounds (one fdatasync each) per second, averaged over the nodes.
    syncs_per_node: f64,
}

fn run(replicas: u64, shards: u64, proposers: usize, secs: f64) -> Outcome {
    let mut o = ClusterOptions::new(replicas, shards, Engines::Real);
    o.net = Net::Tcp;
    // The server's memtables and caches; RAFT_BENCH_SIZES=test runs the small test ones.
    o.sizes = match std::env::var("RAFT_BENCH_SIZES").as_deref() {
        Ok("test") => Sizes::Test,
        _ => Sizes::Server,
    };
    o.configure = |c| c.tick_interval = Duration::from_millis(50);
    let c = Cluster::start(o).expect("start cluster");
    let leaders: RefCell<Vec<u64>> = RefCell::new(
        (1..=shards)
            .map(|g| c.wait_leader(g, Duration::from_secs(20)).expect("leader"))
            .collect(),
    );
    // A failed proposal (say, a leader change) counts as an error, and later proposals of
    // its group go to the group's leader as the cluster knows it then.
    let follow_leader = |group: u64| {
        if let Ok(l) = c.wait_leader(group, Duration::from_secs(2)) {
            leaders.borrow_mut()[group as usize - 1] = l;
        }
    };
    let value = vec![7u8; 128];
    // (proposer, when it proposed, the group of a failed proposal)
    let (done_tx, done) = unbounded::<(usize, Instant, Option<u64>)>();
    let mut counter = 0u64;
    let submit = |slot: usize, counter: &mut u64| {
        *counter += 1;
        let n = *counter;
        let prefix = ((n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16).to_be_bytes();
        let key = [&prefix[..], format!("k{slot}-{n}").as_bytes()].concat();
        let group = c.shard_of(&key);
        let leader = leaders.borrow()[group as usize - 1];
        let store = &c.node(leader).expect("leader runs").store;
        let tx = done_tx.clone();
        let at = Instant::now();
        store.propose(
            group,
            kv_put(&key, &value),
            Box::new(move |r| {
                let _ = tx.send((slot, at, r.is_err().then_some(group)));
            }),
        );
    };
    // Warm up, then measure.
    for slot in 0..proposers {
        submit(slot, &mut counter);
    }
    let warm_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < warm_until {
        if let Ok((slot, _, failed)) = done.recv_timeout(Duration::from_secs(5)) {
            if let Some(group) = failed {
                follow_leader(group);
            }
            submit(slot, &mut counter);
        }
    }
    let syncs = || -> u64 {
        c.running()
            .iter()
            .filter_map(|id| c.node(*id))
            .map(|n| n.log.status().sync_rounds)
            .sum()
    };
    let (start, cpu0, syncs0) = (Instant::now(), process_cpu_time(), syncs());
    let end = start + Duration::from_secs_f64(secs);
    let mut lat = Vec::with_capacity(1 << 20);
    let mut errors = 0;
    while Instant::now() < end {
        match done.recv_timeout(Duration::from_secs(5)) {
            Ok((slot, at, failed)) => {
                match failed {
                    None => lat.push(at.elapsed().as_micros() as u64),
                    Some(group) => {
                        errors += 1;
                        follow_leader(group);
                    }
                }
                submit(slot, &mut counter);
            }
            Err(_) => break,
        }
    }
    let (elapsed, cpu) = (start.elapsed().as_secs_f64(), process_cpu_time() - cpu0);
    let synced = syncs() - syncs0;
    // Let the in-flight proposals finish before the cluster shuts down.
    for _ in 0..proposers {
        let _ = done.recv_timeout(Duration::from_secs(5));
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let writes = lat.len() as u64;
    Outcome {
        writes,
        errors,
        secs: elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_write: cpu.as_micros() as f64 / writes.max(1) as f64,
        syncs_per_node: synced as f64 / replicas as f64 / elapsed,
    }
}

fn main() {
    if tessera::testkit::bench_skipped("raft_cluster") {
        return;
    }
    let secs: f64 = std::env::var("RAFT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    println!(
        "| replicas | shards | proposers | writes/s | p50 | p99 | CPU-µs/write | log syncs/s per node | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // RAFT_BENCH_ONLY=replicas,shards,proposers runs one case (e.g. under a profiler).
    let only: Option<(u64, u64, usize)> = std::env::var("RAFT_BENCH_ONLY").ok().and_then(|s| {
        let v: Vec<&str> = s.split(',').collect();
        Some((
            v.first()?.parse().ok()?,
            v.get(1)?.parse().ok()?,
            v.get(2)?.parse().ok()?,
        ))
    });
    for replicas in [3u64, 1] {
        for shards in [1u64, 16] {
            for proposers in [1usize, 64, 512] {
                if only.is_some_and(|o| o != (replicas, shards, proposers)) {
                    continue;
                }
                let r = run(replicas, shards, proposers, secs);
                println!(
                    "| {replicas} | {shards} | {proposers} | {:.0} | {:.2} ms | {:.2} ms | {:.1} | {:.0} | {} |",
                    r.writes as f64 / r.secs,
                    r.p50_us as f64 / 1000.0,
                    r.p99_us as f64 / 1000.0,
                    r.cpu_us_per_write,
                    r.syncs_per_node,
                    r.errors
                );
            }
        }
    }
}
