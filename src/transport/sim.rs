//! [`SimNetwork`]: an in-process network between stores for tests. Every message passes
//! through fault filters whose random decisions come from one seeded RNG (print the seed on
//! failure to replay the same decisions; thread timing still varies). Faults: drop rate,
//! duplicate rate, random delay (which also reorders), and blocked links (one-way or both
//! ways) for partitions. A delivery thread hands batches to each node's inbox when due.

use super::{MessageBatch, Transport};
use crate::raftstore::StoreInbox;
use parking_lot::{Condvar, Mutex};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fault settings; the default is a perfect network.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    /// Each message is delayed uniformly in `[0, max_delay]` (so later ones may overtake).
    pub max_delay: Duration,
}

struct Pending {
    due: Instant,
    seq: u64,
    to: u64,
    batch: MessageBatch,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

struct State {
    inboxes: HashMap<u64, StoreInbox>,
    blocked: HashSet<(u64, u64)>,
    faults: Faults,
    rng: StdRng,
    queue: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    stopped: bool,
    delivered: u64,
    dropped: u64,
}

/// The shared network. Drop the last handle (or call [`SimNetwork::stop`]) to end it.
pub struct SimNetwork {
    state: Mutex<State>,
    wake: Condvar,
    seed: u64,
}

impl SimNetwork {
    pub fn new(seed: u64) -> Arc<Self> {
        let net = Arc::new(SimNetwork {
            state: Mutex::new(State {
                inboxes: HashMap::new(),
                blocked: HashSet::new(),
                faults: Faults::default(),
                rng: StdRng::seed_from_u64(seed),
                queue: BinaryHeap::new(),
                seq: 0,
                stopped: false,
                delivered: 0,
                dropped: 0,
            }),
            wake: Condvar::new(),
            seed,
        });
        let weak = Arc::downgrade(&net);
        std::thread::Builder::new()
            .name("sim-network".into())
            .spawn(move || deliver_loop(weak))
            .expect("spawn sim network thread");
        net
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Connects `node`'s inbox (replacing an earlier one, e.g. after a restart).
    pub fn register(&self, node: u64, inbox: StoreInbox) {
        self.state.lock().inboxes.insert(node, inbox);
    }

    /// Disconnects `node`: messages to it are dropped (a crashed node).
    pub fn unregister(&self, node: u64) {
        self.state.lock().inboxes.remove(&node);
    }

    /// A transport sending as `node`.
    pub fn transport(self: &Arc<Self>, node: u64) -> Arc<dyn Transport> {
        Arc::new(SimTransport {
            net: self.clone(),
            from: node,
        })
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().faults = faults;
    }

    /// Blocks messages from `from` to `to` (one way).
    pub fn block(&self, from: u64, to: u64) {
        self.state.lock().blocked.insert((from, to));
    }

    /// Cuts every link between the two sides, both ways.
    pub fn partition(&self, side_a: &[u64], side_b: &[u64]) {
        let mut s = self.state.lock();
        for a in side_a {
            for b in side_b {
                s.blocked.insert((*a, *b));
                s.blocked.insert((*b, *a));
            }
        }
    }

    /// Restores every link and removes all faults.
    pub fn heal(&self) {
        let mut s = self.state.lock();
        s.blocked.clear();
        s.faults = Faults::default();
    }

    /// (delivered, dropped) message batches so far.
    pub fn counters(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.delivered, s.dropped)
    }

    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.wake.notify_all();
    }

    fn send(&self, from: u64, to: u64, batch: MessageBatch) {
        let mut s = self.state.lock();
        if s.stopped || s.blocked.contains(&(from, to)) {
            s.dropped += 1;
            return;
        }
        let f = s.faults.clone();
        let mut kept = MessageBatch {
            from_node: batch.from_node,
            messages: Vec::with_capacity(batch.messages.len()),
        };
        let mut dups = Vec::new();
        for m in batch.messages {
            if f.drop_rate > 0.0 && s.rng.random_bool(f.drop_rate) {
                s.dropped += 1;
                continue;
            }
            if f.duplicate_rate > 0.0 && s.rng.random_bool(f.duplicate_rate) {
                dups.push(m.clone());
            }
            kept.messages.push(m);
        }
        let now = Instant::now();
        for b in [
            kept,
            MessageBatch {
                from_node: from,
                messages: dups,
            },
        ] {
            if b.messages.is_empty() {
                continue;
            }
            let delay = if f.max_delay.is_zero() {
                Duration::ZERO
            } else {
                f.max_delay.mul_f64(s.rng.random::<f64>())
            };
            s.seq += 1;
            let seq = s.seq;
            s.queue.push(Reverse(Pending {
                due: now + delay,
                seq,
                to,
                batch: b,
            }));
        }
        self.wake.notify_one();
    }
}

impl Drop for SimNetwork {
    fn drop(&mut self) {
        self.state.get_mut().stopped = true;
    }
}

fn deliver_loop(net: std::sync::Weak<SimNetwork>) {
    loop {
        let Some(net) = net.upgrade() else { return };
        let mut s = net.state.lock();
        if s.stopped {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while s.queue.peek().is_some_and(|p| p.0.due <= now) {
            due.push(s.queue.pop().expect("peeked").0);
        }
        if due.is_empty() {
            let wait = s
                .queue
                .peek()
                .map_or(Duration::from_millis(50), |p| {
                    p.0.due.saturating_duration_since(now)
                })
                .min(Duration::from_millis(50));
            net.wake.wait_for(&mut s, wait);
            continue;
        }
        let mut out = Vec::new();
        for p in due {
            let from = p.batch.from_node;
            match s.inboxes.get(&p.to) {
                Some(inbox) if !s.blocked.contains(&(from, p.to)) => {
                    out.push((inbox.clone(), p.batch))
                }
                _ => {
                    s.dropped += 1;
                    continue;
                }
            }
            s.delivered += 1;
        }
        drop(s);
        for (inbox, batch) in out {
            inbox.deliver(batch);
        }
    }
}

struct SimTransport {
    net: Arc<SimNetwork>,
    from: u64,
}

impl Transport for SimTransport {
    fn send(&self, to_node: u64, batch: MessageBatch) {
        self.net.send(self.from, to_node, batch);
    }
}
