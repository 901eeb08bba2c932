//! Walking one shard's keys in order on its leader: the building block of KEYS, SCAN,
//! DBSIZE and RANDOMKEY (which visit every shard), and of the active expiry cycle (which
//! collects the expired keys it passes). A walk visits at most `count` stored keys, so its
//! cost is bounded whatever the pattern matches.

use super::value::Stored;
use crate::resp::glob_match;
use crate::shard::ShardDesc;
use bytes::Bytes;
use tessera_storage::{Cf, KeyRange, StateEngine};

/// What to walk and what to keep.
pub struct Walk<'a> {
    /// Resume at this key (inclusive); the shard's start when empty or before it.
    pub from: &'a [u8],
    /// Stored keys to visit at most.
    pub count: usize,
    pub pattern: Option<&'a [u8]>,
    pub type_name: Option<&'a [u8]>,
    pub now_ms: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct WalkResult {
    /// Live keys that matched, in key order.
    pub keys: Vec<Bytes>,
    /// Expired keys passed on the way (candidates for deletion through Raft).
    pub expired: Vec<Bytes>,
    /// Where the next walk resumes; `None` when the shard's end was reached.
    pub next: Option<Vec<u8>>,
}

pub fn walk_shard(
    state: &dyn StateEngine,
    shard: &ShardDesc,
    w: &Walk<'_>,
) -> tessera_storage::Result<WalkResult> {
    let start = if w.from > shard.start.as_slice() {
        w.from.to_vec()
    } else {
        shard.start.clone()
    };
    let end = (!shard.end.is_empty()).then(|| shard.end.clone());
    let range = KeyRange::new(start, end);
    let mut out = WalkResult::default();
    let mut visited = 0usize;
    let mut last: Option<Vec<u8>> = None;
    let count = w.count.max(1);
    state.scan(Cf::Data, &range, count, &mut |k, v| {
        visited += 1;
        last = Some(k.to_vec());
        let Some(s) = Stored::decode(v) else {
            return true;
        };
        if s.expired(w.now_ms) {
            out.expired.push(Bytes::copy_from_slice(k));
            return true;
        }
        let pattern_ok = w.pattern.is_none_or(|p| glob_match(p, k));
        let type_ok = w
            .type_name
            .is_none_or(|t| t.eq_ignore_ascii_case(s.type_name().as_bytes()));
        if pattern_ok && type_ok {
            out.keys.push(Bytes::copy_from_slice(k));
        }
        true
    })?;
    out.next = match last {
        Some(mut k) if visited >= count => {
            // The smallest key after `k`.
            k.push(0);
            Some(k)
        }
        _ => None,
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::value::encode_string;
    use crate::shard::static_layout;
    use tessera_storage::{MemStateEngine, WriteBatch};

    #[test]
    fn walks_resume_where_they_stopped_and_skip_expired_keys() {
        let state = MemStateEngine::new();
        let mut wb = WriteBatch::new();
        for i in 0..10u64 {
            let exp = if i % 3 == 0 { 50 } else { 0 };
            wb.put(Cf::Data, format!("k{i}"), encode_string(exp, b"v"));
        }
        state.write(wb).unwrap();
        let shard = static_layout(1, &[1]).remove(0);
        let mut from = Vec::new();
        let (mut live, mut expired, mut walks) = (Vec::new(), Vec::new(), 0);
        loop {
            let w = Walk {
                from: &from,
                count: 4,
                pattern: Some(b"k*"),
                type_name: None,
                now_ms: 100,
            };
            let r = walk_shard(&state, &shard, &w).unwrap();
            walks += 1;
            live.extend(r.keys);
            expired.extend(r.expired);
            match r.next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(walks, 3);
        assert_eq!(live.len(), 6);
        assert_eq!(expired, vec!["k0", "k3", "k6", "k9"]);
        let w = Walk {
            from: b"",
            count: 100,
            pattern: Some(b"k[12]"),
            type_name: Some(b"STRING"),
            now_ms: 0,
        };
        assert_eq!(
            walk_shard(&state, &shard, &w).unwrap().keys,
            vec!["k1", "k2"]
        );
    }
}
