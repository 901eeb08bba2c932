//! Kill -9 in the middle of writing: a child `tessera log-torture` appends to the log and
//! applies to RocksDB until SIGKILLed at varying moments (mid-write, mid-rotation, mid-GC).
//! After each kill the log must hold every entry it acknowledged (above the compaction mark,
//! which may be newer than the last one reported), and the state engine must hold a
//! consistent prefix at least as new as its last acknowledged flush.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tessera::testkit::{payload, state_key};
use tessera_storage::{
    Cf, FileLogEngine, LogEngine, LogOptions, RocksStateEngine, StateEngine, StateOptions,
};

const GROUPS: u64 = 3;
const VALUE: usize = 300;

#[derive(Default)]
struct Acked {
    entries: HashMap<u64, u64>,
    compacted: HashMap<u64, u64>,
    flushed: HashMap<u64, u64>,
}

/// Runs the torturer until it has acknowledged `acks` more lines (or 20 s pass), then kills it.
/// `extra` flags go to the child as they are.
fn run_and_kill(dir: &std::path::Path, io: &str, acks: usize, acked: &mut Acked, extra: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["log-torture", "--data-dir"])
        .arg(dir)
        .args([
            "--io",
            io,
            "--groups",
            &GROUPS.to_string(),
            "--value-size",
            &VALUE.to_string(),
        ])
        .args(["--segment-size", "65536"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tessera log-torture");
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    for line in stdout.lines() {
        let line = line.expect("read child stdout");
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (g, i): (u64, u64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        let slot = match parts[0] {
            "ack" => &mut acked.entries,
            "compacted" => &mut acked.compacted,
            "flushed" => &mut acked.flushed,
            other => panic!("unexpected line {other}"),
        };
        let v = slot.entry(g).or_default();
        *v = (*v).max(i);
        seen += 1;
        if seen >= acks || Instant::now() > deadline {
            break;
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
}

fn verify(dir: &std::path::Path, acked: &Acked) {
    let log = FileLogEngine::open(LogOptions::new(dir.join("raft-log")))
        .expect("log reopens after kill -9");
    for (g, last) in &acked.entries {
        // The child may have compacted (durably) right before the kill without getting to
        // report it; any mark must be one it requests (k·97 − 50), and never below what it
        // reported.
        let reported = acked.compacted.get(g).copied().unwrap_or(0);
        let in_log = log.compacted_to(*g);
        assert!(
            in_log >= reported,
            "group {g}: reported compaction {reported}, log at {in_log}"
        );
        assert!(
            in_log == 0 || (in_log + 50) % 97 == 0,
            "group {g}: compaction mark {in_log} was never requested"
        );
        let from = in_log.max(1);
        if from > *last {
            continue; // everything acknowledged was compacted away since
        }
        assert!(
            log.last_index(*g).unwrap_or(0) >= *last,
            "group {g}: acked {last}, log ends at {:?}",
            log.last_index(*g)
        );
        let mut out = Vec::new();
        log.entries(*g, from, last + 1, None, &mut out)
            .expect("acked entries readable");
        assert_eq!(out.len() as u64, last + 1 - from);
        for e in out {
            assert_eq!(
                e.data,
                payload(*g, e.index, VALUE),
                "group {g} entry {} corrupted",
                e.index
            );
        }
    }
    drop(log);
    let state = RocksStateEngine::open(StateOptions::new(dir.join("state")))
        .expect("state reopens after kill -9");
    for (g, flushed) in &acked.flushed {
        let applied = state
            .applied(*g)
            .unwrap()
            .expect("a flushed applied index survives");
        assert!(
            applied >= *flushed,
            "group {g}: flushed {flushed} but applied is {applied}"
        );
        // The applied index and the data it covers were flushed atomically.
        for i in [1, applied / 2 + 1, applied] {
            assert!(
                state.get(Cf::Data, &state_key(*g, i)).unwrap().is_some(),
                "group {g}: key {i} <= applied {applied} missing"
            );
        }
        assert!(
            state
                .get(Cf::Data, &state_key(*g, applied + 1))
                .unwrap()
                .is_none(),
            "group {g}: data beyond applied {applied}"
        );
    }
}

fn torture(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Acked::default();
    for (round, acks) in [150usize, 400, 37, 800, 5].into_iter().enumerate() {
        run_and_kill(dir.path(), io, acks, &mut acked, &[]);
        verify(dir.path(), &acked);
        assert!(
            !acked.entries.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
    }
    assert!(
        acked.compacted.contains_key(&0),
        "the runs were long enough to compact and GC"
    );
}

/// Without explicit flushes only RocksDB's own flushes (memtables full, several merged into
/// one file) make state durable. After a kill each group's state must still be exactly the
/// keys up to its applied index: the applied index and its data reach disk in the same
/// flush, with nothing of a later write.
#[test]
fn sigkill_after_only_automatic_state_flushes_leaves_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Acked::default();
    let extra = [
        "--state-flush-every",
        "0",
        "--state-value-size",
        "4096",
        "--state-buffer-bytes",
        "1048576",
    ];
    let mut kept_something = false;
    for acks in [3000usize, 1500, 4000] {
        run_and_kill(dir.path(), "auto", acks, &mut acked, &extra);
        assert!(acked.flushed.is_empty(), "the child flushed by itself");
        let state = RocksStateEngine::open(StateOptions::new(dir.path().join("state")))
            .expect("state reopens after kill -9");
        for g in 0..GROUPS {
            let applied = state.applied(g).unwrap().unwrap_or(0);
            kept_something |= applied > 0;
            for i in 1..=applied {
                assert!(
                    state.get(Cf::Data, &state_key(g, i)).unwrap().is_some(),
                    "group {g}: key {i} <= applied {applied} missing"
                );
            }
            assert!(
                state
                    .get(Cf::Data, &state_key(g, applied + 1))
                    .unwrap()
                    .is_none(),
                "group {g}: data beyond applied {applied}"
            );
        }
    }
    assert!(
        kept_something,
        "the runs wrote enough for RocksDB to flush by itself"
    );
}

#[test]
fn sigkill_loses_no_acknowledged_write_io_uring() {
    torture("auto");
}

#[test]
fn sigkill_loses_no_acknowledged_write_fallback() {
    torture("sync");
}

#[test]
fn second_process_gets_a_clear_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = FileLogEngine::open(LogOptions::new(dir.path().join("raft-log"))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["storage-check", "--batches", "1", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is locked by another process"),
        "stderr: {err}"
    );
}
