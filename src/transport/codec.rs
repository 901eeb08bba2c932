//! Binary encoding of Raft messages between nodes, written by hand instead of protobuf
//! parsing: network input never reaches the protobuf 2 parser (which has an uncontrolled-
//! recursion advisory), every length is checked against the bytes left before anything is
//! sliced or allocated, and entry payloads are zero-copy slices of the received frame.
//!
//! ```text
//! batch    := from_node:u64 count:u32 (group:u64 message)*
//! message  := type:u8 to from term log_term index commit commit_term request_snapshot
//!             reject_hint:u64 priority:i64 reject:u8 context:bytes
//!             n:u32 entry* has_snapshot:u8 [snapshot]
//! entry    := type:u8 term:u64 index:u64 sync_log:u8 context:bytes data:bytes
//! snapshot := index:u64 term:u64 conf_state data:bytes
//! conf_state := voters:ids learners:ids voters_outgoing:ids learners_next:ids auto_leave:u8
//! bytes    := len:u32 byte*      ids := n:u32 u64*
//! ```
//! Little-endian throughout.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use protobuf::ProtobufEnum;
use raft::eraftpb::{
    ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};

/// A decode failure: the peer sent something that is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed raft message batch: {0}")]
pub struct DecodeError(pub String);

type DResult<T> = Result<T, DecodeError>;

fn err<T>(msg: impl Into<String>) -> DResult<T> {
    Err(DecodeError(msg.into()))
}

/// Raft messages for many groups, from one node to another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageBatch {
    pub from_node: u64,
    pub messages: Vec<(u64, Message)>,
}

pub fn encode_batch(batch: &MessageBatch, out: &mut BytesMut) {
    out.put_u64_le(batch.from_node);
    out.put_u32_le(batch.messages.len() as u32);
    for (group, m) in &batch.messages {
        out.put_u64_le(*group);
        encode_message(m, out);
    }
}

pub fn decode_batch(mut buf: Bytes) -> DResult<MessageBatch> {
    let from_node = get_u64(&mut buf)?;
    let n = get_u32(&mut buf)? as usize;
    // A message takes at least 100 bytes: never reserve more than the frame could hold.
    let mut messages = Vec::with_capacity(n.min(buf.remaining() / 100));
    for _ in 0..n {
        let group = get_u64(&mut buf)?;
        messages.push((group, decode_message(&mut buf)?));
    }
    if buf.has_remaining() {
        return err(format!("{} trailing bytes", buf.remaining()));
    }
    Ok(MessageBatch {
        from_node,
        messages,
    })
}

pub fn encode_message(m: &Message, out: &mut BytesMut) {
    out.put_u8(m.get_msg_type().value() as u8);
    for v in [
        m.to,
        m.from,
        m.term,
        m.log_term,
        m.index,
        m.commit,
        m.commit_term,
        m.request_snapshot,
        m.reject_hint,
    ] {
        out.put_u64_le(v);
    }
    out.put_i64_le(m.priority);
    out.put_u8(m.reject as u8);
    put_bytes(out, &m.context);
    out.put_u32_le(m.entries.len() as u32);
    for e in m.entries.iter() {
        encode_entry(e, out);
    }
    match m.snapshot.as_ref() {
        Some(s) if s.get_metadata().index > 0 || !s.data.is_empty() => {
            out.put_u8(1);
            encode_snapshot(s, out);
        }
        _ => out.put_u8(0),
    }
}

pub fn decode_message(buf: &mut Bytes) -> DResult<Message> {
    let t = get_u8(buf)?;
    let mut m = Message::default();
    m.set_msg_type(
        MessageType::from_i32(t as i32)
            .ok_or_else(|| DecodeError(format!("unknown message type {t}")))?,
    );
    m.to = get_u64(buf)?;
    m.from = get_u64(buf)?;
    m.term = get_u64(buf)?;
    m.log_term = get_u64(buf)?;
    m.index = get_u64(buf)?;
    m.commit = get_u64(buf)?;
    m.commit_term = get_u64(buf)?;
    m.request_snapshot = get_u64(buf)?;
    m.reject_hint = get_u64(buf)?;
    m.priority = get_u64(buf)? as i64;
    m.reject = get_u8(buf)? != 0;
    m.context = get_bytes(buf)?;
    let n = get_u32(buf)? as usize;
    let mut entries = Vec::with_capacity(n.min(buf.remaining() / 26));
    for _ in 0..n {
        entries.push(decode_entry(buf)?);
    }
    m.set_entries(entries.into());
    if get_u8(buf)? == 1 {
        m.set_snapshot(decode_snapshot(buf)?);
    }
    Ok(m)
}

pub fn encode_entry(e: &Entry, out: &mut BytesMut) {
    out.put_u8(e.get_entry_type().value() as u8);
    out.put_u64_le(e.term);
    out.put_u64_le(e.index);
    out.put_u8(e.sync_log as u8);
    put_bytes(out, &e.context);
    put_bytes(out, &e.data);
}

pub fn decode_entry(buf: &mut Bytes) -> DResult<Entry> {
    let t = get_u8(buf)?;
    let mut e = Entry::default();
    e.set_entry_type(
        EntryType::from_i32(t as i32)
            .ok_or_else(|| DecodeError(format!("unknown entry type {t}")))?,
    );
    e.term = get_u64(buf)?;
    e.index = get_u64(buf)?;
    e.sync_log = get_u8(buf)? != 0;
    e.context = get_bytes(buf)?;
    e.data = get_bytes(buf)?;
    Ok(e)
}

fn encode_snapshot(s: &Snapshot, out: &mut BytesMut) {
    let md = s.get_metadata();
    out.put_u64_le(md.index);
    out.put_u64_le(md.term);
    encode_conf_state(md.get_conf_state(), out);
    put_bytes(out, &s.data);
}

fn decode_snapshot(buf: &mut Bytes) -> DResult<Snapshot> {
    let mut md = SnapshotMetadata {
        index: get_u64(buf)?,
        term: get_u64(buf)?,
        ..Default::default()
    };
    md.set_conf_state(decode_conf_state(buf)?);
    let mut s = Snapshot::default();
    s.set_metadata(md);
    s.data = get_bytes(buf)?;
    Ok(s)
}

pub fn encode_conf_state(cs: &ConfState, out: &mut BytesMut) {
    for ids in [
        &cs.voters,
        &cs.learners,
        &cs.voters_outgoing,
        &cs.learners_next,
    ] {
        out.put_u32_le(ids.len() as u32);
        for id in ids.iter() {
            out.put_u64_le(*id);
        }
    }
    out.put_u8(cs.auto_leave as u8);
}

pub fn decode_conf_state(buf: &mut Bytes) -> DResult<ConfState> {
    Ok(ConfState {
        voters: get_ids(buf)?,
        learners: get_ids(buf)?,
        voters_outgoing: get_ids(buf)?,
        learners_next: get_ids(buf)?,
        auto_leave: get_u8(buf)? != 0,
        ..Default::default()
    })
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

fn need(buf: &Bytes, n: usize) -> DResult<()> {
    if buf.remaining() < n {
        return err(format!(
            "truncated: need {n} bytes, {} left",
            buf.remaining()
        ));
    }
    Ok(())
}

fn get_u8(buf: &mut Bytes) -> DResult<u8> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn get_u32(buf: &mut Bytes) -> DResult<u32> {
    need(buf, 4)?;
    Ok(buf.get_u32_le())
}

fn get_u64(buf: &mut Bytes) -> DResult<u64> {
    need(buf, 8)?;
    Ok(buf.get_u64_le())
}

fn get_bytes(buf: &mut Bytes) -> DResult<Bytes> {
    let n = get_u32(buf)? as usize;
    need(buf, n)?;
    Ok(buf.split_to(n))
}

fn get_ids(buf: &mut Bytes) -> DResult<Vec<u64>> {
    let n = get_u32(buf)? as usize;
    need(buf, n.saturating_mul(8))?;
    Ok((0..n).map(|_| buf.get_u64_le()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MessageBatch {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        (m.to, m.from, m.term, m.log_term, m.index, m.commit) = (2, 1, 5, 4, 10, 9);
        m.priority = -3;
        m.reject = true;
        m.context = Bytes::from_static(b"ctx");
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChangeV2);
        (e.term, e.index) = (5, 11);
        e.data = Bytes::from_static(b"payload");
        m.set_entries(vec![e.clone(), e].into());
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 7;
        snap.mut_metadata().term = 3;
        snap.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        snap.mut_metadata().mut_conf_state().learners_next = vec![9];
        snap.data = Bytes::from_static(b"snap");
        let mut hb = Message::default();
        hb.set_msg_type(MessageType::MsgHeartbeat);
        hb.set_snapshot(snap);
        MessageBatch {
            from_node: 1,
            messages: vec![(7, m), (8, hb)],
        }
    }

    #[test]
    fn batches_roundtrip() {
        let b = sample();
        let mut out = BytesMut::new();
        encode_batch(&b, &mut out);
        assert_eq!(decode_batch(out.freeze()).unwrap(), b);
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error_not_a_panic() {
        let mut out = BytesMut::new();
        encode_batch(&sample(), &mut out);
        let full = out.freeze();
        for cut in 0..full.len() {
            assert!(decode_batch(full.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut evil = BytesMut::new();
        evil.put_u64_le(1);
        evil.put_u32_le(u32::MAX);
        evil.put_u64_le(7);
        evil.put_u8(200);
        assert!(decode_batch(evil.freeze()).is_err());
    }
}
