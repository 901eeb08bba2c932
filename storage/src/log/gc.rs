//! Segment garbage collection, run holding the writer lock (so no append races it).
//!
//! Replay applies records index by index, so the log means the same thing if the oldest
//! segments are replaced by just their live content, as long as that content is replayed
//! before everything that came after it. GC therefore folds a prefix of the sealed segments
//! (oldest first, while each one is mostly dead) together with the previous base into a new
//! base, segment 0: the live entries (in runs), and the latest hard state and compaction
//! mark of every group whose latest one lived there. The base is written to a temp file,
//! renamed into place, the index is pointed at it, the manifest drops the folded segments,
//! and their files are deleted. A crash between those steps leaves a log that replays to
//! the same state (the folded segments merely repeat what the base holds).

use super::batch::LogBatch;
use super::index::EntryMeta;
use super::record::{encode_batch, frame_record, segment_header, RECORD_HEADER_LEN};
use super::segment::{fsync_dir, install_temp, segment_path, write_manifest, write_temp, BASE_SEQ};
use super::writer::Writer;
use super::LogEntry;
use crate::{Error, Result};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

/// What one GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Sealed segments folded into the base and deleted.
    pub segments_deleted: usize,
    /// Live bytes copied into the new base (0 when no base was written).
    pub bytes_rewritten: u64,
    /// File bytes freed (old sizes minus the new base).
    pub bytes_reclaimed: u64,
}

/// Batches written into the base are cut at this many bytes of entry data.
const BASE_RECORD_BYTES: usize = 4 << 20;

impl Writer {
    pub(crate) fn gc(&mut self) -> Result<GcStats> {
        if let Some(why) = self.shared.poisoned.lock().clone() {
            return Err(Error::Poisoned(why));
        }
        let fold = self.choose_prefix()?;
        if fold.is_empty() {
            return Ok(GcStats::default());
        }
        let mut old_bytes = 0;
        for seq in self
            .segments
            .iter()
            .filter(|s| **s == BASE_SEQ || fold.contains(s))
        {
            old_bytes += file_size(&self.shared.dir, *seq)?;
        }
        let (base, moved) = self.build_base(&fold)?;
        let base_path = segment_path(&self.shared.dir, BASE_SEQ);
        let tmp = write_temp(&base_path, &base)?;
        {
            // Readers open files under the index lock: swap the file and the offsets together.
            let mut index = self.shared.index.write();
            install_temp(&tmp, &base_path)?;
            for (group, idx, meta) in &moved {
                if let Some(g) = index.get_mut(group) {
                    g.relocate(*idx, *meta);
                }
            }
            for g in index.values_mut() {
                if g.hard_state_seg.is_some_and(|s| fold.contains(&s)) {
                    g.hard_state_seg = Some(BASE_SEQ);
                }
                if g.compact_seg.is_some_and(|s| fold.contains(&s)) {
                    g.compact_seg = Some(BASE_SEQ);
                }
            }
            let mut files = self.shared.files.lock();
            files.remove(&BASE_SEQ);
            for s in &fold {
                files.remove(s);
            }
        }
        fsync_dir(&self.shared.dir)?;
        let mut keep = vec![BASE_SEQ];
        keep.extend(
            self.segments
                .iter()
                .copied()
                .filter(|s| *s != BASE_SEQ && !fold.contains(s)),
        );
        write_manifest(&self.shared.dir, &keep)?;
        self.segments = keep;
        for s in &fold {
            let p = segment_path(&self.shared.dir, *s);
            std::fs::remove_file(&p)
                .map_err(|e| Error::io(format!("remove {}", p.display()), e))?;
        }
        fsync_dir(&self.shared.dir)?;
        let new_bytes = base.len() as u64;
        let stats = GcStats {
            segments_deleted: fold.len(),
            bytes_rewritten: new_bytes,
            bytes_reclaimed: old_bytes.saturating_sub(new_bytes),
        };
        self.shared
            .segment_count
            .store(self.segments.len(), Ordering::Relaxed);
        self.shared
            .bytes
            .fetch_sub(stats.bytes_reclaimed, Ordering::Relaxed);
        Ok(stats)
    }

    /// The oldest sealed segments, in order, while each holds less live data than
    /// `gc_rewrite_ratio` of its size.
    fn choose_prefix(&self) -> Result<HashSet<u64>> {
        let mut live: HashMap<u64, u64> = HashMap::new();
        for g in self.shared.index.read().values() {
            for (_, m) in g.entries() {
                *live.entry(m.seg).or_default() += m.len as u64 + 12;
            }
        }
        let ratio = self.shared.opts.gc_rewrite_ratio;
        let mut fold = HashSet::new();
        for &seq in self
            .segments
            .iter()
            .filter(|s| **s != BASE_SEQ && **s != self.active_seq)
        {
            let size = file_size(&self.shared.dir, seq)?;
            if (live.get(&seq).copied().unwrap_or(0) as f64) >= ratio * size as f64 {
                break;
            }
            fold.insert(seq);
        }
        Ok(fold)
    }

    /// The new base file's bytes, and where each moved entry now lives.
    #[allow(clippy::type_complexity)]
    fn build_base(&self, fold: &HashSet<u64>) -> Result<(Vec<u8>, Vec<(u64, u64, EntryMeta)>)> {
        let from = |s: u64| s == BASE_SEQ || fold.contains(&s);
        let index = self.shared.index.read();
        let mut groups: Vec<u64> = index.keys().copied().collect();
        groups.sort_unstable();
        let mut out = segment_header(BASE_SEQ).to_vec();
        let mut moved = Vec::new();
        let mut batch = LogBatch::new();
        let mut pending: Vec<(u64, u64, EntryMeta)> = Vec::new();
        let mut batch_bytes = 0;
        for group in groups {
            let g = &index[&group];
            let mut run: Vec<LogEntry> = Vec::new();
            for (idx, m) in g.entries().filter(|(_, m)| from(m.seg)) {
                if run.last().is_some_and(|e| e.index + 1 != idx) {
                    batch.append(group, std::mem::take(&mut run));
                }
                let data = self.read_entry(m)?;
                batch_bytes += data.len();
                run.push(LogEntry::new(idx, m.term, data));
                pending.push((group, idx, *m));
            }
            batch.append(group, run);
            if let (Some(hs), Some(s)) = (g.hard_state(), g.hard_state_seg) {
                if from(s) {
                    batch.set_hard_state(group, hs);
                }
            }
            if g.compact_seg.is_some_and(from) {
                batch.compact(group, g.compacted_to());
            }
            if batch_bytes >= BASE_RECORD_BYTES {
                flush_base_record(&mut out, &mut batch, &mut pending, &mut moved);
                batch_bytes = 0;
            }
        }
        flush_base_record(&mut out, &mut batch, &mut pending, &mut moved);
        Ok((out, moved))
    }

    fn read_entry(&self, m: &EntryMeta) -> Result<Bytes> {
        let path = segment_path(&self.shared.dir, m.seg);
        let f = std::fs::File::open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let mut buf = vec![0u8; m.len as usize];
        f.read_exact_at(&mut buf, m.offset)
            .map_err(|e| Error::io(format!("read {} at {}", path.display(), m.offset), e))?;
        Ok(Bytes::from(buf))
    }
}

fn flush_base_record(
    out: &mut Vec<u8>,
    batch: &mut LogBatch,
    pending: &mut Vec<(u64, u64, EntryMeta)>,
    moved: &mut Vec<(u64, u64, EntryMeta)>,
) {
    if batch.is_empty() {
        return;
    }
    let enc = encode_batch(batch);
    let rec_off = out.len() as u64;
    frame_record(out, &enc.payload, enc.crc, BASE_SEQ, rec_off);
    let base = rec_off + RECORD_HEADER_LEN as u64;
    for ((group, idx, old), doff) in pending.drain(..).zip(&enc.data_offsets) {
        let meta = EntryMeta {
            seg: BASE_SEQ,
            offset: base + *doff as u64,
            ..old
        };
        moved.push((group, idx, meta));
    }
    *batch = LogBatch::new();
}

fn file_size(dir: &std::path::Path, seq: u64) -> Result<u64> {
    let p = segment_path(dir, seq);
    std::fs::metadata(&p)
        .map(|m| m.len())
        .map_err(|e| Error::io(format!("stat {}", p.display()), e))
}
