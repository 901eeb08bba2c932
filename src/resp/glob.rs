//! Redis glob patterns (`*`, `?`, `[abc]`, `[^a-z]`, `\x`) for KEYS and SCAN MATCH, matched
//! in O(pattern × key) time whatever the pattern: every token but `*` consumes exactly one
//! byte, so on a mismatch it suffices to retry from the most recent `*` one byte further on
//! (earlier stars can never help), which keeps hostile patterns like `a*a*a*…b` linear-ish
//! instead of exponential as a naive recursive matcher would be.

/// Whether `key` matches the glob `pattern` (case-sensitive, like Redis's `stringmatchlen`).
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Position after the last `*` seen, and the key position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                while p < pattern.len() && pattern[p] == b'*' {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, k));
                continue;
            }
            if let Some(next) = match_one(pattern, p, key[k]) {
                p = next;
                k += 1;
                continue;
            }
        }
        match star {
            Some((sp, sk)) => {
                star = Some((sp, sk + 1));
                p = sp;
                k = sk + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches the single-byte token at `pattern[p]` against `c`; the position after the token
/// on a match.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => match_class(pattern, p + 1, c),
        other => (other == c).then_some(p + 1),
    }
}

/// A `[...]` class starting after the bracket; an unterminated class runs to the end of the
/// pattern, as in Redis.
fn match_class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            matched |= pattern[p + 1] == c;
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' && pattern[p + 2] != b']' {
            let (mut lo, mut hi) = (pattern[p], pattern[p + 2]);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            matched |= (lo..=hi).contains(&c);
            p += 3;
        } else {
            matched |= pattern[p] == c;
            p += 1;
        }
    }
    let next = if p < pattern.len() { p + 1 } else { p };
    (matched != negate).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_glob_semantics() {
        let yes: [(&str, &str); 12] = [
            ("*", ""),
            ("*", "anything"),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("user:*:name", "user:42:name"),
            ("a\\*b", "a*b"),
            ("*a*b*c*", "xxaxxbxxcxx"),
            ("[z-a]", "m"),
            ("k*", "k"),
        ];
        for (p, k) in yes {
            assert!(glob_match(p.as_bytes(), k.as_bytes()), "{p} ~ {k}");
        }
        let no: [(&str, &str); 7] = [
            ("h?llo", "hllo"),
            ("h[^e]llo", "hello"),
            ("h[a-b]llo", "hcllo"),
            ("a\\*b", "axb"),
            ("user:*:name", "user:42:age"),
            ("", "x"),
            ("*a*b*c*", "xxaxxcxxbxx"),
        ];
        for (p, k) in no {
            assert!(!glob_match(p.as_bytes(), k.as_bytes()), "{p} !~ {k}");
        }
    }

    #[test]
    fn hostile_patterns_stay_polynomial() {
        // Exponential for a backtracking matcher; here at most pattern × key steps.
        let pattern = "a*".repeat(40) + "b";
        let key = "a".repeat(10_000);
        assert!(!glob_match(pattern.as_bytes(), key.as_bytes()));
    }
}
