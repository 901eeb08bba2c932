//! Several proposals in one Raft entry. The proposals a leader receives for one group in
//! one round of the store loop become a single entry (marked by [`BATCH_CONTEXT`] in the
//! entry's context), so Raft, the log, the network and apply pay their per-entry costs
//! once per round instead of once per proposal. The entry's data is each proposal's
//! command, length-prefixed (`u32` little-endian), in proposal order; apply hands them to
//! the state machine one by one and answers each proposer with its own reply. A round
//! with a single proposal proposes it as a plain entry.
//!
//! The batch is formed on the leader only: a peer that lost leadership during the round
//! fails its queued proposals as not-leader rather than let raft forward them.

use bytes::Bytes;

/// Entry context of a batched entry (a plain entry has an empty context).
pub(crate) const BATCH_CONTEXT: &[u8] = b"batch/1";

/// A batch holds at most this many bytes (commands and their length prefixes); a proposal
/// that would overfill it starts the next entry, so only a single proposal larger than
/// this makes a larger entry (as it always did on its own).
pub(crate) const MAX_BATCH_BYTES: usize = 1 << 20;

pub(crate) fn is_batch(context: &[u8]) -> bool {
    context == BATCH_CONTEXT
}

/// The entry data holding `cmds` in order.
pub(crate) fn encode<'a>(cmds: impl Iterator<Item = &'a Bytes> + Clone) -> Vec<u8> {
    let len: usize = cmds.clone().map(|c| 4 + c.len()).sum();
    let mut out = Vec::with_capacity(len);
    for c in cmds {
        let n = u32::try_from(c.len()).expect("a proposal is far below 4 GiB");
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// The commands of a batched entry, or `None` if its data is malformed (a length running
/// past the end). Every length is checked against the bytes that are there.
pub(crate) fn split(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut cmds = Vec::new();
    while !data.is_empty() {
        let (len, rest) = data.split_at_checked(4)?;
        let n = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let (cmd, rest) = rest.split_at_checked(n)?;
        cmds.push(cmd);
        data = rest;
    }
    Some(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_come_back_in_order_including_empty_ones() {
        let cmds = [
            Bytes::from_static(b"first"),
            Bytes::new(),
            Bytes::from(vec![7u8; 300]),
        ];
        let data = encode(cmds.iter());
        let back = split(&data).expect("well formed");
        assert_eq!(back.len(), 3);
        for (a, b) in cmds.iter().zip(back) {
            assert_eq!(a.as_ref(), b);
        }
    }

    #[test]
    fn lengths_past_the_end_are_malformed_not_a_panic() {
        let data = encode([Bytes::from_static(b"abc")].iter());
        for cut in 1..data.len() {
            assert_eq!(split(&data[..cut]), None, "cut at {cut}");
        }
        let huge = [0xff, 0xff, 0xff, 0xff, 1];
        assert_eq!(split(&huge), None);
        assert_eq!(split(&[]), Some(vec![]));
    }
}
