//! Segment GC: folding dead prefixes into the base reclaims space, keeps every live entry
//! readable, and survives restarts and further folding.

use crate::harness::{entries, payload, FileLog, LogHarness};
use tessera_storage::{HardState, IoMode, LogBatch, LogEngine};

/// The hard state group 2 writes before going idle.
const IDLE_HS: HardState = HardState {
    term: 1,
    vote: 2,
    commit: 5,
};

fn fill(e: &impl LogEngine, groups: &[u64], from: u64, to: u64) {
    for i in from..=to {
        let mut b = LogBatch::new();
        for g in groups {
            b.append(*g, entries(*g, i, 1, 1, 300));
        }
        e.write(b).unwrap();
    }
}

fn check(e: &impl LogEngine, g: u64, first: u64, last: u64) {
    assert_eq!(
        (e.first_index(g), e.last_index(g)),
        (Some(first), Some(last)),
        "group {g}"
    );
    let mut out = Vec::new();
    e.entries(g, first, last + 1, None, &mut out).unwrap();
    for x in out {
        assert_eq!(
            x.data,
            payload(g, x.index, 1, 300),
            "group {g} entry {}",
            x.index
        );
    }
}

#[test]
fn gc_folds_dead_segments_and_keeps_live_entries() {
    let mut h = FileLog::new(IoMode::Auto);
    h.segment_size = 16 << 10;
    let e = h.open();
    // Group 1 is busy and compacts; group 2 wrote a little early on and then went idle.
    fill(&e, &[1, 2], 1, 5);
    let mut b = LogBatch::new();
    b.set_hard_state(2, IDLE_HS);
    e.write(b).unwrap();
    fill(&e, &[1], 6, 400);
    let before = e.status();
    assert!(before.segments > 5, "{before:?}");
    let mut b = LogBatch::new();
    b.compact(1, 390);
    e.write(b).unwrap();
    let stats = e.gc().unwrap();
    let after = e.status();
    assert!(stats.segments_deleted > 3, "{stats:?}");
    assert!(after.segments < before.segments);
    assert!(
        after.bytes < before.bytes / 2,
        "before {before:?} after {after:?}"
    );
    check(&e, 1, 390, 400);
    check(&e, 2, 1, 5);
    assert_eq!(e.hard_state(2), Some(IDLE_HS));
    let e = h.restart(e);
    check(&e, 1, 390, 400);
    check(&e, 2, 1, 5);
    assert_eq!(e.hard_state(2), Some(IDLE_HS));
    // A second round folds the old base together with newly dead segments.
    fill(&e, &[1], 401, 800);
    let mut b = LogBatch::new();
    b.compact(1, 795);
    e.write(b).unwrap();
    let stats = e.gc().unwrap();
    assert!(stats.segments_deleted > 3, "{stats:?}");
    check(&e, 2, 1, 5);
    check(&e, 1, 795, 800);
    let e = h.restart(e);
    check(&e, 2, 1, 5);
    check(&e, 1, 795, 800);
    assert_eq!(e.hard_state(2), Some(IDLE_HS));
}

#[test]
fn gc_leaves_mostly_live_segments_alone() {
    let mut h = FileLog::new(IoMode::Sync);
    h.segment_size = 16 << 10;
    let e = h.open();
    fill(&e, &[1], 1, 200);
    let before = e.status();
    let stats = e.gc().unwrap();
    assert_eq!(stats.segments_deleted, 0, "nothing is dead yet");
    assert_eq!(e.status().segments, before.segments);
    check(&e, 1, 1, 200);
}

/// Compacts group 1 below `to` and records a hard state, in one batch.
fn compact_with_hard_state(e: &impl LogEngine, to: u64, term: u64, commit: u64) {
    let mut b = LogBatch::new();
    b.compact(1, to).set_hard_state(
        1,
        HardState {
            term,
            vote: 1,
            commit,
        },
    );
    e.write(b).unwrap();
}

/// A crash after GC installed the new base but before the manifest dropped the folded
/// segments: the base is replayed first, then the folded segments again. Same state.
#[test]
fn crash_between_base_install_and_manifest_update_replays_to_the_same_state() {
    let mut h = FileLog::new(IoMode::Sync);
    h.segment_size = 16 << 10;
    let e = h.open();
    fill(&e, &[1, 2], 1, 5);
    fill(&e, &[1], 6, 200);
    compact_with_hard_state(&e, 150, 1, 150);
    e.gc().unwrap();
    fill(&e, &[1], 201, 400);
    compact_with_hard_state(&e, 390, 2, 399);
    drop(e);
    let backup = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path, skip_base: bool| {
        for ent in std::fs::read_dir(from).unwrap() {
            let p = ent.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name == "LOCK" || (skip_base && name == "0000000000000000.seg") {
                continue;
            }
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    };
    copy(h.dir.path(), backup.path(), false);
    let e = h.open();
    let stats = e.gc().unwrap();
    assert!(stats.segments_deleted > 0);
    drop(e);
    // Put back the old manifest and folded segments, keeping the new base.
    copy(backup.path(), h.dir.path(), true);
    let e = h.open();
    check(&e, 1, 390, 400);
    check(&e, 2, 1, 5);
    assert_eq!(
        e.hard_state(1),
        Some(HardState {
            term: 2,
            vote: 1,
            commit: 399
        })
    );
    assert_eq!(e.compacted_to(1), 390);
    // And the engine carries on: GC again, restart, same state.
    e.gc().unwrap();
    let e = h.restart(e);
    check(&e, 1, 390, 400);
    check(&e, 2, 1, 5);
}
