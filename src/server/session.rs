//! One client connection: read whatever arrived, parse every complete request (one at a time
//! until the client has authenticated, since AUTH changes the limits), run them — runs of
//! keyed reads or writes go to `route` together, so a pipeline of 1,000 SETs becomes one
//! batch of proposals — and write all replies in order with one write, after the worker's
//! other ready connections had their turn. A protocol error is answered and the connection
//! closed, as Redis does.

use super::admin::{self, Conn};
use super::allshards;
use super::clients::ClientRegistry;
use super::netio::ClientIo;
use super::node::Node;
use super::route::run_group;
use crate::cmd::{errors, lookup, Cmd, Route, Spec};
use crate::resp::{parse_requests, Limits, Reply, Request};
use bytes::{Bytes, BytesMut};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

/// Requests parsed from one read before they are run (bounds memory per round).
const MAX_BATCH: usize = 4096;

pub(crate) async fn serve(
    node: Arc<Node>,
    mut stream: impl ClientIo,
    peer: SocketAddr,
    local: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let here = WorkerSessions::enter();
    node.stats.connections.fetch_add(1, Ordering::Relaxed);
    let max = node.settings.read().maxclients;
    let Some(reg) = ClientRegistry::register(&node, peer, local, max) else {
        node.stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let mut msg = BytesMut::from(&b"-ERR max number of clients reached\r\n"[..]);
        let _ = stream.write_out(&mut msg).await;
        stream.close();
        return;
    };
    let mut conn = Conn {
        proto: Default::default(),
        authed: node.settings.read().requirepass.is_none(),
        internal: false,
        closing: false,
        info: reg.info.clone(),
    };
    let mut inbuf = BytesMut::with_capacity(16 << 10);
    let mut out = BytesMut::with_capacity(16 << 10);
    // Made once: re-registering these wakers on every read showed up in profiles.
    let info = reg.info.clone();
    let killed = info.kill_signal.notified();
    tokio::pin!(killed);
    let stopping = shutdown.changed();
    tokio::pin!(stopping);
    loop {
        inbuf.reserve(16 << 10);
        let n = tokio::select! {
            r = stream.read_more(&mut inbuf) => match r {
                Ok(n) => n,
                Err(_) => return,
            },
            _ = &mut killed => return,
            _ = &mut stopping => return,
        };
        if n == 0 || conn.info.killed.load(Ordering::SeqCst) {
            return;
        }
        let (limits, qbuf_limit) = {
            let st = node.settings.read();
            let limits = Limits {
                max_bulk_len: st.proto_max_bulk_len,
                ..Limits::default()
            };
            (limits, st.client_query_buffer_limit)
        };
        loop {
            let mut batch = Vec::new();
            // Before AUTH one request at a time: AUTH changes the limits for the next.
            let max = if conn.authed { MAX_BATCH } else { 1 };
            let protocol_error = parse_requests(&mut inbuf, &limits, conn.authed, max, &mut batch);
            if batch.is_empty() && protocol_error.is_none() {
                break;
            }
            run_batch(&node, &mut conn, batch, &mut out).await;
            if let Some(e) = protocol_error {
                Reply::err(format!("ERR {e}")).encode(conn.proto, &mut out);
                conn.closing = true;
            }
            // Let the worker's other ready connections parse and run theirs first, so
            // replies go out back to back, as Redis writes them before it sleeps: a client
            // process woken by the first finds the rest ready instead of being woken for
            // each (on loopback the wake-up is paid by the writer). A connection alone on
            // its worker skips it: there is nothing to wait for, only latency to add.
            if here.others() {
                tokio::task::yield_now().await;
            }
            if stream.write_out(&mut out).await.is_err() {
                return;
            }
            out.clear();
            if conn.closing || conn.info.killed.load(Ordering::SeqCst) {
                stream.close();
                return;
            }
        }
        if inbuf.len() > qbuf_limit {
            // Redis closes a client whose query buffer exceeds the limit.
            return;
        }
    }
}

thread_local! {
    /// Sessions running on this worker thread (each worker runs its own on one thread).
    static SESSIONS_HERE: Cell<usize> = const { Cell::new(0) };
}

/// Counts a session on its worker thread while it lives.
struct WorkerSessions;

impl WorkerSessions {
    fn enter() -> Self {
        SESSIONS_HERE.with(|c| c.set(c.get() + 1));
        WorkerSessions
    }

    /// Whether other sessions share this worker.
    fn others(&self) -> bool {
        SESSIONS_HERE.with(|c| c.get() > 1)
    }
}

impl Drop for WorkerSessions {
    fn drop(&mut self) {
        SESSIONS_HERE.with(|c| c.set(c.get() - 1));
    }
}

/// What a request turned out to be once looked up and checked.
enum Step {
    Reply(Reply),
    Keyed(&'static Spec, Request),
    Other(&'static Spec, Request),
}

fn classify(conn: &Conn, req: Request) -> Step {
    let Some(spec) = lookup(&req[0]) else {
        return Step::Reply(Reply::err(errors::unknown_command(&req)));
    };
    if !conn.authed && !spec.flags.contains(&"no_auth") {
        return Step::Reply(Reply::err(errors::NOAUTH));
    }
    if !spec.arity_ok(req.len()) {
        return Step::Reply(Reply::err(errors::wrong_arity(spec.name)));
    }
    match spec.route {
        Route::Read | Route::Write => Step::Keyed(spec, req),
        _ => Step::Other(spec, req),
    }
}

async fn run_batch(node: &Arc<Node>, conn: &mut Conn, batch: Vec<Request>, out: &mut BytesMut) {
    // One shared-counter update per batch, not per command.
    node.stats
        .commands
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let mut group: Vec<(&'static Spec, Request)> = Vec::new();
    if let Some(last) = batch.last() {
        *conn.info.last_cmd.lock() = String::from_utf8_lossy(&last[0]).to_ascii_lowercase();
    }
    for req in batch {
        match classify(conn, req) {
            Step::Keyed(spec, req) => {
                if group.first().is_some_and(|(s, _)| s.route != spec.route) {
                    flush_group(node, conn, &mut group, out).await;
                }
                group.push((spec, req));
            }
            other => {
                flush_group(node, conn, &mut group, out).await;
                let reply = match other {
                    Step::Reply(r) => r,
                    Step::Other(spec, req) => run_other(node, conn, spec, &req).await,
                    Step::Keyed(..) => unreachable!("handled above"),
                };
                reply.encode(conn.proto, out);
                if conn.closing {
                    return;
                }
            }
        }
    }
    flush_group(node, conn, &mut group, out).await;
}

async fn flush_group(
    node: &Arc<Node>,
    conn: &Conn,
    group: &mut Vec<(&'static Spec, Request)>,
    out: &mut BytesMut,
) {
    if group.is_empty() {
        return;
    }
    for r in run_group(node, std::mem::take(group), conn.internal).await {
        r.encode(conn.proto, out);
    }
}

async fn run_other(node: &Arc<Node>, conn: &mut Conn, spec: &Spec, args: &[Bytes]) -> Reply {
    match spec.cmd {
        Cmd::Keys => allshards::keys(node, &args[1]).await,
        Cmd::Scan => allshards::scan(node, args).await,
        Cmd::Dbsize => allshards::dbsize(node).await,
        Cmd::Randomkey => allshards::randomkey(node).await,
        Cmd::Flushdb | Cmd::Flushall => allshards::flush(node, args).await,
        Cmd::TesseraScanShard | Cmd::TesseraFlushShard => {
            allshards::local_shard_command(node, args).await
        }
        _ => admin::run(node, conn, spec, args),
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerSessions;

    #[test]
    fn a_session_knows_whether_it_shares_its_worker() {
        let first = WorkerSessions::enter();
        assert!(!first.others(), "alone on this thread");
        let second = WorkerSessions::enter();
        assert!(first.others() && second.others());
        drop(second);
        assert!(!first.others(), "the other one ended");
        // Another thread is another worker.
        std::thread::spawn(|| assert!(!WorkerSessions::enter().others()))
            .join()
            .unwrap();
    }
}
