//! A node's configuration: defaults, an optional TOML file, then command-line flags, in that
//! order of precedence. A single node needs nothing but a data directory; a cluster member
//! also names its peers (id, Raft address, RESP address).

use crate::cli::{IoChoice, ServerArgs};
use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Another node of the initial cluster.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: u64,
    pub raft_addr: SocketAddr,
    pub resp_addr: SocketAddr,
}

impl std::str::FromStr for PeerConfig {
    type Err = String;
    /// `ID@RAFT_ADDR@RESP_ADDR`, e.g. `2@127.0.0.1:16380@127.0.0.1:6380`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('@').collect();
        let [id, raft, resp] = parts[..] else {
            return Err(format!("peer '{s}' is not ID@RAFT_ADDR@RESP_ADDR"));
        };
        Ok(PeerConfig {
            id: id.parse().map_err(|_| format!("bad peer id in '{s}'"))?,
            raft_addr: raft
                .parse()
                .map_err(|_| format!("bad raft address in '{s}'"))?,
            resp_addr: resp
                .parse()
                .map_err(|_| format!("bad RESP address in '{s}'"))?,
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// Where clients connect (RESP).
    pub resp_addr: SocketAddr,
    /// Where other nodes send Raft traffic.
    pub raft_addr: SocketAddr,
    /// The other members of the initial cluster (empty: a single-node cluster).
    pub peers: Vec<PeerConfig>,
    /// Shards the key space is split into when the cluster is first created.
    pub shards: u64,
    pub requirepass: Option<String>,
    pub maxclients: usize,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
    /// Connection worker threads (0: one per core).
    pub workers: usize,
    /// `lease` (default) or `readindex`.
    pub read_mode: String,
    /// `auto`, `uring` or `sync`.
    pub log_io: String,
    /// Raft log appends with `O_DIRECT` where the file system allows (else buffered).
    pub log_direct_io: bool,
    /// Apply committed entries on a thread of their own instead of the Raft store loop's.
    pub apply_thread: bool,
    /// Raft tick, milliseconds.
    pub tick_ms: u64,
    /// Client sockets: `epoll` (default: measured faster here, see docs/server.md), `auto`
    /// (io_uring when available, else epoll) or `uring` (io_uring or fail).
    pub net_io: String,
    /// Connection workers' scheduling policy: `batch` (default, see `sched`) or `normal`.
    pub worker_sched: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            node_id: 1,
            data_dir: PathBuf::from("./tessera-data"),
            resp_addr: "127.0.0.1:6379".parse().expect("valid"),
            raft_addr: "127.0.0.1:16379".parse().expect("valid"),
            peers: Vec::new(),
            shards: 8,
            requirepass: None,
            maxclients: 10_000,
            proto_max_bulk_len: 512 << 20,
            client_query_buffer_limit: 1 << 30,
            workers: 0,
            read_mode: "lease".into(),
            log_io: "auto".into(),
            log_direct_io: true,
            apply_thread: false,
            tick_ms: 100,
            net_io: "epoll".into(),
            worker_sched: "batch".into(),
        }
    }
}

impl ServerConfig {
    /// Defaults, overlaid by `--config FILE`, overlaid by the other flags.
    pub fn from_args(args: &ServerArgs) -> anyhow::Result<Self> {
        let mut c = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => ServerConfig::default(),
        };
        if let Some(v) = args.id {
            c.node_id = v;
        }
        if let Some(v) = &args.data_dir {
            c.data_dir = v.clone();
        }
        if let Some(v) = args.bind {
            c.resp_addr = v;
        }
        if let Some(p) = args.port {
            c.resp_addr.set_port(p);
        }
        if let Some(v) = args.raft_addr {
            c.raft_addr = v;
        }
        if !args.peer.is_empty() {
            c.peers = args.peer.clone();
        }
        if let Some(v) = args.shards {
            c.shards = v;
        }
        if let Some(v) = &args.requirepass {
            c.requirepass = Some(v.clone()).filter(|p| !p.is_empty());
        }
        if let Some(v) = args.maxclients {
            c.maxclients = v;
        }
        if let Some(v) = args.workers {
            c.workers = v;
        }
        if let Some(v) = &args.read_mode {
            c.read_mode = v.clone();
        }
        if let Some(v) = &args.net_io {
            c.net_io = v.clone();
        }
        if let Some(v) = &args.worker_sched {
            c.worker_sched = v.clone();
        }
        if let Some(v) = args.tick_ms {
            c.tick_ms = v;
        }
        if let Some(v) = args.io {
            c.log_io = match v {
                IoChoice::Auto => "auto",
                IoChoice::Uring => "uring",
                IoChoice::Sync => "sync",
            }
            .into();
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.node_id == 0 {
            bail!("node id must be at least 1");
        }
        if self.peers.iter().any(|p| p.id == self.node_id) {
            bail!("peer list names this node's own id {}", self.node_id);
        }
        if !(1..=4096).contains(&self.shards) {
            bail!("shards must be between 1 and 4096");
        }
        if !["lease", "readindex"].contains(&self.read_mode.as_str()) {
            bail!("read_mode must be 'lease' or 'readindex'");
        }
        if !["auto", "uring", "sync"].contains(&self.log_io.as_str()) {
            bail!("log_io must be 'auto', 'uring' or 'sync'");
        }
        if !["auto", "uring", "epoll"].contains(&self.net_io.as_str()) {
            bail!("net_io must be 'auto', 'uring' or 'epoll'");
        }
        if super::sched::WorkerSched::parse(&self.worker_sched).is_none() {
            bail!("worker_sched must be 'batch' or 'normal'");
        }
        if self.tick_ms == 0 || self.maxclients == 0 {
            bail!("tick_ms and maxclients must be positive");
        }
        Ok(())
    }

    /// Ids of every node of the initial cluster, this one included, sorted.
    pub fn members(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.peers.iter().map(|p| p.id).collect();
        ids.push(self.node_id);
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_file_and_peer_flags_parse() {
        let c: ServerConfig = toml::from_str(
            r#"
            node_id = 2
            data_dir = "/tmp/x"
            resp_addr = "127.0.0.1:7000"
            shards = 4
            requirepass = "pw"
            [[peers]]
            id = 1
            raft_addr = "127.0.0.1:17001"
            resp_addr = "127.0.0.1:7001"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.members(), vec![1, 2]);
        assert_eq!(c.maxclients, 10_000, "defaults fill the rest");
        let p: PeerConfig = "3@127.0.0.1:1@127.0.0.1:2".parse().unwrap();
        assert_eq!(p.id, 3);
        assert!("3@127.0.0.1:1".parse::<PeerConfig>().is_err());
        assert!(
            toml::from_str::<ServerConfig>("nodeid = 1").is_err(),
            "typos are errors"
        );
        let policy = |v: &str| ServerConfig {
            worker_sched: v.into(),
            ..ServerConfig::default()
        };
        assert_eq!(ServerConfig::default().worker_sched, "batch");
        policy("normal").validate().unwrap();
        let err = policy("fifo").validate().unwrap_err().to_string();
        assert!(err.contains("worker_sched"), "{err}");
    }
}
