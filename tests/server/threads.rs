//! The threads of a real server process: connection workers run under the scheduling policy
//! the configuration names (`SCHED_BATCH` by default), every other thread under the normal
//! one, and INFO says which.

use crate::common::{raw_exchange, TestCluster};
use std::time::Duration;

/// (thread name, scheduling policy) of every thread of process `pid`.
fn thread_policies(pid: u32) -> Vec<(String, i32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list");
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let tid: i32 = t.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?;
            // SAFETY: querying another thread's policy has no memory effects.
            let policy = unsafe { libc::sched_getscheduler(tid) };
            (policy >= 0).then(|| (name.trim().to_string(), policy))
        })
        .collect()
}

fn info_worker_sched(addr: std::net::SocketAddr) -> String {
    // QUIT closes the connection, so the wait for more output ends at once.
    let (out, _) = raw_exchange(addr, b"INFO server\r\nQUIT\r\n", Duration::from_secs(2));
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.strip_prefix("worker_sched:"))
        .unwrap_or("?")
        .trim()
        .to_string()
}

fn check(extra: &[&str], worker_policy: i32, shown: &str) {
    let cluster = TestCluster::single(extra);
    let node = cluster.node();
    let pid = node.child.as_ref().expect("running").id();
    let threads = thread_policies(pid);
    let workers: Vec<_> = threads
        .iter()
        .filter(|(n, _)| n.starts_with("resp-"))
        .collect();
    assert_eq!(workers.len(), 2, "the tests start two workers: {threads:?}");
    for (name, policy) in &threads {
        let want = if name.starts_with("resp-") {
            worker_policy
        } else {
            libc::SCHED_OTHER
        };
        assert_eq!(*policy, want, "thread {name}: {threads:?}");
    }
    assert_eq!(info_worker_sched(node.resp), shown);
}

#[test]
fn connection_workers_run_batch_by_default_and_normal_on_request() {
    check(&[], libc::SCHED_BATCH, "batch");
    check(&["--worker-sched", "normal"], libc::SCHED_OTHER, "normal");
}
