//! The Linux scheduling policy of connection workers. They run `SCHED_BATCH` by default:
//! a woken worker does not preempt the thread running on its CPU, it runs when that thread
//! sleeps or its slice ends, and then finds more ready connections to serve in one turn.
//! On a machine whose cores are shared with the clients (the 2-vCPU benchmark host, where
//! redis-benchmark runs beside the server) preempting the client on every socket write cost
//! 12–25% of pipelined GET throughput; with a single client the latency is unchanged
//! (docs/benchmarks.md). `normal` keeps the ordinary `SCHED_OTHER` policy.

use std::io;

/// Which policy connection workers run under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerSched {
    Batch,
    Normal,
}

impl WorkerSched {
    pub fn parse(s: &str) -> Option<WorkerSched> {
        match s {
            "batch" => Some(WorkerSched::Batch),
            "normal" => Some(WorkerSched::Normal),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WorkerSched::Batch => "batch",
            WorkerSched::Normal => "normal",
        }
    }

    /// Puts the calling thread under this policy (threads it spawns later inherit it).
    pub fn apply_to_this_thread(self) -> io::Result<()> {
        let policy = match self {
            WorkerSched::Batch => libc::SCHED_BATCH,
            WorkerSched::Normal => libc::SCHED_OTHER,
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
        if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of_this_thread() -> i32 {
        // SAFETY: querying the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn a_thread_takes_the_policy_it_asks_for() {
        std::thread::spawn(|| {
            WorkerSched::Batch.apply_to_this_thread().unwrap();
            assert_eq!(policy_of_this_thread(), libc::SCHED_BATCH);
            WorkerSched::Normal.apply_to_this_thread().unwrap();
            assert_eq!(policy_of_this_thread(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
        assert_eq!(WorkerSched::parse("batch"), Some(WorkerSched::Batch));
        assert_eq!(WorkerSched::parse("fifo"), None);
    }
}
