//! Recovery of the file log from damage: a torn tail is cut off, anything else is a clear
//! error naming the file and offset; the directory lock and the I/O backend report.

use crate::harness::{entries, FileLog, LogHarness};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tessera_storage::{Error, FileLogEngine, IoBackend, IoMode, LogBatch, LogEngine, LogOptions};

fn write_batches(e: &impl LogEngine, group: u64, n: u64) {
    write_batches_from(e, group, 1, n)
}

fn write_batches_from(e: &impl LogEngine, group: u64, from: u64, to: u64) {
    for i in from..=to {
        let mut b = LogBatch::new();
        b.append(group, entries(group, i, 1, 1, 200));
        e.write(b).unwrap();
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn flip(p: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

/// Writes ten equal single-entry batches and closes the log: (its segment, one record's size).
fn ten_records(h: &mut FileLog) -> (PathBuf, u64) {
    let e = h.open();
    write_batches(&e, 1, 10);
    drop(e);
    // Reopening cuts the zeros the writer wrote ahead, so the file is exactly the records.
    drop(h.open());
    let seg = segments(h.dir.path()).pop().unwrap();
    let rec = (len(&seg) - 16) / 10;
    (seg, rec)
}

#[test]
fn zeros_written_ahead_are_overwritten_and_cut_at_seal_and_restart() {
    let mut h = FileLog::new(IoMode::Auto);
    h.segment_size = 4096;
    let e = h.open();
    write_batches(&e, 1, 3);
    let seg = segments(h.dir.path()).pop().unwrap();
    let grown = len(&seg);
    drop(e);
    let e = h.open();
    let valid = len(&seg);
    assert!(
        grown > valid,
        "rounds wrote zeros ahead: {grown} vs {valid}"
    );
    assert_eq!(e.last_index(1), Some(3));
    // Rounds now overwrite the zeros, across several segments; everything survives a restart,
    // which also proves each sealed segment ends at its last record (recovery refuses
    // anything but records in a sealed segment).
    write_batches_from(&e, 1, 4, 120);
    let all = segments(h.dir.path());
    assert!(all.len() > 3, "{all:?}");
    let e = h.restart(e);
    assert_eq!(e.last_index(1), Some(120));
    let mut got = Vec::new();
    e.entries(1, 1, 121, None, &mut got).unwrap();
    assert_eq!(got.len(), 120);
    assert!(got
        .iter()
        .zip(1..)
        .all(|(en, i)| en.index == i && en.data.len() == 200));
    drop(e);
    // Without pre-filling (and buffered) the file is exactly its records after every round.
    let mut h = FileLog::new(IoMode::Auto);
    let mut o = h.options();
    o.prefill_segments = false;
    o.direct_io = false;
    let e = FileLogEngine::open(o).unwrap();
    write_batches(&e, 1, 3);
    let seg = segments(h.dir.path()).pop().unwrap();
    let grown = len(&seg);
    drop(e);
    drop(h.open());
    assert_eq!(len(&seg), grown);
}

/// Direct appends write whole blocks: each round rewrites the partial block its records
/// start in, so rounds smaller than a block share blocks; nothing an earlier round wrote may
/// be lost by that, in the active segment or after rotations, and recovery cuts the
/// padding of the last block.
#[test]
fn direct_rounds_rewrite_their_partial_block_and_lose_nothing() {
    for io in [IoMode::Auto, IoMode::Sync] {
        let mut h = FileLog::new(io);
        h.segment_size = 16 << 10;
        let mut o = h.options();
        o.prefill_segments = false;
        let e = FileLogEngine::open(o.clone()).unwrap();
        // Where the file system refuses O_DIRECT, appends are buffered: the same records
        // must come back either way; only the block padding differs.
        let direct = e.status().direct_io;
        write_batches(&e, 1, 7);
        let seg = segments(h.dir.path()).pop().unwrap();
        if direct {
            assert_eq!(len(&seg) % 4096, 0, "{io:?}: rounds end on a block");
        }
        write_batches_from(&e, 1, 8, 300);
        assert!(segments(h.dir.path()).len() > 3, "{io:?}: rotated");
        drop(e);
        let e = FileLogEngine::open(o).unwrap();
        assert_eq!(e.last_index(1), Some(300), "{io:?}");
        let mut got = Vec::new();
        e.entries(1, 1, 301, None, &mut got).unwrap();
        let want: Vec<_> = (1..=300).flat_map(|i| entries(1, i, 1, 1, 200)).collect();
        assert_eq!(got, want, "{io:?}");
        write_batches_from(&e, 1, 301, 303);
        drop(e);
        let active = segments(h.dir.path()).pop().unwrap();
        let padded = len(&active);
        let e = h.open();
        assert_eq!(e.last_index(1), Some(303), "{io:?}");
        let exact = len(&active);
        if direct {
            assert_eq!(padded % 4096, 0, "{io:?}");
            assert!(
                exact <= padded && padded - exact < 4096,
                "{io:?}: reopening cut the padding after the last record: {padded} -> {exact}"
            );
        }
    }
}

#[test]
fn torn_tail_is_truncated_and_the_log_continues() {
    let mut h = FileLog::new(IoMode::Auto);
    let (seg, rec) = ten_records(&mut h);
    // Cut the last record in half: its write never completed.
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(16 + 9 * rec + rec / 2).unwrap();
    drop(f);
    let e = h.open();
    assert_eq!(e.last_index(1), Some(9));
    assert_eq!(len(&seg), 16 + 9 * rec, "the torn bytes are gone from disk");
    let mut b = LogBatch::new();
    b.append(1, entries(1, 10, 1, 2, 200));
    e.write(b).unwrap();
    let e = h.restart(e);
    assert_eq!(e.last_index(1), Some(10));
    assert_eq!(e.term(1, 10).unwrap(), 2);
}

#[test]
fn zeroed_or_garbage_tail_is_treated_as_torn() {
    let mut h = FileLog::new(IoMode::Sync);
    let e = h.open();
    write_batches(&e, 1, 5);
    drop(e);
    let seg = segments(h.dir.path()).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    f.write_all(b"TREC garbage that is not a record").unwrap();
    drop(f);
    let e = h.open();
    assert_eq!(e.last_index(1), Some(5));
}

#[test]
fn flipped_byte_mid_log_is_an_error_naming_file_and_offset() {
    let mut h = FileLog::new(IoMode::Auto);
    let (seg, rec) = ten_records(&mut h);
    let bad_record = 16 + 3 * rec;
    flip(&seg, bad_record + 40);
    match FileLogEngine::open(h.options()) {
        Err(Error::Corruption { file, offset, .. }) => {
            assert_eq!(file, seg);
            assert_eq!(offset, bad_record);
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a corrupted log opened silently"),
    }
    // Nothing was truncated: the acknowledged records after the damage are still on disk.
    assert_eq!(len(&seg), 16 + 10 * rec);
}

#[test]
fn corruption_in_a_sealed_segment_is_an_error() {
    let mut h = FileLog::new(IoMode::Auto);
    h.segment_size = 4096;
    let e = h.open();
    write_batches(&e, 1, 60);
    drop(e);
    let segs = segments(h.dir.path());
    assert!(segs.len() > 2);
    let f = OpenOptions::new().write(true).open(&segs[0]).unwrap();
    f.set_len(len(&segs[0]) - 7).unwrap();
    drop(f);
    match FileLogEngine::open(h.options()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, segs[0]),
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged sealed segment opened silently"),
    }
}

#[test]
fn missing_segment_is_an_error() {
    let mut h = FileLog::new(IoMode::Sync);
    h.segment_size = 4096;
    let e = h.open();
    write_batches(&e, 1, 60);
    drop(e);
    let segs = segments(h.dir.path());
    std::fs::remove_file(&segs[1]).unwrap();
    match FileLogEngine::open(h.options()) {
        Err(Error::MissingSegment(p)) => assert_eq!(p, segs[1]),
        Err(other) => panic!("expected a missing segment, got {other}"),
        Ok(_) => panic!("a log with a missing segment opened"),
    }
}

#[test]
fn data_directory_is_locked_while_open() {
    let h = FileLog::new(IoMode::Auto);
    let e = FileLogEngine::open(h.options()).unwrap();
    assert!(matches!(
        FileLogEngine::open(h.options()),
        Err(Error::Locked(_))
    ));
    drop(e);
    FileLogEngine::open(h.options()).expect("the lock is released on close");
}

#[test]
fn backend_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = LogOptions::new(dir.path().join("a"));
    o.io_mode = IoMode::Sync;
    let e = FileLogEngine::open(o).unwrap();
    let st = e.status();
    assert_eq!(st.backend, IoBackend::Sync);
    assert!(st.fallback_reason.is_some());
    let e = FileLogEngine::open(LogOptions::new(dir.path().join("b"))).unwrap();
    let st = e.status();
    match st.backend {
        IoBackend::IoUring => assert!(st.fallback_reason.is_none()),
        IoBackend::Sync => assert!(st.fallback_reason.is_some(), "a fallback always says why"),
        IoBackend::Memory => panic!("file engine reports memory"),
    }
    let mut o = LogOptions::new(dir.path().join("c"));
    o.io_mode = IoMode::IoUring;
    match FileLogEngine::open(o) {
        Ok(e) => assert_eq!(e.status().backend, IoBackend::IoUring),
        Err(err) => assert!(matches!(err, Error::IoUringUnavailable(_)), "{err}"),
    }
}
