//! The writer: the only code that appends to segment files, run by whichever thread holds
//! the engine's writer lock (see `file_engine`). It takes every batch queued since the last
//! round, validates them against the index, frames them into one buffer, issues ONE write
//! and ONE fdatasync (group commit), then publishes the new entries to the index and
//! resolves each batch's [`DurableTicket`]. The active segment is written with `O_DIRECT`
//! where the file system allows, in whole aligned blocks (see [`Writer::write_records`]).
//! A failed write or fsync poisons the engine: nothing more is accepted, because the file's
//! state is unknown.

use super::aligned::{AlignedBuf, DIRECT_ALIGN};
use super::batch::{GroupOp, LogBatch};
use super::file_engine::Shared;
use super::index::{Bounds, EntryMeta};
use super::io::SegmentIo;
use super::record::{
    frame_record, padded_len, EncodedBatch, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::segment::{create_segment, open_segment_append, open_segment_ro, write_manifest};
use crate::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Resolves when a submitted batch is durable (or failed).
#[derive(Debug)]
pub struct DurableTicket {
    state: TicketState,
}

#[derive(Debug)]
enum TicketState {
    Pending(Receiver<Result<()>>),
    Done(Option<Result<()>>),
}

impl DurableTicket {
    pub(crate) fn pending(rx: Receiver<Result<()>>) -> Self {
        DurableTicket {
            state: TicketState::Pending(rx),
        }
    }

    pub(crate) fn done(r: Result<()>) -> Self {
        DurableTicket {
            state: TicketState::Done(Some(r)),
        }
    }

    /// Blocks until the batch is durable.
    pub fn wait(self) -> Result<()> {
        match self.state {
            TicketState::Pending(rx) => rx.recv().unwrap_or(Err(Error::Closed)),
            TicketState::Done(r) => r.unwrap_or(Err(Error::Closed)),
        }
    }

    /// `Some` once the outcome is known, without blocking; the outcome is handed out once.
    pub fn try_wait(&mut self) -> Option<Result<()>> {
        match &mut self.state {
            TicketState::Pending(rx) => match rx.try_recv() {
                Ok(r) => Some(r),
                Err(crossbeam_channel::TryRecvError::Empty) => None,
                Err(crossbeam_channel::TryRecvError::Disconnected) => Some(Err(Error::Closed)),
            },
            TicketState::Done(r) => r.take(),
        }
    }
}

pub(crate) struct WriteReq {
    pub batch: LogBatch,
    pub enc: EncodedBatch,
    pub done: Sender<Result<()>>,
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub io: SegmentIo,
    pub active: File,
    pub active_seq: u64,
    pub active_len: u64,
    pub segments: Vec<u64>,
    buf: AlignedBuf,
    /// The active segment's file size: past `active_len` when rounds were written with zeros
    /// after them (see [`Writer::write_records`]).
    active_file_len: u64,
    /// The active segment is open with `O_DIRECT`: rounds are written in whole aligned
    /// blocks, starting with the block that holds `active_len`.
    direct: bool,
    /// The active segment's bytes from the aligned block start before `active_len` up to
    /// it (empty when not direct): a direct round rewrites them in front of its records.
    tail: Vec<u8>,
    /// New segments are opened for direct appends (asked for, and never refused yet).
    direct_allowed: bool,
    /// Tests: the next direct write fails as a device with a larger block size would.
    #[cfg(test)]
    pub(crate) refuse_next_direct_write: bool,
}

/// A direct write's `EINVAL`: the buffer, offset or length is not aligned enough for the
/// device (nothing was written).
fn refused_direct(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

impl Writer {
    /// A writer appending to segment `segments.last()`, whose records end at `active_len`.
    pub fn new(
        shared: Arc<Shared>,
        io: SegmentIo,
        segments: Vec<u64>,
        active_len: u64,
    ) -> Result<Self> {
        let active_seq = *segments.last().expect("recovery leaves an active segment");
        let (active, direct) = open_segment_append(&shared.dir, active_seq, shared.opts.direct_io)?;
        // Recovery cuts the active segment at its last record; trust the file, not that.
        let active_file_len = active.metadata().map_or(active_len, |m| m.len());
        let mut w = Writer {
            shared,
            io,
            active,
            active_seq,
            active_len,
            segments,
            buf: AlignedBuf::default(),
            active_file_len,
            direct,
            tail: Vec::new(),
            direct_allowed: direct,
            #[cfg(test)]
            refuse_next_direct_write: false,
        };
        w.shared.direct_io.store(direct, Ordering::Relaxed);
        w.load_tail()?;
        Ok(w)
    }

    /// Alignment of a round's file offset and length: a block when direct, else none.
    fn align(&self) -> u64 {
        if self.direct {
            DIRECT_ALIGN as u64
        } else {
            1
        }
    }

    /// Reads the active segment's partial last block (through a buffered handle: direct
    /// reads would need aligned buffers too).
    fn load_tail(&mut self) -> Result<()> {
        let start = self.active_len / self.align() * self.align();
        self.tail = vec![0; (self.active_len - start) as usize];
        if !self.tail.is_empty() {
            open_segment_ro(&self.shared.dir, self.active_seq)?
                .read_exact_at(&mut self.tail, start)
                .map_err(|e| Error::io(format!("read log segment {}", self.active_seq), e))?;
        }
        Ok(())
    }

    /// Writes queued batches in arrival order: as few rounds as `max_round_bytes` allows,
    /// each one write and one fdatasync.
    pub fn write_queued(&mut self, queued: Vec<WriteReq>) {
        let max_round = self.shared.opts.max_round_bytes;
        let mut round = Vec::new();
        let mut round_bytes = 0;
        for req in queued {
            if round_bytes >= max_round {
                self.write_round(std::mem::take(&mut round));
                round_bytes = 0;
            }
            round_bytes += req.enc.payload.len();
            round.push(req);
        }
        if !round.is_empty() {
            self.write_round(round);
        }
    }

    fn write_round(&mut self, round: Vec<WriteReq>) {
        if let Some(why) = self.shared.poisoned.lock().clone() {
            for req in round {
                let _ = req.done.send(Err(Error::Poisoned(why.clone())));
            }
            return;
        }
        let accepted = self.validate(round);
        if accepted.is_empty() {
            return;
        }
        let total: u64 = accepted
            .iter()
            .map(|r| padded_len(r.enc.payload.len()) as u64)
            .sum();
        let result = self.write_records(&accepted, total);
        match result {
            Ok(offsets) => {
                self.publish(&accepted, &offsets);
                self.shared.sync_rounds.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .batches
                    .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                for req in accepted {
                    let _ = req.done.send(Ok(()));
                }
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!("log write failed, engine poisoned: {why}");
                *self.shared.poisoned.lock() = Some(why.clone());
                for req in accepted {
                    let _ = req.done.send(Err(Error::Poisoned(why.clone())));
                }
            }
        }
    }

    /// Answers invalid batches with their error and returns the rest, each checked against
    /// the log as left by the batches before it in this round.
    fn validate(&self, round: Vec<WriteReq>) -> Vec<WriteReq> {
        let index = self.shared.index.read();
        let mut bounds: HashMap<u64, Bounds> = HashMap::new();
        let mut accepted = Vec::with_capacity(round.len());
        for req in round {
            let mut trial = bounds.clone();
            let mut verdict = Ok(());
            for (group, op) in req.batch.ops() {
                let b = trial
                    .entry(*group)
                    .or_insert_with(|| index.get(group).map(|g| g.bounds()).unwrap_or_default());
                verdict = match op {
                    GroupOp::Append(es) => b.append(*group, es[0].index, es.len() as u64),
                    GroupOp::Compact(to) => {
                        b.compact(*to);
                        Ok(())
                    }
                    GroupOp::Reset(to) => {
                        b.reset(*to);
                        Ok(())
                    }
                    GroupOp::HardState(_) => Ok(()),
                };
                if verdict.is_err() {
                    break;
                }
            }
            match verdict {
                Ok(()) => {
                    bounds = trial;
                    accepted.push(req);
                }
                Err(e) => {
                    let _ = req.done.send(Err(e));
                }
            }
        }
        accepted
    }

    /// Frames the round into one buffer, rotating first if it would overflow the segment;
    /// returns each record's file offset after the write and fdatasync succeeded.
    ///
    /// A direct round starts at the aligned block holding `active_len`, so it first rewrites
    /// the bytes already there (`tail`; identical, so a torn block write still leaves every
    /// earlier record intact), and ends on a block boundary, padded with zeros (recovery
    /// cuts an all-zero tail).
    fn write_records(&mut self, reqs: &[WriteReq], total: u64) -> Result<Vec<u64>> {
        if self.active_len > SEGMENT_HEADER_LEN
            && self.active_len + total > self.shared.opts.segment_size
        {
            self.rotate()?;
        }
        let align = self.align();
        let start = self.active_len / align * align;
        let records_end = self.active_len + total;
        let mut end = records_end;
        if self.shared.opts.prefill_segments && records_end > self.active_file_len {
            // This round grows the file: let it write zeros ahead too, so the next rounds
            // overwrite written blocks and their fdatasync need not commit a new file size
            // (ext4 journals that; it measured 2x the latency per round, docs/benchmarks.md).
            let ahead = (self.shared.opts.segment_size / 16).clamp(4 << 10, 1 << 20);
            end = (records_end + ahead).min(self.shared.opts.segment_size.max(records_end));
        }
        let end = end.div_ceil(align) * align;
        let out = self.buf.start((end - start) as usize);
        out.extend_from_slice(&self.tail);
        let mut offsets = Vec::with_capacity(reqs.len());
        let mut off = self.active_len;
        for req in reqs {
            offsets.push(off);
            frame_record(out, &req.enc.payload, req.enc.crc, self.active_seq, off);
            off += padded_len(req.enc.payload.len()) as u64;
        }
        debug_assert_eq!(off, records_end);
        self.buf.zero_fill_to((end - start) as usize);
        let mut written = self.write_buf(start);
        if self.direct && written.as_ref().is_err_and(refused_direct) {
            // The device wants a larger alignment than ours (or the file system changed its
            // mind): nothing was written, so go on buffered with the same bytes.
            tracing::warn!(
                "log segment {}: direct write refused ({}); appending buffered",
                self.active_seq,
                written
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            );
            let (file, _) = open_segment_append(&self.shared.dir, self.active_seq, false)?;
            self.active = file;
            self.direct = false;
            self.direct_allowed = false;
            self.shared.direct_io.store(false, Ordering::Relaxed);
            written = self.write_buf(start);
        }
        written.map_err(|e| Error::io(format!("append to log segment {}", self.active_seq), e))?;
        self.active_len = off;
        self.active_file_len = self.active_file_len.max(end);
        let align = self.align();
        let tail_start = (off / align * align - start) as usize;
        self.tail.clear();
        self.tail
            .extend_from_slice(&self.buf.bytes()[tail_start..(off - start) as usize]);
        self.shared.bytes.fetch_add(total, Ordering::Relaxed);
        self.buf
            .shrink_if_over(4 * self.shared.opts.max_round_bytes + (2 << 20));
        Ok(offsets)
    }

    /// Writes the round buffer at `start`, durably.
    fn write_buf(&mut self, start: u64) -> std::io::Result<()> {
        #[cfg(test)]
        if self.direct && std::mem::take(&mut self.refuse_next_direct_write) {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        self.io.write_durable(&self.active, start, self.buf.bytes())
    }

    pub(crate) fn rotate(&mut self) -> Result<()> {
        let seq = self.active_seq + 1;
        if self.active_file_len > self.active_len {
            // A sealed segment ends at its last record (recovery refuses anything after one):
            // cut the zeros written ahead before the manifest moves on.
            self.active
                .set_len(self.active_len)
                .and_then(|_| self.active.sync_data())
                .map_err(|e| Error::io(format!("seal log segment {}", self.active_seq), e))?;
        }
        drop(create_segment(&self.shared.dir, seq)?);
        let (file, direct) = open_segment_append(&self.shared.dir, seq, self.direct_allowed)?;
        let mut segs = self.segments.clone();
        segs.push(seq);
        write_manifest(&self.shared.dir, &segs)?;
        self.segments = segs;
        self.shared
            .segment_count
            .store(self.segments.len(), Ordering::Relaxed);
        self.shared
            .bytes
            .fetch_add(SEGMENT_HEADER_LEN, Ordering::Relaxed);
        self.active = file;
        self.direct = direct;
        self.shared.direct_io.store(direct, Ordering::Relaxed);
        self.active_seq = seq;
        self.active_len = SEGMENT_HEADER_LEN;
        self.active_file_len = SEGMENT_HEADER_LEN;
        self.load_tail()
    }

    fn publish(&self, reqs: &[WriteReq], offsets: &[u64]) {
        let limit = self.shared.opts.cache_bytes_per_group;
        let seg = self.active_seq;
        let mut index = self.shared.index.write();
        for (req, rec_off) in reqs.iter().zip(offsets) {
            let data_base = rec_off + RECORD_HEADER_LEN as u64;
            let mut data_offsets = req.enc.data_offsets.iter();
            for (group, op) in req.batch.ops() {
                let g = index.entry(*group).or_default();
                match op {
                    GroupOp::Append(es) => {
                        let metas: Vec<EntryMeta> = es
                            .iter()
                            .map(|e| EntryMeta {
                                term: e.term,
                                seg,
                                offset: data_base
                                    + *data_offsets.next().expect("one offset per entry") as u64,
                                len: e.data.len() as u32,
                            })
                            .collect();
                        let data: Vec<_> = es.iter().map(|e| e.data.clone()).collect();
                        g.append(es[0].index, &metas, Some(&data), limit);
                    }
                    GroupOp::HardState(hs) => g.set_hard_state(*hs, seg),
                    GroupOp::Compact(to) => g.compact(*to, seg),
                    GroupOp::Reset(to) => g.reset(*to, seg),
                }
            }
        }
    }
}
