//! The load: many connections (tokio tasks), each sending pipelines of `pipeline` commands
//! and reading the replies, until the operation budget or the duration runs out. Latency is
//! measured per command from when its pipeline was sent — or, with a target rate (open loop),
//! from when it was *due*, so a stalled server is not hidden (coordinated omission).
//! Reads are verified when asked; server errors are counted by type, never fatal.

use crate::distribution::KeyChooser;
use crate::record;
use crate::resp::{encode_request as encode, parse_reply, Reply};
use crate::stats::Stats;
use crate::workload::{Op, Workload};
use anyhow::{anyhow, bail, Context};
use bytes::BytesMut;
use rand::{RngExt, SeedableRng};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// GET/SET of the whole record.
    String,
    /// HSET/HGETALL/HMGET, like YCSB's Redis binding (needs hashes on the server).
    Hash,
}

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub addr: SocketAddr,
    pub password: Option<String>,
    pub connections: usize,
    pub pipeline: usize,
    /// Stop after this long (the run phase); `None`: run the workload's operation count.
    pub duration: Option<Duration>,
    /// Not measured at the start of the run phase.
    pub warmup: Duration,
    /// Total operations per second across connections (open loop), if any.
    pub target_rate: Option<f64>,
    pub model: Model,
    pub verify: bool,
    pub seed: u64,
    pub progress: bool,
}

/// State shared by the connections of one phase.
struct Shared {
    workload: Workload,
    chooser: KeyChooser,
    /// Records that exist (loaded + inserted so far); inserts take the next number.
    inserted: AtomicU64,
    /// Records known to exist from the load phase (a missing one is lost).
    loaded: u64,
    budget: AtomicU64,
    done: AtomicBool,
    completed: AtomicU64,
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn open(cfg: &RunConfig) -> anyhow::Result<Conn> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(cfg.addr))
            .await
            .map_err(|_| anyhow!("cannot connect to {}: timed out", cfg.addr))?
            .with_context(|| format!("cannot connect to {}", cfg.addr))?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            buf: BytesMut::with_capacity(64 << 10),
        };
        if let Some(pw) = &cfg.password {
            let mut out = BytesMut::new();
            encode(&[b"AUTH", pw.as_bytes()], &mut out);
            c.stream.write_all(&out).await?;
            if let Reply::Error(e) = c.reply().await? {
                bail!("AUTH failed: {e}");
            }
        }
        Ok(c)
    }

    async fn reply(&mut self) -> anyhow::Result<Reply> {
        loop {
            if let Some(r) = parse_reply(&mut self.buf)? {
                return Ok(r);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("the server closed the connection");
            }
        }
    }
}

/// What one pipelined command was, to check its reply.
struct Sent {
    op: Op,
    record: u64,
    key: String,
    /// Several commands make up this operation (read-modify-write): only the last records.
    part_of_previous: bool,
}

fn add_op(
    shared: &Shared,
    model: Model,
    op: Op,
    rng: &mut rand::rngs::StdRng,
    out: &mut BytesMut,
    sent: &mut Vec<Sent>,
) {
    let w = &shared.workload;
    let record = match op {
        Op::Insert => shared.inserted.fetch_add(1, Ordering::SeqCst),
        _ => shared
            .chooser
            .next(rng, shared.inserted.load(Ordering::Relaxed)),
    };
    let key = record::key(record);
    let version: u64 = rng.random();
    let len = w.field_count * w.field_length;
    let write = |out: &mut BytesMut| match model {
        Model::String => {
            let v = record::value(key.as_bytes(), version, len);
            encode(&[b"SET", key.as_bytes(), &v], out);
        }
        Model::Hash => {
            let fields: Vec<(String, Vec<u8>)> = (0..w.field_count)
                .map(|f| {
                    let name = format!("field{f}");
                    let v = record::value(key.as_bytes(), version ^ f as u64, w.field_length);
                    (name, v)
                })
                .collect();
            let mut args: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
            for (n, v) in &fields {
                args.push(n.as_bytes());
                args.push(v);
            }
            encode(&args, out);
        }
    };
    let read = |out: &mut BytesMut| match model {
        Model::String => encode(&[b"GET", key.as_bytes()], out),
        Model::Hash => encode(&[b"HGETALL", key.as_bytes()], out),
    };
    match op {
        Op::Read => read(out),
        Op::Update | Op::Insert => write(out),
        Op::ReadModifyWrite => {
            read(out);
            sent.push(Sent {
                op,
                record,
                key: key.clone(),
                part_of_previous: false,
            });
            write(out);
            sent.push(Sent {
                op,
                record,
                key,
                part_of_previous: true,
            });
            return;
        }
        Op::Scan => {
            // String model: MGET of `len` consecutive records from the chosen one (the
            // string analog of YCSB's range scan; the hash model's sorted-set index is not
            // built, see check_supported).
            let len = rng.random_range(1..=w.max_scan_length);
            let end = (record + len).min(shared.inserted.load(Ordering::Relaxed).max(record + 1));
            let keys: Vec<String> = (record..end).map(record::key).collect();
            let mut args: Vec<&[u8]> = vec![b"MGET"];
            args.extend(keys.iter().map(|k| k.as_bytes()));
            encode(&args, out);
        }
    }
    sent.push(Sent {
        op,
        record,
        key,
        part_of_previous: false,
    });
}

fn check(shared: &Shared, verify: bool, s: &Sent, reply: &Reply, stats: &mut Stats) {
    if let Reply::Error(e) = reply {
        stats.error(e.split_whitespace().next().unwrap_or("ERR"));
        return;
    }
    if !verify || s.part_of_previous {
        return;
    }
    let is_read = matches!(s.op, Op::Read | Op::ReadModifyWrite);
    if let (Op::Scan, Reply::Array(items)) = (s.op, reply) {
        for (i, item) in items.iter().enumerate() {
            let n = s.record + i as u64;
            match item {
                Reply::Bulk(v) if record::verify(record::key(n).as_bytes(), v).is_err() => {
                    stats.corrupted += 1
                }
                Reply::Nil if n < shared.loaded => stats.lost += 1,
                _ => {}
            }
        }
        return;
    }
    match reply {
        Reply::Bulk(v) if is_read && record::verify(s.key.as_bytes(), v).is_err() => {
            stats.corrupted += 1
        }
        // Every record below the loaded count was acknowledged by the load phase.
        Reply::Nil if is_read && s.record < shared.loaded => stats.lost += 1,
        _ => {}
    }
}

async fn connection(
    shared: Arc<Shared>,
    cfg: RunConfig,
    index: usize,
    measure_from: Instant,
) -> anyhow::Result<Stats> {
    let mut conn = Conn::open(&cfg).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ ((index as u64 + 1) * 0x9E37));
    let mut stats = Stats::default();
    let mut out = BytesMut::with_capacity(64 << 10);
    let mut sent = Vec::with_capacity(cfg.pipeline * 2);
    // Open loop: this connection's share of the target rate.
    let interval = cfg
        .target_rate
        .map(|r| Duration::from_secs_f64(cfg.pipeline as f64 * cfg.connections as f64 / r));
    let mut due = Instant::now();
    while !shared.done.load(Ordering::Relaxed) {
        let want = cfg.pipeline as u64;
        let got = shared
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(want))
            })
            .map(|b| b.min(want))
            .unwrap_or(0);
        if got == 0 {
            break;
        }
        if interval.is_some() {
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        out.clear();
        sent.clear();
        for _ in 0..got {
            let op = shared.workload.next_op(&mut rng);
            add_op(&shared, cfg.model, op, &mut rng, &mut out, &mut sent);
        }
        let start = if interval.is_some() {
            due
        } else {
            Instant::now()
        };
        conn.stream.write_all(&out).await?;
        for s in &sent {
            let reply = conn.reply().await?;
            check(&shared, cfg.verify, s, &reply, &mut stats);
            // A read-modify-write completes with its second command.
            if s.op != Op::ReadModifyWrite || s.part_of_previous {
                if Instant::now() >= measure_from {
                    stats.record(s.op, start.elapsed());
                }
                shared.completed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(iv) = interval {
            due += iv;
        }
    }
    Ok(stats)
}

/// `[#####-----] 50%` for a fraction of the work done.
pub fn progress_bar(fraction: f64) -> String {
    let f = fraction.clamp(0.0, 1.0);
    let filled = (f * 30.0).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        "-".repeat(30 - filled),
        f * 100.0
    )
}

/// Refuses what the tool cannot run yet, before anything is sent.
pub fn check_supported(workload: &Workload, model: Model) -> anyhow::Result<()> {
    if workload.scan > 0.0 && model == Model::Hash {
        bail!(
            "scans (YCSB E) with the hash model need a sorted-set index, which tessera-bench \
             does not build yet; use --model string (scans read consecutive records with MGET)"
        );
    }
    Ok(())
}

/// Runs one phase: `load` inserts records 0..recordcount; otherwise the workload's mix.
pub async fn phase(
    cfg: &RunConfig,
    workload: &Workload,
    load: bool,
) -> anyhow::Result<(Stats, Duration)> {
    check_supported(workload, cfg.model)?;
    let mut w = workload.clone();
    if load {
        w.read = 0.0;
        w.update = 0.0;
        w.scan = 0.0;
        w.read_modify_write = 0.0;
        w.insert = 1.0;
    }
    let budget = match (load, cfg.duration) {
        (true, _) => workload.record_count,
        (false, Some(_)) => u64::MAX,
        (false, None) => workload.operation_count,
    };
    let shared = Arc::new(Shared {
        chooser: KeyChooser::new(&w.request_distribution, w.record_count)
            .map_err(|e| anyhow!(e))?,
        workload: w,
        inserted: AtomicU64::new(if load { 0 } else { workload.record_count }),
        loaded: if load { 0 } else { workload.record_count },
        budget: AtomicU64::new(budget),
        done: AtomicBool::new(false),
        completed: AtomicU64::new(0),
    });
    let start = Instant::now();
    let measure_from = if load { start } else { start + cfg.warmup };
    let mut tasks = Vec::new();
    for i in 0..cfg.connections.max(1) {
        tasks.push(tokio::spawn(connection(
            shared.clone(),
            cfg.clone(),
            i,
            measure_from,
        )));
    }
    let stopper = {
        let shared = shared.clone();
        let duration = if load {
            None
        } else {
            cfg.duration.map(|d| d + cfg.warmup)
        };
        let progress = cfg.progress;
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = shared.completed.load(Ordering::Relaxed);
                if progress {
                    let fraction = match duration {
                        Some(d) => start.elapsed().as_secs_f64() / d.as_secs_f64(),
                        None => done as f64 / budget.max(1) as f64,
                    };
                    eprint!(
                        "\r{} {:>8.1} s  {:>10} ops  {:>9} ops/s   ",
                        progress_bar(fraction),
                        start.elapsed().as_secs_f64(),
                        done,
                        done - last
                    );
                }
                last = done;
                if duration.is_some_and(|d| start.elapsed() >= d) {
                    shared.done.store(true, Ordering::Relaxed);
                }
                if shared.done.load(Ordering::Relaxed) {
                    break;
                }
            }
        })
    };
    let mut total = Stats::default();
    let mut first_error = None;
    for t in tasks {
        match t.await? {
            Ok(s) => total.merge(&s),
            Err(e) => {
                shared.done.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
    }
    shared.done.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stopper.abort();
    if cfg.progress {
        eprintln!();
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let warmup = if load { Duration::ZERO } else { cfg.warmup };
    Ok((total, elapsed.saturating_sub(warmup)))
}

#[cfg(test)]
mod tests {
    use super::progress_bar;

    #[test]
    fn the_progress_bar_fills_with_the_work() {
        assert_eq!(progress_bar(0.0), format!("[{}]   0%", "-".repeat(30)));
        assert_eq!(
            progress_bar(0.5),
            format!("[{}{}]  50%", "#".repeat(15), "-".repeat(15))
        );
        assert_eq!(progress_bar(2.0), format!("[{}] 100%", "#".repeat(30)));
    }
}
