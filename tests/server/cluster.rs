//! Three real server processes: any node answers any command (forwarding to shard leaders),
//! and killing a leader mid-workload loses no acknowledged write.

use super::common::TestCluster;
use redis::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn every_node_serves_every_command() {
    let cluster = TestCluster::start(3, 4, &[]);
    let mut clients: Vec<_> = cluster.nodes.iter().map(|n| n.client()).collect();
    // Keys on all four shards, written through each node in turn.
    let keys = ["0a", "Ab", "\u{90}c", "\u{e0}d", "0e", "Af"];
    for (i, k) in keys.iter().enumerate() {
        let c = &mut clients[i % 3];
        assert_eq!(q::<String>(c, &["SET", k, &format!("v{i}")]), "OK");
    }
    for c in clients.iter_mut() {
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(q::<String>(c, &["GET", k]), format!("v{i}"), "key {k}");
        }
        let all: Vec<Option<String>> = q(c, &["MGET", keys[0], keys[1], keys[2], keys[3]]);
        assert_eq!(all.iter().flatten().count(), 4);
        assert_eq!(q::<i64>(c, &["DBSIZE"]), keys.len() as i64);
        assert_eq!(q::<Vec<String>>(c, &["KEYS", "*"]).len(), keys.len());
    }
    assert_eq!(q::<i64>(&mut clients[2], &["INCR", "0ctr"]), 1);
    assert_eq!(q::<i64>(&mut clients[1], &["INCR", "0ctr"]), 2);
    assert_eq!(
        q::<i64>(&mut clients[0], &["DEL", "0a", "Ab", "\u{90}c"]),
        3
    );
    assert_eq!(
        q::<i64>(&mut clients[1], &["EXISTS", "0a", "Ab", "\u{e0}d"]),
        1
    );
    assert_eq!(q::<String>(&mut clients[2], &["FLUSHALL"]), "OK");
    assert_eq!(q::<i64>(&mut clients[0], &["DBSIZE"]), 0);
}

#[test]
fn killing_a_leader_mid_workload_loses_no_acknowledged_write() {
    let mut cluster = TestCluster::start(3, 2, &[]);
    let addrs: Vec<_> = cluster.nodes.iter().map(|n| n.url()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4usize {
        let addrs = addrs.clone();
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            // Acknowledged key -> value; errors are allowed, lost acks are not.
            let mut acked = BTreeMap::new();
            let mut errors = 0u64;
            let mut node = w % addrs.len();
            let mut conn = None;
            let deadline = Instant::now() + Duration::from_secs(40);
            for i in 0..100_000u64 {
                if (stop.load(Ordering::SeqCst) && i > 0) || Instant::now() > deadline {
                    break;
                }
                if conn.is_none() {
                    conn = redis::Client::open(addrs[node].as_str())
                        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                        .ok();
                    if conn.is_none() {
                        node = (node + 1) % addrs.len();
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
                // Keys on both shards (split at 0x80).
                let key = if i % 2 == 0 {
                    format!("w{w}-{i}")
                } else {
                    format!("\u{a0}w{w}-{i}")
                };
                let value = format!("{w}:{i}");
                let c = conn.as_mut().expect("connected");
                match redis::cmd("SET").arg(&key).arg(&value).query::<String>(c) {
                    Ok(_) => {
                        acked.insert(key, value);
                    }
                    Err(_) => {
                        errors += 1;
                        conn = None;
                        node = (node + 1) % addrs.len();
                    }
                }
            }
            (acked, errors)
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let victim = cluster.leader_of(0, 1).expect("shard 1 has a leader");
    cluster.nodes[victim as usize - 1].kill();
    std::thread::sleep(Duration::from_millis(3000));
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeMap::new();
    let mut errors = 0;
    for w in writers {
        let (a, e) = w.join().expect("writer");
        acked.extend(a);
        errors += e;
    }
    assert!(
        acked.len() > 100,
        "the workload made progress ({} acked)",
        acked.len()
    );
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.id != victim)
        .expect("a survivor");
    let c = &mut survivor.client();
    let check = |c: &mut redis::Connection| {
        for (k, v) in &acked {
            let got: Option<String> = redis::cmd("GET").arg(k).query(c).expect("GET");
            assert_eq!(
                got.as_deref(),
                Some(v.as_str()),
                "acknowledged write {k} lost"
            );
        }
    };
    check(c);
    // The killed node comes back with everything, too.
    cluster.nodes[victim as usize - 1].start();
    cluster.wait_ready();
    let c = &mut cluster.nodes[victim as usize - 1].client();
    check(c);
    eprintln!(
        "{} acknowledged writes survived; {errors} errors seen by clients",
        acked.len()
    );
    let v: Value = q(c, &["DBSIZE"]);
    assert!(matches!(v, Value::Int(n) if n as usize >= acked.len()));
}

#[test]
fn forwarding_authenticates_with_the_cluster_password() {
    let cluster = TestCluster::start(3, 4, &["--requirepass", "pw"]);
    let node = &cluster.nodes[1];
    let c = &mut redis::Client::open(format!("redis://:pw@{}/", node.resp))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    let keys = ["0a", "Ab", "\u{90}c", "\u{e0}d"];
    for k in keys {
        assert_eq!(q::<String>(c, &["SET", k, k]), "OK");
    }
    for k in keys {
        assert_eq!(q::<String>(c, &["GET", k]), k);
    }
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 4);
    let anon = &mut node.client();
    let err = redis::cmd("GET")
        .arg("0a")
        .query::<Value>(anon)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"));
}

/// Forwarding from io_uring workers (their peer connections are plain tokio sockets).
#[test]
fn forwarding_works_from_io_uring_workers() {
    let cluster = TestCluster::start(3, 4, &["--net-io", "auto"]);
    let keys = ["0a", "Ab", "\u{90}c", "\u{e0}d"];
    let mut writer = cluster.nodes[1].client();
    for k in keys {
        assert_eq!(q::<String>(&mut writer, &["SET", k, k]), "OK");
    }
    let mut reader = cluster.nodes[2].client();
    let got: Vec<String> = q(&mut reader, &["MGET", keys[0], keys[1], keys[2], keys[3]]);
    assert_eq!(got, keys);
    assert_eq!(q::<i64>(&mut reader, &["DBSIZE"]), 4);
}
