//! Async bodies: the chunks run as futures on the caller's executor, polled together by the
//! call's own future, at most `workers` in flight (one on serial), started in chunk order.
//!
//! Nothing here needs a runtime: the call's future polls each running chunk with the waker it
//! was given, so it works under any executor, `pollster::block_on` included. Each poll of a chunk
//! runs as a step of the chunk (`Opened::guarded`: its span, [`current_chunk`](crate::current_chunk),
//! a panic caught), so a panicking chunk fails alone and stops further chunks from starting; a
//! chunk that ends after its `timeout` is reported as on threads.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use super::Stops;
use crate::call::{Backend, Call, Outcome};
use crate::chunks::Chunkable;

/// Runs every chunk of `input` as a future; every chunk's outcome in chunk order. After a failure
/// or a result that `stops`, no further chunk starts.
pub(crate) async fn run<I, S, R, F, Fut>(
    call: &Call,
    input: I,
    mut state: impl FnMut() -> S,
    f: &F,
    stops: Stops<'_, R>,
) -> Vec<Outcome<R>>
where
    I: Chunkable,
    F: Fn(I::Chunk, S) -> Fut,
    Fut: Future<Output = R>,
{
    let call = Call {
        futures: true,
        ..*call
    };
    let (call, chunks, opened) = super::begin(&call, input);
    let n = chunks.len();
    let limit = match call.backend {
        Backend::Serial => 1,
        _ => opened.workers.max(1),
    };
    let mut queue = chunks
        .into_iter()
        .map(|c| (c, state()))
        .enumerate()
        .collect::<Vec<_>>()
        .into_iter();
    // Each running chunk: its index, in-flight slot, span, future, and when it started (to
    // report an overrun). A chunk takes the lowest free slot, its `worker` in traces.
    type Running<Fut> = (usize, u64, tracing::Span, Pin<Box<Fut>>, Instant);
    let mut running: Vec<Running<Fut>> = Vec::new();
    let mut out: Vec<Option<Outcome<R>>> = (0..n).map(|_| None).collect();
    let mut stopped = false;
    std::future::poll_fn(|cx| {
        let _entered = opened.span.enter();
        loop {
            while running.len() < limit && !stopped {
                let Some((i, (chunk, s))) = queue.next() else {
                    break;
                };
                let slot = (0..)
                    .find(|k| running.iter().all(|r| r.1 != *k))
                    .expect("a free slot");
                let span = opened.chunk_span(i, slot);
                match opened.guarded(&span, i, || Box::pin(f(chunk, s))) {
                    Ok(fut) => running.push((i, slot, span, fut, Instant::now())),
                    Err(failure) => {
                        out[i] = Some(Outcome::Failed(failure));
                        stopped = true;
                    }
                }
            }
            let mut progressed = false;
            let mut k = 0;
            while k < running.len() {
                let (i, _, span, fut, started) = &mut running[k];
                let outcome = match opened.guarded(span, *i, || fut.as_mut().poll(cx)) {
                    Ok(Poll::Pending) => {
                        k += 1;
                        continue;
                    }
                    Ok(Poll::Ready(r)) => {
                        stopped |= stops(&r);
                        Outcome::Done(r)
                    }
                    Err(failure) => {
                        stopped = true;
                        Outcome::Failed(failure)
                    }
                };
                opened.report_overrun(*i, started.elapsed());
                out[*i] = Some(outcome);
                running.swap_remove(k);
                progressed = true;
            }
            if running.is_empty() && (stopped || queue.len() == 0) {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.unwrap_or(Outcome::Skipped))
        .collect()
}
