//! The state engine's share of a replicated write: N RocksDB state engines with the server's
//! options (2 MiB memtables merged eight per 16 MiB flush, WAL off) each apply the same
//! stream of 128-byte writes to random keys in batches of 100, one thread each, as the apply threads of an N-replica
//! cluster in one process do — memtable inserts, flushes and compactions included, measured
//! after the memtables have been filled and flushed at least once so that compaction is in
//! the steady state. Prints writes/s and CPU-µs per write (all threads of the process ÷
//! writes), the floor under `raft_cluster`'s CPU-µs per write at the same replica count.
//! Run: `cargo bench --bench apply_floor` (`APPLY_FLOOR_SECS`, default 20 s measured after
//! a 10 s fill; `APPLY_FLOOR_REPLICAS`, default `1,3`; `APPLY_FLOOR_MEMTABLE_MIB` to try
//! another flush size, MiB — each memtable is an eighth of it).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::testkit::process_cpu_time;
use tessera_storage::{Cf, RocksStateEngine, StateEngine, StateOptions, WriteBatch};

const BATCH: u64 = 100;

/// Applies batches until `stop`; every engine sees the same keys (as replicas would).
fn apply_loop(engine: &RocksStateEngine, stop: &AtomicBool, applied: &AtomicU64) {
    let value = vec![7u8; 128];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut wb = WriteBatch::new();
        for _ in 0..BATCH {
            n += 1;
            let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let key = [
                &h.to_be_bytes()[..2],
                format!("k{}-{n}", n % 512).as_bytes(),
            ]
            .concat();
            wb.put(Cf::Data, key, value.clone());
        }
        wb.set_applied(1, n);
        engine.write(wb).expect("apply");
        applied.fetch_add(BATCH, Ordering::Relaxed);
    }
}

fn run(replicas: usize, fill: Duration, secs: Duration) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engines: Vec<Arc<RocksStateEngine>> = (0..replicas)
        .map(|i| {
            let mut o = StateOptions::new(dir.path().join(format!("n{i}")));
            if let Some(mib) = std::env::var("APPLY_FLOOR_MEMTABLE_MIB")
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            {
                o.write_buffer_bytes = mib << 20;
            }
            Arc::new(RocksStateEngine::open(o).expect("open"))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = engines
        .iter()
        .map(|e| {
            let (e, stop, applied) = (e.clone(), stop.clone(), applied.clone());
            std::thread::spawn(move || apply_loop(&e, &stop, &applied))
        })
        .collect();
    std::thread::sleep(fill);
    let (w0, c0, t0) = (
        applied.load(Ordering::Relaxed),
        process_cpu_time(),
        Instant::now(),
    );
    std::thread::sleep(secs);
    let (w1, c1, elapsed) = (
        applied.load(Ordering::Relaxed),
        process_cpu_time(),
        t0.elapsed(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("apply thread");
    }
    // Replicated writes: each one was applied once per replica.
    let writes = (w1 - w0) as f64 / replicas as f64;
    (
        writes / elapsed.as_secs_f64(),
        (c1 - c0).as_micros() as f64 / writes,
    )
}

fn main() {
    if tessera::testkit::bench_skipped("apply_floor") {
        return;
    }
    let env_secs = |name: &str, default: u64| {
        Duration::from_secs(
            std::env::var(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default),
        )
    };
    let secs = env_secs("APPLY_FLOOR_SECS", 20);
    let fill = env_secs("APPLY_FLOOR_FILL_SECS", 10);
    let replicas: Vec<usize> = std::env::var("APPLY_FLOOR_REPLICAS")
        .unwrap_or_else(|_| "1,3".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    println!("| replicas | writes/s (each applied by every replica) | CPU-µs/write |");
    println!("|---|---|---|");
    for r in replicas {
        let (rate, cpu) = run(r, fill, secs);
        println!("| {r} | {rate:.0} | {cpu:.1} |");
    }
}
