//! Opening a log directory: check the manifest against the files, replay every segment in
//! order into a fresh index, verify every record's checksums, and cut a torn tail off the
//! last segment. Anything else that fails a check — a bad record followed by valid ones, a
//! damaged sealed segment, a missing segment — is an [`Error::Corruption`] or
//! [`Error::MissingSegment`] naming the file and offset; nothing is silently dropped.

use super::index::{EntryMeta, GroupIndex};
use super::record::{
    decode_payload, padded_len, parse_header, DecodedOp, MAX_PAYLOAD, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
use super::segment::{
    create_segment, list_dir, read_manifest, segment_path, write_manifest, BASE_SEQ,
};
use super::HardState;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub(crate) struct Recovered {
    pub groups: HashMap<u64, GroupIndex>,
    /// Live segments, oldest first; the last one is where appends continue.
    pub segments: Vec<u64>,
    /// End of valid data in the last segment.
    pub active_len: u64,
    /// Bytes in all live segments.
    pub bytes: u64,
}

pub(crate) fn recover(dir: &Path) -> Result<Recovered> {
    let (on_disk, temps) = list_dir(dir)?;
    for t in temps {
        // An interrupted atomic replace (manifest or GC rewrite): the original is intact.
        std::fs::remove_file(&t).map_err(|e| Error::io(format!("remove {}", t.display()), e))?;
    }
    let mut segments = match read_manifest(dir)? {
        Some(list) => list,
        None if on_disk.is_empty() => Vec::new(),
        None => {
            return Err(Error::Corruption {
                file: dir.join("SEGMENTS"),
                offset: 0,
                reason: format!("{} segment files but no manifest", on_disk.len()),
            })
        }
    };
    for seq in &segments {
        if on_disk.binary_search(seq).is_err() {
            return Err(Error::MissingSegment(segment_path(dir, *seq)));
        }
    }
    for seq in on_disk.iter().filter(|s| !segments.contains(s)) {
        // Created by a rotation whose manifest update did not happen, or deleted from the
        // manifest by GC before the unlink: either way it holds nothing live.
        let p = segment_path(dir, *seq);
        tracing::warn!(
            "removing segment {} that the manifest does not list",
            p.display()
        );
        std::fs::remove_file(&p).map_err(|e| Error::io(format!("remove {}", p.display()), e))?;
    }
    if segments.last().is_none_or(|s| *s == BASE_SEQ) {
        // No active segment yet (segment 0 is GC's base, never appended to).
        let seq = on_disk.last().map_or(1, |s| s + 1).max(1);
        create_segment(dir, seq)?;
        segments.push(seq);
        write_manifest(dir, &segments)?;
    }
    let mut groups = HashMap::new();
    let mut bytes = 0;
    let mut active_len = 0;
    for (i, seq) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let end = replay_segment(dir, *seq, is_last, &mut groups)?;
        bytes += end;
        active_len = end;
    }
    let mut index = HashMap::with_capacity(groups.len());
    for (id, g) in groups {
        let g = g.finish().map_err(|why| Error::Corruption {
            file: dir.to_path_buf(),
            offset: 0,
            reason: format!("group {id}: {why}"),
        })?;
        if !g.is_empty() {
            index.insert(id, g);
        }
    }
    Ok(Recovered {
        groups: index,
        segments,
        active_len,
        bytes,
    })
}

/// Replays one segment; returns the end offset of its valid data.
fn replay_segment(
    dir: &Path,
    seq: u64,
    is_last: bool,
    groups: &mut HashMap<u64, ReplayGroup>,
) -> Result<u64> {
    let path = segment_path(dir, seq);
    let data =
        std::fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let corrupt = |offset: u64, reason: String| Error::Corruption {
        file: path.clone(),
        offset,
        reason,
    };
    let hdr = SEGMENT_HEADER_LEN as usize;
    if data.len() < hdr || &data[..8] != SEGMENT_MAGIC {
        return Err(corrupt(0, "bad segment header".into()));
    }
    let header_seq = u64::from_le_bytes(data[8..16].try_into().expect("8"));
    if header_seq != seq {
        return Err(corrupt(
            8,
            format!("segment header says {header_seq}, file name says {seq}"),
        ));
    }
    let mut off = hdr;
    while off < data.len() {
        let Some(rec) = valid_record_at(&data, seq, off) else {
            break;
        };
        let payload = &data[off + RECORD_HEADER_LEN..off + RECORD_HEADER_LEN + rec];
        let ops = decode_payload(payload).map_err(|why| corrupt(off as u64, why))?;
        let data_base = (off + RECORD_HEADER_LEN) as u64;
        for op in ops {
            apply(groups, op, seq, data_base);
        }
        off += padded_len(rec);
    }
    if off == data.len() {
        return Ok(off as u64);
    }
    if !is_last {
        return Err(corrupt(
            off as u64,
            "invalid record in a sealed segment".into(),
        ));
    }
    if data[off..].iter().all(|&b| b == 0) {
        // The unused rest of a pre-filled segment (see `spare`): nothing was written there.
        tracing::debug!("{}: pre-filled space from offset {off}", path.display());
    } else {
        if let Some(later) = first_valid_record_after(&data, seq, off) {
            return Err(corrupt(
                off as u64,
                format!("invalid record followed by a valid one at offset {later}"),
            ));
        }
        // A torn tail: the last write never completed, so it was never acknowledged.
        tracing::warn!(
            "truncating torn tail of {} at offset {off} ({} bytes)",
            path.display(),
            data.len() - off
        );
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    f.set_len(off as u64)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("truncate {}", path.display()), e))?;
    Ok(off as u64)
}

/// The payload length of a complete, checksum-valid record at `off` (padding included).
fn valid_record_at(data: &[u8], seq: u64, off: usize) -> Option<usize> {
    let h = parse_header(&data[off..], seq, off as u64)?;
    if h.len > MAX_PAYLOAD || data.len() - off < padded_len(h.len) {
        return None;
    }
    let payload = &data[off + RECORD_HEADER_LEN..off + RECORD_HEADER_LEN + h.len];
    (crc32c::crc32c(payload) == h.crc).then_some(h.len)
}

fn first_valid_record_after(data: &[u8], seq: u64, off: usize) -> Option<usize> {
    (off + 8..data.len())
        .step_by(8)
        .find(|&p| valid_record_at(data, seq, p).is_some())
}

/// A group's state during replay. Entries are kept sparse: replay applies each record's
/// operations index by index ("append at i" clears every index >= i, "compact to c" clears
/// every index < c), which gives the same final state whether or not dead entries of the
/// GC-folded prefix are present (see `gc`).
#[derive(Default)]
pub(crate) struct ReplayGroup {
    entries: BTreeMap<u64, EntryMeta>,
    compacted: u64,
    compact_seg: Option<u64>,
    hard_state: Option<(HardState, u64)>,
}

impl ReplayGroup {
    fn finish(mut self) -> std::result::Result<GroupIndex, String> {
        // Entries below the compaction mark are dead whatever order replay met them in.
        let live = self.entries.split_off(&self.compacted);
        GroupIndex::restore(live, self.compacted, self.compact_seg, self.hard_state)
    }
}

fn apply(groups: &mut HashMap<u64, ReplayGroup>, op: DecodedOp, seq: u64, data_base: u64) {
    match op {
        DecodedOp::Append {
            group,
            first,
            entries,
        } => {
            let g = groups.entry(group).or_default();
            g.entries.split_off(&first);
            for (k, (term, off, len)) in entries.into_iter().enumerate() {
                let meta = EntryMeta {
                    term,
                    seg: seq,
                    offset: data_base + off as u64,
                    len,
                };
                g.entries.insert(first + k as u64, meta);
            }
        }
        DecodedOp::HardState { group, hs } => {
            groups.entry(group).or_default().hard_state = Some((hs, seq))
        }
        DecodedOp::Reset { group, to } => {
            let g = groups.entry(group).or_default();
            g.compact_seg = Some(seq);
            g.compacted = g.compacted.max(to);
            g.entries.clear();
        }
        DecodedOp::Compact { group, to } => {
            let g = groups.entry(group).or_default();
            g.compact_seg = Some(seq);
            if to > g.compacted {
                g.compacted = to;
                g.entries = g.entries.split_off(&to);
            }
        }
    }
}
