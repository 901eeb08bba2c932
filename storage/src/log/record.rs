//! On-disk framing of the log: segment headers, CRC32C-checked records, and the payload
//! encoding of a batch. Decoding treats every byte as untrusted: lengths are checked against
//! what is left before anything is sliced or allocated.
//!
//! ```text
//! segment  := "TSRALOG1" seq:u64  record*
//! record   := magic:u32 len:u32 crc:u32 hcrc:u32 payload[len] pad-to-8
//!             crc  = crc32c(payload)
//!             hcrc = crc32c(magic len crc seq offset)   (ties a header to its place)
//! payload  := count:u32 op*
//! op       := group:u64 tag:u8 body
//!   tag 1 append     := first:u64 n:u32 (term:u64 len:u32 data[len])*
//!   tag 2 hard state         := term:u64 vote:u64 commit:u64
//!   tag 3 compact            := index:u64
//!   tag 4 reset              := index:u64   (drop all entries; resume at index)
//! ```
//! All integers are little-endian.

use super::batch::{GroupOp, LogBatch};
use super::HardState;

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"TSRALOG1";
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
pub(crate) const RECORD_MAGIC: u32 = 0x5452_4543;
pub(crate) const RECORD_HEADER_LEN: usize = 16;
/// Upper bound on one record's payload; larger batches are rejected before encoding.
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

const TAG_APPEND: u8 = 1;
const TAG_HARD_STATE: u8 = 2;
const TAG_COMPACT: u8 = 3;
const TAG_RESET: u8 = 4;

pub(crate) fn segment_header(seq: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&seq.to_le_bytes());
    h
}

/// Rounds a record's total size (header + payload) up to the 8-byte alignment.
pub(crate) fn padded_len(payload_len: usize) -> usize {
    (RECORD_HEADER_LEN + payload_len + 7) & !7
}

fn header_crc(len: u32, crc: u32, seq: u64, offset: u64) -> u32 {
    let mut b = [0u8; 28];
    b[..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&len.to_le_bytes());
    b[8..12].copy_from_slice(&crc.to_le_bytes());
    b[12..20].copy_from_slice(&seq.to_le_bytes());
    b[20..28].copy_from_slice(&offset.to_le_bytes());
    crc32c::crc32c(&b)
}

/// Appends a framed record for `payload` (placed at `offset` of segment `seq`) to `out`.
pub(crate) fn frame_record(
    out: &mut Vec<u8>,
    payload: &[u8],
    payload_crc: u32,
    seq: u64,
    offset: u64,
) {
    let len = payload.len() as u32;
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload_crc.to_le_bytes());
    out.extend_from_slice(&header_crc(len, payload_crc, seq, offset).to_le_bytes());
    out.extend_from_slice(payload);
    let pad = padded_len(payload.len()) - RECORD_HEADER_LEN - payload.len();
    out.extend_from_slice(&[0u8; 8][..pad]);
}

/// What a record header claims, once its own checksum has been verified.
pub(crate) struct RecordHeader {
    pub len: usize,
    pub crc: u32,
}

/// Parses and verifies the header at `buf[0..16]`; `None` if it is not a valid header for
/// this place (wrong magic, bad header checksum).
pub(crate) fn parse_header(buf: &[u8], seq: u64, offset: u64) -> Option<RecordHeader> {
    if buf.len() < RECORD_HEADER_LEN {
        return None;
    }
    let u = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().expect("4 bytes"));
    if u(0) != RECORD_MAGIC {
        return None;
    }
    let (len, crc, hcrc) = (u(4), u(8), u(12));
    if header_crc(len, crc, seq, offset) != hcrc {
        return None;
    }
    Some(RecordHeader {
        len: len as usize,
        crc,
    })
}

/// An encoded payload and, for every appended entry in op order, the offset of its data
/// within the payload.
pub(crate) struct EncodedBatch {
    pub payload: Vec<u8>,
    pub crc: u32,
    pub data_offsets: Vec<u32>,
}

/// Encodes a batch.
pub(crate) fn encode_batch(batch: &LogBatch) -> EncodedBatch {
    let mut p = Vec::with_capacity(64 + batch.data_bytes() + batch.ops.len() * 32);
    let mut data_offsets = Vec::new();
    p.extend_from_slice(&(batch.ops.len() as u32).to_le_bytes());
    for (group, op) in &batch.ops {
        p.extend_from_slice(&group.to_le_bytes());
        match op {
            GroupOp::Append(es) => {
                p.push(TAG_APPEND);
                p.extend_from_slice(&es[0].index.to_le_bytes());
                p.extend_from_slice(&(es.len() as u32).to_le_bytes());
                for e in es {
                    p.extend_from_slice(&e.term.to_le_bytes());
                    p.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
                    data_offsets.push(p.len() as u32);
                    p.extend_from_slice(&e.data);
                }
            }
            GroupOp::HardState(hs) => {
                p.push(TAG_HARD_STATE);
                p.extend_from_slice(&hs.term.to_le_bytes());
                p.extend_from_slice(&hs.vote.to_le_bytes());
                p.extend_from_slice(&hs.commit.to_le_bytes());
            }
            GroupOp::Compact(to) => {
                p.push(TAG_COMPACT);
                p.extend_from_slice(&to.to_le_bytes());
            }
            GroupOp::Reset(to) => {
                p.push(TAG_RESET);
                p.extend_from_slice(&to.to_le_bytes());
            }
        }
    }
    let crc = crc32c::crc32c(&p);
    EncodedBatch {
        payload: p,
        crc,
        data_offsets,
    }
}

/// One decoded operation; entries are located by offset within the payload, not copied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodedOp {
    Append {
        group: u64,
        first: u64,
        /// (term, data offset in payload, data length)
        entries: Vec<(u64, u32, u32)>,
    },
    HardState {
        group: u64,
        hs: HardState,
    },
    Compact {
        group: u64,
        to: u64,
    },
    Reset {
        group: u64,
        to: u64,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "payload truncated: need {n} bytes at {}, {} left",
                self.pos,
                self.buf.len() - self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
}

/// Decodes a payload whose CRC has already been verified. Errors describe the first
/// structural problem (a bug or a forged record, since the CRC matched).
pub(crate) fn decode_payload(payload: &[u8]) -> Result<Vec<DecodedOp>, String> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let count = r.u32()? as usize;
    // Each op takes at least 9 bytes: never reserve more than the payload can hold.
    let mut ops = Vec::with_capacity(count.min(payload.len() / 9));
    for _ in 0..count {
        let group = r.u64()?;
        match r.u8()? {
            TAG_APPEND => {
                let first = r.u64()?;
                let n = r.u32()? as usize;
                if first == 0 || first.checked_add(n as u64).is_none() {
                    return Err(format!("append with bad index range {first}+{n}"));
                }
                let mut entries = Vec::with_capacity(n.min((payload.len() - r.pos) / 12));
                for _ in 0..n {
                    let term = r.u64()?;
                    let len = r.u32()?;
                    let off = r.pos as u32;
                    r.take(len as usize)?;
                    entries.push((term, off, len));
                }
                ops.push(DecodedOp::Append {
                    group,
                    first,
                    entries,
                });
            }
            TAG_HARD_STATE => {
                let hs = HardState {
                    term: r.u64()?,
                    vote: r.u64()?,
                    commit: r.u64()?,
                };
                ops.push(DecodedOp::HardState { group, hs });
            }
            TAG_COMPACT => ops.push(DecodedOp::Compact {
                group,
                to: r.u64()?,
            }),
            TAG_RESET => ops.push(DecodedOp::Reset {
                group,
                to: r.u64()?,
            }),
            t => return Err(format!("unknown op tag {t}")),
        }
    }
    if r.pos != payload.len() {
        return Err(format!("{} trailing bytes", payload.len() - r.pos));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogEntry;

    #[test]
    fn batch_roundtrips_and_offsets_point_at_data() {
        let mut b = LogBatch::new();
        b.append(
            7,
            vec![
                LogEntry::new(5, 2, &b"abc"[..]),
                LogEntry::new(6, 3, &b""[..]),
            ],
        );
        b.set_hard_state(
            7,
            HardState {
                term: 3,
                vote: 1,
                commit: 5,
            },
        );
        b.compact(9, 44);
        let enc = encode_batch(&b);
        let ops = decode_payload(&enc.payload).unwrap();
        assert_eq!(ops.len(), 3);
        match &ops[0] {
            DecodedOp::Append {
                group,
                first,
                entries,
            } => {
                assert_eq!((*group, *first), (7, 5));
                assert_eq!(entries[0].0, 2);
                let (off, len) = (entries[0].1 as usize, entries[0].2 as usize);
                assert_eq!(&enc.payload[off..off + len], b"abc");
                assert_eq!(enc.data_offsets, vec![entries[0].1, entries[1].1]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(ops[2], DecodedOp::Compact { group: 9, to: 44 });
    }

    #[test]
    fn truncated_or_garbage_payloads_are_errors_not_panics() {
        let mut b = LogBatch::new();
        b.append(1, vec![LogEntry::new(1, 1, vec![9u8; 100])]);
        let enc = encode_batch(&b);
        for cut in 0..enc.payload.len() {
            assert!(decode_payload(&enc.payload[..cut]).is_err(), "cut at {cut}");
        }
        // A huge claimed count must not allocate or panic.
        let mut evil = u32::MAX.to_le_bytes().to_vec();
        evil.extend_from_slice(&[0u8; 3]);
        assert!(decode_payload(&evil).is_err());
    }

    #[test]
    fn header_is_bound_to_its_place() {
        let mut out = Vec::new();
        frame_record(&mut out, b"hello", crc32c::crc32c(b"hello"), 3, 16);
        assert_eq!(out.len(), padded_len(5));
        assert!(parse_header(&out, 3, 16).is_some());
        assert!(
            parse_header(&out, 3, 24).is_none(),
            "moved record must not verify"
        );
        assert!(
            parse_header(&out, 4, 16).is_none(),
            "other segment must not verify"
        );
    }
}
