//! Batches of answers. The apply round hands out a round's answers to proposers inside
//! [`answer_batch`]; a callback may put work off to the end of the batch with
//! [`after_answers`] — say, waking a receiver once for all its answers instead of once per
//! answer. Outside a batch (a timeout, a failure) the work runs at once, so nothing put off
//! is ever lost.

use std::cell::RefCell;

type Deferred = Vec<Box<dyn FnOnce()>>;

thread_local! {
    /// `Some` while this thread hands out a batch of answers.
    static DEFERRED: RefCell<Option<Deferred>> = const { RefCell::new(None) };
}

/// Runs `f` when the batch of answers being handed out on this thread is complete, or now
/// if none is.
pub fn after_answers(f: impl FnOnce() + 'static) {
    let f: Box<dyn FnOnce()> = Box::new(f);
    let now = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(later) => {
            later.push(f);
            None
        }
        None => Some(f),
    });
    if let Some(f) = now {
        f();
    }
}

/// Runs `answer` (which calls the answer callbacks), then the work they put off.
pub(crate) fn answer_batch(answer: impl FnOnce()) {
    let outer = DEFERRED.with(|d| d.borrow_mut().replace(Vec::new()));
    answer();
    let later = DEFERRED.with(|d| std::mem::replace(&mut *d.borrow_mut(), outer));
    for f in later.unwrap_or_default() {
        f();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn work_put_off_runs_once_the_batch_is_out_and_at_once_outside_one() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        after_answers(move || l.borrow_mut().push("outside"));
        assert_eq!(*log.borrow(), ["outside"], "no batch: ran at once");
        let l = log.clone();
        answer_batch(|| {
            let l2 = l.clone();
            after_answers(move || l2.borrow_mut().push("deferred"));
            l.borrow_mut().push("answer");
        });
        assert_eq!(*log.borrow(), ["outside", "answer", "deferred"]);
        let l = log.clone();
        after_answers(move || l.borrow_mut().push("after"));
        assert_eq!(log.borrow().last(), Some(&"after"), "the batch ended");
    }
}
