//! `tessera up`: a local cluster of real `tessera server` child processes, data and logs
//! under one directory. It waits until every node sees a leader for every shard, prints how
//! to connect, and on Ctrl-C/SIGTERM (or when a child dies) stops every child with SIGTERM,
//! escalating to SIGKILL after a grace period. Running it again on the same directory
//! restarts the same cluster with its data.

use crate::cli::UpArgs;
use crate::resp::{encode_request, parse_reply, Reply};
use anyhow::{bail, Context};
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Member {
    id: u64,
    resp: SocketAddr,
    raft: SocketAddr,
}

fn members(args: &UpArgs) -> anyhow::Result<Vec<Member>> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be between 1 and 9");
    }
    (0..args.nodes)
        .map(|i| {
            let port = |base: u32| -> anyhow::Result<u16> {
                u16::try_from(base + i as u32).context("port out of range")
            };
            Ok(Member {
                id: i + 1,
                resp: SocketAddr::from(([127, 0, 0, 1], port(args.base_port as u32)?)),
                raft: SocketAddr::from(([127, 0, 0, 1], port(args.base_port as u32 + 10_000)?)),
            })
        })
        .collect()
}

/// Sends one command and reads one reply (a tiny blocking RESP client).
pub fn call(addr: SocketAddr, password: Option<&str>, args: &[&str]) -> anyhow::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = BytesMut::new();
    if let Some(pw) = password {
        encode_request(&["AUTH", pw], &mut out);
    }
    encode_request(args, &mut out);
    s.write_all(&out)?;
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    let want = if password.is_some() { 2 } else { 1 };
    while replies.len() < want {
        if let Some(r) = parse_reply(&mut buf)? {
            replies.push(r);
            continue;
        }
        let mut chunk = [0u8; 16 << 10];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("{addr} closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(replies.pop().expect("one reply"))
}

/// The `INFO raft` text of the node at `addr`.
pub fn info_raft(addr: SocketAddr, password: Option<&str>) -> Option<String> {
    match call(addr, password, &["INFO", "raft"]).ok()? {
        Reply::Verbatim(s) => Some(s),
        Reply::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

/// Whether the node at `addr` knows a leader for every shard.
pub fn node_ready(addr: SocketAddr, password: Option<&str>) -> bool {
    let Some(text) = info_raft(addr, password) else {
        return false;
    };
    let shard_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("shard") && l.contains(":leader="))
        .collect();
    !shard_lines.is_empty() && shard_lines.iter().all(|l| !l.contains(":leader=0,"))
}

fn stop_all(children: &mut [Child]) {
    for c in children.iter() {
        // SAFETY: kill(2) with a pid we spawned; no memory is touched.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for c in children.iter_mut() {
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(c.try_wait(), Ok(Some(_))) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let members = members(&args)?;
    std::fs::create_dir_all(&args.dir)?;
    let exe = std::env::current_exe()?;
    let mut children: Vec<Child> = Vec::new();
    for m in &members {
        let log = std::fs::File::create(args.dir.join(format!("node-{}.log", m.id)))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("server")
            .arg("--id")
            .arg(m.id.to_string())
            .arg("--data-dir")
            .arg(args.dir.join(format!("node-{}", m.id)))
            .arg("--bind")
            .arg(m.resp.to_string())
            .arg("--raft-addr")
            .arg(m.raft.to_string())
            .arg("--shards")
            .arg(args.shards.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(pw) = &args.requirepass {
            cmd.arg("--requirepass").arg(pw);
        }
        for p in members.iter().filter(|p| p.id != m.id) {
            cmd.arg("--peer")
                .arg(format!("{}@{}@{}", p.id, p.raft, p.resp));
        }
        match cmd.spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_all(&mut children);
                return Err(e).context("starting a node");
            }
        }
    }
    let pw = args.requirepass.as_deref();
    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout);
    while !members.iter().all(|m| node_ready(m.resp, pw)) {
        let died = children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(Some(_))));
        if died || Instant::now() > deadline {
            stop_all(&mut children);
            bail!(
                "the cluster did not become ready ({}); see the node logs in {}",
                if died { "a node exited" } else { "timed out" },
                args.dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "Tessera is up: {} nodes, {} shards, data in {}",
        members.len(),
        args.shards,
        args.dir.display()
    );
    for m in &members {
        println!(
            "  node {}: redis-cli -p {}   (raft {})",
            m.id,
            m.resp.port(),
            m.raft
        );
    }
    println!("Any node accepts any command. Ctrl-C stops the cluster.");
    let _ = std::io::stdout().flush();
    // Wait for a signal, watching the children meanwhile.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = super::runtime::wait_for_signal();
        let _ = tx.send(());
    });
    loop {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Some(i) = children
            .iter_mut()
            .position(|c| matches!(c.try_wait(), Ok(Some(_))))
        {
            eprintln!("node {} exited; stopping the cluster", members[i].id);
            stop_all(&mut children);
            bail!("node {} exited unexpectedly", members[i].id);
        }
    }
    println!("stopping...");
    stop_all(&mut children);
    println!("stopped");
    Ok(())
}
