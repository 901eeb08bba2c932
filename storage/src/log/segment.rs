//! Segment files and the manifest that names them. A segment is `<seq:016x>.seg`; the
//! manifest (`SEGMENTS`) lists the live sequence numbers and is replaced atomically
//! (write temp, fsync, rename, fsync directory) whenever a segment is created or deleted, so
//! recovery can tell a missing segment from a deleted one. Segment 0, when present, is the
//! GC base (see `gc`).

use super::record::{segment_header, SEGMENT_HEADER_LEN};
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "SEGMENTS";

/// Segment 0 is the GC base: the live remainder of every segment GC has folded away. It is
/// replayed first and rewritten (never appended to) by each GC pass; appends start at 1.
pub(crate) const BASE_SEQ: u64 = 0;
const MANIFEST_MAGIC: &[u8; 8] = b"TSMANIF1";

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.seg"))
}

/// Sequence numbers of every `*.seg` file in the directory, sorted, and stray temp files.
pub(crate) fn list_dir(dir: &Path) -> Result<(Vec<u64>, Vec<PathBuf>)> {
    let mut seqs = Vec::new();
    let mut temps = Vec::new();
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("read dir {}", dir.display()), e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(format!("read dir {}", dir.display()), e))?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".seg") {
            if let Ok(seq) = u64::from_str_radix(stem, 16) {
                seqs.push(seq);
            }
        } else if name.ends_with(".tmp") {
            temps.push(ent.path());
        }
    }
    seqs.sort_unstable();
    Ok((seqs, temps))
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync dir {}", dir.display()), e))
}

/// Writes `bytes` to `path`'s temp sibling durably; [`install_temp`] then replaces `path`.
pub(crate) fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = path.with_extension("tmp");
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let mut f = File::create(&tmp).map_err(|e| Error::io(ctx("create"), e))?;
    f.write_all(bytes).map_err(|e| Error::io(ctx("write"), e))?;
    f.sync_all().map_err(|e| Error::io(ctx("fsync"), e))?;
    Ok(tmp)
}

/// Atomically replaces `path` with `tmp` (the rename; the caller fsyncs the directory).
pub(crate) fn install_temp(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| Error::io(format!("rename {}", tmp.display()), e))
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(path, bytes)?;
    install_temp(&tmp, path)?;
    fsync_dir(dir)
}

pub(crate) fn write_manifest(dir: &Path, seqs: &[u64]) -> Result<()> {
    let mut b = Vec::with_capacity(16 + seqs.len() * 8);
    b.extend_from_slice(MANIFEST_MAGIC);
    b.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
    for s in seqs {
        b.extend_from_slice(&s.to_le_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    write_atomic(dir, &dir.join(MANIFEST), &b)
}

/// The manifest's list, or `None` when the directory has never held a log.
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Vec<u64>>> {
    let path = dir.join(MANIFEST);
    let b = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let bad = |reason: &str| Error::Corruption {
        file: path.clone(),
        offset: 0,
        reason: reason.to_string(),
    };
    if b.len() < 16 || &b[..8] != MANIFEST_MAGIC {
        return Err(bad("not a segment manifest"));
    }
    let n = u32::from_le_bytes(b[8..12].try_into().expect("4")) as usize;
    if b.len() != 16 + n.saturating_mul(8) {
        return Err(bad("manifest length does not match its count"));
    }
    let body = &b[..b.len() - 4];
    let crc = u32::from_le_bytes(b[b.len() - 4..].try_into().expect("4"));
    if crc32c::crc32c(body) != crc {
        return Err(bad("manifest checksum mismatch"));
    }
    let seqs = body[12..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
        .collect();
    Ok(Some(seqs))
}

/// Creates segment `seq` with its header, durably (file and directory entry).
pub(crate) fn create_segment(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    let ctx = |what: &str| format!("{what} {}", path.display());
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(ctx("create"), e))?;
    f.write_all(&segment_header(seq))
        .map_err(|e| Error::io(ctx("write header"), e))?;
    f.sync_all().map_err(|e| Error::io(ctx("fsync"), e))?;
    fsync_dir(dir)?;
    debug_assert_eq!(SEGMENT_HEADER_LEN, 16);
    Ok(f)
}

pub(crate) fn open_segment_rw(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// Opens segment `seq` for the writer's appends: with `O_DIRECT` when `direct` is asked for
/// and the file system supports it (tmpfs before Linux 6.6, some FUSE and network file
/// systems do not: then buffered, and the second value says so).
pub(crate) fn open_segment_append(dir: &Path, seq: u64, direct: bool) -> Result<(File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = segment_path(dir, seq);
    if !direct {
        return Ok((open_segment_rw(dir, seq)?, false));
    }
    let attempt = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    direct_or_buffered(attempt, &path, || open_segment_rw(dir, seq))
}

/// The direct handle, or — when the file system refused `O_DIRECT` (`EINVAL`) — a buffered
/// one; any other failure is an error.
fn direct_or_buffered(
    attempt: std::io::Result<File>,
    path: &Path,
    buffered: impl FnOnce() -> Result<File>,
) -> Result<(File, bool)> {
    match attempt {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!("{}: no O_DIRECT here, buffered appends", path.display());
            Ok((buffered()?, false))
        }
        Err(e) => Err(Error::io(format!("open {}", path.display()), e)),
    }
}

pub(crate) fn open_segment_ro(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_system_without_o_direct_gets_buffered_appends_other_errors_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = create_segment(dir.path(), 1).unwrap();
        drop(f);
        let path = segment_path(dir.path(), 1);
        let refused = Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        let (_, direct) =
            direct_or_buffered(refused, &path, || open_segment_rw(dir.path(), 1)).unwrap();
        assert!(!direct);
        let missing = Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(direct_or_buffered(missing, &path, || unreachable!()).is_err());
        let (_, direct) = open_segment_append(dir.path(), 1, false).unwrap();
        assert!(!direct, "not asked for");
    }
}
