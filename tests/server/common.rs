//! Real `tessera server` processes on loopback for the server tests: free ports, start,
//! wait until every shard has a leader, SIGKILL and restart, and a raw-socket client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera::server::up::{info_raft, node_ready as ready};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

pub use tessera::testkit::free_port;

pub struct Proc {
    pub id: u64,
    pub resp: SocketAddr,
    pub raft: SocketAddr,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
    pub peers: Vec<String>,
}

impl Proc {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.args(["server", "--tick-ms", "20", "--workers", "2", "--id"])
            .arg(self.id.to_string())
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--bind")
            .arg(self.resp.to_string())
            .arg("--raft-addr")
            .arg(self.raft.to_string())
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for p in &self.peers {
            cmd.arg("--peer").arg(p);
        }
        self.child = Some(cmd.spawn().expect("spawn tessera server"));
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.resp)
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("connect")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct TestCluster {
    pub nodes: Vec<Proc>,
    pub password: Option<String>,
    _tmp: tempfile::TempDir,
}

impl TestCluster {
    /// `n` nodes (each holding every shard), started and ready. Ports are picked free and
    /// then released, so another process can take one before a node binds it; a node that
    /// exits because its address is in use gets the whole cluster restarted on new ports.
    pub fn start(n: u64, shards: u64, extra: &[&str]) -> TestCluster {
        for attempt in 1.. {
            let mut c = Self::launch(n, shards, extra);
            match c.ready_or_exited() {
                Ok(()) => return c,
                Err(log) if log.contains("in use") && attempt < 3 => {
                    eprintln!(
                        "a port was taken before a node bound it; new ports (attempt {attempt})"
                    );
                }
                Err(log) => panic!("a node exited while starting; log:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn launch(n: u64, shards: u64, extra: &[&str]) -> TestCluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let addrs: Vec<(SocketAddr, SocketAddr)> = (0..n)
            .map(|_| {
                (
                    SocketAddr::from(([127, 0, 0, 1], free_port())),
                    SocketAddr::from(([127, 0, 0, 1], free_port())),
                )
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, (resp, raft)) in addrs.iter().enumerate() {
            let id = i as u64 + 1;
            let peers = addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, (r, f))| format!("{}@{}@{}", j + 1, f, r))
                .collect();
            let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            extra.extend(["--shards".into(), shards.to_string()]);
            nodes.push(Proc {
                id,
                resp: *resp,
                raft: *raft,
                dir: tmp.path().join(format!("node-{id}")),
                child: None,
                extra,
                peers,
            });
        }
        for node in &mut nodes {
            node.start();
        }
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .map(|i| extra[i + 1].to_string());
        TestCluster {
            nodes,
            password,
            _tmp: tmp,
        }
    }

    /// Waits until every running node knows a leader for every shard; a node that exits
    /// meanwhile ends the wait with its log.
    fn ready_or_exited(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let password = self.password.clone();
        for n in self.nodes.iter_mut().filter(|n| n.child.is_some()) {
            loop {
                if let Some(Ok(Some(_))) = n.child.as_mut().map(|c| c.try_wait()) {
                    return Err(n.log());
                }
                if ready(n.resp, password.as_deref()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} not ready; log:\n{}",
                    n.id,
                    n.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    pub fn single(extra: &[&str]) -> TestCluster {
        Self::start(1, 4, extra)
    }

    pub fn node(&self) -> &Proc {
        &self.nodes[0]
    }

    /// Waits until every running node knows a leader for every shard.
    pub fn wait_ready(&mut self) {
        if let Err(log) = self.ready_or_exited() {
            panic!("a node exited; log:\n{log}");
        }
    }

    /// The node that leads `shard` according to node `ask`.
    pub fn leader_of(&self, ask: usize, shard: u64) -> Option<u64> {
        let text = info_raft(self.nodes[ask].resp, None)?;
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("shard{shard}:")))?;
        let leader: u64 = line
            .split("leader=")
            .nth(1)?
            .split(',')
            .next()?
            .parse()
            .ok()?;
        (leader != 0).then_some(leader)
    }
}

/// Sends raw bytes and returns everything the server answers until it closes or goes quiet
/// for `quiet`.
pub fn raw_exchange(addr: SocketAddr, input: &[u8], quiet: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(quiet)).expect("timeout");
    s.write_all(input).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 64 << 10];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset (unread input at close) is a close too; a timeout is not.
            Err(e) => {
                let quiet = matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
                return (out, !quiet);
            }
        }
        if Instant::now() > deadline {
            return (out, false);
        }
    }
}
