//! Async bodies: the chunks run as futures on the caller's executor, polled together by the
//! call's own future, at most `workers` in flight (one on serial), started in chunk order.
//!
//! Nothing here needs a runtime: the call's future polls each running chunk with the waker it
//! was given, so it works under any executor, `pollster::block_on` included. Each poll of a chunk
//! runs as a step of the chunk (`Opened::guarded`: its span, [`current_chunk`](crate::current_chunk),
//! a panic caught), so a panicking chunk fails alone and stops further chunks from starting; a
//! chunk that ends after its `timeout` is reported as on threads. A chunk that waits (its
//! backoff before a retry, or its turn at the function's `rate`) waits on a `futures-timer`
//! timer, whose one helper thread wakes the call's task: the executor's thread is never blocked.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_timer::Delay;

use super::queue::Copier;
use super::{Begun, Body};
use crate::call::{Backend, Opened, Outcome};
use crate::retry::{Judge, Judged, Policy};

/// A chunk not running yet: its index, attempt (0 the first), what it is run on, and, when it
/// waits for its backoff or its turn at the rate, the timer it waits on.
struct Start<T> {
    index: usize,
    attempt: u32,
    item: T,
    timer: Option<Pin<Box<Delay>>>,
    /// It waits for its turn at the rate, which it has taken (not for a backoff).
    paced: bool,
}

/// A running chunk: its index, attempt, in-flight slot (its `worker` in traces), span, future,
/// a copy of its input to run it again, and when it started (to report an overrun).
struct Running<T, Fut> {
    index: usize,
    attempt: u32,
    slot: u64,
    span: tracing::Span,
    future: Pin<Box<Fut>>,
    spare: Option<T>,
    started: Instant,
}

/// Runs every chunk of a call begun with [`Begun::futures`] as a future; every chunk's outcome
/// in chunk order. After a failure or a kept `Err`, no further chunk starts; an `Err` that the
/// body's judge says to retry runs again after its backoff, on a timer, while the other chunks
/// go on.
pub(crate) async fn run<C, S, R, F, Fut>(
    begun: Begun<(C, S)>,
    body: Body<'_, F, R, (C, S)>,
) -> Vec<Outcome<R>>
where
    F: Fn(C, S) -> Fut,
    Fut: Future<Output = R>,
{
    let Begun {
        call,
        opened,
        items,
    } = begun;
    let n = items.len();
    let mut calls = Chunks {
        opened: &opened,
        policy: call.policy(),
        limit: match call.backend {
            Backend::Serial => 1,
            _ => opened.workers.max(1),
        },
        fresh: items
            .into_iter()
            .enumerate()
            .collect::<Vec<_>>()
            .into_iter(),
        waiting: Vec::new(),
        running: Vec::new(),
        out: (0..n).map(|_| None).collect(),
        stopped: false,
        f: body.f,
        judge: body.judge,
        copy: body.copy,
    };
    std::future::poll_fn(|cx| {
        let _entered = opened.span.enter();
        calls.poll(cx)
    })
    .await;
    calls
        .out
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Skipped))
        .collect()
}

/// One call's chunks as its future polls them.
struct Chunks<'a, T, R, F, Fut> {
    opened: &'a Opened,
    policy: Policy,
    /// Chunks in flight at most (running, or waiting on a timer).
    limit: usize,
    fresh: std::vec::IntoIter<(usize, T)>,
    waiting: Vec<Start<T>>,
    running: Vec<Running<T, Fut>>,
    out: Vec<Option<Outcome<R>>>,
    stopped: bool,
    f: &'a F,
    judge: Judge<'a, R>,
    copy: Copier<'a, T>,
}

impl<C, S, R, F, Fut> Chunks<'_, (C, S), R, F, Fut>
where
    F: Fn(C, S) -> Fut,
    Fut: Future<Output = R>,
{
    /// Starts what may start, polls what runs; ready when no chunk is left.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            self.start_what_may(cx);
            let progressed = self.poll_running(cx);
            if self.running.is_empty()
                && self.waiting.is_empty()
                && (self.stopped || self.fresh.len() == 0)
            {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Starts chunks while fewer than `limit` run or wait for their turn at the rate (a chunk
    /// waiting out its backoff holds no place): a waiting one whose timer fired first, else the
    /// next new one; one whose turn at the rate has not come waits on a timer.
    fn start_what_may(&mut self, cx: &mut Context<'_>) {
        if self.stopped {
            self.waiting.clear();
            return;
        }
        loop {
            let paced = self.waiting.iter().filter(|w| w.paced).count();
            let due = self.waiting.iter_mut().position(|w| {
                w.timer
                    .as_mut()
                    .is_none_or(|t| t.as_mut().poll(cx).is_ready())
            });
            let next = match due {
                Some(k) if self.waiting[k].paced || self.running.len() + paced < self.limit => {
                    self.waiting.swap_remove(k)
                }
                _ if self.running.len() + paced >= self.limit => return,
                _ => match self.fresh.next() {
                    Some((index, item)) => Start {
                        index,
                        attempt: 0,
                        item,
                        timer: None,
                        paced: false,
                    },
                    None => return,
                },
            };
            self.start(next, cx);
        }
    }

    /// Starts one chunk now, or puts it on a timer until the rate lets it start.
    fn start(&mut self, next: Start<(C, S)>, cx: &mut Context<'_>) {
        let wait = self
            .policy
            .rate
            .and_then(|l| l.wait_before_start(!next.paced));
        if let Some(at) = wait {
            let mut timer = Box::pin(Delay::new(at.saturating_duration_since(Instant::now())));
            let _ = timer.as_mut().poll(cx); // registers the waker
            self.waiting.push(Start {
                timer: Some(timer),
                paced: true,
                ..next
            });
            return;
        }
        let Start {
            index,
            attempt,
            item,
            ..
        } = next;
        let spare = match self.copy {
            Some(copy) if self.policy.again(attempt) => Some(copy(&item)),
            _ => None,
        };
        let slot = (0..)
            .find(|k| self.running.iter().all(|r| r.slot != *k))
            .expect("a free slot");
        let span = self.opened.chunk_span(index, slot);
        if attempt > 0 {
            span.record("attempts", attempt + 1);
        }
        let (c, s) = item;
        match self
            .opened
            .guarded(&span, index, attempt, || Box::pin((self.f)(c, s)))
        {
            Ok(future) => self.running.push(Running {
                index,
                attempt,
                slot,
                span,
                future,
                spare,
                started: Instant::now(),
            }),
            Err(failure) => {
                self.out[index] = Some(Outcome::Failed(failure));
                self.stopped = true;
            }
        }
    }

    /// Polls every running chunk once; whether one of them ended.
    fn poll_running(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        let mut k = 0;
        while k < self.running.len() {
            let r = &mut self.running[k];
            let outcome = match self
                .opened
                .guarded(&r.span, r.index, r.attempt, || r.future.as_mut().poll(cx))
            {
                Ok(Poll::Pending) => {
                    k += 1;
                    continue;
                }
                Ok(Poll::Ready(result)) => Outcome::Done(result),
                Err(failure) => Outcome::Failed(failure),
            };
            let r = self.running.swap_remove(k);
            self.opened.report_overrun(r.index, r.started.elapsed());
            progressed = true;
            self.settle(r, outcome, cx);
        }
        progressed
    }

    /// Keeps a finished chunk's outcome, or puts it on its backoff timer to run again.
    fn settle(&mut self, r: Running<(C, S), Fut>, outcome: Outcome<R>, cx: &mut Context<'_>) {
        match &outcome {
            Outcome::Done(result) => match (self.judge)(result) {
                Judged::Keep => {}
                Judged::Retry(why) if r.spare.is_some() && !self.stopped => {
                    let wait = self.policy.backoff.wait(r.attempt + 1);
                    self.opened
                        .report_retry(&r.span, r.index, r.attempt + 1, &why, wait);
                    let mut timer = Box::pin(Delay::new(wait));
                    let _ = timer.as_mut().poll(cx); // registers the waker
                    self.waiting.push(Start {
                        index: r.index,
                        attempt: r.attempt + 1,
                        item: r.spare.expect("a copy to run again"),
                        timer: Some(timer),
                        paced: false,
                    });
                    return;
                }
                Judged::Retry(_) | Judged::Stop => self.stopped = true,
            },
            _ => self.stopped = true,
        }
        self.out[r.index] = Some(outcome);
    }
}
