//! Forwarding commands to the node that leads their shard, over RESP. Each worker thread
//! keeps its own pool of connections per peer (tokio sockets belong to the runtime that made
//! them). A pooled connection speaks RESP3 (so replies keep their exact types), is
//! authenticated with the cluster's password, and is marked internal: the receiving node
//! never forwards again — when it is not the leader it answers `TRYAGAIN` and the sender
//! re-resolves the leader.

use crate::resp::{encode_request, parse_reply, Reply};
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_PER_PEER: usize = 16;

/// Why a forwarded batch has no replies.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Nothing was sent: safe to retry anywhere.
    #[error("{0}")]
    NotSent(String),
    /// The connection failed after the requests were sent: writes may have been applied.
    #[error("{0}")]
    Lost(String),
}

struct PeerConn {
    stream: TcpStream,
    buf: BytesMut,
}

thread_local! {
    static POOL: RefCell<HashMap<SocketAddr, Vec<PeerConn>>> = RefCell::new(HashMap::new());
}

async fn read_reply(conn: &mut PeerConn) -> std::io::Result<Reply> {
    loop {
        match parse_reply(&mut conn.buf) {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        conn.buf.reserve(16 << 10);
        if conn.stream.read_buf(&mut conn.buf).await? == 0 {
            return Err(std::io::Error::other("peer closed the connection"));
        }
    }
}

async fn connect(addr: SocketAddr, password: Option<&str>) -> std::io::Result<PeerConn> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    stream.set_nodelay(true)?;
    let mut conn = PeerConn {
        stream,
        buf: BytesMut::with_capacity(16 << 10),
    };
    let mut hello: Vec<Bytes> = vec!["HELLO".into(), "3".into()];
    if let Some(pw) = password {
        hello.extend([
            "AUTH".into(),
            "default".into(),
            Bytes::copy_from_slice(pw.as_bytes()),
        ]);
    }
    let mut out = BytesMut::new();
    encode_request(&hello, &mut out);
    encode_request(&[Bytes::from_static(b"TESSERA.INTERNAL")], &mut out);
    conn.stream.write_all(&out).await?;
    for _ in 0..2 {
        if let Reply::Error(e) = read_reply(&mut conn).await? {
            return Err(std::io::Error::other(format!("peer refused: {e}")));
        }
    }
    Ok(conn)
}

/// Sends `requests` to the node at `addr` on one connection, in order, and returns their
/// replies in order.
pub async fn forward_batch(
    addr: SocketAddr,
    password: Option<String>,
    requests: Vec<Vec<Bytes>>,
) -> Result<Vec<Reply>, ForwardError> {
    let pooled = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let v = p.get_mut(&addr)?;
        // A pooled connection the peer has closed (e.g. it restarted) shows EOF before we
        // send anything on it; drop those rather than make a write's outcome ambiguous.
        while let Some(c) = v.pop() {
            let mut probe = [0u8; 1];
            if matches!(c.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            {
                return Some(c);
            }
        }
        None
    });
    let mut conn = match pooled {
        Some(c) => c,
        None => connect(addr, password.as_deref())
            .await
            .map_err(|e| ForwardError::NotSent(format!("cannot reach {addr}: {e}")))?,
    };
    let mut out = BytesMut::new();
    for r in &requests {
        encode_request(r, &mut out);
    }
    let exchange = async {
        conn.stream.write_all(&out).await?;
        let mut replies = Vec::with_capacity(requests.len());
        for _ in 0..requests.len() {
            replies.push(read_reply(&mut conn).await?);
        }
        Ok::<_, std::io::Error>(replies)
    };
    let replies = match tokio::time::timeout(IO_TIMEOUT, exchange).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(ForwardError::Lost(format!("connection to {addr}: {e}"))),
        Err(_) => return Err(ForwardError::Lost(format!("{addr} did not answer in time"))),
    };
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let v = p.entry(addr).or_default();
        if v.len() < POOL_PER_PEER {
            v.push(conn);
        }
    });
    Ok(replies)
}
