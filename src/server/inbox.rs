//! Answers from the Raft store to one connection worker, handed over with one wake-up per
//! batch. A proposal's answer is produced on the store thread; completing its oneshot there
//! wakes the waiting session from a foreign thread, and tokio then unparks the worker's
//! runtime with an `eventfd` write — one system call per answer, ~40 per log round under a
//! pipelined SET load (measured with `strace -c` on the store thread). Instead, answers go
//! into the worker's inbox, and the worker is woken once the store has handed out its whole
//! batch of answers (only if the inbox was empty before); a task on the worker then
//! completes the oneshots, which wakes their sessions locally, without a system call.

use crate::raftstore::{after_answers, StoreError};
use bytes::Bytes;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::Arc;
use tokio::sync::{oneshot, Notify};

type Answer = Result<Bytes, StoreError>;

#[derive(Default)]
pub struct ReplyInbox {
    queue: Mutex<Vec<(oneshot::Sender<Answer>, Answer)>>,
    ready: Notify,
}

thread_local! {
    /// The inbox of the worker running on this thread, if it is one.
    static HERE: RefCell<Option<Arc<ReplyInbox>>> = const { RefCell::new(None) };
}

impl ReplyInbox {
    /// Makes this thread's inbox and returns the task that delivers it; the worker spawns
    /// it on its own runtime. Until then (or on other threads) answers go straight to
    /// their oneshot.
    pub fn install() -> impl std::future::Future<Output = ()> {
        let inbox = Arc::new(ReplyInbox::default());
        HERE.with(|h| *h.borrow_mut() = Some(inbox.clone()));
        inbox.deliver()
    }

    /// The calling worker's inbox.
    pub fn here() -> Option<Arc<ReplyInbox>> {
        HERE.with(|h| h.borrow().clone())
    }

    /// Queues an answer (on any thread). The first answer queued wakes the worker once the
    /// store has handed out the rest of its batch ([`after_answers`]).
    pub fn push(self: &Arc<Self>, to: oneshot::Sender<Answer>, answer: Answer) {
        let was_empty = {
            let mut q = self.queue.lock();
            q.push((to, answer));
            q.len() == 1
        };
        if was_empty {
            let inbox = self.clone();
            // Stores a permit when the deliverer is busy, so no wake-up is lost.
            after_answers(move || inbox.ready.notify_one());
        }
    }

    async fn deliver(self: Arc<Self>) {
        loop {
            self.ready.notified().await;
            let answers = std::mem::take(&mut *self.queue.lock());
            for (to, answer) in answers {
                let _ = to.send(answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_pushed_from_other_threads_all_arrive_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            assert!(ReplyInbox::here().is_none(), "no inbox before install");
            tokio::task::spawn_local(ReplyInbox::install());
            let inbox = ReplyInbox::here().expect("installed");
            let mut waiting = Vec::new();
            let mut senders = Vec::new();
            for _ in 0..1000 {
                let (tx, rx) = oneshot::channel();
                senders.push(tx);
                waiting.push(rx);
            }
            // The store thread answers in bursts while the worker is running.
            let pusher = std::thread::spawn(move || {
                for (i, tx) in senders.into_iter().enumerate() {
                    inbox.push(tx, Ok(Bytes::from(i.to_string())));
                    if i % 97 == 0 {
                        std::thread::yield_now();
                    }
                }
            });
            for (i, rx) in waiting.into_iter().enumerate() {
                let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
                    .await
                    .expect("answer delivered")
                    .expect("sender kept");
                assert_eq!(got.unwrap(), Bytes::from(i.to_string()));
            }
            pusher.join().unwrap();
        });
    }
}
