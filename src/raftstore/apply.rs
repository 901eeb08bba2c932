//! Apply: committed entries of many groups become ONE state-engine write batch per round,
//! each group's applied index (and apply state) in the same batch; only after the write do
//! proposers get their replies and waiting reads their go-ahead. It then tells the store
//! loop how far each group has applied. [`ApplyWorker`] does the work — on the store loop's
//! thread at the end of its round ([`Applier::Inline`], the default) or on a thread of its
//! own ([`Applier::Thread`]).
//!
//! A state-engine write that fails stops applying for good (fail-stop): the round's
//! proposers and readers get the error, nothing later is applied or written — applying past
//! a lost batch would record an applied index that covers writes the engine never got — and
//! the store loop is told to stop. A restart replays the log from what the engine holds.

use super::answers::answer_batch;
use super::entry_batch::{is_batch, split};
use super::keys::{put_apply_state, put_conf_state, put_shard, ApplyState};
use super::peer::Proposal;
use super::snapshot;
use super::state_machine::{ApplyContext, StateMachine};
use super::{ReadCallback, StoreError, StoreMsg};
use crate::shard::ShardDesc;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use raft::eraftpb::{ConfState, Entry, EntryType, Snapshot};
use std::collections::HashMap;
use std::sync::Arc;
use tessera_storage::{Cf, KeyRange, StateEngine, WriteBatch};

/// A membership change as raft applied it: the new conf state and shard descriptor.
pub(crate) type ConfOutcome = Result<(ConfState, ShardDesc), String>;

pub(crate) enum ApplyTask {
    Register {
        desc: ShardDesc,
        state: ApplyState,
    },
    /// Replace the shard's state with a snapshot (durably: the log is reset after this).
    InstallSnapshot {
        group: u64,
        snapshot: Snapshot,
        done: Sender<anyhow::Result<ShardDesc>>,
    },
    Entries {
        group: u64,
        entries: Vec<Entry>,
        proposals: Vec<Proposal>,
        /// Outcome of each membership-change entry (by index), decided on the store thread.
        conf: Vec<(u64, ConfOutcome)>,
    },
    Read {
        group: u64,
        index: u64,
        cb: ReadCallback,
    },
}

/// Where the store loop sends committed work: to the apply thread, or — with
/// `StoreConfig::apply_inline` — into a queue the store loop applies itself at the end of
/// its round (one thread hand-off fewer per write).
pub(crate) enum Applier {
    Thread(Sender<ApplyTask>),
    Inline {
        worker: Box<ApplyWorker>,
        queue: Vec<ApplyTask>,
    },
}

impl Applier {
    pub fn send(&mut self, task: ApplyTask) {
        match self {
            Applier::Thread(tx) => {
                let _ = tx.send(task);
            }
            Applier::Inline { queue, .. } => queue.push(task),
        }
    }

    /// Applies what is queued (inline); the apply thread needs no prompting.
    pub fn flush(&mut self) {
        if let Applier::Inline { worker, queue } = self {
            if !queue.is_empty() {
                worker.run_tasks(std::mem::take(queue).into_iter());
            }
        }
    }

    /// Installs a snapshot after everything sent before it; `None` if the apply thread is
    /// gone.
    pub fn install(&mut self, group: u64, snapshot: Snapshot) -> Option<anyhow::Result<ShardDesc>> {
        self.flush();
        match self {
            Applier::Thread(tx) => {
                let (done, wait) = crossbeam_channel::bounded(1);
                let _ = tx.send(ApplyTask::InstallSnapshot {
                    group,
                    snapshot,
                    done,
                });
                wait.recv().ok()
            }
            Applier::Inline { worker, .. } => Some(worker.install(group, snapshot)),
        }
    }

    /// The store is stopping: inline, fail the reads still waiting.
    pub fn stop(&mut self) {
        if let Applier::Inline { worker, .. } = self {
            worker.stop();
        }
    }
}

struct ApplyGroup {
    desc: ShardDesc,
    state: ApplyState,
    reads: Vec<(u64, ReadCallback)>,
}

pub(crate) struct ApplyWorker {
    pub state: Arc<dyn StateEngine>,
    pub sm: Box<dyn StateMachine>,
    pub store: Sender<StoreMsg>,
    groups: HashMap<u64, ApplyGroup>,
    /// Set when a state-engine write failed: nothing is applied after it.
    failed: Option<String>,
}

type Reply = (Proposal, Result<Bytes, StoreError>);

/// What an applied entry answers its proposers.
enum Outcome {
    /// One reply for every proposer of the entry (a plain entry, a no-op, a conf change).
    All(Result<Bytes, StoreError>),
    /// A batched entry: each proposer gets its own command's reply, by slot.
    PerSlot(Vec<Bytes>),
}

impl Outcome {
    fn reply(&self, slot: usize, group: u64) -> Result<Bytes, StoreError> {
        match self {
            Outcome::All(r) => r.clone(),
            Outcome::PerSlot(replies) => {
                replies.get(slot).cloned().ok_or(StoreError::Dropped(group))
            }
        }
    }
}

/// Answers every proposal and read of `tasks` with `why` (applying has stopped).
fn refuse(tasks: Vec<ApplyTask>, why: &str) {
    for task in tasks {
        match task {
            ApplyTask::Entries { proposals, .. } => {
                for p in proposals {
                    (p.cb)(Err(StoreError::Storage(why.to_string())));
                }
            }
            ApplyTask::Read { cb, .. } => cb(Err(StoreError::Storage(why.to_string()))),
            ApplyTask::InstallSnapshot { done, .. } => {
                let _ = done.send(Err(anyhow::anyhow!("{why}")));
            }
            ApplyTask::Register { .. } => {}
        }
    }
}

impl ApplyWorker {
    pub fn new(
        state: Arc<dyn StateEngine>,
        sm: Box<dyn StateMachine>,
        store: Sender<StoreMsg>,
    ) -> Self {
        ApplyWorker {
            state,
            sm,
            store,
            groups: HashMap::new(),
            failed: None,
        }
    }

    /// The apply thread's loop: everything queued since the last round is one round.
    pub fn run(mut self, rx: Receiver<ApplyTask>) {
        while let Ok(first) = rx.recv() {
            self.run_tasks(std::iter::once(first).chain(rx.try_iter().take(4096)));
        }
        self.stop();
    }

    /// Applies `tasks` as one round, except that a snapshot install splits it: everything
    /// before the snapshot is written first, in its own round.
    pub fn run_tasks(&mut self, tasks: impl Iterator<Item = ApplyTask>) {
        let mut round = Vec::new();
        for task in tasks {
            if let ApplyTask::InstallSnapshot {
                group,
                snapshot,
                done,
            } = task
            {
                self.round(std::mem::take(&mut round));
                let _ = done.send(self.install(group, snapshot));
            } else {
                round.push(task);
            }
        }
        self.round(round);
    }

    /// Fails the reads still waiting for their index to be applied.
    pub fn stop(&mut self) {
        self.fail_waiting_reads(StoreError::Stopped);
    }

    fn fail_waiting_reads(&mut self, err: StoreError) {
        for g in self.groups.values_mut() {
            for (_, cb) in g.reads.drain(..) {
                cb(Err(err.clone()));
            }
        }
    }

    fn round(&mut self, tasks: Vec<ApplyTask>) {
        if tasks.is_empty() {
            return;
        }
        if let Some(why) = &self.failed {
            refuse(tasks, why);
            return;
        }
        let state = self.state.clone();
        let mut ctx = ApplyContext::new(state.as_ref());
        let mut replies: Vec<Reply> = Vec::new();
        let mut reads = Vec::new();
        let mut touched = Vec::new();
        for task in tasks {
            match task {
                ApplyTask::Register { desc, state } => {
                    self.groups.insert(
                        desc.id,
                        ApplyGroup {
                            desc,
                            state,
                            reads: Vec::new(),
                        },
                    );
                }
                ApplyTask::Entries {
                    group,
                    entries,
                    proposals,
                    conf,
                } => {
                    self.apply_entries(&mut ctx, group, entries, proposals, conf, &mut replies);
                    if !touched.contains(&group) {
                        touched.push(group);
                    }
                }
                ApplyTask::Read { group, index, cb } => reads.push((group, index, cb)),
                ApplyTask::InstallSnapshot { .. } => {
                    unreachable!("installs are split out in run()")
                }
            }
        }
        for group in &touched {
            let g = &self.groups[group];
            put_apply_state(ctx.batch_mut(), *group, &g.state);
        }
        let mut batch = ctx.take_batch();
        batch.drop_superseded();
        if !batch.is_empty() {
            if let Err(e) = self.state.write(batch) {
                // This replica cannot go on applying (see the module doc).
                let why = format!("state engine write failed, applying stopped: {e}");
                tracing::error!("{why}");
                // The store hears first (inline too: the message waits in its inbox), so
                // nothing a client sends after its error reply is proposed before it stops.
                let _ = self.store.send(StoreMsg::ApplyFailed(why.clone()));
                for (p, _) in replies.drain(..) {
                    (p.cb)(Err(StoreError::Storage(why.clone())));
                }
                for (_, _, cb) in reads {
                    cb(Err(StoreError::Storage(why.clone())));
                }
                self.fail_waiting_reads(StoreError::Storage(why.clone()));
                self.failed = Some(why);
                return;
            }
        }
        // The store hears about progress before any client does, so a client's next request
        // (say, the next membership change) never reaches the store ahead of it.
        for group in &touched {
            let _ = self.store.send(StoreMsg::Applied {
                group: *group,
                index: self.groups[group].state.applied_index,
            });
        }
        answer_batch(|| {
            for (p, r) in replies {
                (p.cb)(r);
            }
        });
        for (group, index, cb) in reads {
            match self.groups.get_mut(&group) {
                Some(g) if g.state.applied_index >= index => cb(Ok(())),
                Some(g) => g.reads.push((index, cb)),
                None => cb(Err(StoreError::UnknownShard(group))),
            }
        }
        for group in touched {
            let g = self
                .groups
                .get_mut(&group)
                .expect("touched groups are registered");
            let applied = g.state.applied_index;
            let (ready, waiting): (Vec<_>, Vec<_>) =
                g.reads.drain(..).partition(|(i, _)| *i <= applied);
            g.reads = waiting;
            for (_, cb) in ready {
                cb(Ok(()));
            }
        }
    }

    /// Replaces the shard's keys with the snapshot's, sets its apply state to the snapshot
    /// point, and flushes so the state survives the log reset that follows.
    fn install(&mut self, group: u64, snap: Snapshot) -> anyhow::Result<ShardDesc> {
        if let Some(why) = &self.failed {
            anyhow::bail!("{why}");
        }
        let data = snapshot::decode(snap.data.clone())?;
        let md = snap.get_metadata();
        let desc = data.desc;
        let mut wb = WriteBatch::new();
        for cf in [Cf::Data, Cf::Lock, Cf::Txn] {
            if desc.end.is_empty() {
                let mut doomed = Vec::new();
                self.state.scan(
                    cf,
                    &KeyRange::new(desc.start.clone(), None),
                    usize::MAX,
                    &mut |k, _| {
                        doomed.push(k.to_vec());
                        true
                    },
                )?;
                for k in doomed {
                    wb.delete(cf, k);
                }
            } else {
                wb.delete_range(cf, desc.start.clone(), desc.end.clone());
            }
        }
        for (cf, k, v) in data.kvs {
            wb.put(cf, k.to_vec(), v.to_vec());
        }
        let st = ApplyState {
            applied_index: md.index,
            applied_term: md.term,
            truncated_index: md.index,
            truncated_term: md.term,
        };
        put_apply_state(&mut wb, group, &st);
        put_conf_state(&mut wb, group, md.get_conf_state());
        put_shard(&mut wb, &desc);
        self.state.write(wb)?;
        self.state.flush()?;
        let g = self.groups.entry(group).or_insert_with(|| ApplyGroup {
            desc: desc.clone(),
            state: st,
            reads: Vec::new(),
        });
        g.desc = desc.clone();
        g.state = st;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            g.reads.drain(..).partition(|(i, _)| *i <= st.applied_index);
        g.reads = waiting;
        for (_, cb) in ready {
            cb(Ok(()));
        }
        let _ = self.store.send(StoreMsg::Applied {
            group,
            index: st.applied_index,
        });
        Ok(desc)
    }

    fn apply_entries(
        &mut self,
        ctx: &mut ApplyContext<'_>,
        group: u64,
        entries: Vec<Entry>,
        proposals: Vec<Proposal>,
        conf: Vec<(u64, ConfOutcome)>,
        replies: &mut Vec<Reply>,
    ) {
        let Some(g) = self.groups.get_mut(&group) else {
            for p in proposals {
                replies.push((p, Err(StoreError::UnknownShard(group))));
            }
            return;
        };
        let mut proposals = proposals.into_iter().peekable();
        let mut conf = conf.into_iter().peekable();
        for e in entries {
            let decided = conf.next_if(|(i, _)| *i == e.index).map(|(_, o)| o);
            if e.index <= g.state.applied_index {
                continue; // replayed after a restart: already in the state engine
            }
            let outcome = match (e.get_entry_type(), decided) {
                (EntryType::EntryNormal, _) if is_batch(&e.context) => match split(&e.data) {
                    Some(cmds) => Outcome::PerSlot(
                        cmds.into_iter()
                            .map(|cmd| self.sm.apply(ctx, &g.desc, e.index, cmd))
                            .collect(),
                    ),
                    None => Outcome::All(Ok(Bytes::from_static(b"ERR malformed batched entry"))),
                },
                (EntryType::EntryNormal, _) if !e.data.is_empty() => {
                    Outcome::All(Ok(self.sm.apply(ctx, &g.desc, e.index, &e.data)))
                }
                (EntryType::EntryNormal, _) => Outcome::All(Ok(Bytes::new())), // a leader's no-op
                (_, Some(Ok((cs, desc)))) => {
                    put_conf_state(ctx.batch_mut(), group, &cs);
                    put_shard(ctx.batch_mut(), &desc);
                    g.desc = desc;
                    Outcome::All(Ok(Bytes::from_static(b"OK")))
                }
                (_, Some(Err(reason))) => {
                    Outcome::All(Err(StoreError::ConfChangeRejected { group, reason }))
                }
                (_, None) => Outcome::All(Err(StoreError::ConfChangeRejected {
                    group,
                    reason: "conf change entry without an outcome".into(),
                })),
            };
            g.state.applied_index = e.index;
            g.state.applied_term = e.term;
            let is_conf = e.get_entry_type() != EntryType::EntryNormal;
            while let Some(p) = proposals.next_if(|p| p.index <= e.index) {
                let r = match () {
                    _ if p.index != e.index || p.term != e.term => Err(StoreError::Dropped(group)),
                    // Raft turns a refused membership change into an empty normal entry.
                    _ if p.conf && !is_conf => Err(StoreError::ConfChangeRejected {
                        group,
                        reason: "another membership change is in progress".into(),
                    }),
                    _ => outcome.reply(p.slot, group),
                };
                replies.push((p, r));
            }
        }
        for p in proposals {
            replies.push((p, Err(StoreError::Dropped(group))));
        }
    }
}
