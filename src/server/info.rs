//! The INFO text: Redis's sections (server, clients, memory, persistence, stats, keyspace)
//! with the fields clients and tools commonly read, plus a `raft` section with this node's
//! view of every shard and the Raft log's I/O backend.

use super::admin::REDIS_VERSION;
use super::node::Node;
use crate::cmd::value::Stored;
use bytes::Bytes;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use tessera_storage::{Cf, KeyRange};

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "keyspace",
    "raft",
];

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// INFO [section ...]: `all`/`everything`/`default` or section names, any case.
pub fn render(node: &Node, args: &[Bytes]) -> String {
    let wanted: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let mut out = String::new();
    for section in DEFAULT {
        if all || wanted.iter().any(|w| w == section) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            section_text(node, section, &mut out);
        }
    }
    out
}

fn section_text(node: &Node, section: &str, o: &mut String) {
    let c = &node.config;
    let st = &node.stats;
    let _ = match section {
        "server" => write!(
            o,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\ntessera_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nnode_id:{}\r\nnet_backend:{}\r\nnet_fallback_reason:{}\r\nworker_sched:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            c.resp_addr.port(),
            node.started.elapsed().as_secs(),
            node.started.elapsed().as_secs() / 86_400,
            c.node_id,
            node.net_backend.get().map_or("none", |b| b.0.name()),
            node.net_backend.get().and_then(|b| b.1.as_deref()).unwrap_or(""),
            node.worker_sched.get().map_or("none", |s| s.as_str()),
        ),
        "clients" => write!(
            o,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
            node.clients.len(),
            node.settings.read().maxclients,
        ),
        "memory" => {
            let rss = rss_bytes();
            write!(
                o,
                "# Memory\r\nused_memory:{rss}\r\nused_memory_rss:{rss}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_allocator:mimalloc\r\n"
            )
        }
        "persistence" => write!(
            o,
            "# Persistence\r\nloading:0\r\naof_enabled:1\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\ntessera_durability:raft-log-fsync\r\n"
        ),
        "stats" => write!(
            o,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nforwarded_commands:{}\r\n",
            st.connections.load(Ordering::Relaxed),
            st.commands.load(Ordering::Relaxed),
            st.rejected_connections.load(Ordering::Relaxed),
            st.expired_keys.load(Ordering::Relaxed),
            st.forwarded.load(Ordering::Relaxed),
        ),
        "keyspace" => keyspace(node, o),
        "raft" => raft(node, o),
        _ => Ok(()),
    };
}

/// Keys and keys-with-expiry as this replica's state holds them (not a linearizable count:
/// DBSIZE is).
fn keyspace(node: &Node, o: &mut String) -> std::fmt::Result {
    let (mut keys, mut expires) = (0u64, 0u64);
    let now = super::node::now_ms();
    let _ = node
        .state
        .scan(Cf::Data, &KeyRange::all(), usize::MAX, &mut |_, v| {
            if let Some(s) = Stored::decode(v) {
                if !s.expired(now) {
                    keys += 1;
                    expires += u64::from(s.expire_at != 0);
                }
            }
            true
        });
    o.push_str("# Keyspace\r\n");
    if keys > 0 {
        write!(o, "db0:keys={keys},expires={expires},avg_ttl=0\r\n")?;
    }
    Ok(())
}

fn raft(node: &Node, o: &mut String) -> std::fmt::Result {
    let log = node.log.status();
    write!(
        o,
        "# Raft\r\nnode_id:{}\r\nshards:{}\r\nlog_backend:{:?}\r\nlog_fallback_reason:{}\r\nlog_segments:{}\r\nlog_bytes:{}\r\nlog_sync_rounds:{}\r\nlog_batches:{}\r\nlog_direct_io:{}\r\n",
        node.id(),
        node.layout.len(),
        log.backend,
        log.fallback_reason.as_deref().unwrap_or(""),
        log.segments,
        log.bytes,
        log.sync_rounds,
        log.batches,
        u8::from(log.direct_io),
    )?;
    let mut leading = 0;
    for shard in &node.layout {
        if let Some(s) = node.store.status(shard.id) {
            leading += u64::from(s.is_leader);
            write!(
                o,
                "shard{}:leader={},role={},term={},commit={},applied={},voters={:?}\r\n",
                shard.id,
                s.leader.unwrap_or(0),
                if s.is_leader { "leader" } else { "follower" },
                s.term,
                s.commit,
                s.applied,
                s.voters,
            )?;
        }
    }
    write!(o, "shards_led:{leading}\r\n")
}
