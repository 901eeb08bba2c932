//! The cost of idle shards: a 3-node cluster in one process (real storage, loopback TCP,
//! production tick interval of 100 ms) carrying 1,000 shards with no traffic. Prints the CPU
//! the whole process uses while idle (all three nodes: ticks, heartbeats, batching).
//! Run: `cargo bench --bench raft_idle` (`IDLE_SHARDS`, `IDLE_SECS` override 1000 and 10).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};
use tessera::testkit::cluster::{wait_for, Cluster, ClusterOptions, Engines, Net};
use tessera::testkit::process_cpu_time;

fn main() {
    if tessera::testkit::bench_skipped("raft_idle") {
        return;
    }
    let shards: u64 = std::env::var("IDLE_SHARDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut o = ClusterOptions::new(3, shards, Engines::Real);
    o.net = Net::Tcp;
    o.configure = |c| c.tick_interval = Duration::from_millis(100);
    let started = Instant::now();
    let c = Cluster::start(o).expect("start cluster");
    let all_led = wait_for(Duration::from_secs(120), || {
        (1..=shards).all(|g| c.leader(g).is_some()).then_some(())
    });
    assert!(all_led.is_some(), "not every shard elected a leader");
    println!(
        "{shards} shards on 3 nodes: every shard has a leader after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let elections and the first heartbeats settle, then measure idle cost.
    std::thread::sleep(Duration::from_secs(2));
    let (t0, cpu0) = (Instant::now(), process_cpu_time());
    std::thread::sleep(Duration::from_secs(secs));
    let (wall, cpu) = (t0.elapsed(), process_cpu_time() - cpu0);
    let pct = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!(
        "idle: {:.1}% of one core for the whole process ({:.1} µs CPU per shard-replica per second)",
        pct,
        cpu.as_micros() as f64 / wall.as_secs_f64() / (shards * 3) as f64
    );
}
