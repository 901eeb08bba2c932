//! Command-line surface of `tessera` (clap): subcommands and their flags.

use crate::server::config::PeerConfig;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use tessera_storage::IoMode;

#[derive(Parser, Debug)]
#[command(
    name = "tessera",
    version,
    about = "A replicated, sharded key-value database that speaks the Redis protocol"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one database node: serves the Redis protocol and replicates through Raft.
    /// A single node needs only --data-dir (it serves 127.0.0.1:6379).
    Server(Box<ServerArgs>),
    /// Start a local cluster of `tessera server` processes with data under one directory,
    /// wait until every shard has a leader, print how to connect; Ctrl-C stops them all.
    Up(UpArgs),
    /// Exercise this node's storage: group-committed log writes from many threads, applied to
    /// RocksDB, then reopened and verified. Prints the I/O backend and what was measured.
    StorageCheck(StorageCheckArgs),
    /// (testing) Write to the log and state engine until killed, printing each durable write.
    #[command(hide = true)]
    LogTorture(TortureArgs),
}

/// Which I/O path the Raft log uses.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum IoChoice {
    /// io_uring when the kernel supports it, else pwrite+fdatasync.
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// pwrite+fdatasync.
    Sync,
}

impl From<IoChoice> for IoMode {
    fn from(c: IoChoice) -> Self {
        match c {
            IoChoice::Auto => IoMode::Auto,
            IoChoice::Uring => IoMode::IoUring,
            IoChoice::Sync => IoMode::Sync,
        }
    }
}

#[derive(Args, Debug)]
pub struct StorageCheckArgs {
    /// Data directory (created if missing; holds raft-log/ and state/).
    #[arg(long, default_value = "./tessera-data")]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = IoChoice::Auto)]
    pub io: IoChoice,
    /// Writer threads, each acting as one Raft group.
    #[arg(long, default_value_t = 8)]
    pub groups: u64,
    /// Batches written per group.
    #[arg(long, default_value_t = 500)]
    pub batches: u64,
    /// Entries per batch.
    #[arg(long, default_value_t = 4)]
    pub entries: u64,
    /// Bytes per entry.
    #[arg(long, default_value_t = 128)]
    pub value_size: usize,
}

#[derive(Args, Debug)]
pub struct TortureArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = IoChoice::Auto)]
    pub io: IoChoice,
    #[arg(long, default_value_t = 4)]
    pub groups: u64,
    #[arg(long, default_value_t = 200)]
    pub value_size: usize,
    /// Segment size of the log, bytes (small values exercise rotation).
    #[arg(long, default_value_t = 256 << 10)]
    pub segment_size: u64,
    /// Flush the state engine every this many entries per group (0: never — only RocksDB's
    /// own flushes, when its memtables fill, make state durable).
    #[arg(long, default_value_t = 16)]
    pub state_flush_every: u64,
    /// Bytes of each value written to the state engine.
    #[arg(long, default_value_t = 16)]
    pub state_value_size: usize,
    /// Memtable bytes per state-engine flush (small values make RocksDB flush by itself).
    #[arg(long)]
    pub state_buffer_bytes: Option<usize>,
}

#[derive(Args, Debug, Default)]
pub struct ServerArgs {
    /// TOML configuration file (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (1 and up; unique in the cluster).
    #[arg(long)]
    pub id: Option<u64>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Client (RESP) address [default: 127.0.0.1:6379].
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Client port (overrides the port of --bind).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address for Raft traffic from other nodes [default: 127.0.0.1:16379].
    #[arg(long)]
    pub raft_addr: Option<SocketAddr>,
    /// Another member of the initial cluster, as ID@RAFT_ADDR@RESP_ADDR (repeat per peer).
    #[arg(long)]
    pub peer: Vec<PeerConfig>,
    /// Shards of a new cluster [default: 8].
    #[arg(long)]
    pub shards: Option<u64>,
    /// Require AUTH with this password.
    #[arg(long)]
    pub requirepass: Option<String>,
    #[arg(long)]
    pub maxclients: Option<usize>,
    /// Connection worker threads [default: one per core].
    #[arg(long)]
    pub workers: Option<usize>,
    /// How reads are made linearizable: lease or readindex [default: lease].
    #[arg(long)]
    pub read_mode: Option<String>,
    /// Raft log I/O path [default: auto].
    #[arg(long, value_enum)]
    pub io: Option<IoChoice>,
    /// Client sockets: epoll, auto (io_uring when available) or uring [default: epoll].
    #[arg(long)]
    pub net_io: Option<String>,
    /// Connection workers' scheduling policy: batch (no wake-up preemption) or normal
    /// [default: batch].
    #[arg(long)]
    pub worker_sched: Option<String>,
    /// Raft tick in milliseconds (elections take 10-20 ticks) [default: 100].
    #[arg(long, hide = true)]
    pub tick_ms: Option<u64>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Directory holding every node's data and log file.
    #[arg(long, default_value = "./tessera-up")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Node i serves clients on BASE_PORT+i-1 and Raft on BASE_PORT+10000+i-1.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    #[arg(long, default_value_t = 8)]
    pub shards: u64,
    #[arg(long)]
    pub requirepass: Option<String>,
    /// Seconds to wait for every shard to elect a leader.
    #[arg(long, default_value_t = 30)]
    pub ready_timeout: u64,
}
