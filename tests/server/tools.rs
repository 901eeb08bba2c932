//! Smoke runs of the real Redis tools against `tessera up`: redis-cli commands and
//! `redis-benchmark -t set,get -n 10000` finish cleanly with no errors, and Ctrl-C (SIGINT)
//! stops the whole cluster.

use super::common::BIN;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tool(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "{name} is missing (tools/prereqs installs redis-tools)"
    );
    found
}

/// A base port with base..base+3 and base+10000..base+10003 free.
fn free_base() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (rand::random::<u16>() % 20_000);
        let free = (0..3).all(|i| {
            TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", base + 10_000 + i)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no free port range");
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run tool");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn redis_cli_and_redis_benchmark_against_tessera_up() {
    if !tool("redis-cli") || !tool("redis-benchmark") {
        eprintln!("redis-tools not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let mut up = Command::new(BIN)
        .args([
            "up",
            "--shards",
            "4",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tessera up");
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let first = lines.next().expect("tessera up prints").expect("line");
    assert!(first.starts_with("Tessera is up"), "{first}");
    let port = (base + 1).to_string();
    let cli = |args: &[&str]| run(Command::new("redis-cli").args(["-p", &port]).args(args));
    assert_eq!(cli(&["PING"]), (true, "PONG\n".into()));
    assert_eq!(cli(&["SET", "greeting", "hello"]), (true, "OK\n".into()));
    let other = (base + 2).to_string();
    let (ok, got) = run(Command::new("redis-cli").args(["-p", &other, "GET", "greeting"]));
    assert!(ok);
    assert_eq!(got, "hello\n", "another node answers through the leader");
    let (ok, text) =
        run(Command::new("redis-benchmark")
            .args(["-p", &port, "-t", "set,get", "-n", "10000", "-q"]));
    assert!(ok, "redis-benchmark failed: {text}");
    assert!(
        !text.contains("ERR") && text.contains("SET:") && text.contains("GET:"),
        "{text}"
    );
    // Ctrl-C stops every node.
    // SAFETY: kill(2) on the child we spawned.
    unsafe {
        libc::kill(up.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tessera up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "tessera up exited with {status}");
    assert!(
        TcpListener::bind(("127.0.0.1", base)).is_ok(),
        "node 1 released its port"
    );
}
