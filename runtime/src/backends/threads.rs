//! The threads backend.
//!
//! **Who runs what.** A call with `w` workers and `n` chunks starts `min(w, n)` workers; each
//! takes the next chunk from a shared queue, in ascending order, until the queue is empty. The
//! calling thread is worker 0, so a call never waits on a pool that has no free thread (nested
//! calls are safe). Where the workers come from depends on `w`:
//!
//! - `w` up to the number of cores (CPU-bound work): the other workers are jobs on rayon's global
//!   pool, which is sized to the cores and already warm, so dispatch costs about what rayon's own
//!   does, and a chunk body may itself use rayon.
//! - `w` above the number of cores (I/O-bound work: bodies that block on the network or sleep):
//!   the other workers are threads of the call's own (`std::thread::scope`), so that blocking
//!   bodies really overlap and never hold the pool's threads away from CPU-bound work.
//!
//! **Failures.** Each chunk runs under `catch_unwind`. After a panic no further chunk starts; the
//! chunks running finish. After a result that stops the call (an `Err`) in chunk `i`, chunks after
//! `i` that have not started are skipped, chunks before `i` all run, so the first failure in chunk
//! order is exact.
//!
//! **Tracing.** Each chunk's span is entered on the thread that runs it, with the caller's
//! subscriber.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use tracing::Dispatch;

use super::queue::{Ends, Runner};
use crate::call::{Opened, Outcome};

/// Runs the chunks on `opened.workers` workers; every chunk's outcome in chunk order.
pub(super) fn run<T, R>(
    runner: &Runner<'_, T, R, impl Fn(T) -> R + Sync>,
    n: usize,
) -> Vec<Outcome<R>>
where
    T: Send,
    R: Send,
{
    let slots: Vec<Mutex<Option<Outcome<R>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let failed = AtomicBool::new(false);
    let stop_after = AtomicUsize::new(usize::MAX);
    let skip = |i: usize| failed.load(Ordering::Relaxed) || i > stop_after.load(Ordering::Relaxed);
    let work = |k: usize| {
        while let Some(task) = runner.queue.next(skip) {
            let Some((i, outcome, ends)) = runner.run(task, k) else {
                continue; // it runs again later, on whichever worker is free then
            };
            match ends {
                Ends::Nothing => {}
                Ends::After(i) => {
                    stop_after.fetch_min(i, Ordering::Relaxed);
                }
                Ends::All => failed.store(true, Ordering::Relaxed),
            }
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        }
    };
    let opened = runner.opened;
    let on_pool = opened.workers <= rayon::current_num_threads();
    spawn_workers(1..opened.workers, on_pool, &work, || work(0));
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or(Outcome::Skipped)
        })
        .collect()
}

/// Runs every chunk on `opened.workers` workers, handing each outcome to `done` on the calling
/// thread as soon as it completes.
pub(super) fn stream<C, R>(
    opened: &Opened,
    chunks: Vec<C>,
    f: &(impl Fn(C) -> R + Sync),
    done: &mut impl FnMut(usize, Outcome<R>),
) where
    C: Send,
    R: Send,
{
    let n = chunks.len();
    let queue = Mutex::new(chunks.into_iter().enumerate());
    let (tx, rx) = mpsc::channel::<(usize, Outcome<R>)>();
    let work = |k: usize| {
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            let Some((i, c)) = next else { break };
            if tx.send((i, opened.run(i, k, || f(c)))).is_err() {
                break;
            }
        }
    };
    // The caller receives while every worker runs elsewhere: on the pool when it has room and
    // the caller is not one of its threads (which would then wait without stealing), else on
    // threads of this call.
    let on_pool =
        opened.workers <= rayon::current_num_threads() && rayon::current_thread_index().is_none();
    spawn_workers(0..opened.workers, on_pool, &work, || {
        for (i, outcome) in rx.iter().take(n) {
            done(i, outcome);
        }
    });
}

/// Runs `work(k)` for every `k` in `others`, on rayon's pool or on threads of their own, while the
/// calling thread runs `caller`, each with the caller's subscriber; returns when all are done.
fn spawn_workers(
    others: std::ops::Range<usize>,
    on_pool: bool,
    work: &(dyn Fn(usize) + Sync),
    caller: impl FnOnce(),
) {
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    let run = |k: usize| tracing::dispatcher::with_default(&dispatch, || work(k));
    let run = &run;
    if others.is_empty() {
        caller();
    } else if on_pool {
        rayon::in_place_scope(|s| {
            for k in others {
                s.spawn(move |_| run(k));
            }
            caller();
        });
    } else {
        std::thread::scope(|s| {
            for k in others {
                std::thread::Builder::new()
                    .name(format!("decor-worker-{k}"))
                    .spawn_scoped(s, move || run(k))
                    .expect("cannot start a worker thread");
            }
            caller();
        });
    }
}
