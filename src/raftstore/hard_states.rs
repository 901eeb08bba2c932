//! Which hard states must reach the Raft log in the round that changed them, and which may
//! wait. `term` and `vote` must be durable before a replica says anything more (else a
//! restart could let it vote twice in one term), but `commit` need not be: a restarted
//! replica relearns the commit index from its leader, and whatever its state engine
//! applied counts as committed (`Peer::new` starts from the larger of the two). So a hard
//! state whose only change is `commit` does not cost an fdatasync of its own: it is held and
//! written with the next log write that happens anyway. Those are the rounds in which a
//! leader only learned that followers persisted, or a follower only learned the commit
//! index: with one proposer every other round of every replica, under load about a fifth.

use crate::fasthash::FastMap;
use tessera_storage::{HardState, LogBatch};

/// The commit-only changes not yet in a batch: the latest per group. What the log already
/// holds is the log engine's to say (`LogEngine::hard_state`); it is not kept here again.
#[derive(Default)]
pub(super) struct HardStates {
    held: FastMap<u64, HardState>,
}

impl HardStates {
    /// A group's hard state changed: into `batch` if its term or vote differs from `logged`
    /// (the group's hard state in the log; none yet counts as different), else held for
    /// [`HardStates::ride_along`].
    pub fn changed(
        &mut self,
        group: u64,
        hs: HardState,
        logged: Option<HardState>,
        batch: &mut LogBatch,
    ) {
        if logged.is_some_and(|l| (l.term, l.vote) == (hs.term, hs.vote)) {
            self.held.insert(group, hs);
        } else {
            self.held.remove(&group);
            batch.set_hard_state(group, hs);
        }
    }

    /// Adds the held hard states to a batch that is being written anyway.
    pub fn ride_along(&mut self, batch: &mut LogBatch) {
        for (group, hs) in self.held.drain() {
            batch.set_hard_state(group, hs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::log::GroupOp;

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState { term, vote, commit }
    }

    fn hard_states(batch: &LogBatch) -> Vec<(u64, HardState)> {
        batch
            .ops()
            .iter()
            .filter_map(|(g, op)| match op {
                GroupOp::HardState(h) => Some((*g, *h)),
                _ => None,
            })
            .collect()
    }

    /// Group 1's hard state in the log once `batch` is written over `logged`.
    fn written(batch: &LogBatch, logged: Option<HardState>) -> Option<HardState> {
        hard_states(batch).last().map(|(_, h)| *h).or(logged)
    }

    #[test]
    fn term_or_vote_changes_are_written_at_once_commit_only_ones_ride_along() {
        let mut s = HardStates::default();
        let mut b = LogBatch::new();
        s.changed(1, hs(1, 2, 0), None, &mut b);
        assert_eq!(
            hard_states(&b),
            vec![(1, hs(1, 2, 0))],
            "the first is written"
        );
        let logged = written(&b, None);

        let mut b = LogBatch::new();
        s.changed(1, hs(1, 2, 5), logged, &mut b);
        s.changed(1, hs(1, 2, 7), logged, &mut b);
        assert!(b.is_empty(), "commit-only changes wait");

        // A batch written anyway carries the latest held one.
        s.ride_along(&mut b);
        assert_eq!(hard_states(&b), vec![(1, hs(1, 2, 7))]);
        let logged = written(&b, logged);
        let mut b = LogBatch::new();
        s.ride_along(&mut b);
        assert!(b.is_empty(), "written once");

        // A new term is written at once and replaces what was held.
        s.changed(1, hs(1, 2, 8), logged, &mut b);
        s.changed(1, hs(2, 0, 8), logged, &mut b);
        assert_eq!(hard_states(&b), vec![(1, hs(2, 0, 8))]);
        let logged = written(&b, logged);
        let mut later = LogBatch::new();
        s.ride_along(&mut later);
        assert!(later.is_empty(), "nothing older rides along after it");

        // So is a vote in the same term.
        let mut b = LogBatch::new();
        s.changed(1, hs(2, 3, 8), logged, &mut b);
        assert_eq!(hard_states(&b), vec![(1, hs(2, 3, 8))]);
    }
}
