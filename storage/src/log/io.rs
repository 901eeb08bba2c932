//! The two I/O paths of the log writer: io_uring (one `RWF_DSYNC` write per round, one
//! submission) and the portable fallback (pwrite + fdatasync). The
//! choice is made once at open by probing the kernel; the reason for a fallback is kept so
//! INFO and [`super::LogStatus`] can show it.

use io_uring::{opcode, types, IoUring, Probe};
use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// What the caller asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring when the kernel supports it, else the fallback (logged).
    #[default]
    Auto,
    /// io_uring or an error at open.
    IoUring,
    /// Always pwrite + fdatasync.
    Sync,
}

/// What the engine is actually using.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    IoUring,
    Sync,
    Memory,
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoBackend::IoUring => "io_uring",
            IoBackend::Sync => "pwrite+fdatasync",
            IoBackend::Memory => "memory",
        })
    }
}

/// How segment writes are made durable. io_uring rings are per thread (see [`with_ring`]),
/// so whichever thread leads a group commit submits on a ring it created.
pub(crate) enum SegmentIo {
    Uring,
    Sync,
}

impl SegmentIo {
    /// Picks the backend for `mode`; returns it with the reason io_uring was not used.
    pub(crate) fn open(mode: IoMode) -> Result<(SegmentIo, Option<String>), String> {
        Self::choose(mode, probe_uring)
    }

    fn choose(
        mode: IoMode,
        probe: impl FnOnce() -> Result<IoUring, String>,
    ) -> Result<(SegmentIo, Option<String>), String> {
        match mode {
            IoMode::Sync => Ok((SegmentIo::Sync, Some("sync I/O requested".into()))),
            IoMode::IoUring => probe().map(|_| (SegmentIo::Uring, None)),
            IoMode::Auto => match probe() {
                Ok(_) => Ok((SegmentIo::Uring, None)),
                Err(why) => {
                    tracing::warn!(
                        "io_uring unavailable ({why}); log engine falls back to pwrite+fdatasync"
                    );
                    Ok((SegmentIo::Sync, Some(why)))
                }
            },
        }
    }

    pub(crate) fn backend(&self) -> IoBackend {
        match self {
            SegmentIo::Uring => IoBackend::IoUring,
            SegmentIo::Sync => IoBackend::Sync,
        }
    }

    /// Writes `buf` at `offset` and returns once it is durable.
    pub(crate) fn write_durable(
        &self,
        file: &File,
        offset: u64,
        buf: &[u8],
    ) -> std::io::Result<()> {
        match self {
            SegmentIo::Sync => sync_write_durable(file, offset, buf),
            SegmentIo::Uring => with_ring(|ring| match ring {
                Some(ring) => uring_write_durable(ring, file, offset, buf),
                None => sync_write_durable(file, offset, buf),
            }),
        }
    }
}

fn sync_write_durable(file: &File, offset: u64, buf: &[u8]) -> std::io::Result<()> {
    file.write_all_at(buf, offset)?;
    file.sync_data()
}

thread_local! {
    /// This thread's ring, made on its first log write. `None` inside once making one
    /// failed (the probe at open succeeded, so a resource limit): that thread then writes
    /// with pwrite + fdatasync, which is just as durable.
    static RING: RefCell<Option<Option<IoUring>>> = const { RefCell::new(None) };
}

/// Runs `f` with the calling thread's ring. A ring used from another thread than the one
/// that created it measured ~35% slower here, so rings are never shared.
fn with_ring<R>(f: impl FnOnce(Option<&mut IoUring>) -> R) -> R {
    RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        let ring = slot.get_or_insert_with(|| match IoUring::new(8) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(
                    "io_uring setup failed on this thread ({e}); its log writes use pwrite+fdatasync"
                );
                None
            }
        });
        f(ring.as_mut())
    })
}

fn probe_uring() -> Result<IoUring, String> {
    let mut ring = IoUring::new(8).map_err(|e| format!("io_uring_setup failed: {e}"))?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring probe failed: {e}"))?;
    if !probe.is_supported(opcode::Write::CODE) {
        return Err("io_uring lacks the write opcode".into());
    }
    let nop = opcode::Nop::new().build().user_data(0);
    // SAFETY: a NOP references no memory.
    unsafe { ring.submission().push(&nop) }.map_err(|e| format!("io_uring push failed: {e}"))?;
    ring.submit_and_wait(1)
        .map_err(|e| format!("io_uring submit failed: {e}"))?;
    let cqe = ring
        .completion()
        .next()
        .ok_or("io_uring returned no completion")?;
    if cqe.result() < 0 {
        return Err(format!(
            "io_uring nop failed: {}",
            std::io::Error::from_raw_os_error(-cqe.result())
        ));
    }
    Ok(ring)
}

/// One submission per round: a write flagged `RWF_DSYNC`, which completes only once the data
/// (and the metadata needed to read it back) is durable — the same guarantee as write +
/// fdatasync in a single operation. (A write linked to an `Fsync` measured 10-15% slower
/// here: the fsync always goes through an io-wq worker.) A short write is resubmitted for
/// the rest until everything is written.
fn uring_write_durable(
    ring: &mut IoUring,
    file: &File,
    mut offset: u64,
    mut buf: &[u8],
) -> std::io::Result<()> {
    let fd = types::Fd(file.as_raw_fd());
    while !buf.is_empty() {
        let len = buf.len().min(1 << 30) as u32;
        let write = opcode::Write::new(fd, buf.as_ptr(), len)
            .offset(offset)
            .rw_flags(libc::RWF_DSYNC)
            .build()
            .user_data(1);
        // SAFETY: `buf` outlives the submission: we wait for its completion below before
        // returning or touching `buf` again.
        unsafe { ring.submission().push(&write) }
            .map_err(|_| std::io::Error::other("io_uring queue full"))?;
        let res = loop {
            ring.submit_and_wait(1)?;
            if let Some(cqe) = ring.completion().next() {
                break cqe.result();
            }
        };
        if res < 0 {
            return Err(std::io::Error::from_raw_os_error(-res));
        }
        if res == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "io_uring wrote 0 bytes",
            ));
        }
        buf = &buf[res as usize..];
        offset += res as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken() -> Result<IoUring, String> {
        Err("io_uring_setup failed: Operation not permitted".into())
    }

    #[test]
    fn auto_falls_back_and_says_why_when_io_uring_is_unavailable() {
        let (io, why) = SegmentIo::choose(IoMode::Auto, broken).unwrap();
        assert_eq!(io.backend(), IoBackend::Sync);
        assert!(why.unwrap().contains("Operation not permitted"));
        assert!(SegmentIo::choose(IoMode::IoUring, broken).is_err());
    }

    #[test]
    fn both_backends_write_durably() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [IoMode::Auto, IoMode::Sync] {
            let (io, _) = SegmentIo::open(mode).unwrap();
            let path = dir.path().join(format!("{mode:?}"));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            io.write_durable(&f, 0, b"hello ").unwrap();
            io.write_durable(&f, 6, &vec![b'x'; 1 << 20]).unwrap();
            let back = std::fs::read(&path).unwrap();
            assert_eq!(&back[..6], b"hello ");
            assert_eq!(back.len(), 6 + (1 << 20));
        }
    }
}
