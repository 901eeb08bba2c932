//! The log-engine contract (see `LogEngine`'s invariants), run against every implementation:
//! the in-memory engine and the file engine on both I/O backends.

use crate::harness::{entries, payload, FileLog, LogHarness};
use tessera_storage::{Error, HardState, IoMode, LogBatch, LogEngine};

fn append(e: &impl LogEngine, group: u64, first: u64, n: u64, term: u64) {
    let mut b = LogBatch::new();
    b.append(group, entries(group, first, n, term, 100));
    e.write(b).expect("append");
}

fn read_all(e: &impl LogEngine, group: u64) -> Vec<(u64, u64)> {
    let (Some(f), Some(l)) = (e.first_index(group), e.last_index(group)) else {
        return vec![];
    };
    let mut out = Vec::new();
    e.entries(group, f, l + 1, None, &mut out).expect("read");
    for x in &out {
        assert_eq!(
            x.data,
            payload(group, x.index, x.term, x.data.len()),
            "payload of {}",
            x.index
        );
    }
    out.iter().map(|x| (x.index, x.term)).collect()
}

pub fn append_and_read<H: LogHarness>(mut h: H) {
    let e = h.open();
    assert_eq!(e.last_index(1), None);
    append(&e, 1, 1, 10, 1);
    append(&e, 1, 11, 5, 2);
    assert_eq!((e.first_index(1), e.last_index(1)), (Some(1), Some(15)));
    assert_eq!(e.term(1, 10).unwrap(), 1);
    assert_eq!(e.term(1, 11).unwrap(), 2);
    let mut out = Vec::new();
    e.entries(1, 3, 9, None, &mut out).unwrap();
    assert_eq!(
        out.iter().map(|x| x.index).collect::<Vec<_>>(),
        (3..9).collect::<Vec<_>>()
    );
    out.clear();
    e.entries(1, 1, 16, Some(250), &mut out).unwrap();
    assert_eq!(
        out.len(),
        3,
        "max_bytes stops after the entry that crosses it"
    );
    out.clear();
    e.entries(1, 1, 16, Some(1), &mut out).unwrap();
    assert_eq!(
        out.len(),
        1,
        "at least one entry even when it exceeds max_bytes"
    );
    assert!(matches!(e.term(1, 16), Err(Error::Unavailable { .. })));
    assert!(matches!(e.term(2, 1), Err(Error::Unavailable { .. })));
    let e = h.restart(e);
    assert_eq!(read_all(&e, 1).len(), 15);
}

pub fn conflicting_suffix_is_overwritten<H: LogHarness>(mut h: H) {
    let e = h.open();
    append(&e, 7, 1, 10, 1);
    append(&e, 7, 5, 3, 2);
    let want: Vec<(u64, u64)> = (1..5)
        .map(|i| (i, 1))
        .chain((5..8).map(|i| (i, 2)))
        .collect();
    assert_eq!(read_all(&e, 7), want);
    let e = h.restart(e);
    assert_eq!(read_all(&e, 7), want);
    append(&e, 7, 8, 1, 3);
    assert_eq!(e.last_index(7), Some(8));
}

pub fn invalid_batches_are_rejected_whole<H: LogHarness>(mut h: H) {
    let e = h.open();
    append(&e, 1, 1, 5, 1);
    let before = read_all(&e, 1);
    let gap = {
        let mut b = LogBatch::new();
        b.append(2, entries(2, 1, 1, 1, 10));
        b.append(1, entries(1, 8, 1, 1, 10));
        b
    };
    assert!(matches!(e.write(gap), Err(Error::InvalidBatch(_))));
    assert_eq!(e.last_index(2), None, "a rejected batch leaves no trace");
    let mut holey = entries(1, 6, 3, 1, 10);
    holey.remove(1);
    let mut b = LogBatch::new();
    b.append(1, holey);
    assert!(matches!(e.write(b), Err(Error::InvalidBatch(_))));
    let mut b = LogBatch::new();
    b.append(3, entries(3, 0, 1, 1, 10));
    assert!(matches!(e.write(b), Err(Error::InvalidBatch(_))));
    let mut b = LogBatch::new();
    b.compact(1, 3);
    e.write(b).unwrap();
    let mut b = LogBatch::new();
    b.append(1, entries(1, 2, 1, 1, 10));
    assert!(
        matches!(e.write(b), Err(Error::InvalidBatch(_))),
        "append below the compaction mark"
    );
    assert_eq!(read_all(&e, 1), before[2..].to_vec());
    // Within one batch, later ops see earlier ones.
    let mut b = LogBatch::new();
    b.append(4, entries(4, 1, 2, 1, 10));
    b.append(4, entries(4, 3, 2, 1, 10));
    e.write(b).unwrap();
    assert_eq!(e.last_index(4), Some(4));
}

pub fn compaction_moves_first_index<H: LogHarness>(mut h: H) {
    let e = h.open();
    append(&e, 1, 1, 20, 1);
    let mut b = LogBatch::new();
    b.compact(1, 11);
    e.write(b).unwrap();
    assert_eq!(e.first_index(1), Some(11));
    assert_eq!(e.compacted_to(1), 11);
    assert!(matches!(
        e.term(1, 10),
        Err(Error::Compacted { first: 11, .. })
    ));
    let e = h.restart(e);
    assert_eq!(e.first_index(1), Some(11));
    assert_eq!(read_all(&e, 1).len(), 10);
    // Compaction past the end (snapshot install) empties the log; appends resume there.
    let mut b = LogBatch::new();
    b.compact(1, 100);
    e.write(b).unwrap();
    assert_eq!((e.first_index(1), e.last_index(1)), (None, None));
    assert_eq!(e.compacted_to(1), 100);
    append(&e, 1, 100, 3, 5);
    let e = h.restart(e);
    assert_eq!(read_all(&e, 1), vec![(100, 5), (101, 5), (102, 5)]);
}

pub fn reset_replaces_the_log<H: LogHarness>(mut h: H) {
    let e = h.open();
    append(&e, 1, 1, 30, 1);
    let mut b = LogBatch::new();
    b.reset(1, 21);
    e.write(b).unwrap();
    assert_eq!(
        (e.first_index(1), e.last_index(1), e.compacted_to(1)),
        (None, None, 21)
    );
    let mut b = LogBatch::new();
    b.append(1, entries(1, 15, 1, 2, 10));
    assert!(
        matches!(e.write(b), Err(Error::InvalidBatch(_))),
        "below the reset point"
    );
    append(&e, 1, 21, 2, 3);
    let e = h.restart(e);
    assert_eq!(read_all(&e, 1), vec![(21, 3), (22, 3)]);
    assert_eq!(e.compacted_to(1), 21);
}

pub fn hard_state_and_groups_survive_restart<H: LogHarness>(mut h: H) {
    let e = h.open();
    let mut b = LogBatch::new();
    for g in [5u64, 2, 9] {
        b.append(g, entries(g, 1, 3, 1, 50));
        b.set_hard_state(
            g,
            HardState {
                term: g,
                vote: 1,
                commit: 2,
            },
        );
    }
    e.write(b).unwrap();
    let mut b = LogBatch::new();
    b.set_hard_state(
        2,
        HardState {
            term: 7,
            vote: 3,
            commit: 3,
        },
    );
    e.write(b).unwrap();
    let e = h.restart(e);
    assert_eq!(e.groups(), vec![2, 5, 9]);
    assert_eq!(
        e.hard_state(2),
        Some(HardState {
            term: 7,
            vote: 3,
            commit: 3
        })
    );
    assert_eq!(
        e.hard_state(9),
        Some(HardState {
            term: 9,
            vote: 1,
            commit: 2
        })
    );
    assert_eq!(e.hard_state(1), None);
    for g in [5u64, 2, 9] {
        assert_eq!(read_all(&e, g).len(), 3);
    }
}

pub fn pipelined_submits_all_become_durable<H: LogHarness>(mut h: H) {
    let e = h.open();
    let mut tickets = Vec::new();
    for i in 0..200u64 {
        let mut b = LogBatch::new();
        b.append(i % 8, entries(i % 8, i / 8 + 1, 1, 1, 64));
        tickets.push(e.submit(b).unwrap());
    }
    for t in tickets {
        t.wait().unwrap();
    }
    every_batch_counted_and_back_after_restart(&mut h, e, 200, 25);
}

/// `batches` were counted in at most as many sync rounds, and each of groups 0..8 holds
/// `per_group` entries after a restart.
fn every_batch_counted_and_back_after_restart<H: LogHarness>(
    h: &mut H,
    e: H::E,
    batches: u64,
    per_group: usize,
) {
    let st = e.status();
    assert_eq!(st.batches, batches);
    assert!(st.sync_rounds <= st.batches);
    let e = h.restart(e);
    for g in 0..8 {
        assert_eq!(read_all(&e, g).len(), per_group, "group {g}");
    }
}

/// Blocking writes from many threads at once: each is durable when `write` returns, and
/// whoever holds the writer commits the batches queued behind it in the same round.
pub fn concurrent_writers_all_become_durable<H: LogHarness>(mut h: H) {
    let e = h.open();
    std::thread::scope(|s| {
        for group in 0..8u64 {
            let e = &e;
            s.spawn(move || {
                for i in 1..=40u64 {
                    let mut b = LogBatch::new();
                    b.append(group, entries(group, i, 1, 1, 64));
                    e.write(b).unwrap();
                    assert_eq!(e.last_index(group), Some(i), "visible once written");
                }
            });
        }
    });
    every_batch_counted_and_back_after_restart(&mut h, e, 320, 40);
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod mem { $( #[test] fn $case() { super::$case(crate::harness::MemLog); } )* }
        mod file_uring { $( #[test] fn $case() { super::$case(super::FileLog::new(super::IoMode::Auto)); } )* }
        mod file_sync { $( #[test] fn $case() { super::$case(super::FileLog::new(super::IoMode::Sync)); } )* }
    };
}

conformance!(
    append_and_read,
    conflicting_suffix_is_overwritten,
    invalid_batches_are_rejected_whole,
    compaction_moves_first_index,
    reset_replaces_the_log,
    hard_state_and_groups_survive_restart,
    pipelined_submits_all_become_durable,
    concurrent_writers_all_become_durable,
);
