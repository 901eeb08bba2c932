//! Log engine: durable append latency and bandwidth for batches of 1, 16 and 256 entries of
//! 128 B and 1 KiB, on io_uring and on the pwrite+fdatasync fallback — next to the physical
//! limit measured in the same run: a plain file appended with the same bytes and fdatasync.
//! Then group commit: 1, 8 and 64 groups appending single entries concurrently.
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

/// One engine under bench, with its own next index and reclaim counter.
struct Appender {
    name: &'static str,
    engine: FileLogEngine,
    next: u64,
    since_reclaim: usize,
    _dir: tempfile::TempDir,
}

impl Appender {
    fn open(mode: IoMode, name: &'static str) -> Option<Self> {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let mut o = LogOptions::new(dir.path());
        o.io_mode = mode;
        match FileLogEngine::open(o) {
            Ok(engine) => Some(Appender {
                name,
                engine,
                next: 1,
                since_reclaim: 0,
                _dir: dir,
            }),
            Err(e) => {
                eprintln!("skipping {name}: {e}");
                None
            }
        }
    }

    /// Appends `iters` batches of `n` entries, returning the time spent in durable writes only.
    fn run(&mut self, iters: u64, n: usize, data: &bytes::Bytes) -> Duration {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let mut batch = LogBatch::new();
            let first = self.next;
            batch.append(
                1,
                (first..first + n as u64)
                    .map(|i| LogEntry::new(i, 1, data.clone()))
                    .collect(),
            );
            self.next += n as u64;
            let t = Instant::now();
            self.engine.write(batch).unwrap();
            spent += t.elapsed();
            self.since_reclaim += n * data.len();
            if self.since_reclaim >= RECLAIM_EVERY {
                let mut b = LogBatch::new();
                b.compact(1, self.next - 1);
                self.engine.write(b).unwrap();
                self.engine.gc().unwrap();
                self.since_reclaim = 0;
            }
        }
        spent
    }
}

/// Per case, io_uring, the fallback and a plain file run back to back, so the three see the
/// same disk conditions (latency here drifts by 2x over minutes on a shared machine).
fn log_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_append_sync");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut appenders: Vec<Appender> = [(IoMode::IoUring, "io_uring"), (IoMode::Sync, "fallback")]
        .into_iter()
        .filter_map(|(m, n)| Appender::open(m, n))
        .collect();
    let raw_dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let raw_path = raw_dir.path().join("raw");
    for size in SIZES {
        for n in BATCHES {
            let case = format!("{n}x{size}B");
            g.throughput(Throughput::Bytes((n * size) as u64));
            let data = bytes::Bytes::from(vec![7u8; size]);
            for a in appenders.iter_mut() {
                g.bench_function(BenchmarkId::new(a.name, &case), |b| {
                    b.iter_custom(|iters| a.run(iters, n, &data))
                });
            }
            // The physical limit: the same bytes appended to a plain file, then fdatasync.
            let buf = vec![7u8; n * size];
            g.bench_function(BenchmarkId::new("raw_file", &case), |b| {
                let mut f = std::fs::File::create(&raw_path).unwrap();
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
                            f = std::fs::File::create(&raw_path).unwrap();
                            written = 0;
                        }
                    }
                    spent
                })
            });
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

/// Where bench files go: `TESSERA_BENCH_DIR`, else the system temp dir (use a real disk).
fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("TESSERA_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(&std::env::temp_dir()).to_path_buf())
}

criterion_group!(benches, log_append, group_commit);
criterion_main!(benches);
