//! Every implemented command through a real client (the `redis` crate) against a real
//! single-node server: replies, Redis error texts, options, and expiry.

use super::common::TestCluster;
use redis::{Connection, FromRedisValue, Value};
use std::time::Duration;

fn q<T: FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// The error reply of a command as "CODE detail".
fn e(c: &mut Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(c) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
        Err(err) => format!(
            "{} {}",
            err.code().unwrap_or("?"),
            err.detail().unwrap_or_default()
        ),
    }
}

fn nil(c: &mut Connection, args: &[&str]) -> bool {
    q::<Value>(c, args) == Value::Nil
}

#[test]
fn string_commands_on_one_node() {
    let cluster = TestCluster::single(&[]);
    string_commands(&mut cluster.node().client(), &cluster);
}

/// Through node 2 of three: commands on shards it does not lead are forwarded.
#[test]
fn string_commands_through_a_cluster() {
    let cluster = TestCluster::start(3, 4, &[]);
    string_commands(&mut cluster.nodes[1].client(), &cluster);
}

fn string_commands(c: &mut Connection, _cluster: &TestCluster) {
    assert_eq!(q::<String>(c, &["SET", "s", "v1"]), "OK");
    assert_eq!(q::<String>(c, &["GET", "s"]), "v1");
    assert!(nil(c, &["GET", "missing"]));
    assert!(nil(c, &["SET", "s", "v2", "NX"]), "NX on an existing key");
    assert!(nil(c, &["SET", "fresh", "v", "XX"]), "XX on a missing key");
    assert_eq!(q::<String>(c, &["SET", "s", "v2", "XX", "GET"]), "v1");
    assert!(nil(c, &["SET", "new", "x", "NX", "GET"]));
    assert_eq!(q::<String>(c, &["GET", "new"]), "x");
    assert_eq!(q::<String>(c, &["SET", "s", "v3", "EX", "100"]), "OK");
    assert!((90..=100).contains(&q::<i64>(c, &["TTL", "s"])));
    assert_eq!(q::<String>(c, &["SET", "s", "v4", "KEEPTTL"]), "OK");
    assert!(q::<i64>(c, &["PTTL", "s"]) > 90_000, "KEEPTTL kept it");
    assert_eq!(q::<String>(c, &["SET", "s", "v5"]), "OK");
    assert_eq!(q::<i64>(c, &["TTL", "s"]), -1, "a plain SET clears the TTL");
    let at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1000)
        .to_string();
    q::<String>(c, &["SET", "s", "v", "EXAT", &at]);
    assert_eq!(q::<String>(c, &["EXPIRETIME", "s"]), at);
    assert_eq!(
        e(c, &["SET", "s", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        e(c, &["SET", "s", "v", "EX", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(e(c, &["SET", "s", "v", "NX", "XX"]), "ERR syntax error");
    assert_eq!(
        e(c, &["SET", "s", "v", "EX", "1", "PX", "1"]),
        "ERR syntax error"
    );
    assert_eq!(
        e(c, &["SET", "s"]),
        "ERR wrong number of arguments for 'set' command"
    );

    assert_eq!(q::<i64>(c, &["SETNX", "nx", "1"]), 1);
    assert_eq!(q::<i64>(c, &["SETNX", "nx", "2"]), 0);
    assert_eq!(q::<String>(c, &["SETEX", "se", "100", "v"]), "OK");
    assert!(q::<i64>(c, &["TTL", "se"]) > 90);
    assert_eq!(q::<String>(c, &["PSETEX", "pse", "100000", "v"]), "OK");
    assert_eq!(
        e(c, &["SETEX", "se", "-1", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(q::<String>(c, &["GETSET", "nx", "3"]), "1");
    assert_eq!(q::<String>(c, &["GETDEL", "nx"]), "3");
    assert!(nil(c, &["GETDEL", "nx"]));
    q::<String>(c, &["SET", "gx", "v"]);
    assert_eq!(q::<String>(c, &["GETEX", "gx", "PX", "100000"]), "v");
    assert!(q::<i64>(c, &["PTTL", "gx"]) > 90_000);
    assert_eq!(q::<String>(c, &["GETEX", "gx", "PERSIST"]), "v");
    assert_eq!(q::<i64>(c, &["TTL", "gx"]), -1);
    assert_eq!(e(c, &["GETEX", "gx", "BOGUS"]), "ERR syntax error");

    // Keys on different shards (4 shards split at the first byte 0x40/0x80/0xc0).
    assert_eq!(q::<String>(c, &["MSET", "a1", "x", "a2", "y"]), "OK");
    assert_eq!(
        q::<Vec<Option<String>>>(c, &["MGET", "a1", "0zz", "a2", "nope"]),
        vec![Some("x".into()), None, Some("y".into()), None]
    );
    q::<String>(c, &["SET", "0zz", "z"]);
    assert_eq!(
        q::<Vec<Option<String>>>(c, &["MGET", "0zz", "a1"]),
        vec![Some("z".into()), Some("x".into())],
        "MGET across shards keeps the order"
    );
    assert!(e(c, &["MSET", "a1", "1", "0zz", "2"]).starts_with("CROSSSHARD"));
    assert_eq!(
        e(c, &["MSET", "a1", "1", "a2"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(q::<i64>(c, &["MSETNX", "b1", "1", "b2", "2"]), 1);
    assert_eq!(q::<i64>(c, &["MSETNX", "b2", "1", "b3", "2"]), 0);
    assert!(nil(c, &["GET", "b3"]), "MSETNX set nothing");

    assert_eq!(q::<i64>(c, &["INCR", "n"]), 1);
    assert_eq!(q::<i64>(c, &["INCRBY", "n", "10"]), 11);
    assert_eq!(q::<i64>(c, &["DECR", "n"]), 10);
    assert_eq!(q::<i64>(c, &["DECRBY", "n", "20"]), -10);
    assert_eq!(
        e(c, &["INCR", "s"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        e(c, &["INCRBY", "n", "1.5"]),
        "ERR value is not an integer or out of range"
    );
    q::<String>(c, &["SET", "big", "9223372036854775807"]);
    assert_eq!(
        e(c, &["INCR", "big"]),
        "ERR increment or decrement would overflow"
    );
    assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "10.5"]), "10.5");
    assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "0.1"]), "10.6");
    assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "-5.6"]), "5");
    assert_eq!(
        e(c, &["INCRBYFLOAT", "f", "abc"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        e(c, &["INCRBYFLOAT", "f", "inf"]),
        "ERR increment would produce NaN or Infinity"
    );

    assert_eq!(q::<i64>(c, &["APPEND", "ap", "Hello "]), 6);
    assert_eq!(q::<i64>(c, &["APPEND", "ap", "World"]), 11);
    assert_eq!(q::<i64>(c, &["STRLEN", "ap"]), 11);
    assert_eq!(q::<i64>(c, &["STRLEN", "missing"]), 0);
    assert_eq!(q::<String>(c, &["GETRANGE", "ap", "0", "4"]), "Hello");
    assert_eq!(q::<String>(c, &["GETRANGE", "ap", "-5", "-1"]), "World");
    assert_eq!(q::<String>(c, &["GETRANGE", "ap", "5", "2"]), "");
    assert_eq!(q::<i64>(c, &["SETRANGE", "ap", "6", "Redis"]), 11);
    assert_eq!(q::<String>(c, &["GET", "ap"]), "Hello Redis");
    assert_eq!(q::<i64>(c, &["SETRANGE", "pad", "3", "x"]), 4);
    assert_eq!(q::<Vec<u8>>(c, &["GET", "pad"]), b"\0\0\0x");
    assert_eq!(
        e(c, &["SETRANGE", "pad", "-1", "x"]),
        "ERR offset is out of range"
    );
    assert_eq!(
        e(c, &["SETRANGE", "pad", "536870911", "xx"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    assert_eq!(q::<i64>(c, &["SETRANGE", "none", "5", ""]), 0);
    assert_eq!(
        q::<i64>(c, &["EXISTS", "none"]),
        0,
        "empty SETRANGE creates nothing"
    );
}

#[test]
fn key_commands_and_keyspace_walks_on_one_node() {
    let cluster = TestCluster::single(&[]);
    key_commands_and_keyspace_walks(&mut cluster.node().client(), &cluster);
}

/// Through node 2 of three: commands on shards it does not lead are forwarded.
#[test]
fn key_commands_and_keyspace_walks_through_a_cluster() {
    let cluster = TestCluster::start(3, 4, &[]);
    key_commands_and_keyspace_walks(&mut cluster.nodes[1].client(), &cluster);
}

fn key_commands_and_keyspace_walks(c: &mut Connection, _cluster: &TestCluster) {
    for k in ["k1", "k2", "0k3", "\u{90}k4", "user:1", "user:2"] {
        q::<String>(c, &["SET", k, "v"]);
    }
    assert_eq!(q::<i64>(c, &["EXISTS", "k1", "k1", "0k3", "nope"]), 3);
    assert_eq!(q::<i64>(c, &["TOUCH", "k1", "nope"]), 1);
    assert_eq!(q::<String>(c, &["TYPE", "k1"]), "string");
    assert_eq!(q::<String>(c, &["TYPE", "nope"]), "none");
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 6);
    let mut keys: Vec<String> = q(c, &["KEYS", "user:*"]);
    keys.sort();
    assert_eq!(keys, vec!["user:1", "user:2"]);
    assert_eq!(q::<Vec<String>>(c, &["KEYS", "k[2-9]"]), vec!["k2"]);
    // SCAN with a small COUNT visits every key exactly once across shards.
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, batch): (String, Vec<String>) = q(c, &["SCAN", &cursor, "COUNT", "2"]);
        seen.extend(batch);
        calls += 1;
        assert!(calls < 50, "SCAN terminates");
        if next == "0" {
            break;
        }
        cursor = next;
    }
    seen.sort();
    assert_eq!(seen.len(), 6);
    seen.dedup();
    assert_eq!(seen.len(), 6);
    let (_, m): (String, Vec<String>) = q(
        c,
        &[
            "SCAN", "0", "MATCH", "user:*", "COUNT", "100", "TYPE", "string",
        ],
    );
    assert_eq!(m.len(), 2);
    let (_, none): (String, Vec<String>) = q(c, &["SCAN", "0", "COUNT", "100", "TYPE", "list"]);
    assert!(none.is_empty());
    assert_eq!(e(c, &["SCAN", "abc"]), "ERR invalid cursor");
    assert_eq!(e(c, &["SCAN", "0", "COUNT", "0"]), "ERR syntax error");
    let r: String = q(c, &["RANDOMKEY"]);
    assert!(["k1", "k2", "0k3", "\u{90}k4", "user:1", "user:2"].contains(&r.as_str()));

    assert_eq!(
        q::<i64>(c, &["DEL", "k1", "0k3", "nope"]),
        2,
        "DEL across shards"
    );
    assert_eq!(q::<i64>(c, &["UNLINK", "k2"]), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:1", "100"]), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:1", "200", "NX"]), 0);
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:1", "200", "XX"]), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:1", "100", "GT"]), 0);
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:1", "300", "GT"]), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:1", "50", "LT"]), 1);
    assert_eq!(
        q::<i64>(c, &["EXPIRE", "user:2", "50", "GT"]),
        0,
        "no TTL counts as infinite"
    );
    assert_eq!(q::<i64>(c, &["EXPIRE", "user:2", "50", "LT"]), 1);
    assert_eq!(
        e(c, &["EXPIRE", "user:2", "5", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        e(c, &["EXPIRE", "user:2", "5", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(q::<i64>(c, &["EXPIRE", "nope", "5"]), 0);
    assert!((40..=50).contains(&q::<i64>(c, &["TTL", "user:1"])));
    assert!(q::<i64>(c, &["PTTL", "user:1"]) > 40_000);
    assert_eq!(q::<i64>(c, &["PEXPIRE", "user:1", "100000"]), 1);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        q::<i64>(c, &["EXPIREAT", "user:1", &(now_s + 500).to_string()]),
        1
    );
    assert_eq!(q::<i64>(c, &["EXPIRETIME", "user:1"]), now_s + 500);
    assert_eq!(
        q::<i64>(
            c,
            &["PEXPIREAT", "user:1", &((now_s + 600) * 1000).to_string()]
        ),
        1
    );
    assert_eq!(
        q::<i64>(c, &["PEXPIRETIME", "user:1"]),
        (now_s + 600) * 1000
    );
    assert_eq!(q::<i64>(c, &["TTL", "nope"]), -2);
    assert_eq!(q::<i64>(c, &["PERSIST", "user:1"]), 1);
    assert_eq!(q::<i64>(c, &["PERSIST", "user:1"]), 0);
    assert_eq!(q::<i64>(c, &["TTL", "user:1"]), -1);
    assert_eq!(
        q::<i64>(c, &["EXPIRE", "user:2", "-1"]),
        1,
        "a past time deletes"
    );
    assert_eq!(q::<i64>(c, &["EXISTS", "user:2"]), 0);

    q::<i64>(c, &["EXPIRE", "user:1", "100"]);
    assert_eq!(q::<String>(c, &["RENAME", "user:1", "user:9"]), "OK");
    assert!(
        q::<i64>(c, &["TTL", "user:9"]) > 90,
        "the TTL moves with the value"
    );
    assert_eq!(e(c, &["RENAME", "user:1", "x"]), "ERR no such key");
    q::<String>(c, &["SET", "user:8", "w"]);
    assert_eq!(q::<i64>(c, &["RENAMENX", "user:9", "user:8"]), 0);
    assert_eq!(q::<i64>(c, &["RENAMENX", "user:9", "user:7"]), 1);
    assert!(e(c, &["RENAME", "user:7", "0other"]).starts_with("CROSSSHARD"));

    assert_eq!(q::<String>(c, &["FLUSHDB"]), "OK");
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 0);
    q::<String>(c, &["SET", "after", "flush"]);
    assert_eq!(q::<String>(c, &["FLUSHALL", "SYNC"]), "OK");
    assert_eq!(q::<i64>(c, &["EXISTS", "after"]), 0);
    assert!(nil(c, &["RANDOMKEY"]));
}

#[test]
fn keys_expire_everywhere_and_are_deleted_through_raft_on_one_node() {
    let cluster = TestCluster::single(&[]);
    keys_expire_everywhere_and_are_deleted_through_raft(&mut cluster.node().client(), &cluster);
}

/// Through node 2 of three: commands on shards it does not lead are forwarded.
#[test]
fn keys_expire_everywhere_and_are_deleted_through_raft_through_a_cluster() {
    let cluster = TestCluster::start(3, 4, &[]);
    keys_expire_everywhere_and_are_deleted_through_raft(&mut cluster.nodes[1].client(), &cluster);
}

fn keys_expire_everywhere_and_are_deleted_through_raft(c: &mut Connection, cluster: &TestCluster) {
    q::<String>(c, &["SET", "soon", "v", "PX", "1500"]);
    q::<String>(c, &["SET", "lazy", "v", "PX", "1500"]);
    q::<String>(c, &["SET", "stays", "v"]);
    assert_eq!(q::<i64>(c, &["EXISTS", "soon", "lazy"]), 2);
    std::thread::sleep(Duration::from_millis(1800));
    assert!(nil(c, &["GET", "lazy"]), "an expired key reads as missing");
    assert_eq!(q::<i64>(c, &["EXISTS", "soon"]), 0);
    assert_eq!(q::<i64>(c, &["TTL", "soon"]), -2);
    assert_eq!(q::<i64>(c, &["DBSIZE"]), 1);
    assert_eq!(
        q::<i64>(c, &["SETNX", "lazy", "new"]),
        1,
        "an expired key can be recreated"
    );
    // The active cycle (on the shard's leader) proposes the deletion of expired keys.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut expired = 0u64;
        for node in &cluster.nodes {
            let info: String = q(&mut node.client(), &["INFO", "stats"]);
            expired += info
                .lines()
                .find_map(|l| l.strip_prefix("expired_keys:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        if expired >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no expired key was collected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn connection_and_server_commands() {
    let cluster = TestCluster::single(&[]);
    let c = &mut cluster.node().client();
    assert_eq!(q::<String>(c, &["PING"]), "PONG");
    assert_eq!(q::<String>(c, &["PING", "hi"]), "hi");
    assert_eq!(q::<String>(c, &["ECHO", "x y"]), "x y");
    assert_eq!(q::<String>(c, &["SELECT", "0"]), "OK");
    assert_eq!(e(c, &["SELECT", "1"]), "ERR DB index is out of range");
    assert_eq!(
        e(c, &["NOSUCH", "a", "b"]),
        "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        e(c, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    let id: i64 = q(c, &["CLIENT", "ID"]);
    assert!(id > 0);
    assert!(nil(c, &["CLIENT", "GETNAME"]));
    assert_eq!(q::<String>(c, &["CLIENT", "SETNAME", "tester"]), "OK");
    assert_eq!(q::<String>(c, &["CLIENT", "GETNAME"]), "tester");
    assert_eq!(
        q::<String>(c, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]),
        "OK"
    );
    let list: String = q(c, &["CLIENT", "LIST"]);
    assert!(
        list.contains("name=tester") && list.contains("lib-name=mylib"),
        "{list}"
    );
    assert_eq!(
        e(c, &["CLIENT", "NOPE"]),
        "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."
    );
    let victim = &mut cluster.node().client();
    let vid: i64 = q(victim, &["CLIENT", "ID"]);
    assert_eq!(q::<i64>(c, &["CLIENT", "KILL", "ID", &vid.to_string()]), 1);
    assert!(
        redis::cmd("PING").query::<String>(victim).is_err(),
        "killed"
    );

    let count: i64 = q(c, &["COMMAND", "COUNT"]);
    assert!(count > 50);
    let info: Value = q(c, &["COMMAND", "INFO", "get", "nosuch"]);
    let Value::Array(items) = info else {
        panic!("{info:?}")
    };
    assert_eq!(items.len(), 2);
    assert_eq!(items[1], Value::Nil);
    let _docs: Value = q(c, &["COMMAND", "DOCS", "set"]);
    let cfg: Vec<String> = q(c, &["CONFIG", "GET", "maxclients"]);
    assert_eq!(cfg, vec!["maxclients", "10000"]);
    assert_eq!(
        q::<String>(c, &["CONFIG", "SET", "maxclients", "500"]),
        "OK"
    );
    assert_eq!(
        q::<Vec<String>>(c, &["CONFIG", "GET", "maxclients"])[1],
        "500"
    );
    assert_eq!(
        e(c, &["CONFIG", "SET", "nosuch", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(q::<String>(c, &["CONFIG", "RESETSTAT"]), "OK");
    let info: String = q(c, &["INFO"]);
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Keyspace",
        "# Raft",
    ] {
        assert!(info.contains(section), "INFO lacks {section}");
    }
    let raft: String = q(c, &["INFO", "raft"]);
    let field = |name: &str| -> u64 {
        let line = raft.lines().find(|l| l.starts_with(name)).expect(name);
        line[name.len() + 1..].parse().expect("a count")
    };
    // Every write so far went through the log, several batches per fsync at most.
    assert!(field("log_sync_rounds") >= 1 && field("log_batches") >= field("log_sync_rounds"));
    assert!(field("log_direct_io") <= 1, "a flag");
    let server_only: String = q(c, &["INFO", "server"]);
    assert!(server_only.contains("redis_version:") && !server_only.contains("# Clients"));
    let (secs, micros): (String, String) = q(c, &["TIME"]);
    assert!(
        secs.parse::<u64>().unwrap() > 1_700_000_000 && micros.parse::<u32>().unwrap() < 1_000_000
    );
    assert!(q::<i64>(c, &["LASTSAVE"]) > 0);
    assert_eq!(q::<String>(c, &["FUNCTION", "FLUSH"]), "OK");
    assert_eq!(q::<String>(c, &["RESET"]), "RESET");
    assert_eq!(q::<String>(c, &["QUIT"]), "OK");
}

#[test]
fn resp3_hello_and_password_protection() {
    let cluster = TestCluster::single(&["--requirepass", "s3cret"]);
    let node = cluster.node();
    let c = &mut redis::Client::open(node.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(e(c, &["GET", "k"]), "NOAUTH Authentication required.");
    assert!(e(c, &["HELLO", "3"]).starts_with("NOAUTH HELLO must be called"));
    assert_eq!(
        e(c, &["AUTH", "wrong"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        e(c, &["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );
    let hello: Value = q(
        c,
        &["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "r3"],
    );
    let Value::Map(pairs) = hello else {
        panic!("RESP3 HELLO answers a map: {hello:?}")
    };
    assert!(pairs.contains(&(Value::BulkString(b"proto".to_vec()), Value::Int(3))));
    assert!(nil(c, &["GET", "k"]), "authenticated");
    // RESP3 shapes: a map from CONFIG GET, a null.
    let cfg: Value = q(c, &["CONFIG", "GET", "requirepass"]);
    assert!(matches!(cfg, Value::Map(_)), "{cfg:?}");
    let c2 = &mut redis::Client::open(format!("redis://:s3cret@{}/", node.resp))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(q::<String>(c2, &["SET", "k", "v"]), "OK");
    assert_eq!(q::<String>(c2, &["AUTH", "s3cret"]), "OK");
}
