//! Log engine: durable append latency and bandwidth for batches of 1, 16 and 256 entries of
//! 128 B and 1 KiB, on io_uring and on the pwrite+fdatasync fallback — next to the physical
//! limit measured in the same run: a plain file appended with the same bytes and fdatasync.
//! Run: `cargo bench --bench log_engine` (figures in docs/benchmarks.md).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tessera_storage::{FileLogEngine, IoMode, LogBatch, LogEngine, LogEntry, LogOptions};

const BATCHES: [usize; 3] = [1, 16, 256];
const SIZES: [usize; 2] = [128, 1024];
/// Compact and GC (untimed) whenever this many bytes were appended, so runs stay bounded on disk.
const RECLAIM_EVERY: usize = 64 << 20;

fn log_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_append_sync");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    for (mode, name) in [(IoMode::IoUring, "io_uring"), (IoMode::Sync, "fallback")] {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let mut o = LogOptions::new(dir.path());
        o.io_mode = mode;
        let Ok(engine) = FileLogEngine::open(o) else {
            eprintln!("skipping {name}: backend unavailable");
            continue;
        };
        let mut next = 1u64;
        let mut since_reclaim = 0usize;
        for size in SIZES {
            for n in BATCHES {
                g.throughput(Throughput::Bytes((n * size) as u64));
                let data = bytes::Bytes::from(vec![7u8; size]);
                g.bench_function(BenchmarkId::new(name, format!("{n}x{size}B")), |b| {
                    b.iter_custom(|iters| {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            let mut batch = LogBatch::new();
                            batch.append(
                                1,
                                (next..next + n as u64)
                                    .map(|i| LogEntry::new(i, 1, data.clone()))
                                    .collect(),
                            );
                            next += n as u64;
                            let t = Instant::now();
                            engine.write(batch).unwrap();
                            spent += t.elapsed();
                            since_reclaim += n * size;
                            if since_reclaim >= RECLAIM_EVERY {
                                let mut b = LogBatch::new();
                                b.compact(1, next - 1);
                                engine.write(b).unwrap();
                                engine.gc().unwrap();
                                since_reclaim = 0;
                            }
                        }
                        spent
                    })
                });
            }
        }
    }
    g.finish();
}

/// Many groups appending single 128 B entries at once: the writer merges whatever is queued
/// into one write + one fdatasync, so throughput should grow with the number of submitters.
fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_group_commit");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    for (mode, name) in [(IoMode::IoUring, "io_uring"), (IoMode::Sync, "fallback")] {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let mut o = LogOptions::new(dir.path());
        o.io_mode = mode;
        let Ok(engine) = FileLogEngine::open(o) else {
            continue;
        };
        let next: Vec<AtomicU64> = (0..64).map(|_| AtomicU64::new(1)).collect();
        let data = bytes::Bytes::from(vec![7u8; 128]);
        for threads in [1u64, 8, 64] {
            g.bench_function(BenchmarkId::new(name, format!("{threads}_groups")), |b| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(threads);
                    let t = Instant::now();
                    std::thread::scope(|s| {
                        for group in 0..threads {
                            let (engine, next, data) = (&engine, &next, &data);
                            s.spawn(move || {
                                for _ in 0..per {
                                    let i = next[group as usize].fetch_add(1, Ordering::Relaxed);
                                    let mut batch = LogBatch::new();
                                    batch.append(group, vec![LogEntry::new(i, 1, data.clone())]);
                                    engine.write(batch).unwrap();
                                }
                            });
                        }
                    });
                    t.elapsed()
                })
            });
        }
    }
    g.finish();
}

fn raw_write_fdatasync(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_write_fdatasync");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    for size in SIZES {
        for n in BATCHES {
            let buf = vec![7u8; n * size];
            g.throughput(Throughput::Bytes(buf.len() as u64));
            g.bench_function(
                BenchmarkId::new("plain_file", format!("{n}x{size}B")),
                |b| {
                    let path = dir.path().join("raw");
                    let mut f = std::fs::File::create(&path).unwrap();
                    let mut written = 0;
                    b.iter_custom(|iters| {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            let t = Instant::now();
                            f.write_all(&buf).unwrap();
                            f.sync_data().unwrap();
                            spent += t.elapsed();
                            written += buf.len();
                            if written >= RECLAIM_EVERY {
                                f = std::fs::File::create(&path).unwrap();
                                written = 0;
                            }
                        }
                        spent
                    })
                },
            );
        }
    }
    g.finish();
}

/// Where bench files go: `TESSERA_BENCH_DIR`, else the system temp dir (use a real disk).
fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("TESSERA_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(&std::env::temp_dir()).to_path_buf())
}

criterion_group!(benches, log_append, group_commit, raw_write_fdatasync);
criterion_main!(benches);
