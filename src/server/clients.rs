//! The node's connected clients, for CLIENT LIST / INFO / KILL and maxclients: each
//! connection registers an entry (id, address, name, library) that its session updates and
//! that CLIENT KILL can flag; the session notices the flag and closes.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<String>,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    pub last_cmd: Mutex<String>,
    pub resp: AtomicU64,
    pub killed: AtomicBool,
    pub kill_signal: Notify,
}

impl ClientInfo {
    /// One line of CLIENT LIST, in Redis's field format.
    pub fn line(&self) -> String {
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.name.lock(),
            self.created.elapsed().as_secs(),
            self.last_cmd.lock(),
            self.resp.load(Ordering::Relaxed),
            self.lib_name.lock(),
            self.lib_ver.lock(),
        )
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill_signal.notify_one();
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

/// Removes its client from the registry when the connection ends.
pub struct Registration {
    pub info: Arc<ClientInfo>,
    registry: Arc<crate::server::node::Node>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.clients.clients.lock().remove(&self.info.id);
    }
}

impl ClientRegistry {
    /// Registers a connection unless `max` clients are connected already.
    pub fn register(
        node: &Arc<crate::server::node::Node>,
        addr: SocketAddr,
        laddr: SocketAddr,
        max: usize,
    ) -> Option<Registration> {
        let reg = &node.clients;
        let mut clients = reg.clients.lock();
        if clients.len() >= max {
            return None;
        }
        let id = reg.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(String::new()),
            lib_name: Mutex::new(String::new()),
            lib_ver: Mutex::new(String::new()),
            last_cmd: Mutex::new("NULL".into()),
            resp: AtomicU64::new(2),
            killed: AtomicBool::new(false),
            kill_signal: Notify::new(),
        });
        clients.insert(id, info.clone());
        Some(Registration {
            info,
            registry: node.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }
}
