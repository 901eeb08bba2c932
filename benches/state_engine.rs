//! State engine: applying write batches of 1, 64 and 512 keys (128 B values, WAL off, as the
//! apply loop does) to RocksDB. Run: `cargo bench --bench state_engine`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use tessera_storage::{Cf, RocksStateEngine, StateEngine, StateOptions, WriteBatch};

fn apply_batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("rocksdb_apply");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksStateEngine::open(StateOptions::new(dir.path())).unwrap();
    let value = vec![3u8; 128];
    let mut key = 0u64;
    for n in [1usize, 64, 512] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("keys", n), |b| {
            b.iter(|| {
                let mut wb = WriteBatch::new();
                for _ in 0..n {
                    // Spread keys like hashed user keys would be.
                    key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    wb.put(Cf::Data, key.to_be_bytes(), value.clone());
                }
                wb.set_applied(1, key);
                engine.write(wb).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, apply_batches);
criterion_main!(benches);
