//! `tessera storage-check`: the storage layer end to end on this machine. Many threads (one
//! per simulated Raft group) append batches to one log engine — the writer merges them into
//! group commits — and apply each durable batch to the RocksDB state engine; then both are
//! closed, reopened and every entry and key verified. Prints the I/O backend, the
//! group-commit factor and throughput.

use crate::cli::StorageCheckArgs;
use crate::testkit::{payload, state_key};
use anyhow::{bail, ensure, Context};
use std::sync::Arc;
use std::time::Instant;
use tessera_storage::{
    Cf, FileLogEngine, LogBatch, LogEngine, LogEntry, LogOptions, RocksStateEngine, StateEngine,
    StateOptions, WriteBatch,
};

pub fn run(args: StorageCheckArgs) -> anyhow::Result<()> {
    ensure!(
        args.groups > 0 && args.batches > 0 && args.entries > 0,
        "groups, batches and entries must be > 0"
    );
    let log_dir = args.data_dir.join("raft-log");
    let state_dir = args.data_dir.join("state");
    let open_log = || {
        let mut o = LogOptions::new(&log_dir);
        o.io_mode = args.io.into();
        FileLogEngine::open(o).context("open raft log")
    };
    let log = Arc::new(open_log()?);
    let state = Arc::new(
        RocksStateEngine::open(StateOptions::new(&state_dir)).context("open state engine")?,
    );
    let st = log.status();
    println!("data dir        {}", args.data_dir.display());
    println!(
        "log I/O backend {}{}",
        st.backend,
        st.fallback_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let bases: Vec<u64> = (0..args.groups)
        .map(|g| log.last_index(g).unwrap_or(0))
        .collect();
    let (rounds0, batches0) = (st.sync_rounds, st.batches);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.groups)
        .map(|g| {
            let (log, state, base) = (log.clone(), state.clone(), bases[g as usize]);
            let (batches, per, size) = (args.batches, args.entries, args.value_size);
            std::thread::spawn(move || -> anyhow::Result<()> {
                for b in 0..batches {
                    let first = base + b * per + 1;
                    let entries = (first..first + per)
                        .map(|i| LogEntry::new(i, 1, payload(g, i, size)))
                        .collect();
                    let mut lb = LogBatch::new();
                    lb.append(g, entries);
                    log.write(lb)?;
                    let mut wb = WriteBatch::new();
                    for i in first..first + per {
                        wb.put(Cf::Data, state_key(g, i), payload(g, i, 16));
                    }
                    wb.set_applied(g, first + per - 1);
                    state.write(wb)?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    state.flush()?;
    let st = log.status();
    let (rounds, batches) = (st.sync_rounds - rounds0, st.batches - batches0);
    let entries = args.groups * args.batches * args.entries;
    println!(
        "wrote           {entries} entries of {} B in {batches} batches from {} threads",
        args.value_size, args.groups
    );
    println!(
        "group commit    {rounds} fdatasync rounds ({:.1} batches per round)",
        batches as f64 / rounds.max(1) as f64
    );
    println!(
        "throughput      {:.0} entries/s, {:.0} durable batches/s",
        entries as f64 / secs,
        batches as f64 / secs
    );
    drop(log);
    drop(state);
    let log = open_log()?;
    let state = RocksStateEngine::open(StateOptions::new(&state_dir))?;
    for g in 0..args.groups {
        let last = bases[g as usize] + args.batches * args.entries;
        ensure!(
            log.last_index(g) == Some(last),
            "group {g}: last index {:?}, expected {last}",
            log.last_index(g)
        );
        let mut out = Vec::new();
        log.entries(g, bases[g as usize] + 1, last + 1, None, &mut out)?;
        for e in &out {
            if e.data != payload(g, e.index, args.value_size) {
                bail!(
                    "group {g}: entry {} has the wrong payload after reopen",
                    e.index
                );
            }
            ensure!(
                state.get(Cf::Data, &state_key(g, e.index))?.is_some(),
                "state key for {g}/{} missing",
                e.index
            );
        }
        ensure!(
            state.applied(g)? == Some(last),
            "group {g}: applied index not persisted"
        );
    }
    println!("verified        every entry and key after reopen");
    let st = log.status();
    println!(
        "log             {} segment(s), {} bytes, {} group(s)",
        st.segments, st.bytes, st.groups
    );
    Ok(())
}
