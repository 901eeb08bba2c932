//! The sending side of [`super::TcpTransport`]: direct non-blocking writes by `send`, the
//! per-peer sender thread, and the bookkeeping that keeps their frames in order.

use super::{PeerLink, TcpTransport, BACKOFF_MAX, BACKOFF_MIN, MAX_FRAME, RAFT_PREFACE};
use crate::transport::codec::encode_batch;
use crate::transport::MessageBatch;
use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::{Receiver, TrySendError};
use parking_lot::Mutex;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a peer's sender thread writes: a batch to frame, or the unwritten rest of a frame
/// that `send` began writing itself (it belongs to the connection it was begun on).
pub(super) enum Outbound {
    Batch(MessageBatch),
    Rest(Bytes),
}

/// The connection to one peer, shared by its sender thread and `send`'s direct writes.
#[derive(Default)]
pub(super) struct Conn {
    pub(super) stream: Mutex<Option<TcpStream>>,
    /// Items handed to the sender thread and not yet written. A direct write happens only
    /// when this is 0 (checked under the stream lock, which the sender holds until it has
    /// written and counted down), so it never overtakes a queued batch.
    pub(super) queued: AtomicUsize,
}

impl TcpTransport {
    /// Writes `batch` on the peer's connection from this thread if that cannot block or
    /// overtake anything: `None` once it is on its way (a part the socket did not take is
    /// queued for the sender thread), else the batch back, to be queued.
    pub(super) fn write_direct(
        &self,
        link: &PeerLink,
        batch: MessageBatch,
    ) -> Option<MessageBatch> {
        let Some(mut stream) = link.conn.stream.try_lock() else {
            return Some(batch); // the sender thread is writing
        };
        if link.conn.queued.load(Ordering::Acquire) != 0 {
            return Some(batch);
        }
        let Some(s) = stream.as_mut() else {
            return Some(batch); // not connected: the sender thread dials
        };
        let mut buf = self.frame_buf.lock();
        buf.clear();
        put_frame(&batch, &mut buf);
        match send_nonblocking(s, &buf) {
            Ok(n) if n == buf.len() => {
                self.direct.fetch_add(1, Ordering::Relaxed);
            }
            Ok(n) => {
                self.direct.fetch_add(1, Ordering::Relaxed);
                self.partial.fetch_add(1, Ordering::Relaxed);
                // The socket buffer is full: the sender thread writes the rest, and
                // everything after it, before anything else is written directly.
                let rest = Outbound::Rest(Bytes::copy_from_slice(&buf[n..]));
                if !queue(link, rest) {
                    // Half a frame on the stream and no way to finish it: close it.
                    *stream = None;
                }
            }
            Err(_) => {
                *stream = None;
                return Some(batch);
            }
        }
        if buf.capacity() > 4 * MAX_FRAME {
            *buf = BytesMut::new();
        }
        None
    }
}

/// Hands `item` to the peer's sender thread; false if its queue is full (or it is gone).
pub(super) fn queue(link: &PeerLink, item: Outbound) -> bool {
    link.conn.queued.fetch_add(1, Ordering::AcqRel);
    match link.tx.try_send(item) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            link.conn.queued.fetch_sub(1, Ordering::AcqRel);
            false
        }
    }
}

/// Appends `batch` as one frame.
fn put_frame(batch: &MessageBatch, buf: &mut BytesMut) {
    let at = buf.len();
    buf.put_u32_le(0);
    encode_batch(batch, buf);
    let n = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// One `send(2)` that never blocks: how much the socket took (0 when its buffer is full).
fn send_nonblocking(s: &TcpStream, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call, and the
    // descriptor belongs to `s`, which outlives it.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = std::io::Error::last_os_error();
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

pub(super) fn send_loop(
    addr: SocketAddr,
    rx: Receiver<Outbound>,
    conn: &Conn,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut buf = BytesMut::new();
    while let Ok(first) = rx.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let items: Vec<Outbound> = std::iter::once(first)
            .chain(rx.try_iter().take(256))
            .collect();
        let taken = items.len();
        let mut stream = conn.stream.lock();
        let fresh = stream.is_none();
        if fresh {
            if let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                let _ = c.set_nodelay(true);
                if c.write_all(&[RAFT_PREFACE]).is_ok() {
                    *stream = Some(c);
                    backoff = BACKOFF_MIN;
                }
            }
            if stream.is_none() {
                // Unreachable: drop what is queued (Raft resends), wait, try again later.
                let more = rx.try_iter().count();
                conn.queued.fetch_sub(taken + more, Ordering::AcqRel);
                drop(stream);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        buf.clear();
        for item in items {
            match item {
                Outbound::Batch(b) => put_frame(&b, &mut buf),
                // The rest of a frame begun on a connection that is gone means nothing here.
                Outbound::Rest(_) if fresh => {}
                Outbound::Rest(r) => buf.extend_from_slice(&r),
            }
        }
        let c = stream.as_mut().expect("connected above");
        if c.write_all(&buf).is_err() {
            *stream = None;
        }
        conn.queued.fetch_sub(taken, Ordering::AcqRel);
        drop(stream);
        if buf.capacity() > 4 * MAX_FRAME {
            buf = BytesMut::new();
        }
    }
}
