//! The state-engine contract, run against RocksDB and the in-memory engine.

use crate::harness::{MemState, RocksState, StateHarness};
use tessera_storage::{Cf, KeyRange, StateEngine, WriteBatch};

fn collect(e: &dyn StateEngine, cf: Cf, range: KeyRange, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    e.scan(cf, &range, limit, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    out
}

pub fn batches_are_atomic_across_families<H: StateHarness>(mut h: H) {
    let e = h.open();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "k1", "v1")
        .put(Cf::Lock, "k1", "lock")
        .put(Cf::Txn, "t1", "rec");
    b.set_applied(3, 17);
    e.write(b).unwrap();
    assert_eq!(e.get(Cf::Data, b"k1").unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(
        e.get(Cf::Lock, b"k1").unwrap().as_deref(),
        Some(&b"lock"[..])
    );
    assert_eq!(
        e.get(Cf::Txn, b"k1").unwrap(),
        None,
        "families are separate key spaces"
    );
    assert_eq!(e.applied(3).unwrap(), Some(17));
    assert_eq!(e.applied(4).unwrap(), None);
    let mut b = WriteBatch::new();
    b.delete(Cf::Data, "k1").put(Cf::Data, "k2", "v2");
    e.write(b).unwrap();
    assert_eq!(e.get(Cf::Data, b"k1").unwrap(), None);
    assert_eq!(e.get(Cf::Data, b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
}

pub fn scans_respect_ranges_limits_and_order<H: StateHarness>(mut h: H) {
    let e = h.open();
    let mut b = WriteBatch::new();
    for i in (0..50u32).rev() {
        b.put(Cf::Data, format!("key{i:03}"), i.to_string());
    }
    e.write(b).unwrap();
    let r = collect(
        &e,
        Cf::Data,
        KeyRange::new("key010", Some(b"key020".to_vec())),
        usize::MAX,
    );
    assert_eq!(r.len(), 10);
    assert_eq!(r[0].0, b"key010");
    assert!(r.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(collect(&e, Cf::Data, KeyRange::all(), 7).len(), 7);
    assert_eq!(
        collect(&e, Cf::Data, KeyRange::new("key045", None), usize::MAX).len(),
        5
    );
    let mut seen = 0;
    e.scan(Cf::Data, &KeyRange::all(), usize::MAX, &mut |_, _| {
        seen += 1;
        seen < 3
    })
    .unwrap();
    assert_eq!(seen, 3, "the callback stops the scan");
}

pub fn range_deletion_removes_exactly_the_range<H: StateHarness>(mut h: H) {
    let e = h.open();
    let mut b = WriteBatch::new();
    for i in 0..20u32 {
        b.put(Cf::Data, format!("r{i:02}"), "x");
    }
    e.write(b).unwrap();
    let mut b = WriteBatch::new();
    b.delete_range(Cf::Data, "r05", "r15");
    e.write(b).unwrap();
    let keys: Vec<Vec<u8>> = collect(&e, Cf::Data, KeyRange::all(), usize::MAX)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 10);
    assert!(keys.contains(&b"r04".to_vec()) && keys.contains(&b"r15".to_vec()));
    assert!(!keys.contains(&b"r05".to_vec()) && !keys.contains(&b"r14".to_vec()));
}

pub fn snapshots_do_not_change<H: StateHarness>(mut h: H) {
    let e = h.open();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "a", "1").put(Cf::Data, "b", "1");
    e.write(b).unwrap();
    let snap = e.snapshot();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "a", "2")
        .delete(Cf::Data, "b")
        .put(Cf::Data, "c", "2");
    e.write(b).unwrap();
    assert_eq!(
        snap.get(Cf::Data, b"a").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        snap.get(Cf::Data, b"b").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    let mut keys = Vec::new();
    snap.scan(Cf::Data, &KeyRange::all(), usize::MAX, &mut |k, _| {
        keys.push(k.to_vec());
        true
    })
    .unwrap();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(e.get(Cf::Data, b"a").unwrap().as_deref(), Some(&b"2"[..]));
}

pub fn flush_makes_applied_durable<H: StateHarness>(mut h: H) {
    let e = h.open();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "k", "v1").set_applied(1, 10);
    e.write(b).unwrap();
    assert_eq!(e.durable_applied(1), 0, "nothing flushed yet");
    e.flush().unwrap();
    assert_eq!(e.durable_applied(1), 10);
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "k", "v2").set_applied(1, 11);
    e.write(b).unwrap();
    assert_eq!(
        e.durable_applied(1),
        10,
        "durable lags until the next flush"
    );
    assert_eq!(e.applied(1).unwrap(), Some(11));
    let e = h.crash(e);
    // Whatever survived, data and applied index agree (they were written in one batch).
    let applied = e
        .applied(1)
        .unwrap()
        .expect("flushed applied index survives");
    let v = e.get(Cf::Data, b"k").unwrap().unwrap();
    match applied {
        10 => assert_eq!(v, b"v1"),
        11 => assert_eq!(v, b"v2"),
        other => panic!("applied index {other} was never written"),
    }
    assert_eq!(
        e.durable_applied(1),
        applied,
        "what is on disk after restart is durable"
    );
}

pub fn checkpoints_are_complete_copies<H: StateHarness>(mut h: H) {
    let e = h.open();
    let mut b = WriteBatch::new();
    for i in 0..100u32 {
        b.put(Cf::Data, format!("c{i:03}"), vec![i as u8; 100]);
    }
    b.put(Cf::Raft, "meta", "m").set_applied(2, 99);
    e.write(b).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    e.checkpoint(&cp).unwrap();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "after", "x");
    e.write(b).unwrap();
    let c = h.open_checkpoint(&cp);
    assert_eq!(
        collect(&c, Cf::Data, KeyRange::all(), usize::MAX).len(),
        100
    );
    assert_eq!(c.get(Cf::Data, b"c042").unwrap(), Some(vec![42u8; 100]));
    assert_eq!(
        c.get(Cf::Raft, b"meta").unwrap().as_deref(),
        Some(&b"m"[..])
    );
    assert_eq!(c.applied(2).unwrap(), Some(99));
    assert_eq!(c.get(Cf::Data, b"after").unwrap(), None);
    assert!(
        e.checkpoint(&cp).is_err(),
        "an existing directory is refused"
    );
}

/// A batched point read answers each key in the order asked — sorted or not, misses and
/// repeats included — and sees only the column family it names.
pub fn multi_get_answers_in_order<H: StateHarness>(mut h: H) {
    let e = h.open();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "b", "2")
        .put(Cf::Data, "a", "1")
        .put(Cf::Lock, "c", "x");
    e.write(b).unwrap();
    let got = e
        .multi_get(Cf::Data, &[b"b", b"missing", b"a", b"b", b"c"])
        .unwrap();
    let want: Vec<Option<Vec<u8>>> = vec![
        Some(b"2".to_vec()),
        None,
        Some(b"1".to_vec()),
        Some(b"2".to_vec()),
        None,
    ];
    assert_eq!(got, want);
    // Sorted and distinct, as a run of reads asks (an engine may skip its own sort then).
    let got = e.multi_get(Cf::Data, &[b"a", b"b", b"c", b"d"]).unwrap();
    let want: Vec<Option<Vec<u8>>> = vec![Some(b"1".to_vec()), Some(b"2".to_vec()), None, None];
    assert_eq!(got, want);
    assert!(e.multi_get(Cf::Data, &[]).unwrap().is_empty());
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod mem { $( #[test] fn $case() { super::$case(super::MemState); } )* }
        mod rocks { $( #[test] fn $case() { super::$case(super::RocksState::new()); } )* }
    };
}

conformance!(
    batches_are_atomic_across_families,
    scans_respect_ranges_limits_and_order,
    range_deletion_removes_exactly_the_range,
    snapshots_do_not_change,
    flush_makes_applied_durable,
    checkpoints_are_complete_copies,
    multi_get_answers_in_order,
);

#[test]
fn mem_engine_crash_loses_exactly_the_unflushed_writes() {
    let e = tessera_storage::MemStateEngine::new();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "a", "1").set_applied(1, 1);
    e.write(b).unwrap();
    e.flush().unwrap();
    let mut b = WriteBatch::new();
    b.put(Cf::Data, "b", "2").set_applied(1, 2);
    e.write(b).unwrap();
    let c = e.crash_copy();
    assert_eq!(c.get(Cf::Data, b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(c.get(Cf::Data, b"b").unwrap(), None);
    assert_eq!(c.applied(1).unwrap(), Some(1));
}

#[test]
fn rocks_engine_directory_is_locked() {
    let mut h = RocksState::new();
    let _e = h.open();
    match tessera_storage::RocksStateEngine::open(tessera_storage::StateOptions::new(
        h.dir.path().join("db"),
    )) {
        Err(tessera_storage::Error::Locked(_)) => {}
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second open of a locked directory succeeded"),
    }
}
