//! `tessera`: the one binary of the Tessera database (see `tessera::cli` for subcommands).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;
use tessera::cli::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Server(args) => {
            tessera::server::ServerConfig::from_args(&args).and_then(tessera::server::runtime::run)
        }
        Command::Up(args) => tessera::server::up::run(args),
        Command::StorageCheck(args) => tessera::storage_check::run(args),
        Command::LogTorture(args) => tessera::testkit::torture::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
