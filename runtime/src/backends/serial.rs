//! The serial backend: every chunk on the calling thread, one after another, in its span.

use super::queue::{Ends, Runner};
use crate::call::{Opened, Outcome};

/// Runs the chunks in order (a retry once its backoff has passed, other chunks meanwhile);
/// after a failure or a kept `Err`, the rest are skipped.
pub(super) fn run<T, R>(runner: &Runner<'_, T, R, impl Fn(T) -> R>, n: usize) -> Vec<Outcome<R>> {
    let mut out: Vec<Option<Outcome<R>>> = (0..n).map(|_| None).collect();
    let mut ends = Ends::Nothing;
    let skip = |i: usize, ends: Ends| match ends {
        Ends::Nothing => false,
        Ends::After(k) => i > k,
        Ends::All => true,
    };
    while let Some(task) = runner.queue.next(|i| skip(i, ends)) {
        if let Some((i, outcome, now)) = runner.run(task, 0) {
            out[i] = Some(outcome);
            ends = match (ends, now) {
                (Ends::All, _) | (_, Ends::All) => Ends::All,
                (Ends::After(a), Ends::After(b)) => Ends::After(a.min(b)),
                (Ends::Nothing, e) | (e, Ends::Nothing) => e,
            };
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or(Outcome::Skipped))
        .collect()
}

/// Runs every chunk in order, handing each outcome to `done` as it completes.
pub(super) fn stream<C, R>(
    opened: &Opened,
    chunks: Vec<C>,
    f: &impl Fn(C) -> R,
    done: &mut impl FnMut(usize, Outcome<R>),
) {
    for (i, c) in chunks.into_iter().enumerate() {
        done(i, opened.run(i, 0, || f(c)));
    }
}
