//! `tessera log-torture`: writes to a log engine and a state engine until it is killed, and
//! reports on stdout exactly what it was told is durable, so a test can SIGKILL it at any
//! moment and check that nothing acknowledged was lost:
//!
//! * `ack G I` — entry I of group G is durable in the log;
//! * `compacted G C` — group G's entries below C were compacted away (durably);
//! * `flushed G I` — the state engine durably holds G's applied index >= I, and with it
//!   every key `state_key(G, 1..=I)`.
//!
//! Each group has its own thread; group 0 also compacts and runs GC now and then, so kills
//! land in the middle of rotations and GC passes too. On start it re-applies the log entries
//! the state engine lost (its unflushed writes), then resumes after the log's last entry.

use super::{payload, state_key};
use crate::cli::TortureArgs;
use anyhow::Context;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tessera_storage::{
    Cf, FileLogEngine, LogBatch, LogEngine, LogEntry, LogOptions, RocksStateEngine, StateEngine,
    StateOptions, WriteBatch,
};

pub fn run(args: TortureArgs) -> anyhow::Result<()> {
    let mut lo = LogOptions::new(args.data_dir.join("raft-log"));
    lo.io_mode = args.io.into();
    lo.segment_size = args.segment_size;
    let log = Arc::new(FileLogEngine::open(lo).context("open log")?);
    let mut so = StateOptions::new(args.data_dir.join("state"));
    if let Some(bytes) = args.state_buffer_bytes {
        so.write_buffer_bytes = bytes;
    }
    let state = Arc::new(RocksStateEngine::open(so).context("open state")?);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = move |line: String| {
        let mut o = out.lock().expect("stdout lock");
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    let say = Arc::new(say);
    let threads: Vec<_> = (0..args.groups)
        .map(|g| {
            let (log, state, say) = (log.clone(), state.clone(), say.clone());
            let (value_size, state_value) = (args.value_size, args.state_value_size);
            let flush_every = args.state_flush_every;
            std::thread::spawn(move || -> anyhow::Result<()> {
                let last = log
                    .last_index(g)
                    .unwrap_or(log.compacted_to(g).saturating_sub(1));
                // Like Raft's apply after a restart: entries the log holds beyond what the
                // state engine kept (its unflushed writes died with the process) are applied
                // again before anything new, so the state never has a gap below its applied
                // index.
                let applied = state.applied(g)?.unwrap_or(0);
                for j in applied + 1..=last {
                    let mut wb = WriteBatch::new();
                    wb.put(Cf::Data, state_key(g, j), payload(g, j, state_value))
                        .set_applied(g, j);
                    state.write(wb)?;
                }
                let mut i = last + 1;
                loop {
                    let mut b = LogBatch::new();
                    b.append(g, vec![LogEntry::new(i, 1, payload(g, i, value_size))]);
                    log.write(b)?;
                    say(format!("ack {g} {i}"));
                    let mut wb = WriteBatch::new();
                    wb.put(Cf::Data, state_key(g, i), payload(g, i, state_value))
                        .set_applied(g, i);
                    state.write(wb)?;
                    if flush_every > 0 && i % flush_every == 0 {
                        state.flush()?;
                        say(format!("flushed {g} {i}"));
                    }
                    if g == 0 && i % 97 == 0 {
                        let mut b = LogBatch::new();
                        b.compact(g, i - 50);
                        log.write(b)?;
                        say(format!("compacted {g} {}", i - 50));
                        log.gc()?;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("torture thread panicked")?;
    }
    Ok(())
}
