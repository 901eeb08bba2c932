//! Raft snapshots travel on their own short-lived TCP connection, in chunks, so a large
//! shard's snapshot never holds up the regular peer connection (heartbeats and appends of
//! every other shard keep flowing). The receiver assembles the chunks — growing its buffer
//! only as bytes arrive, never from a declared length — and delivers the complete
//! `MsgSnapshot` to the store like any other message.
//!
//! ```text
//! stream := 'S' from_node:u64 group:u64 header_len:u32 header  chunk*  0:u32
//! header := the message encoded by `codec` with the snapshot's data left empty
//! chunk  := len:u32 (1..=CHUNK) bytes
//! ```

use super::codec::{decode_message, encode_message, MessageBatch};
use bytes::{BufMut, Bytes, BytesMut};
use raft::eraftpb::Message;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub const PREFACE: u8 = b'S';
const CHUNK: usize = 1 << 20;
/// Largest snapshot accepted (a shard is split long before this).
pub const MAX_SNAPSHOT: usize = 8 << 30;
const MAX_HEADER: usize = 16 << 20;

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Sends one snapshot message to `addr` (blocking; run it on its own thread).
pub fn send(addr: SocketAddr, from_node: u64, group: u64, mut msg: Message) -> std::io::Result<()> {
    let data = std::mem::take(&mut msg.mut_snapshot().data);
    let mut header = BytesMut::new();
    encode_message(&msg, &mut header);
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_nodelay(true)?;
    let mut head = Vec::with_capacity(21 + header.len());
    head.push(PREFACE);
    head.put_u64_le(from_node);
    head.put_u64_le(group);
    head.put_u32_le(header.len() as u32);
    head.extend_from_slice(&header);
    conn.write_all(&head)?;
    for chunk in data.chunks(CHUNK) {
        conn.write_all(&(chunk.len() as u32).to_le_bytes())?;
        conn.write_all(chunk)?;
    }
    conn.write_all(&0u32.to_le_bytes())?;
    conn.flush()
}

fn read_u32(conn: &mut TcpStream) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    conn.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(conn: &mut TcpStream) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    conn.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads one snapshot stream (the preface byte already consumed).
pub fn receive(conn: &mut TcpStream) -> std::io::Result<MessageBatch> {
    let from_node = read_u64(conn)?;
    let group = read_u64(conn)?;
    let header_len = read_u32(conn)? as usize;
    if header_len > MAX_HEADER {
        return Err(invalid(format!("snapshot header of {header_len} bytes")));
    }
    let mut header = vec![0u8; header_len];
    conn.read_exact(&mut header)?;
    let mut msg = decode_message(&mut Bytes::from(header)).map_err(|e| invalid(e.to_string()))?;
    let mut data = Vec::new();
    loop {
        let n = read_u32(conn)? as usize;
        if n == 0 {
            break;
        }
        if n > CHUNK || data.len() + n > MAX_SNAPSHOT {
            return Err(invalid(format!(
                "snapshot chunk of {n} bytes after {}",
                data.len()
            )));
        }
        let at = data.len();
        data.resize(at + n, 0);
        conn.read_exact(&mut data[at..])?;
    }
    msg.mut_snapshot().data = Bytes::from(data);
    Ok(MessageBatch {
        from_node,
        messages: vec![(group, msg)],
    })
}
