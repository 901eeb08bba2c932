//! Model-based property tests: random append / overwrite / compact / hard-state / GC /
//! restart sequences run against a log engine and against a plain in-memory model; after
//! every step the engine must answer exactly as the model does.

use crate::harness::{payload, FileLog, LogHarness, MemLog};
use proptest::prelude::*;
use std::collections::BTreeMap;
use tessera_storage::{Error, HardState, IoMode, LogBatch, LogEngine, LogEntry};

#[derive(Clone, Debug)]
enum Op {
    /// Start `back` entries before the end (clamped), or leave a gap when `gap`.
    Append {
        group: u64,
        back: u64,
        n: u64,
        size: usize,
        gap: bool,
    },
    Compact {
        group: u64,
        ahead: u64,
    },
    Reset {
        group: u64,
        ahead: u64,
    },
    HardState {
        group: u64,
        term: u64,
        commit: u64,
    },
    Gc,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3u64, 0..4u64, 1..6u64, 0..600usize, prop::bool::weighted(0.05))
            .prop_map(|(group, back, n, size, gap)| Op::Append { group, back, n, size, gap }),
        1 => (0..3u64, 0..10u64).prop_map(|(group, ahead)| Op::Compact { group, ahead }),
        1 => (0..3u64, 0..10u64).prop_map(|(group, ahead)| Op::Reset { group, ahead }),
        1 => (0..3u64, 0..100u64, 0..100u64).prop_map(|(group, term, commit)| Op::HardState { group, term, commit }),
        1 => Just(Op::Gc),
        1 => Just(Op::Restart),
    ]
}

#[derive(Default, Debug)]
struct ModelGroup {
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    compacted: u64,
    hs: Option<HardState>,
    term: u64,
}

impl ModelGroup {
    fn first(&self) -> Option<u64> {
        self.entries.keys().next().copied()
    }
    fn last(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }
    fn can_append(&self, first: u64) -> bool {
        first >= 1
            && first >= self.compacted
            && match (self.first(), self.last()) {
                (Some(f), Some(l)) => first >= f && first <= l + 1,
                _ => true,
            }
    }
}

fn check(e: &impl LogEngine, model: &BTreeMap<u64, ModelGroup>) {
    for (g, m) in model {
        assert_eq!(e.first_index(*g), m.first(), "first index of group {g}");
        assert_eq!(e.last_index(*g), m.last(), "last index of group {g}");
        assert_eq!(
            e.compacted_to(*g),
            m.compacted,
            "compaction mark of group {g}"
        );
        assert_eq!(e.hard_state(*g), m.hs, "hard state of group {g}");
        if let (Some(f), Some(l)) = (m.first(), m.last()) {
            let mut out = Vec::new();
            e.entries(*g, f, l + 1, None, &mut out).expect("read all");
            let got: Vec<(u64, u64, &[u8])> =
                out.iter().map(|x| (x.index, x.term, &x.data[..])).collect();
            let want: Vec<(u64, u64, &[u8])> = m
                .entries
                .iter()
                .map(|(i, (t, d))| (*i, *t, &d[..]))
                .collect();
            assert_eq!(got, want, "entries of group {g}");
        }
        if m.compacted > 1 {
            assert!(matches!(
                e.term(*g, m.compacted - 1),
                Err(Error::Compacted { .. })
            ));
        }
    }
}

fn run<H: LogHarness>(mut h: H, ops: Vec<Op>) {
    let mut e = h.open();
    let mut model: BTreeMap<u64, ModelGroup> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Append {
                group,
                back,
                n,
                size,
                gap,
            } => {
                let m = model.entry(group).or_default();
                let next = m.last().map_or(m.compacted.max(1), |l| l + 1);
                let first = if gap {
                    next + 2
                } else {
                    next.saturating_sub(back)
                        .max(m.first().unwrap_or(1))
                        .max(m.compacted)
                        .max(1)
                };
                m.term += 1;
                let es: Vec<LogEntry> = (first..first + n)
                    .map(|i| LogEntry::new(i, m.term, payload(group, i, m.term, size)))
                    .collect();
                let mut b = LogBatch::new();
                b.append(group, es.clone());
                let res = e.write(b);
                if m.can_append(first) {
                    res.expect("valid append");
                    m.entries.retain(|i, _| *i < first);
                    for x in es {
                        m.entries.insert(x.index, (x.term, x.data.to_vec()));
                    }
                } else {
                    assert!(
                        matches!(res, Err(Error::InvalidBatch(_))),
                        "invalid append at {first}: {res:?}"
                    );
                }
            }
            Op::Compact { group, ahead } => {
                let m = model.entry(group).or_default();
                let to = m.first().unwrap_or(m.compacted) + ahead;
                let mut b = LogBatch::new();
                b.compact(group, to);
                e.write(b).expect("compact");
                if to > m.compacted {
                    m.compacted = to;
                    m.entries.retain(|i, _| *i >= to);
                }
            }
            Op::Reset { group, ahead } => {
                let m = model.entry(group).or_default();
                let to = m.last().unwrap_or(m.compacted) + ahead;
                let mut b = LogBatch::new();
                b.reset(group, to);
                e.write(b).expect("reset");
                m.entries.clear();
                m.compacted = m.compacted.max(to);
            }
            Op::HardState {
                group,
                term,
                commit,
            } => {
                let hs = HardState {
                    term,
                    vote: group,
                    commit,
                };
                let mut b = LogBatch::new();
                b.set_hard_state(group, hs);
                e.write(b).expect("hard state");
                model.entry(group).or_default().hs = Some(hs);
            }
            Op::Gc => {
                e.gc().expect("gc");
            }
            Op::Restart => e = h.restart(e),
        }
        check(&e, &model);
    }
    let e = h.restart(e);
    check(&e, &model);
}

fn small_segments(mode: IoMode) -> FileLog {
    let mut h = FileLog::new(mode);
    h.segment_size = 2048;
    // Fold almost every sealed segment so the GC base is rebuilt often.
    h.gc_rewrite_ratio = 0.9;
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn file_engine_io_uring_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(small_segments(IoMode::Auto), ops);
    }

    #[test]
    fn file_engine_fallback_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(small_segments(IoMode::Sync), ops);
    }

    #[test]
    fn mem_engine_matches_model(ops in prop::collection::vec(op(), 1..80)) {
        run(MemLog, ops);
    }
}

#[test]
fn regression_compact_then_gc_then_hard_state() {
    use Op::*;
    let ops = vec![
        Append {
            group: 2,
            back: 0,
            n: 3,
            size: 0,
            gap: false,
        },
        Append {
            group: 0,
            back: 0,
            n: 1,
            size: 0,
            gap: false,
        },
        Append {
            group: 2,
            back: 0,
            n: 5,
            size: 379,
            gap: false,
        },
        Compact { group: 2, ahead: 7 },
        Gc,
        HardState {
            group: 0,
            term: 76,
            commit: 8,
        },
    ];
    run(small_segments(IoMode::Sync), ops);
}

#[test]
fn regression_overwrite_compact_overwrite_then_gc() {
    use Op::*;
    let ops = vec![
        Append {
            group: 0,
            back: 0,
            n: 3,
            size: 87,
            gap: false,
        },
        Append {
            group: 0,
            back: 3,
            n: 1,
            size: 0,
            gap: false,
        },
        Append {
            group: 1,
            back: 0,
            n: 1,
            size: 44,
            gap: false,
        },
        Compact { group: 0, ahead: 0 },
        Append {
            group: 0,
            back: 0,
            n: 3,
            size: 255,
            gap: false,
        },
        Append {
            group: 0,
            back: 0,
            n: 1,
            size: 589,
            gap: false,
        },
        Append {
            group: 0,
            back: 3,
            n: 5,
            size: 121,
            gap: false,
        },
        Gc,
    ];
    run(small_segments(IoMode::Sync), ops);
}
