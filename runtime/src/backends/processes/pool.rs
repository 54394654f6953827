//! The parent side: scheduling the chunks of calls onto worker processes, one slot thread each.
//!
//! **Who owns what.** The pool is process-wide and grows to the largest `workers` asked for. Slot
//! `k` is a long-lived thread `decor-process-k` that owns at most one worker process and its end
//! of the channel: it starts the worker (so `PR_SET_PDEATHSIG`, which follows the thread that
//! forked, lasts as long as the pool), sends it chunks, relays its events and replaces it when it
//! dies. A call hands the same job to its first `w` slots; each slot takes chunks from the job's
//! queue in ascending order until it is empty, and sends one result per chunk back to the caller.
//! Because every chunk of a worker runs on that slot's thread, a Chrome trace shows one row per
//! worker process.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tracing::{Dispatch, Span};

use super::child::{Reply, Worker};
use super::job::Job;
use crate::call::{Outcome, chunk_span};
use crate::error::ChunkFailure;
use crate::remote::protocol::ChunkData;

struct Task {
    job: Arc<Job>,
    dispatch: Dispatch,
    parent: Span,
}

/// The slots' task queues, and the process they belong to.
struct Slots {
    pid: u32,
    senders: Vec<mpsc::Sender<Task>>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    pid: 0,
    senders: Vec::new(),
});

/// Hands `job` to the first `workers` slots, starting slots as needed.
pub(crate) fn submit(job: &Arc<Job>, workers: usize, parent: &Span) {
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    let mut guard = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if guard.pid != pid {
        // First use, or a `fork()` without `exec` (a daemonizing program): the slot threads and
        // their workers stayed with the parent process. Their queues are left alone (dropping
        // them could touch state a vanished thread held) and this process gets a pool of its own.
        std::mem::forget(std::mem::take(&mut guard.senders));
        crate::shm::forget_scratch();
        guard.pid = pid;
    }
    let slots = &mut guard.senders;
    while slots.len() < workers {
        let (tx, rx) = mpsc::channel::<Task>();
        let k = slots.len();
        std::thread::Builder::new()
            .name(format!("decor-process-{k}"))
            .spawn(move || serve_slot(rx))
            .expect("cannot start a pool thread");
        slots.push(tx);
    }
    for slot in slots.iter().take(workers) {
        let task = Task {
            job: job.clone(),
            dispatch: dispatch.clone(),
            parent: parent.clone(),
        };
        if slot.send(task).is_err() {
            // Slots already handed the job may be copying from the caller's input: unwinding
            // here would free it under them. A slot thread never ends, so this is a bug.
            eprintln!("decor: a process pool thread has stopped; aborting");
            std::process::abort();
        }
    }
}

fn serve_slot(tasks: mpsc::Receiver<Task>) {
    let mut worker: Option<Worker> = None;
    loop {
        // The next call of a loop comes soon after the last: spin for it before sleeping.
        let mut spun = None;
        crate::backends::spin::briefly(|| {
            spun = tasks.try_recv().ok();
            spun.is_some()
        });
        let task = match spun.map_or_else(|| tasks.recv_timeout(SCRATCH_IDLE), Ok) {
            Ok(task) => task,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                crate::shm::release_idle_scratch(SCRATCH_IDLE);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // A bug in serving one task must not take the slot down for every later call; the task's
        // unanswered chunks come back to the caller as lost when the task is dropped.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tracing::dispatcher::with_default(&task.dispatch, || serve(&mut worker, &task));
        }));
        if served.is_err() {
            worker = None;
        }
    }
}

/// How long a scratch region may sit unused before the pool frees it.
const SCRATCH_IDLE: Duration = Duration::from_secs(2);

/// Chunks sent to a worker ahead of the one it runs, so that it starts the next chunk without
/// waiting for the parent's round trip (two wake-ups across processes per chunk otherwise).
const IN_FLIGHT: usize = 2;

/// A chunk sent, or to send again, to this slot's worker.
struct InFlight {
    index: usize,
    data: ChunkData,
    /// Runs of this chunk that a worker's death ended.
    attempts: u32,
}

fn serve(worker: &mut Option<Worker>, task: &Task) {
    let job = &*task.job;
    let mut sent: VecDeque<InFlight> = VecDeque::new();
    // Sent to a worker that then died before reaching them: to send again, not counted as tries.
    let mut resend: VecDeque<InFlight> = VecDeque::new();
    loop {
        // Keep the worker fed: resent chunks first, then new ones from the job's queue.
        while sent.len() < IN_FLIGHT && !job.stop.load(Ordering::Relaxed) {
            let next = match resend.pop_front() {
                Some(s) => s,
                None => {
                    let claimed = {
                        let mut queue = job.queue.lock().unwrap_or_else(|e| e.into_inner());
                        // A second chunk only while every other slot still has one to take:
                        // otherwise it would wait here behind a long chunk while another
                        // worker sits idle.
                        if !sent.is_empty() && queue.len() <= job.workers {
                            break;
                        }
                        queue.pop_front()
                    };
                    let Some((index, data)) = claimed else { break };
                    if let (Some(copy), ChunkData::Shared { offset, len, .. }) = (&job.copy, &data)
                    {
                        copy.copy(*offset as usize, *len as usize);
                    }
                    InFlight {
                        index,
                        data,
                        attempts: 0,
                    }
                }
            };
            let w = match worker {
                Some(w) => w,
                None => match Worker::start() {
                    Ok(w) => worker.insert(w),
                    Err(e) => {
                        finish(
                            job,
                            next.index,
                            Outcome::Failed(ChunkFailure::WorkerStart(e.to_string())),
                        );
                        continue;
                    }
                },
            };
            if let Err(f) = w.send(job, next.index, &next.data) {
                finish(job, next.index, Outcome::Failed(f));
                continue;
            }
            sent.push_back(next);
        }
        let Some(head) = sent.pop_front() else { break };
        let w = worker.as_mut().expect("a worker holds the chunks sent");
        let span = chunk_span(
            &task.parent,
            &job.tag,
            head.index,
            job.lengths[head.index],
            u64::from(w.pid),
        );
        let outcome = span.in_scope(|| w.receive(job));
        if let Reply::Done(_, ran) | Reply::Failed(_, Some(ran)) = &outcome {
            span.record("run.start_unix_ns", ran.start_unix_ns);
            span.record("run.busy_ns", ran.busy_ns);
        }
        let result = match outcome {
            Reply::Done(bytes, _) => Outcome::Done(bytes),
            Reply::Failed(f, _) => Outcome::Failed(f),
            Reply::Died(status) => {
                let pid = w.pid;
                *worker = None;
                // The chunks queued behind the head never started: they go to the next worker.
                resend.extend(sent.drain(..));
                if head.attempts < job.retries {
                    tracing::warn!(parent: &span, pid, %status, attempt = head.attempts + 1, "worker died; running the chunk again");
                    resend.push_front(InFlight {
                        attempts: head.attempts + 1,
                        ..head
                    });
                    continue;
                }
                Outcome::Failed(ChunkFailure::WorkerDied { pid, status })
            }
            Reply::TimedOut(limit) => {
                let pid = w.pid;
                w.kill();
                *worker = None;
                resend.extend(sent.drain(..));
                Outcome::Failed(ChunkFailure::TimedOut { pid, limit })
            }
        };
        // The span closes before the caller can see the last result and end the trace.
        drop(span);
        finish(job, head.index, result);
    }
    // After a failure, whatever no slot will run is reported as skipped.
    for s in resend {
        finish(job, s.index, Outcome::Skipped);
    }
    loop {
        let next = job
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let Some((index, _)) = next else { break };
        finish(job, index, Outcome::Skipped);
    }
}

/// Hands one chunk's result to the caller; a failure stops the call.
fn finish(job: &Job, index: usize, result: Outcome<Vec<u8>>) {
    if matches!(result, Outcome::Failed(_)) {
        job.stop.store(true, Ordering::Relaxed);
    }
    let _ = job.results.send((index, result));
}
