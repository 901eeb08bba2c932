//! [`TcpTransport`]: Raft traffic between nodes over TCP. One outbound connection per peer
//! node (frames: `len:u32 payload`, payload per `codec`). `send` never blocks the store:
//! when the connection is up and nothing is queued for it, the caller writes the frame
//! itself without blocking (`MSG_DONTWAIT`) — no thread hand-off, which on a 2-vCPU guest
//! costs a wake-up per batch; whatever does not fit in the socket buffer, and every batch
//! while anything is queued, goes to the peer's sender thread through a bounded channel,
//! which coalesces what is queued into one blocking write. A batch is dropped when the
//! queue is full or the peer is unreachable (Raft retransmits). Lost connections are re-dialled with exponential
//! backoff; while a peer is down its queued batches are discarded rather than replayed late.
//! Inbound connections get a reader thread each that decodes frames into the store's inbox;
//! a frame that is oversized or malformed closes that connection.

mod send;

use super::codec::decode_batch;
use super::snapshot_stream;
use super::{MessageBatch, Transport};
use crate::raftstore::StoreInbox;
use bytes::{Bytes, BytesMut};
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use raft::eraftpb::MessageType;
use send::{queue, send_loop, Conn, Outbound};
use std::collections::HashMap;
use std::io::Read;
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
    tx: Sender<Outbound>,
    addr: SocketAddr,
    conn: Arc<Conn>,
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
    /// Batches written by `send` itself, and the part of one the socket did not take.
    direct: AtomicU64,
    partial: AtomicU64,
    /// Frames of direct writes are encoded here (only the store loop sends).
    frame_buf: Mutex<BytesMut>,
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
            direct: AtomicU64::new(0),
            partial: AtomicU64::new(0),
            frame_buf: Mutex::new(BytesMut::new()),
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
        let conn = Arc::new(Conn::default());
        let theirs = conn.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("raft-send-{from}-{node}"))
            .spawn(move || send_loop(addr, rx, &theirs, stop));
        if spawned.is_ok() {
            // Dropping the old sender ends the old thread.
            self.peers.lock().insert(node, PeerLink { tx, addr, conn });
        }
    }

    /// Batches dropped because a peer's queue was full or it had no address.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Batches `send` wrote itself (no sender-thread hand-off), and how many of those the
    /// socket took only in part (the sender thread wrote the rest).
    pub fn direct_writes(&self) -> (u64, u64) {
        (
            self.direct.load(Ordering::Relaxed),
            self.partial.load(Ordering::Relaxed),
        )
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
            Some(link) => match self.write_direct(link, batch) {
                None => true,
                Some(batch) => queue(link, Outbound::Batch(batch)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raftstore::RaftStore;
    use raft::eraftpb::{Message, MessageType};
    use std::io::Write;

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

    /// Batches sent while the peer does not read fill the socket: `send` writes what fits
    /// itself, hands the rest of a frame and everything after it to the sender thread, and
    /// the peer still receives every batch whole and in order.
    #[test]
    fn direct_and_queued_writes_keep_every_frame_whole_and_in_order() {
        let peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = peer.local_addr().unwrap();
        let (inbox1, _rx1) = RaftStore::channel();
        let t1 = TcpTransport::start(1, TcpListener::bind("127.0.0.1:0").unwrap(), inbox1).unwrap();
        t1.set_peer(2, addr);
        const N: u64 = 3000;
        let numbered = |i: u64| {
            let mut b = batch(1);
            b.messages[0].1.index = i;
            b.messages[0].1.context = Bytes::from(vec![(i % 251) as u8; 8 << 10]);
            b
        };
        // The first batch makes the sender thread dial; wait until it has.
        t1.send(2, numbered(0));
        let (conn, _) = peer.accept().unwrap();
        let connected = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(2));
            t1.peers.lock()[&2].conn.stream.lock().is_some()
        });
        assert!(connected);
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300)); // let the socket fill up
            conn.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut conn = std::io::BufReader::new(conn);
            let mut preface = [0u8; 1];
            conn.read_exact(&mut preface).unwrap();
            assert_eq!(preface[0], RAFT_PREFACE);
            let mut got = Vec::new();
            while got.len() < N as usize {
                let mut len = [0u8; 4];
                conn.read_exact(&mut len).unwrap();
                let mut frame = vec![0u8; u32::from_le_bytes(len) as usize];
                conn.read_exact(&mut frame).unwrap();
                got.push(decode_batch(Bytes::from(frame)).expect("a whole frame"));
            }
            got
        });
        for i in 1..N {
            t1.send(2, numbered(i));
        }
        let got = reader.join().unwrap();
        assert_eq!(t1.dropped(), 0);
        for (i, b) in got.iter().enumerate() {
            assert_eq!(b, &numbered(i as u64), "batch {i}");
        }
        let (direct, partial) = t1.direct_writes();
        assert!(direct > 0, "some batches went out without a hand-off");
        assert!(
            partial > 0,
            "the socket filled up and a frame was finished by the sender"
        );
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
