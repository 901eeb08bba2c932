//! Short bounded workloads against real servers on loopback — redis-server (when installed;
//! tools/test installs it) and a single-node Tessera built in the same workspace — with
//! verification on: zero server errors, zero lost or corrupted records.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_tessera-bench");

/// A loopback port for a child server, below the ephemeral range that outgoing connections
/// draw their local ports from (a `bind(0)` port could be taken before the child binds it).
fn free_port() -> u16 {
    use rand::RngExt;
    std::iter::repeat_with(|| rand::rng().random_range(20_000..32_768u16))
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("an endless search ends with a port")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = Command::new(BENCH)
            .args([
                "-p",
                &port.to_string(),
                "--phase",
                "load",
                "--records",
                "1",
                "-c",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "server on {port} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs workload `w` with verification and checks the JSON report.
fn bench_clean(port: u16, w: &str) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = Command::new(BENCH)
        .args([
            "-p",
            &port.to_string(),
            "-w",
            w,
            "--records",
            "500",
            "--operations",
            "3000",
        ])
        .args(["-c", "4", "-P", "4", "--verify", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "workload {w}: {text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let phases = report.as_array().unwrap();
    assert_eq!(phases.len(), 2, "load and run");
    assert_eq!(phases[0]["operations"], 500);
    assert_eq!(phases[1]["operations"], 3000);
    for p in phases {
        assert_eq!(p["verify"]["lost"], 0, "{text}");
        assert_eq!(p["verify"]["corrupted"], 0, "{text}");
        assert!(p["errors"].as_object().unwrap().is_empty(), "{text}");
    }
}

#[test]
fn verified_workloads_against_redis_server() {
    let installed = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "tools/test installs redis-server"
        );
        eprintln!("redis-server not installed; skipping");
        return;
    }
    let port = free_port();
    let _server = Server(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_ping(port);
    for w in ["a", "b", "c", "d", "e", "f"] {
        bench_clean(port, w);
    }
}

/// A single-node Tessera from this workspace's build, on a free port.
fn start_tessera(extra: &[&str]) -> (Server, u16, tempfile::TempDir) {
    let tessera = PathBuf::from(BENCH).with_file_name("tessera");
    assert!(
        tessera.exists(),
        "{} is missing: build the workspace (cargo build) before this test",
        tessera.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server(
        Command::new(&tessera)
            .args(["server", "--tick-ms", "20", "--data-dir"])
            .arg(dir.path())
            .args(["--port", &port.to_string(), "--raft-addr"])
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (server, port, dir)
}

#[test]
fn verified_workloads_against_tessera() {
    let (_server, port, _dir) = start_tessera(&[]);
    wait_for_ping(port);
    for w in ["a", "d", "e", "f"] {
        bench_clean(port, w);
    }
    // The hash model is refused by the server, and reported, not a crash.
    let out = Command::new(BENCH)
        .args([
            "-p",
            &port.to_string(),
            "--model",
            "hash",
            "--records",
            "5",
            "--operations",
            "5",
            "-c",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "errors are counted and the exit code says so"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("errors ERR:"));
    // Unreachable server and hash-model scans: clear errors.
    let out = Command::new(BENCH)
        .args(["-p", &free_port().to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    let out = Command::new(BENCH)
        .args(["-p", &port.to_string(), "-w", "e", "--model", "hash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("need a sorted-set index"));
}

#[test]
fn auth_is_used_and_a_wrong_password_is_a_clear_error() {
    let (_server, port, _dir) = start_tessera(&["--requirepass", "pw"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let bench = |pw: &str| {
        Command::new(BENCH)
            .args([
                "-p",
                &port.to_string(),
                "-a",
                pw,
                "-w",
                "c",
                "--records",
                "50",
            ])
            .args(["--operations", "200", "-c", "2", "--verify"])
            .output()
            .unwrap()
    };
    loop {
        if bench("pw").status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ran clean with the right password"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = bench("wrong");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AUTH failed: WRONGPASS"), "{err}");
}
