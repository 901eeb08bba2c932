//! The two ways a worker talks to client sockets: tokio-uring (reads and writes submitted
//! through io_uring, buffers moved into the kernel operation and back) or tokio's epoll
//! reactor. Sessions are written once against `ClientIo`; the worker picks the backend
//! at start (logged and shown in INFO). Epoll is the default: with tokio-uring 0.5 every
//! socket read and write is a separate io_uring operation completed through task work, and
//! on the 2-vCPU machine of docs/benchmarks.md that measured 12-25% slower than epoll for
//! pipelined GET/SET. `auto` uses io_uring when the kernel allows it, else epoll.

use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_uring::buf::BoundedBuf;

/// Which reactor serves client sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetBackend {
    IoUring,
    Epoll,
}

impl NetBackend {
    pub fn name(self) -> &'static str {
        match self {
            NetBackend::IoUring => "io_uring",
            NetBackend::Epoll => "epoll",
        }
    }
}

/// Picks the backend for `choice` (`epoll`, `auto`, `uring`): `auto` probes io_uring by
/// building a tokio-uring runtime and falls back to epoll; `uring` fails if that does not work.
pub fn choose(choice: &str) -> anyhow::Result<(NetBackend, Option<String>)> {
    if choice == "epoll" {
        return Ok((NetBackend::Epoll, Some("chosen by configuration".into())));
    }
    match tokio_uring::Runtime::new(&tokio_uring::builder()) {
        Ok(_) => Ok((NetBackend::IoUring, None)),
        Err(e) if choice == "auto" => Ok((
            NetBackend::Epoll,
            Some(format!("io_uring unavailable: {e}")),
        )),
        Err(e) => anyhow::bail!("io_uring requested for client sockets but unavailable: {e}"),
    }
}

/// A client connection's byte stream.
pub(crate) trait ClientIo {
    /// Appends what arrives to `buf` (0 at end of stream).
    async fn read_more(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Writes all of `out`.
    async fn write_out(&mut self, out: &mut BytesMut) -> io::Result<()>;
    fn close(&mut self);
}

impl ClientIo for tokio::net::TcpStream {
    async fn read_more(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.read_buf(buf).await
    }
    async fn write_out(&mut self, out: &mut BytesMut) -> io::Result<()> {
        self.write_all(out).await
    }
    fn close(&mut self) {
        let _ = socket2::SockRef::from(&*self).shutdown(std::net::Shutdown::Both);
    }
}

impl ClientIo for tokio_uring::net::TcpStream {
    async fn read_more(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() == buf.len() {
            buf.reserve(16 << 10);
        }
        let start = buf.len();
        // The buffer moves into the operation and comes back with the bytes appended.
        let (res, slice) = self.read(std::mem::take(buf).slice(start..)).await;
        *buf = slice.into_inner();
        res
    }
    async fn write_out(&mut self, out: &mut BytesMut) -> io::Result<()> {
        let (res, back) = self.write_all(std::mem::take(out)).await;
        *out = back;
        res
    }
    fn close(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}
