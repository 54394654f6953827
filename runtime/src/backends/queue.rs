//! The chunks of one call on threads or serial, as the workers take them: new ones in ascending
//! order, and chunks to run again once their backoff has passed.
//!
//! A worker asks [`Queue::next`] for a chunk: a retry that is due comes first (it is the earliest
//! failure of the call so far, and the call's result waits on it), then the next new chunk; with
//! neither, the worker sleeps until the first retry is due. So a chunk waiting out its backoff
//! holds no thread: the thread that ran it takes other chunks meanwhile.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::call::{Opened, Outcome};
use crate::retry::{Judge, Judged, Policy};

/// Makes a second copy of a chunk's input (the chunk and its owned parameters) to run it again;
/// `None` for calls that never retry an `Err`.
pub(crate) type Copier<'a, T> = Option<&'a (dyn Fn(&T) -> T + Sync)>;

/// One chunk to run.
pub(super) struct Task<T> {
    pub(super) index: usize,
    /// 0 for the first run.
    pub(super) attempt: u32,
    pub(super) item: T,
}

struct State<T> {
    fresh: std::iter::Enumerate<std::vec::IntoIter<T>>,
    /// Chunks to run again, each with the time it may.
    later: Vec<(Instant, Task<T>)>,
}

/// The chunks of one call still to run.
pub(super) struct Queue<T> {
    state: Mutex<State<T>>,
    due: Condvar,
}

impl<T> Queue<T> {
    pub(super) fn new(items: Vec<T>) -> Queue<T> {
        Queue {
            state: Mutex::new(State {
                fresh: items.into_iter().enumerate(),
                later: Vec::new(),
            }),
            due: Condvar::new(),
        }
    }

    /// The next chunk to run, waiting for a retry's time if nothing else is left; `None` when
    /// the call has no chunk left. Chunks for which `skip` says so are dropped (not run).
    pub(super) fn next(&self, skip: impl Fn(usize) -> bool) -> Option<Task<T>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            state.later.retain(|(_, t)| !skip(t.index));
            let now = Instant::now();
            if let Some(k) = (0..state.later.len())
                .filter(|&k| state.later[k].0 <= now)
                .min_by_key(|&k| state.later[k].1.index)
            {
                return Some(state.later.swap_remove(k).1);
            }
            if let Some((index, item)) = state.fresh.by_ref().find(|(i, _)| !skip(*i)) {
                return Some(Task {
                    index,
                    attempt: 0,
                    item,
                });
            }
            let first = state.later.iter().map(|(at, _)| *at).min()?;
            let wait = first.saturating_duration_since(now);
            state = self
                .due
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Puts `task` back to run again at `at`.
    pub(super) fn again(&self, task: Task<T>, at: Instant) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .later
            .push((at, task));
        self.due.notify_all();
    }
}

/// What a finished chunk means for the rest of the call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ends {
    /// Nothing: go on.
    Nothing,
    /// Chunks after this one that have not started are not started (an `Err` kept).
    After(usize),
    /// No further chunk starts (a panic, a failed chunk).
    All,
}

/// One call's chunks and what runs them: shared by its workers.
pub(super) struct Runner<'a, T, R, B> {
    pub(super) opened: &'a Opened,
    pub(super) queue: Queue<T>,
    pub(super) body: &'a B,
    pub(super) judge: Judge<'a, R>,
    pub(super) policy: Policy,
    pub(super) copy: Copier<'a, T>,
}

impl<T, R, B: Fn(T) -> R> Runner<'_, T, R, B> {
    /// Runs `task` on `worker`: its index, outcome and what it ends; `None` when it failed with
    /// an `Err` worth another attempt and went back to the queue.
    pub(super) fn run(&self, task: Task<T>, worker: usize) -> Option<(usize, Outcome<R>, Ends)> {
        let Task {
            index,
            attempt,
            item,
        } = task;
        let spare = match self.copy {
            Some(copy) if self.policy.again(attempt) => Some(copy(&item)),
            _ => None,
        };
        self.policy.before_start();
        let (outcome, span) = self
            .opened
            .attempt(index, worker, attempt, || (self.body)(item));
        let ends = match &outcome {
            Outcome::Done(r) => match (self.judge)(r) {
                Judged::Keep => Ends::Nothing,
                Judged::Retry(why) if spare.is_some() => {
                    let wait = self.policy.backoff.wait(attempt + 1);
                    self.opened
                        .report_retry(&span, index, attempt + 1, &why, wait);
                    let again = Task {
                        index,
                        attempt: attempt + 1,
                        item: spare.expect("a copy to run again"),
                    };
                    self.queue.again(again, Instant::now() + wait);
                    return None;
                }
                Judged::Retry(_) | Judged::Stop => Ends::After(index),
            },
            _ => Ends::All,
        };
        Some((index, outcome, ends))
    }
}
