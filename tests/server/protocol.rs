//! Raw bytes on a socket: malformed requests get Redis's protocol errors and a closed
//! connection, limits hold, inline commands work, and a pipeline of 1,000 commands in one
//! write is answered in order.

use super::common::{raw_exchange, TestCluster};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn malformed_requests_get_redis_errors_and_the_connection_closes() {
    let cluster = TestCluster::single(&[]);
    let addr = cluster.node().resp;
    let cases: [(&[u8], &str); 6] = [
        (
            b"*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\nfoo\r\n",
            "-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
        (
            b"*1\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET 'unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"PING\r\n*2\r\n$4\r\nECHO\r\n$x\r\n",
            "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, expected) in cases {
        let (out, closed) = raw_exchange(addr, input, QUIET);
        assert_eq!(text(&out), expected, "input {:?}", text(input));
        assert!(closed, "connection closed after {:?}", text(input));
    }
    // An endless inline line is cut off at 64 KB.
    let (out, closed) = raw_exchange(addr, &vec![b'a'; 70_000], QUIET);
    assert_eq!(
        text(&out),
        "-ERR Protocol error: too big inline request\r\n"
    );
    assert!(closed);
}

#[test]
fn unauthenticated_clients_get_the_stricter_limits() {
    let cluster = TestCluster::single(&["--requirepass", "pw"]);
    let addr = cluster.node().resp;
    let mut many = b"*20\r\n".to_vec();
    for _ in 0..20 {
        many.extend_from_slice(b"$1\r\na\r\n");
    }
    let (out, closed) = raw_exchange(addr, &many, QUIET);
    assert_eq!(
        text(&out),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    assert!(closed);
    let (out, closed) = raw_exchange(addr, b"*2\r\n$4\r\nAUTH\r\n$20000\r\n", QUIET);
    assert_eq!(
        text(&out),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    assert!(closed);
    // After AUTH in the same write, a large argument is fine.
    let big = "v".repeat(50_000);
    let mut input = b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n".to_vec();
    input.extend(format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{big}\r\n", big.len()).bytes());
    let (out, _) = raw_exchange(addr, &input, QUIET);
    assert_eq!(text(&out), "+OK\r\n+OK\r\n");
}

fn net_backend(addr: std::net::SocketAddr) -> String {
    let (out, _) = raw_exchange(addr, b"INFO server\r\nQUIT\r\n", QUIET);
    let t = text(&out);
    t.lines()
        .find_map(|l| l.strip_prefix("net_backend:"))
        .unwrap_or("?")
        .trim()
        .to_string()
}

#[test]
fn inline_commands_and_a_thousand_pipelined_commands() {
    let cluster = TestCluster::single(&[]);
    let backend = net_backend(cluster.node().resp);
    // io_uring where the kernel has it (CI machines do); epoll otherwise.
    assert!(
        ["io_uring", "epoll"].contains(&backend.as_str()),
        "{backend}"
    );
    pipelines_in_order(cluster.node().resp);
}

/// The same session code on the epoll fallback.
#[test]
fn the_epoll_fallback_serves_the_same_pipelines() {
    let cluster = TestCluster::single(&["--net-io", "epoll"]);
    assert_eq!(net_backend(cluster.node().resp), "epoll");
    pipelines_in_order(cluster.node().resp);
}

fn pipelines_in_order(addr: std::net::SocketAddr) {
    let (out, _) = raw_exchange(
        addr,
        b"PING\r\nSET inl 'a b'\r\nGET inl\r\n\r\nQUIT\r\n",
        QUIET,
    );
    assert_eq!(text(&out), "+PONG\r\n+OK\r\n$3\r\na b\r\n+OK\r\n");

    let mut input = Vec::new();
    let mut expected = String::new();
    for i in 0..1000 {
        match i % 3 {
            0 => {
                let set = format!("*3\r\n$3\r\nSET\r\n$5\r\nk{i:04}\r\n$4\r\nv{i:03}\r\n");
                input.extend(set.bytes());
                expected.push_str("+OK\r\n");
            }
            1 => {
                // Reads the key written just before: pipelined order holds.
                let k = format!("k{:04}", i - 1);
                input.extend(format!("*2\r\n$3\r\nGET\r\n$5\r\n{k}\r\n").bytes());
                expected.push_str(&format!("$4\r\nv{:03}\r\n", (i - 1) % 1000));
            }
            _ => {
                input.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n");
                expected.push_str(&format!(":{}\r\n", i / 3 + 1));
            }
        }
    }
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&input).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 64 << 10];
    while out.len() < expected.len() {
        let n = s.read(&mut buf).expect("replies arrive");
        assert!(n > 0, "server closed early");
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(text(&out), expected);

    // A run of reads (read together once the read index is in) with repeated keys, misses
    // and multi-key commands, then a write and a read of what it wrote.
    let (out, _) = raw_exchange(
        addr,
        b"SET ra 1\r\nSET rb 22\r\nGET ra\r\nGET rb\r\nGET ra\r\nGET rnope\r\n\
          MGET ra rnope rb\r\nEXISTS ra rb rnope ra\r\nSTRLEN rb\r\nTYPE ra\r\nTYPE rnope\r\n\
          SET ra 3\r\nGET ra\r\nQUIT\r\n",
        QUIET,
    );
    assert_eq!(
        text(&out),
        "+OK\r\n+OK\r\n$1\r\n1\r\n$2\r\n22\r\n$1\r\n1\r\n$-1\r\n\
         *3\r\n$1\r\n1\r\n$-1\r\n$2\r\n22\r\n:3\r\n:2\r\n+string\r\n+none\r\n\
         +OK\r\n$1\r\n3\r\n+OK\r\n"
    );
}

#[test]
fn resp3_replies_have_resp3_types() {
    let cluster = TestCluster::single(&[]);
    let addr = cluster.node().resp;
    let (out, _) = raw_exchange(
        addr,
        b"HELLO 3\r\nGET nothing\r\nCONFIG GET maxclients\r\nHELLO 2\r\nGET nothing\r\n",
        QUIET,
    );
    let t = text(&out);
    assert!(t.starts_with("%7\r\n"), "{t}");
    assert!(
        t.contains("_\r\n%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"),
        "{t}"
    );
    assert!(t.ends_with("$-1\r\n"), "back to RESP2: {t}");
}

#[test]
fn maxclients_refuses_extra_connections() {
    let cluster = TestCluster::single(&["--maxclients", "2"]);
    let addr = cluster.node().resp;
    // Two clients that are certainly registered: each got an answer. The readiness probe's
    // connection may not be unregistered yet, so a refusal is retried for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut held = Vec::new();
    while held.len() < 2 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).unwrap();
        if &buf == b"-ERR ma" && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert_eq!(&buf, b"+PONG\r\n");
        held.push(s);
    }
    let (out, closed) = raw_exchange(addr, b"PING\r\n", QUIET);
    assert_eq!(text(&out), "-ERR max number of clients reached\r\n");
    assert!(closed);
}

#[test]
fn a_client_over_the_query_buffer_limit_is_disconnected() {
    let cluster = TestCluster::single(&[]);
    let addr = cluster.node().resp;
    let (out, _) = raw_exchange(
        addr,
        b"CONFIG SET client-query-buffer-limit 4096\r\nQUIT\r\n",
        QUIET,
    );
    assert_eq!(text(&out), "+OK\r\n+OK\r\n");
    // An incomplete 1 MB argument: more than 4 KB waits in the buffer, so the server hangs up.
    let mut input = b"*2\r\n$4\r\nECHO\r\n$1000000\r\n".to_vec();
    input.extend(vec![b'x'; 64 << 10]);
    let (out, closed) = raw_exchange(addr, &input, QUIET);
    assert!(out.is_empty(), "{}", text(&out));
    assert!(closed, "disconnected");
    // Below the limit the same request is answered.
    let (out, _) = raw_exchange(
        addr,
        b"CONFIG SET client-query-buffer-limit 2000000\r\nQUIT\r\n",
        QUIET,
    );
    assert_eq!(text(&out), "+OK\r\n+OK\r\n");
    let mut input = b"*2\r\n$4\r\nECHO\r\n$1000000\r\n".to_vec();
    input.extend(vec![b'x'; 1_000_000]);
    input.extend(b"\r\n");
    let (out, _) = raw_exchange(addr, &input, QUIET);
    assert_eq!(out.len(), 1_000_000 + "$1000000\r\n\r\n".len());
}
