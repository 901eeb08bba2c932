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

#[derive(Default)]
pub(super) struct HardStates {
    /// (term, vote) of the latest hard state put in a batch, per group.
    written: FastMap<u64, (u64, u64)>,
    /// The latest commit-only change per group, not yet in a batch.
    held: FastMap<u64, HardState>,
}

impl HardStates {
    /// A group's hard state changed: into `batch` if term or vote moved (or it is the first
    /// this replica writes), else held for [`HardStates::ride_along`].
    pub fn changed(&mut self, group: u64, hs: HardState, batch: &mut LogBatch) {
        if self.written.get(&group) == Some(&(hs.term, hs.vote)) {
            self.held.insert(group, hs);
        } else {
            self.held.remove(&group);
            self.written.insert(group, (hs.term, hs.vote));
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

    #[test]
    fn term_or_vote_changes_are_written_at_once_commit_only_ones_ride_along() {
        let mut s = HardStates::default();
        let mut b = LogBatch::new();
        s.changed(1, hs(1, 2, 0), &mut b);
        assert_eq!(
            hard_states(&b),
            vec![(1, hs(1, 2, 0))],
            "the first is written"
        );

        let mut b = LogBatch::new();
        s.changed(1, hs(1, 2, 5), &mut b);
        s.changed(1, hs(1, 2, 7), &mut b);
        assert!(b.is_empty(), "commit-only changes wait");

        // A later write carries the latest held one.
        b.append(2, vec![]);
        s.ride_along(&mut b);
        assert_eq!(hard_states(&b), vec![(1, hs(1, 2, 7))]);
        let mut b = LogBatch::new();
        s.ride_along(&mut b);
        assert!(b.is_empty(), "written once");

        // A new term is written at once and replaces what was held.
        s.changed(1, hs(1, 2, 8), &mut b);
        s.changed(1, hs(2, 0, 8), &mut b);
        assert_eq!(hard_states(&b), vec![(1, hs(2, 0, 8))]);
        let mut later = LogBatch::new();
        s.ride_along(&mut later);
        assert!(later.is_empty(), "nothing older rides along after it");

        // So is a vote in the same term.
        let mut b = LogBatch::new();
        s.changed(1, hs(2, 3, 8), &mut b);
        assert_eq!(hard_states(&b), vec![(1, hs(2, 3, 8))]);
    }
}
