//! [`TcpTransport`]: Raft traffic between nodes over TCP. One outbound connection per peer
//! node, owned by that peer's sender thread, which coalesces every queued batch into one
//! write (frames: `len:u32 payload`, payload per `codec`). `send` never blocks the store:
//! it queues into a bounded channel and drops the batch when the queue is full or the peer
//! is unreachable (Raft retransmits). Lost connections are re-dialled with exponential
//! backoff; while a peer is down its queued batches are discarded rather than replayed late.
//! Inbound connections get a reader thread each that decodes frames into the store's inbox;
//! a frame that is oversized or malformed closes that connection.

use super::codec::{decode_batch, encode_batch};
use super::snapshot_stream;
use super::{MessageBatch, Transport};
use crate::raftstore::StoreInbox;
use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use raft::eraftpb::MessageType;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest frame accepted from a peer.
pub const MAX_FRAME: usize = 64 << 20;
/// Batches queued per peer before new ones are dropped.
const QUEUE: usize = 4096;
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

struct PeerLink {
    tx: Sender<MessageBatch>,
    addr: SocketAddr,
}

/// First byte of a regular peer connection (snapshot streams start with
/// [`snapshot_stream::PREFACE`]).
const RAFT_PREFACE: u8 = b'R';

pub struct TcpTransport {
    node: u64,
    addr: SocketAddr,
    peers: Mutex<HashMap<u64, PeerLink>>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    /// Accepted connections, shut down on stop so peers notice and re-dial.
    accepted: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl TcpTransport {
    /// Serves inbound Raft traffic on `listener` into `inbox`, and sends as `node`.
    pub fn start(
        node: u64,
        listener: TcpListener,
        inbox: StoreInbox,
    ) -> std::io::Result<Arc<Self>> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let t = Arc::new(TcpTransport {
            node,
            addr,
            peers: Mutex::new(HashMap::new()),
            stop: stop.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
            accepted: accepted.clone(),
            acceptor: Mutex::new(None),
        });
        let h = std::thread::Builder::new()
            .name(format!("raft-accept-{node}"))
            .spawn(move || accept_loop(listener, inbox, stop, accepted))?;
        *t.acceptor.lock() = Some(h);
        Ok(t)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where peer `node` listens; replaces an earlier address.
    pub fn set_peer(&self, node: u64, addr: SocketAddr) {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let stop = self.stop.clone();
        let from = self.node;
        let spawned = std::thread::Builder::new()
            .name(format!("raft-send-{from}-{node}"))
            .spawn(move || send_loop(addr, rx, stop));
        if spawned.is_ok() {
            // Dropping the old sender ends the old thread.
            self.peers.lock().insert(node, PeerLink { tx, addr });
        }
    }

    /// Batches dropped because a peer's queue was full or it had no address.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.peers.lock().clear();
        for c in self.accepted.lock().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // Wake the accept loop so it sees the flag, and wait until the listener is closed
        // (a restarted node binds the same address).
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
        if let Some(h) = self.acceptor.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Transport for TcpTransport {
    fn send(&self, to_node: u64, mut batch: MessageBatch) {
        let peers = self.peers.lock();
        // Snapshots go on their own connection, in chunks; the rest keeps its order.
        if batch
            .messages
            .iter()
            .any(|(_, m)| m.get_msg_type() == MessageType::MsgSnapshot)
        {
            let (snaps, rest): (Vec<_>, Vec<_>) = batch
                .messages
                .into_iter()
                .partition(|(_, m)| m.get_msg_type() == MessageType::MsgSnapshot);
            batch.messages = rest;
            if let Some(link) = peers.get(&to_node) {
                for (group, m) in snaps {
                    let (addr, from) = (link.addr, self.node);
                    let _ = std::thread::Builder::new()
                        .name(format!("raft-snap-{from}-{to_node}"))
                        .spawn(move || {
                            if let Err(e) = snapshot_stream::send(addr, from, group, m) {
                                tracing::warn!(
                                    "snapshot of shard {group} to node {to_node} failed: {e}"
                                );
                            }
                        });
                }
            }
            if batch.messages.is_empty() {
                return;
            }
        }
        let sent = match peers.get(&to_node) {
            Some(link) => match link.tx.try_send(batch) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    inbox: StoreInbox,
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        match conn.try_clone() {
            Ok(c) => accepted.lock().push(c),
            Err(_) => continue,
        }
        if stop.load(Ordering::SeqCst) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return;
        }
        let (inbox, stop) = (inbox.clone(), stop.clone());
        let _ = std::thread::Builder::new()
            .name("raft-recv".into())
            .spawn(move || {
                let closer = conn.try_clone();
                if let Err(e) = serve_connection(conn, inbox, stop) {
                    tracing::debug!("raft connection closed: {e}");
                }
                // The accepted-list clone keeps the socket open: shut it for real.
                if let Ok(c) = closer {
                    let _ = c.shutdown(std::net::Shutdown::Both);
                }
            });
    }
}

fn serve_connection(
    mut conn: TcpStream,
    inbox: StoreInbox,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut preface = [0u8; 1];
    conn.read_exact(&mut preface)?;
    match preface[0] {
        RAFT_PREFACE => read_loop(conn, inbox, stop),
        snapshot_stream::PREFACE => {
            inbox.deliver(snapshot_stream::receive(&mut conn)?);
            Ok(())
        }
        other => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unknown connection preface {other:#x}"),
        )),
    }
}

fn read_loop(mut conn: TcpStream, inbox: StoreInbox, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    while !stop.load(Ordering::Relaxed) {
        conn.read_exact(&mut len)?;
        let n = u32::from_le_bytes(len) as usize;
        if n > MAX_FRAME {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {n} bytes exceeds {MAX_FRAME}"),
            ));
        }
        let mut buf = vec![0u8; n];
        conn.read_exact(&mut buf)?;
        let batch = decode_batch(Bytes::from(buf))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        inbox.deliver(batch);
    }
    Ok(())
}

fn send_loop(addr: SocketAddr, rx: Receiver<MessageBatch>, stop: Arc<AtomicBool>) {
    let mut backoff = BACKOFF_MIN;
    let mut conn: Option<TcpStream> = None;
    let mut buf = BytesMut::new();
    while let Ok(first) = rx.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if conn.is_none() {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(mut c) => {
                    let _ = c.set_nodelay(true);
                    if c.write_all(&[RAFT_PREFACE]).is_err() {
                        continue; // the batch is dropped; Raft resends
                    }
                    conn = Some(c);
                    backoff = BACKOFF_MIN;
                }
                Err(_) => {
                    // Unreachable: drop what is queued (Raft resends), wait, try again later.
                    let _ = rx.try_iter().count();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        buf.clear();
        for b in std::iter::once(first).chain(rx.try_iter().take(256)) {
            let at = buf.len();
            buf.put_u32_le(0);
            encode_batch(&b, &mut buf);
            let n = (buf.len() - at - 4) as u32;
            buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
        let c = conn.as_mut().expect("connected above");
        if c.write_all(&buf).is_err() {
            conn = None;
        }
        if buf.capacity() > 4 * MAX_FRAME {
            buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftstore::RaftStore;
    use raft::eraftpb::{Message, MessageType};

    fn batch(from: u64) -> MessageBatch {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        (m.from, m.to, m.term) = (from, 2, 7);
        MessageBatch {
            from_node: from,
            messages: vec![(3, m)],
        }
    }

    #[test]
    fn delivers_between_two_transports_and_redials_after_restart() {
        let (inbox2, rx2) = RaftStore::channel();
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr2 = l2.local_addr().unwrap();
        let t2 = TcpTransport::start(2, l2, inbox2).unwrap();
        let (inbox1, _rx1) = RaftStore::channel();
        let t1 = TcpTransport::start(1, TcpListener::bind("127.0.0.1:0").unwrap(), inbox1).unwrap();
        t1.set_peer(2, addr2);
        t1.send(2, batch(1));
        assert!(rx2
            .recv_batch(Duration::from_secs(5))
            .is_some_and(|b| b == batch(1)));
        // Node 2 restarts on the same address: node 1 notices and re-dials.
        t2.stop();
        drop(t2);
        drop(rx2);
        let (inbox2, rx2) = RaftStore::channel();
        let _t2 = TcpTransport::start(2, TcpListener::bind(addr2).unwrap(), inbox2).unwrap();
        let got = (0..200).find_map(|_| {
            t1.send(2, batch(1));
            rx2.recv_batch(Duration::from_millis(50))
        });
        assert_eq!(got, Some(batch(1)));
    }

    #[test]
    fn snapshots_stream_on_their_own_connection_in_chunks() {
        let (inbox2, rx2) = RaftStore::channel();
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr2 = l2.local_addr().unwrap();
        let _t2 = TcpTransport::start(2, l2, inbox2).unwrap();
        let (inbox1, _rx1) = RaftStore::channel();
        let t1 = TcpTransport::start(1, TcpListener::bind("127.0.0.1:0").unwrap(), inbox1).unwrap();
        t1.set_peer(2, addr2);
        let mut snap = Message::default();
        snap.set_msg_type(MessageType::MsgSnapshot);
        (snap.from, snap.to, snap.term) = (1, 2, 9);
        let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        snap.mut_snapshot().data = Bytes::from(data.clone());
        snap.mut_snapshot().mut_metadata().index = 42;
        let mut b = batch(1);
        b.messages.push((5, snap.clone()));
        t1.send(2, b);
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(
                rx2.recv_batch(Duration::from_secs(10))
                    .expect("delivered")
                    .messages,
            );
        }
        let s = got
            .iter()
            .find(|(_, m)| m.get_msg_type() == MessageType::MsgSnapshot)
            .expect("snapshot");
        assert_eq!(s.0, 5);
        assert_eq!(s.1.get_snapshot().get_metadata().index, 42);
        assert_eq!(
            &s.1.get_snapshot().data[..],
            &data[..],
            "3 MiB snapshot reassembled intact"
        );
        assert!(got
            .iter()
            .any(|(g, m)| *g == 3 && m.get_msg_type() == MessageType::MsgHeartbeat));
    }

    #[test]
    fn oversized_or_garbage_frames_close_the_connection() {
        let (inbox, rx) = RaftStore::channel();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _t = TcpTransport::start(9, l, inbox).unwrap();
        let oversized = [&[RAFT_PREFACE][..], &((MAX_FRAME + 1) as u32).to_le_bytes()].concat();
        let garbage = [&[RAFT_PREFACE][..], &5u32.to_le_bytes(), b"junk!"].concat();
        let bad_preface = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let huge_chunk = [
            &[snapshot_stream::PREFACE][..],
            &[0u8; 16],
            &0u32.to_le_bytes(),
            &u32::MAX.to_le_bytes(),
        ]
        .concat();
        for frame in [oversized, garbage, bad_preface, huge_chunk] {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&frame).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut b = [0u8; 1];
            assert_eq!(
                c.read(&mut b).unwrap(),
                0,
                "the server closes the connection"
            );
        }
        assert!(
            rx.recv_batch(Duration::from_millis(50)).is_none(),
            "nothing was delivered"
        );
    }
}
