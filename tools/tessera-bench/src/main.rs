//! `tessera-bench`: a YCSB-style load generator and checker for any RESP server (Tessera,
//! redis-server, ...). Load phase inserts the records; run phase plays the workload's mix.
//! Prints a table per phase and, with `--json`, writes the figures as JSON.

#[path = "../../../src/resp/mod.rs"]
#[allow(dead_code, unused_imports)]
mod resp;

mod distribution;
mod record;
mod runner;
mod stats;
mod workload;

use anyhow::{anyhow, Context};
use clap::{Parser, ValueEnum};
use runner::{Model, RunConfig};
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Phase {
    Load,
    Run,
    Both,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModelArg {
    String,
    Hash,
}

#[derive(Parser, Debug)]
#[command(
    name = "tessera-bench",
    version,
    about = "YCSB-style load for any RESP server"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// AUTH password.
    #[arg(short = 'a', long)]
    password: Option<String>,
    /// A preset (a-f) or a YCSB workload properties file.
    #[arg(short, long, default_value = "a")]
    workload: String,
    #[arg(long, value_enum, default_value_t = Phase::Both)]
    phase: Phase,
    /// Overrides recordcount.
    #[arg(long)]
    records: Option<u64>,
    /// Overrides operationcount.
    #[arg(long)]
    operations: Option<u64>,
    /// Overrides fieldcount × fieldlength as one value size (string model: bytes per value).
    #[arg(long)]
    value_size: Option<usize>,
    /// Run for this many seconds instead of operationcount.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of the run phase not measured.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    #[arg(short, long, default_value_t = 50)]
    clients: usize,
    /// Commands in flight per connection.
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// Open loop: total operations per second (latencies from when each was due).
    #[arg(long)]
    target_rate: Option<f64>,
    #[arg(long, value_enum, default_value_t = ModelArg::String)]
    model: ModelArg,
    /// Check every value read; report lost and corrupted records.
    #[arg(long)]
    verify: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Live progress bar with ops/s on stderr (default when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

fn workload(args: &Args) -> anyhow::Result<workload::Workload> {
    let mut w = if args.workload.len() == 1 {
        workload::preset(&args.workload).map_err(|e| anyhow!(e))?
    } else {
        let text = std::fs::read_to_string(&args.workload)
            .with_context(|| format!("reading workload file {}", args.workload))?;
        workload::parse(&text).map_err(|e| anyhow!("{}: {e}", args.workload))?
    };
    if let Some(n) = args.records {
        w.record_count = n;
    }
    if let Some(n) = args.operations {
        w.operation_count = n;
    }
    if let Some(n) = args.value_size {
        w.field_count = 1;
        w.field_length = n;
    }
    Ok(w)
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let addr: SocketAddr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", args.host))?
        .next()
        .ok_or_else(|| anyhow!("{} has no address", args.host))?;
    let w = workload(&args)?;
    let cfg = RunConfig {
        addr,
        password: args.password.clone(),
        connections: args.clients.max(1),
        pipeline: args.pipeline.max(1),
        duration: args.duration.map(Duration::from_secs_f64),
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        target_rate: args.target_rate.filter(|r| *r > 0.0),
        model: match args.model {
            ModelArg::String => Model::String,
            ModelArg::Hash => Model::Hash,
        },
        verify: args.verify,
        seed: args.seed,
        // The live bar is on when stderr is a terminal, or when asked for.
        progress: args.progress || std::io::stderr().is_terminal(),
    };
    runner::check_supported(&w, cfg.model)?;
    let mut json = Vec::new();
    let mut clean = true;
    for (name, load) in [("load", true), ("run", false)] {
        if (load && args.phase == Phase::Run) || (!load && args.phase == Phase::Load) {
            continue;
        }
        let (stats, elapsed) = runner::phase(&cfg, &w, load).await?;
        print!("{}", stats.table(name, elapsed));
        clean &= stats.errors.is_empty() && stats.lost == 0 && stats.corrupted == 0;
        json.push(stats.json(name, elapsed));
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(clean)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("finished with errors (see the table)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
