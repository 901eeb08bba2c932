//! Command-line surface of `tessera` (clap): subcommands and their flags.

use clap::{Args, Parser, Subcommand, ValueEnum};
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
}
