//! Thread-per-core serving: N worker threads, each with its own single-threaded tokio
//! runtime and its own listening socket on the RESP address (SO_REUSEPORT lets the kernel
//! spread connections across them), so a connection lives on one thread from accept to
//! close. The Raft store and apply loop run on their own threads (see `raftstore`).
//! Stopping (SIGINT/SIGTERM or [`Server::stop`]) stops accepting, ends every session, then
//! stops Raft.
//!
//! Each worker runs a plain tokio runtime on epoll (default) or, with `--net-io auto|uring`,
//! a tokio-uring runtime (socket reads and writes through io_uring) when the kernel supports
//! it (`netio::choose` explains the default); timers, channels and the forwarding
//! connections use tokio in both.

use super::config::ServerConfig;
use super::inbox::ReplyInbox;
use super::netio::{self, NetBackend};
use super::node::Node;
use super::sched::WorkerSched;
use super::session;
use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::watch;

pub struct Server {
    pub node: Arc<Node>,
    pub resp_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

fn reuseport_listener(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding client address {addr}"))?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Server {
    /// Opens the node and starts serving clients.
    pub fn start(config: ServerConfig) -> anyhow::Result<Server> {
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        // Bind the first listener before opening storage: a busy port fails fast.
        let first = reuseport_listener(config.resp_addr)?;
        let resp_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(reuseport_listener(resp_addr)?);
        }
        let (backend, why) = netio::choose(&config.net_io)?;
        if let Some(why) = &why {
            tracing::info!("client sockets on epoll: {why}");
        }
        let node = Node::open(config)?;
        let _ = node.net_backend.set((backend, why));
        let sched = WorkerSched::parse(&node.config.worker_sched).unwrap_or(WorkerSched::Batch);
        let (shutdown, rx) = watch::channel(false);
        let mut handles = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let node = node.clone();
            let rx = rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("resp-{i}"))
                    .spawn(move || {
                        take_policy(&node, sched);
                        match backend {
                            NetBackend::IoUring => worker_uring(node, l, rx),
                            NetBackend::Epoll => worker(node, l, rx),
                        }
                    })?,
            );
        }
        tracing::info!(
            node = node.id(),
            %resp_addr,
            raft = %node.config.raft_addr,
            workers,
            net = backend.name(),
            "serving"
        );
        Ok(Server {
            node,
            resp_addr,
            shutdown,
            workers: handles,
        })
    }

    pub fn stop(self) {
        let _ = self.shutdown.send(true);
        for w in self.workers {
            let _ = w.join();
        }
        self.node.shutdown();
    }
}

/// Puts the calling worker under `sched`; a refusal (no such policy, a sandbox) is logged
/// and the worker runs under the normal policy, as INFO then says.
fn take_policy(node: &Node, sched: WorkerSched) {
    let shown = match sched.apply_to_this_thread() {
        Ok(()) => sched.name().to_string(),
        Err(e) => {
            tracing::warn!("worker scheduling policy {}: {e}", sched.name());
            format!("normal ({} refused: {e})", sched.name())
        }
    };
    let _ = node.worker_sched.set(shown);
}

fn worker(node: Arc<Node>, listener: std::net::TcpListener, mut shutdown: watch::Receiver<bool>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("worker runtime: {e}");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        tokio::task::spawn_local(ReplyInbox::install());
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("worker listener: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let local = stream.local_addr().unwrap_or(peer);
                        tokio::task::spawn_local(session::serve(node.clone(), stream, peer, local, shutdown.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
    });
}

fn worker_uring(
    node: Arc<Node>,
    listener: std::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let rt = match tokio_uring::Runtime::new(&tokio_uring::builder()) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("io_uring worker runtime: {e}");
            return;
        }
    };
    // io_uring waits for connections itself; the socket must not be non-blocking.
    let _ = listener.set_nonblocking(false);
    let local = listener.local_addr();
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    rt.block_on(async move {
        tokio::task::spawn_local(ReplyInbox::install());
        let Ok(local) = local else { return };
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::task::spawn_local(session::serve(node.clone(), stream, peer, local, shutdown.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
    });
}

/// `tessera server`: serve until SIGINT or SIGTERM — or until the Raft store halts on a
/// storage failure, when the process exits with an error so that a supervisor restarts it
/// (the restart replays the log from what storage holds).
pub fn run(config: ServerConfig) -> anyhow::Result<()> {
    let server = Server::start(config)?;
    let node = server.node.clone();
    let halted = wait_for_signal_or(move || node.store.halted())?;
    tracing::info!("shutting down");
    server.stop();
    if halted {
        anyhow::bail!(
            "the Raft store stopped after a storage failure (logged above); restart the node to recover"
        );
    }
    Ok(())
}

/// Blocks until SIGINT or SIGTERM.
pub fn wait_for_signal() -> anyhow::Result<()> {
    wait_for_signal_or(|| false).map(|_| ())
}

/// Blocks until SIGINT or SIGTERM (false) or until `halted` says true (checked twice a
/// second).
fn wait_for_signal_or(halted: impl Fn() -> bool) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut check = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => return r.map(|_| false).map_err(Into::into),
                _ = term.recv() => return Ok(false),
                _ = check.tick() => if halted() { return Ok(true) },
            }
        }
    })
}
