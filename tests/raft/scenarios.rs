//! The core scenarios, each run on memory engines and on real storage (file log + RocksDB).

use std::time::Duration;
use tessera::raftstore::{kv_delete, kv_put, PeerChange, ReadMode, StoreError};
use tessera::testkit::cluster::{wait_for, Cluster, ClusterOptions, Engines, Net};

const T: Duration = Duration::from_secs(10);

fn put(c: &Cluster, key: &str, value: &str) {
    let r = c
        .propose(key.as_bytes(), kv_put(key.as_bytes(), value.as_bytes()), T)
        .expect("put");
    assert_eq!(&r[..], b"OK");
}

fn get(c: &Cluster, key: &str) -> Option<String> {
    c.read(key.as_bytes(), T)
        .expect("read")
        .map(|v| String::from_utf8(v).unwrap())
}

/// Every running node's state engine holds `key = value` (after replication catches up).
fn replicated_everywhere(c: &Cluster, key: &str, value: &str) -> bool {
    wait_for(T, || {
        c.running()
            .iter()
            .all(|id| {
                c.node(*id)
                    .unwrap()
                    .state
                    .get(tessera_storage::Cf::Data, key.as_bytes())
                    .unwrap()
                    .as_deref()
                    == Some(value.as_bytes())
            })
            .then_some(())
    })
    .is_some()
}

pub fn elects_one_leader_and_replicates(engines: Engines) {
    let c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let leader = c.wait_leader(1, T).unwrap();
    let leaders: Vec<u64> = c
        .running()
        .into_iter()
        .filter(|id| c.status(*id, 1).unwrap().is_leader)
        .collect();
    assert_eq!(leaders, vec![leader]);
    for i in 0..50 {
        put(&c, &format!("k{i}"), &format!("v{i}"));
    }
    assert_eq!(get(&c, "k7").as_deref(), Some("v7"));
    assert_eq!(get(&c, "missing"), None);
    assert!(replicated_everywhere(&c, "k49", "v49"));
}

pub fn leader_crash_elects_a_new_leader_and_the_old_one_catches_up(engines: Engines) {
    let mut c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let old = c.wait_leader(1, T).unwrap();
    put(&c, "before", "1");
    c.crash(old);
    let new = c.wait_leader(1, T).unwrap();
    assert_ne!(new, old);
    put(&c, "after", "2");
    assert_eq!(
        get(&c, "before").as_deref(),
        Some("1"),
        "acknowledged before the crash"
    );
    c.restart(old).unwrap();
    assert!(
        replicated_everywhere(&c, "after", "2"),
        "the restarted node catches up"
    );
    assert!(replicated_everywhere(&c, "before", "1"));
}

pub fn isolated_leader_steps_down_and_serves_no_reads(engines: Engines) {
    let c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let old = c.wait_leader(1, T).unwrap();
    put(&c, "x", "1");
    let others: Vec<u64> = c.running().into_iter().filter(|id| *id != old).collect();
    c.net.partition(&[old], &others);
    // Check-quorum: the isolated leader notices it lost the quorum and steps down.
    let stepped_down = wait_for(T, || (!c.status(old, 1).unwrap().is_leader).then_some(()));
    assert!(stepped_down.is_some(), "isolated leader kept leading");
    match c.node(old).unwrap().store.read_wait(1) {
        Err(StoreError::NotLeader { .. }) | Err(StoreError::Timeout(_)) => {}
        other => panic!("isolated node served a read: {other:?}"),
    }
    let new = wait_for(T, || c.leader(1).filter(|l| *l != old)).expect("majority elects a leader");
    c.node(new)
        .unwrap()
        .store
        .propose_wait(1, kv_put(b"x", b"2"))
        .unwrap();
    c.net.heal();
    assert!(replicated_everywhere(&c, "x", "2"));
}

pub fn leadership_transfer_moves_the_leader(engines: Engines) {
    let c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let old = c.wait_leader(1, T).unwrap();
    put(&c, "a", "1");
    let target = c.running().into_iter().find(|id| *id != old).unwrap();
    assert!(c.wait_applied(1, c.status(old, 1).unwrap().commit, T));
    c.node(old).unwrap().store.transfer_leader(1, target);
    let moved = wait_for(T, || (c.leader(1) == Some(target)).then_some(()));
    assert!(moved.is_some(), "leadership did not move to {target}");
    put(&c, "b", "2");
    assert_eq!(get(&c, "a").as_deref(), Some("1"));
}

pub fn full_cluster_restart_keeps_every_acknowledged_write(engines: Engines) {
    let mut c = Cluster::start(ClusterOptions::new(3, 4, engines)).unwrap();
    for g in 1..=4 {
        c.wait_leader(g, T).unwrap();
    }
    let keys: Vec<String> = (0..40)
        .map(|i| format!("{}key{i}", (b'a' + (i * 7 % 26) as u8) as char))
        .collect();
    for k in &keys {
        put(&c, k, k);
    }
    for id in c.running() {
        c.crash(id);
    }
    for id in 1..=3 {
        c.restart(id).unwrap();
    }
    for g in 1..=4 {
        c.wait_leader(g, T).unwrap();
    }
    for k in &keys {
        assert_eq!(get(&c, k).as_deref(), Some(k.as_str()), "lost {k}");
    }
    put(&c, "zzz", "after restart");
    assert!(replicated_everywhere(&c, "zzz", "after restart"));
}

/// A commit-only hard-state change rides along with the next log write instead of costing a
/// sync round of its own, so a sequential write costs each replica about one round (it was
/// two: the entries, then the commit index), and nothing is lost across a full restart.
pub fn a_sequential_write_costs_each_replica_about_one_sync_round(engines: Engines) {
    let mut c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    c.wait_leader(1, T).unwrap();
    put(&c, "warm", "up");
    let rounds = |c: &Cluster| -> u64 {
        c.running()
            .iter()
            .map(|id| c.node(*id).unwrap().log.status().sync_rounds)
            .sum()
    };
    let before = rounds(&c);
    let writes = 40;
    for i in 0..writes {
        put(&c, &format!("k{i}"), "v");
    }
    let per_write_per_node = (rounds(&c) - before) as f64 / writes as f64 / 3.0;
    assert!(
        per_write_per_node < 1.5,
        "{per_write_per_node:.2} sync rounds per write per replica"
    );
    for id in c.running() {
        c.crash(id);
    }
    for id in 1..=3 {
        c.restart(id).unwrap();
    }
    c.wait_leader(1, T).unwrap();
    for i in 0..writes {
        assert_eq!(get(&c, &format!("k{i}")).as_deref(), Some("v"));
    }
}

pub fn shards_are_independent_groups(engines: Engines) {
    let c = Cluster::start(ClusterOptions::new(3, 8, engines)).unwrap();
    let mut seen = std::collections::HashSet::new();
    for i in 0..64u32 {
        let key = format!("{}-{i}", char::from(b' ' + (i * 3 % 90) as u8));
        seen.insert(c.shard_of(key.as_bytes()));
        put(&c, &key, "v");
    }
    assert!(seen.len() > 1, "keys spread over shards");
    for g in seen {
        assert!(c.status(1, g).unwrap().applied > 0);
    }
}

pub fn lease_reads_are_served_by_the_leader(engines: Engines) {
    let mut o = ClusterOptions::new(3, 1, engines);
    o.configure = |c| c.read_mode = ReadMode::Lease;
    let c = Cluster::start(o).unwrap();
    c.wait_leader(1, T).unwrap();
    put(&c, "lease", "1");
    assert_eq!(get(&c, "lease").as_deref(), Some("1"));
    let follower = c
        .running()
        .into_iter()
        .find(|id| Some(*id) != c.leader(1))
        .unwrap();
    assert!(matches!(
        c.node(follower).unwrap().store.read_wait(1),
        Err(StoreError::NotLeader { .. })
    ));
}

pub fn lagging_follower_is_caught_up_by_snapshot(engines: Engines) {
    lagging_follower_case(engines, Net::Sim);
}

fn lagging_follower_case(engines: Engines, net: Net) {
    let mut o = ClusterOptions::new(3, 1, engines);
    o.net = net;
    o.configure = |c| {
        c.compact_log_threshold = 20;
        c.maintenance_ticks = 5;
        c.log_flush_bytes = 0;
    };
    let mut c = Cluster::start(o).unwrap();
    let leader = c.wait_leader(1, T).unwrap();
    let lagger = c.running().into_iter().find(|id| *id != leader).unwrap();
    put(&c, "early", "1");
    assert!(replicated_everywhere(&c, "early", "1"));
    c.crash(lagger);
    for i in 0..150 {
        put(&c, &format!("s{i:03}"), &format!("{i}"));
    }
    // The survivors flush, and compact their logs past everything the lagger has.
    let compacted = wait_for(T, || {
        let leader = c.leader(1)?;
        (c.node(leader)?.log.compacted_to(1) > 100).then_some(())
    });
    assert!(compacted.is_some(), "the leader never compacted its log");
    c.restart(lagger).unwrap();
    assert!(
        replicated_everywhere(&c, "s149", "149"),
        "the lagger did not catch up"
    );
    assert!(replicated_everywhere(&c, "s000", "0"));
    assert!(replicated_everywhere(&c, "early", "1"));
    let log = &c.node(lagger).unwrap().log;
    let replaced = wait_for(T, || (log.compacted_to(1) > 100).then_some(()));
    assert!(
        replaced.is_some(),
        "the lagger's log was not replaced by the snapshot: first {:?} last {:?} compacted {}",
        log.first_index(1),
        log.last_index(1),
        log.compacted_to(1)
    );
    // And it keeps replicating normally afterwards.
    put(&c, "late", "2");
    assert!(replicated_everywhere(&c, "late", "2"));
}

/// A follower that missed more committed entries than one round applies (4 MiB per group)
/// catches up from the log over several rounds, and meanwhile keeps up with new writes.
pub fn a_follower_behind_by_many_rounds_of_entries_catches_up(engines: Engines) {
    let mut c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let leader = c.wait_leader(1, T).unwrap();
    let lagger = c.running().into_iter().find(|id| *id != leader).unwrap();
    put(&c, "before", "1");
    assert!(replicated_everywhere(&c, "before", "1"));
    c.crash(lagger);
    let big = "x".repeat(256 << 10);
    for i in 0..40 {
        put(&c, &format!("big{i:02}"), &big); // 10 MiB in all
    }
    c.restart(lagger).unwrap();
    put(&c, "after", "2");
    assert!(
        replicated_everywhere(&c, "after", "2"),
        "the lagger caught up"
    );
    for i in [0, 17, 39] {
        assert!(replicated_everywhere(&c, &format!("big{i:02}"), &big));
    }
    let applied = wait_for(T, || {
        c.status(lagger, 1)
            .filter(|s| s.applied == s.commit)
            .map(|_| ())
    });
    assert!(applied.is_some(), "{:?}", c.status(lagger, 1));
}

fn store_of(c: &Cluster, id: u64) -> &tessera::raftstore::RaftStore {
    &c.node(id).unwrap().store
}

pub fn membership_changes_with_learners_and_joint_consensus(engines: Engines) {
    let mut c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let leader = c.wait_leader(1, T).unwrap();
    for i in 0..20 {
        put(&c, &format!("m{i}"), "before");
    }
    // A new node joins as a learner: it gets a snapshot (the log starts past what it needs).
    c.add_node(4).unwrap();
    assert_eq!(
        &store_of(&c, leader)
            .change_peers_wait(1, vec![PeerChange::AddLearner(4)])
            .unwrap()[..],
        b"OK"
    );
    assert!(
        replicated_everywhere(&c, "m19", "before"),
        "the learner caught up"
    );
    put(&c, "learner", "sees this");
    assert!(replicated_everywhere(&c, "learner", "sees this"));
    // Promote it, and move leadership to node 3 so the old members can leave.
    let l = c.leader(1).unwrap();
    assert_eq!(
        &store_of(&c, l)
            .change_peers_wait(1, vec![PeerChange::AddVoter(4)])
            .unwrap()[..],
        b"OK"
    );
    // A transfer can be refused while the target still applies a membership change; retry.
    let moved = wait_for(T, || {
        if c.leader(1) == Some(3) {
            return Some(());
        }
        if let Some(l) = c.leader(1) {
            store_of(&c, l).transfer_leader(1, 3);
        }
        std::thread::sleep(Duration::from_millis(200));
        None
    });
    assert!(moved.is_some(), "leadership did not move to 3");
    // Joint consensus: remove nodes 1 and 2 in one change; {3, 4} remain.
    assert_eq!(
        &store_of(&c, 3)
            .change_peers_wait(1, vec![PeerChange::Remove(1), PeerChange::Remove(2)])
            .unwrap()[..],
        b"OK"
    );
    // The leader leaves the joint configuration on its own; wait until it has.
    let left_joint = wait_for(T, || {
        let s = c.status(3, 1)?;
        (s.voters == vec![3, 4] && !s.joint && s.applied >= s.commit).then_some(())
    });
    assert!(left_joint.is_some(), "still joint: {:?}", c.status(3, 1));
    c.crash(1);
    c.crash(2);
    // Only 3 and 4 are voters now, so writes still commit with 1 and 2 gone.
    put(&c, "after", "joint");
    assert_eq!(get(&c, "m7").as_deref(), Some("before"));
    assert!(replicated_everywhere(&c, "after", "joint"));
}

/// Local reads (no Raft round) are allowed only to a sole voter that has applied an entry
/// of its own term — never in a replicated group, and not right after a restart before the
/// new term's first entry is applied.
pub fn only_a_sole_voter_reads_locally(engines: Engines) {
    let replicated = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let leader = replicated.wait_leader(1, T).unwrap();
    put(&replicated, "k", "v");
    for id in replicated.running() {
        assert!(
            !replicated.status(id, 1).unwrap().local_reads,
            "node {id} (leader {leader})"
        );
    }
    let mut single = Cluster::start(ClusterOptions::new(1, 1, engines)).unwrap();
    single.wait_leader(1, T).unwrap();
    put(&single, "k", "v");
    let ready = wait_for(T, || {
        single.status(1, 1).filter(|s| s.local_reads).map(|_| ())
    });
    assert!(
        ready.is_some(),
        "a sole voter reads locally once its term has an applied entry"
    );
    // After a restart the flag comes back with the new term's own (empty) entry applied —
    // no client write needed, since statuses are republished when only `applied` moves —
    // and a local read then sees the write acknowledged before the restart.
    let term_before = single.status(1, 1).unwrap().term;
    single.restart(1).unwrap();
    let again = wait_for(T, || {
        single
            .status(1, 1)
            .filter(|s| s.local_reads && s.term > term_before && s.applied >= s.commit)
            .map(|_| ())
    });
    assert!(
        again.is_some(),
        "local reads resume after a restart without a write"
    );
    assert_eq!(get(&single, "k").as_deref(), Some("v"));
}

/// Proposals that reach the leader in one round become one batched entry, and each proposer
/// still gets the reply of its own command: deletes of present and missing keys answer 1
/// and 0, so a reply handed to the wrong proposer shows.
pub fn proposals_of_one_round_share_an_entry_and_keep_their_own_replies(engines: Engines) {
    let c = Cluster::start(ClusterOptions::new(3, 1, engines)).unwrap();
    let leader = c.wait_leader(1, T).unwrap();
    for i in (0..200).step_by(2) {
        put(&c, &format!("d{i}"), "x");
    }
    let node = c.node(leader).unwrap();
    let before = node.log.last_index(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut expected = Vec::new();
    for i in 0..200 {
        let (cmd, want) = if i % 2 == 0 {
            (kv_delete(format!("d{i}").as_bytes()), "1")
        } else if i % 3 == 0 {
            (kv_delete(format!("d{i}").as_bytes()), "0")
        } else {
            (kv_put(format!("p{i}").as_bytes(), b"y"), "OK")
        };
        expected.push(want);
        let tx = tx.clone();
        node.store
            .propose(1, cmd, Box::new(move |r| tx.send((i, r)).unwrap()));
    }
    for _ in 0..expected.len() {
        let (i, r) = rx.recv_timeout(T).expect("every proposer hears back");
        assert_eq!(
            std::str::from_utf8(&r.expect("applied")).unwrap(),
            expected[i],
            "proposal {i}"
        );
    }
    let entries = node.log.last_index(1).unwrap() - before;
    assert!(
        entries < expected.len() as u64,
        "{entries} entries for {} proposals sent back to back",
        expected.len()
    );
    assert!(replicated_everywhere(&c, "p199", "y"));
    assert_eq!(get(&c, "d0"), None);
    assert_eq!(get(&c, "p1").as_deref(), Some("y"));
}

macro_rules! on_engines {
    ($($case:ident),* $(,)?) => {
        mod memory { $( #[test] fn $case() { super::$case(super::Engines::Memory); } )* }
        mod real { $( #[test] fn $case() { super::$case(super::Engines::Real); } )* }
    };
}

on_engines!(
    elects_one_leader_and_replicates,
    leader_crash_elects_a_new_leader_and_the_old_one_catches_up,
    isolated_leader_steps_down_and_serves_no_reads,
    leadership_transfer_moves_the_leader,
    full_cluster_restart_keeps_every_acknowledged_write,
    a_sequential_write_costs_each_replica_about_one_sync_round,
    shards_are_independent_groups,
    lease_reads_are_served_by_the_leader,
    lagging_follower_is_caught_up_by_snapshot,
    a_follower_behind_by_many_rounds_of_entries_catches_up,
    membership_changes_with_learners_and_joint_consensus,
    only_a_sole_voter_reads_locally,
    proposals_of_one_round_share_an_entry_and_keep_their_own_replies,
);

/// A state-engine write that fails stops applying for good, on the store thread and on an
/// apply thread alike: the write's proposer gets the error, a later write is refused even
/// once the engine works again (applying it would record an applied index past the lost
/// batch), the node stops claiming leadership, and a restart replays the lost write from
/// the log. Memory engines only: they are the ones that can be told to fail.
fn a_failed_state_write_stops_applying_until_a_restart_replays_it(
    configure: fn(&mut tessera::raftstore::StoreConfig),
) {
    let mut opts = ClusterOptions::new(1, 1, Engines::Memory);
    opts.configure = configure;
    let mut c = Cluster::start(opts).unwrap();
    c.wait_leader(1, T).unwrap();
    put(&c, "a", "1");
    assert!(c.fail_state_writes(1, true));
    let store = &c.node(1).unwrap().store;
    assert!(!store.halted());
    let r = store.propose_wait(1, kv_put(b"b", b"2"));
    assert!(
        matches!(&r, Err(StoreError::Storage(m)) if m.contains("applying stopped")),
        "{r:?}"
    );
    c.fail_state_writes(1, false);
    let r = store.propose_wait(1, kv_put(b"c", b"3"));
    assert!(r.is_err(), "nothing is applied after a failed write: {r:?}");
    let stepped_down = wait_for(T, || {
        c.status(1, 1)
            .filter(|s| !s.is_leader && !s.local_reads && s.leader.is_none())
            .map(|_| ())
    });
    assert!(stepped_down.is_some(), "{:?}", c.status(1, 1));
    assert!(store.halted(), "a server sees the halt and exits");
    // What the engine holds may reach disk at any moment (RocksDB flushes on its own).
    c.node(1).unwrap().state.flush().unwrap();
    c.restart(1).unwrap();
    c.wait_leader(1, T).unwrap();
    assert_eq!(get(&c, "a").as_deref(), Some("1"));
    assert_eq!(
        get(&c, "b").as_deref(),
        Some("2"),
        "the committed write whose apply failed is applied on replay"
    );
    assert_eq!(
        get(&c, "c"),
        None,
        "refused after the stop: never in the log"
    );
    put(&c, "d", "4");
    assert_eq!(get(&c, "d").as_deref(), Some("4"));
}

#[test]
fn a_failed_state_write_stops_inline_apply_until_a_restart() {
    a_failed_state_write_stops_applying_until_a_restart_replays_it(|_| {});
}

#[test]
fn a_failed_state_write_stops_the_apply_thread_until_a_restart() {
    a_failed_state_write_stops_applying_until_a_restart_replays_it(|c| c.apply_inline = false);
}

/// The core scenarios again, on real storage and real TCP over loopback.
mod tcp {
    use super::*;

    #[test]
    fn lagging_follower_is_caught_up_by_a_streamed_snapshot_over_tcp() {
        lagging_follower_case(Engines::Real, Net::Tcp);
    }

    fn tcp_cluster(nodes: u64, shards: u64) -> Cluster {
        let mut o = ClusterOptions::new(nodes, shards, Engines::Real);
        o.net = Net::Tcp;
        Cluster::start(o).unwrap()
    }

    #[test]
    fn elects_replicates_and_survives_leader_crash_over_tcp() {
        let mut c = tcp_cluster(3, 2);
        let old = c.wait_leader(1, T).unwrap();
        for i in 0..30 {
            put(&c, &format!("k{i}"), &format!("v{i}"));
        }
        assert!(replicated_everywhere(&c, "k29", "v29"));
        c.crash(old);
        let new = c.wait_leader(1, T).unwrap();
        assert_ne!(new, old);
        put(&c, "after", "1");
        c.restart(old).unwrap();
        assert!(
            replicated_everywhere(&c, "after", "1"),
            "the restarted node reconnects and catches up"
        );
        assert_eq!(get(&c, "k3").as_deref(), Some("v3"));
    }

    #[test]
    fn full_restart_over_tcp_keeps_acknowledged_writes() {
        let mut c = tcp_cluster(3, 1);
        c.wait_leader(1, T).unwrap();
        for i in 0..20 {
            put(&c, &format!("r{i}"), "x");
        }
        for id in c.running() {
            c.crash(id);
        }
        for id in 1..=3 {
            c.restart(id).unwrap();
        }
        c.wait_leader(1, T).unwrap();
        for i in 0..20 {
            assert_eq!(get(&c, &format!("r{i}")).as_deref(), Some("x"));
        }
    }
}
