//! The serial backend: every chunk on the calling thread, one after another, in its span.

use super::Stops;
use crate::call::{Opened, Outcome};

/// Runs the chunks in order; after a failure or a result that `stops`, the rest are skipped.
pub(super) fn run<T, R>(
    opened: &Opened,
    items: Vec<T>,
    body: &impl Fn(T) -> R,
    stops: Stops<'_, R>,
) -> Vec<Outcome<R>> {
    let mut out = Vec::with_capacity(items.len());
    let mut stopped = false;
    for (i, item) in items.into_iter().enumerate() {
        if stopped {
            out.push(Outcome::Skipped);
            continue;
        }
        let outcome = opened.run(i, 0, || body(item));
        stopped = match &outcome {
            Outcome::Done(r) => stops(r),
            _ => true,
        };
        out.push(outcome);
    }
    out
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
