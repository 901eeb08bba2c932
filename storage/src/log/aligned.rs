//! [`AlignedBuf`]: the writer's round buffer, starting at a [`DIRECT_ALIGN`]-aligned address
//! as `O_DIRECT` writes require (their offset and length are aligned by the writer). It is a
//! plain `Vec<u8>` whose first `pad` bytes are skipped; a round reserves its whole size up
//! front, so appending to it never moves the data off the alignment.

/// Alignment of buffer address, file offset and length for direct writes: the page size,
/// which covers every logical block size in use (512 B or 4 KiB).
pub(crate) const DIRECT_ALIGN: usize = 4096;

#[derive(Default)]
pub(crate) struct AlignedBuf {
    inner: Vec<u8>,
    pad: usize,
}

impl AlignedBuf {
    /// Empties the buffer and returns it to append one round of at most `len` bytes to.
    pub fn start(&mut self, len: usize) -> &mut Vec<u8> {
        if self.inner.capacity() < self.pad + len || self.inner.capacity() == 0 {
            self.inner = Vec::with_capacity(len + DIRECT_ALIGN);
            self.pad = self.inner.as_ptr().align_offset(DIRECT_ALIGN);
        }
        self.inner.clear();
        self.inner.resize(self.pad, 0);
        &mut self.inner
    }

    /// Pads the round with zeros to `len` bytes (within what [`AlignedBuf::start`] reserved).
    pub fn zero_fill_to(&mut self, len: usize) {
        debug_assert!(self.pad + len <= self.inner.capacity(), "reserved up front");
        self.inner.resize(self.pad + len, 0);
    }

    /// The round's bytes; they start at an aligned address.
    pub fn bytes(&self) -> &[u8] {
        &self.inner[self.pad..]
    }

    /// Frees the allocation if it grew past `limit` bytes (after an unusually large round).
    pub fn shrink_if_over(&mut self, limit: usize) {
        if self.inner.capacity() > limit {
            *self = AlignedBuf::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_start_aligned_and_reuse_or_regrow_the_allocation() {
        let mut b = AlignedBuf::default();
        for len in [10, 5000, 100, 1 << 20, 3] {
            let out = b.start(len + 4);
            out.extend(std::iter::repeat_n(7u8, len));
            b.zero_fill_to(len + 4);
            assert_eq!(b.bytes().len(), len + 4);
            assert_eq!(b.bytes().as_ptr() as usize % DIRECT_ALIGN, 0, "len {len}");
            assert!(b.bytes()[..len].iter().all(|&x| x == 7));
            assert_eq!(&b.bytes()[len..], &[0; 4]);
        }
        b.shrink_if_over(4 << 10);
        assert!(b.bytes().is_empty());
        b.start(8).push(1);
        assert_eq!(b.bytes(), &[1]);
    }
}
