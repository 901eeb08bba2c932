//! Helpers shared by the binary's test-only subcommands, the integration tests and the
//! custom-harness benches: deterministic payloads a reader can verify, the crash-torture
//! writer, bench argument handling, and loopback ports for child processes.

pub mod cluster;
pub mod torture;

/// Deterministic bytes for (group, index): whoever reads an entry back can check it.
pub fn payload(group: u64, index: u64, len: usize) -> Vec<u8> {
    let mut x =
        group.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes()[..(len - v.len()).min(8)]);
    }
    v
}

/// State-engine key under which the torture writer records entry `index` of `group`.
pub fn state_key(group: u64, index: u64) -> Vec<u8> {
    format!("g{group:04}/{index:012}").into_bytes()
}

/// User + system CPU time of this whole process (every thread, every node).
pub fn process_cpu_time() -> std::time::Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass; no other preconditions.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// For a `harness = false` bench named `suite`: whether this invocation should not run it —
/// `cargo bench -- <filter>` naming something else, or `--list` (test discovery).
pub fn bench_skipped(suite: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    args.iter().any(|a| a == "--list")
        || (!filters.is_empty() && !filters.iter().any(|f| suite.contains(f.as_str())))
}

/// A loopback port nothing listens on now, for a child process to bind. Drawn at random
/// from 20000–32767, below Linux's ephemeral range (32768–60999): a port from `bind(0)` is
/// an ephemeral one, which any test's outgoing connection may take as its local port
/// before the child binds it ("Address already in use").
pub fn free_port() -> u16 {
    use rand::RngExt;
    let mut rng = rand::rng();
    loop {
        let port = rng.random_range(20_000..32_768u16);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
