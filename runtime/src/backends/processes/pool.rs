//! The parent side: the pool of worker processes, and the calling thread driving a call's chunks
//! onto them.
//!
//! **Who owns what.** The pool is process-wide and grows to the most workers in use at once.
//! Slot `k` holds at most one worker process. A call locks `w` free slots (new ones when all are
//! busy: calls from several threads run side by side, see `lock_slots`) and its own thread does
//! the rest: it writes each
//! worker its chunks (two in flight, so a worker starts the next without a round trip), reads
//! their answers and events as they come, and replaces a worker that dies. No thread sits
//! between the caller and the workers, so a call after idle pays one wake-up of the workers, not
//! a chain of them, and that wake-up starts before the call prepares its chunks (`wake_ahead`,
//! from the generated code's first look at the backend). Workers are started by one long-lived
//! thread, `decor-process-spawner`, because `PR_SET_PDEATHSIG` follows the thread that forked: a
//! short-lived calling thread would take its workers with it.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use tracing::Span;

use super::child::{Heard, Reply, Worker};
use super::job::Job;
use crate::backends::ring;
use crate::call::{Outcome, chunk_span, report_retry};
use crate::error::ChunkFailure;
use crate::remote::events;
use crate::remote::outgoing::Land;
use crate::remote::protocol::ChunkData;

type Slot = Mutex<Option<Worker>>;

/// The slots, and the process they belong to.
struct Pool {
    pid: u32,
    /// Leaked, so that a call holds its slots' locks without holding the pool's.
    slots: Vec<&'static Slot>,
    spawner: Option<mpsc::Sender<mpsc::Sender<io::Result<Worker>>>>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    pid: 0,
    slots: Vec::new(),
    spawner: None,
});

/// The pool of this process (a new one after a `fork()` without `exec`).
fn pool() -> MutexGuard<'static, Pool> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if pool.pid != pid {
        // First use, or a `fork()` without `exec` (a daemonizing program): the workers and the
        // spawner stayed with the parent process. Their state is left alone (dropping it could
        // touch what a vanished thread held) and this process gets a pool of its own.
        std::mem::forget(std::mem::take(&mut pool.slots));
        std::mem::forget(pool.spawner.take());
        crate::shm::forget_scratch();
        pool.pid = pid;
    }
    pool
}

/// Locks `workers` slots for one call: free ones first, in order, then new ones, so that calls
/// from several threads run side by side on workers of their own instead of each waiting for
/// the whole of the calls ahead of it (a timed-out chunk would hold every later call for its
/// timeout). Past [`MAX_SLOTS`] a call makes do with the free slots it found; with none free it
/// waits for the first slot, holding no other, so two calls never wait on each other crosswise.
fn lock_slots(workers: usize) -> Vec<MutexGuard<'static, Option<Worker>>> {
    // The free slots are tried under the pool's lock, as `wake_ahead` tries them: a slot it
    // holds for a moment never looks taken here (which would start a worker for nothing).
    let mut pool = pool();
    let mut held: Vec<MutexGuard<'static, Option<Worker>>> = pool
        .slots
        .iter()
        .copied()
        .filter_map(|s: &'static Slot| match s.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })
        .take(workers)
        .collect();
    while held.len() < workers && pool.slots.len() < MAX_SLOTS.max(workers) {
        let slot: &'static Slot = Box::leak(Box::new(Mutex::new(None)));
        pool.slots.push(slot);
        held.push(slot.lock().unwrap_or_else(|e| e.into_inner()));
    }
    if held.is_empty() {
        let first = pool.slots[0];
        drop(pool); // the call holding it may need the pool to start a worker
        held.push(first.lock().unwrap_or_else(|e| e.into_inner()));
    }
    held
}

/// Wakes the sleeping workers of the first `workers` free slots, the ones the call about to be
/// prepared will lock (see [`lock_slots`]), so that their wake-up (tens of microseconds after
/// idle, on another core) runs while the call cuts and encodes its chunks instead of after.
pub(crate) fn wake_ahead(workers: usize) {
    // Under the pool's lock: see `lock_slots`.
    let pool = pool();
    let free = pool
        .slots
        .iter()
        .filter_map(|s| s.try_lock().ok())
        .take(workers);
    for slot in free {
        if let Some(w) = slot.as_ref() {
            w.nudge();
        }
    }
}

/// The most worker processes the pool keeps: calls side by side beyond it share them.
const MAX_SLOTS: usize = 64;

/// Starts a worker on the spawner thread.
fn start_worker() -> io::Result<Worker> {
    let spawner = {
        let mut pool = pool();
        pool.spawner
            .get_or_insert_with(|| {
                let (tx, rx) = mpsc::channel();
                std::thread::Builder::new()
                    .name("decor-process-spawner".into())
                    .spawn(move || serve_spawns(rx))
                    .expect("cannot start the process pool's spawner thread");
                tx
            })
            .clone()
    };
    let (tx, rx) = mpsc::channel();
    spawner
        .send(tx)
        .map_err(|_| io::Error::other("the process pool's spawner thread has stopped"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the process pool's spawner thread has stopped"))?
}

fn serve_spawns(asks: mpsc::Receiver<mpsc::Sender<io::Result<Worker>>>) {
    loop {
        match asks.recv_timeout(SCRATCH_IDLE) {
            Ok(reply) => {
                let _ = reply.send(Worker::start());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => crate::shm::release_idle_scratch(SCRATCH_IDLE),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// How long a scratch region may sit unused before the pool frees it.
const SCRATCH_IDLE: Duration = Duration::from_secs(2);

/// Chunks sent to a worker ahead of the one it runs, so that it starts the next chunk without
/// waiting for the parent's round trip.
const IN_FLIGHT: usize = 2;

/// How often a caller waiting on silent workers looks whether they still live.
const CHECK_ALIVE: Duration = Duration::from_millis(20);

/// A chunk sent, or to send again, to a worker.
struct InFlight {
    index: usize,
    data: ChunkData,
    /// Runs of this chunk that failed and were retried (a worker's death, a timeout, an `Err`).
    attempts: u32,
    /// Not sent before this: a retry's backoff, or the start the function's rate granted.
    not_before: Option<Instant>,
    /// The rate already granted this chunk its start (at `not_before`).
    granted: bool,
}

/// The first chunk of the queue that may be sent now: `Err(at)` when every chunk waits, the
/// first until `at`; `Ok(None)` when the queue is empty.
fn take_ready(queue: &mut VecDeque<InFlight>) -> Result<Option<InFlight>, Instant> {
    let now = Instant::now();
    match queue
        .iter()
        .position(|c| c.not_before.is_none_or(|at| at <= now))
    {
        Some(k) => Ok(queue.remove(k)),
        None => queue
            .iter()
            .filter_map(|c| c.not_before)
            .min()
            .map_or(Ok(None), Err),
    }
}

/// The earliest time a waiting chunk may be sent, if the call still sends any.
fn next_due(queue: &VecDeque<InFlight>, stopped: bool) -> Option<Instant> {
    (!stopped)
        .then(|| queue.iter().filter_map(|c| c.not_before).min())
        .flatten()
}

/// One slot as a call drives it.
struct Lane {
    worker: MutexGuard<'static, Option<Worker>>,
    /// Sent, in the order the worker runs them.
    sent: VecDeque<InFlight>,
    /// The span of the chunk the worker runs now (the head of `sent`), and since when it runs.
    head: Option<(Span, Instant)>,
}

impl Drop for Lane {
    fn drop(&mut self) {
        // Left with chunks unanswered (a panic unwound the call): the worker's next answers
        // belong to no call, so it must not serve the next one.
        if !self.sent.is_empty() {
            self.worker.take();
        }
    }
}

/// Runs every chunk of `data` on the first `workers` slots' workers, from this thread, landing
/// each chunk's outcome as it arrives; none lands for those not started after a failure.
pub(crate) fn drive(
    job: &Job,
    data: Vec<ChunkData>,
    workers: usize,
    parent: &Span,
    out: &mut dyn Land,
) {
    let n = data.len();
    let mut queue: VecDeque<InFlight> = data
        .into_iter()
        .enumerate()
        .map(|(index, data)| InFlight {
            index,
            data,
            attempts: 0,
            not_before: None,
            granted: false,
        })
        .collect();
    let mut lanes: Vec<Lane> = lock_slots(workers.clamp(1, n.max(1)))
        .into_iter()
        .map(|worker| Lane {
            worker,
            sent: VecDeque::new(),
            head: None,
        })
        .collect();
    let mut stopped = false;
    loop {
        feed(job, &mut lanes, &mut queue, out, &mut stopped);
        let due = next_due(&queue, stopped);
        if lanes.iter().all(|l| l.sent.is_empty()) && due.is_none() {
            break;
        }
        let mut heard = false;
        for lane in &mut lanes {
            heard |= listen(job, lane, parent, &mut queue, out, &mut stopped);
        }
        if !heard {
            wait(&mut lanes, job.timeout, due);
        }
    }
}

/// Sends each worker chunks until it has `IN_FLIGHT`: chunks to run again first, then new ones.
fn feed(
    job: &Job,
    lanes: &mut [Lane],
    queue: &mut VecDeque<InFlight>,
    out: &mut dyn Land,
    stopped: &mut bool,
) {
    let workers = lanes.len();
    for round in 0..IN_FLIGHT {
        for lane in lanes.iter_mut() {
            // A second chunk only while every other worker can still get one: otherwise it
            // would wait here behind a long chunk while another worker sits idle.
            if *stopped || lane.sent.len() > round || (round > 0 && queue.len() < workers) {
                continue;
            }
            let Some(next) = take_granted(job, queue) else {
                return;
            };
            if let (Some(copy), ChunkData::Shared { offset, len, .. }) = (&job.copy, &next.data) {
                copy.copy(*offset as usize, *len as usize);
            }
            let w = match &mut *lane.worker {
                Some(w) => w,
                None => match start_worker() {
                    Ok(w) => lane.worker.insert(w),
                    Err(e) => {
                        let f = ChunkFailure::WorkerStart(e.to_string());
                        finish(out, stopped, next.index, Outcome::Failed(f));
                        continue;
                    }
                },
            };
            if let Err(f) = w.send(job, next.index, next.attempts, &next.data) {
                finish(out, stopped, next.index, Outcome::Failed(f));
                continue;
            }
            lane.sent.push_back(next);
        }
    }
}

/// The next chunk to send now, its start taken from the function's rate; `None` when every chunk
/// left waits (a backoff, or a start the rate granted for later: it waits in the queue, holding
/// no worker) or none is left.
fn take_granted(job: &Job, queue: &mut VecDeque<InFlight>) -> Option<InFlight> {
    loop {
        let mut next = take_ready(queue).ok()??;
        let Some(limiter) = job.policy.rate else {
            return Some(next);
        };
        let wait = limiter.wait_before_start(!next.granted);
        next.granted = true;
        let Some(at) = wait else {
            return Some(next);
        };
        next.not_before = Some(at);
        queue.push_front(next);
    }
}

/// Hears what one lane's worker sent; whether it sent anything (or its chunk timed out).
fn listen(
    job: &Job,
    lane: &mut Lane,
    parent: &Span,
    queue: &mut VecDeque<InFlight>,
    out: &mut dyn Land,
    stopped: &mut bool,
) -> bool {
    let mut heard = false;
    while let (Some(first), Some(w)) = (lane.sent.front(), lane.worker.as_mut()) {
        let (span, since) = lane.head.get_or_insert_with(|| {
            let span = chunk_span(
                parent,
                &job.tag,
                first.index,
                job.lengths[first.index],
                u64::from(w.pid),
            );
            if first.attempts > 0 {
                span.record("attempts", first.attempts + 1);
            }
            (span, Instant::now())
        });
        let deadline = job.timeout.map(|t| *since + t);
        let pid = w.pid;
        let news = match w.hear(deadline) {
            Some(news) => news,
            None if deadline.is_some_and(|at| Instant::now() >= at) => Heard::Late,
            None => return heard,
        };
        heard = true;
        match &news {
            Heard::Event {
                level,
                target,
                fields,
            } => {
                span.in_scope(|| events::relay(*level, target, fields, pid));
                continue;
            }
            Heard::Reply(Reply::Done(_, ran, _)) => record_ran(span, Some(*ran)),
            Heard::Reply(Reply::Failed(_, ran)) => record_ran(span, *ran),
            Heard::Late | Heard::Died(_) => {}
        }
        let Some(outcome) = settle(job, lane, queue, news, pid) else {
            continue; // it runs again
        };
        let head = lane.sent.pop_front().expect("the chunk the worker ran");
        // The span closes before the caller can see the last result and end the trace.
        lane.head = None;
        finish(out, stopped, head.index, outcome);
    }
    heard
}

/// What the lane's head chunk comes to, from what its worker `pid` said or did (`news`, not an
/// event): its outcome, or `None` when it runs again (queued after its backoff, on any worker).
/// A worker that timed out or died is dropped (killed) and the chunks sent after the head go
/// back to the queue.
fn settle(
    job: &Job,
    lane: &mut Lane,
    queue: &mut VecDeque<InFlight>,
    news: Heard,
    pid: u32,
) -> Option<Outcome<Vec<u8>>> {
    let attempts = lane
        .sent
        .front()
        .expect("the chunk the worker ran")
        .attempts;
    let again = job.policy.again(attempts);
    match news {
        Heard::Event { .. } => unreachable!("events are relayed, not settled"),
        Heard::Reply(Reply::Done(_, _, Some(error))) if again => {
            let wait = job.policy.backoff.wait(attempts + 1);
            retry_head(job, lane, queue, &error, wait);
            None
        }
        Heard::Reply(Reply::Done(bytes, _, _)) => Some(Outcome::Done(bytes)),
        Heard::Reply(Reply::Failed(f, _)) => Some(Outcome::Failed(f)),
        Heard::Late => {
            let limit = job.timeout.expect("a chunk with a deadline");
            let error = format!(
                "timed out after {}; its worker process {pid} was killed",
                crate::fmt::HumanDuration(limit)
            );
            let wait = job.policy.backoff.wait(attempts + 1);
            let failure = ChunkFailure::TimedOut { pid, limit };
            lost_worker(job, lane, queue, again.then_some((&*error, wait)), failure)
        }
        Heard::Died(status) => {
            // A local fault, not a service asking for a pause: at once, on a new worker.
            let error = format!("its worker process {pid} {status}");
            let failure = ChunkFailure::WorkerDied { pid, status };
            let retry = again.then_some((&*error, Duration::ZERO));
            lost_worker(job, lane, queue, retry, failure)
        }
    }
}

/// The lane's worker is gone with its head chunk (killed for a timeout, or dead): the chunks
/// sent behind it go back to the queue, and the head runs again (`retry`: why, and after what
/// wait) or fails with `failure`.
fn lost_worker(
    job: &Job,
    lane: &mut Lane,
    queue: &mut VecDeque<InFlight>,
    retry: Option<(&str, Duration)>,
    failure: ChunkFailure,
) -> Option<Outcome<Vec<u8>>> {
    lane.worker.take(); // dropping a worker kills it
    requeue_behind_head(lane, queue);
    match retry {
        Some((error, wait)) => {
            retry_head(job, lane, queue, error, wait);
            None
        }
        None => Some(Outcome::Failed(failure)),
    }
}

/// Records in a chunk's span when its body ran in the worker.
fn record_ran(span: &Span, ran: Option<crate::remote::protocol::Ran>) {
    if let Some(ran) = ran {
        span.record("run.start_unix_ns", ran.start_unix_ns);
        span.record("run.busy_ns", ran.busy_ns);
    }
}

/// The lane's head chunk failed and runs again after `wait`: said at WARN in its span, which
/// closes; the chunk goes to the front of the queue, for any worker.
fn retry_head(
    job: &Job,
    lane: &mut Lane,
    queue: &mut VecDeque<InFlight>,
    error: &str,
    wait: Duration,
) {
    let mut head = lane.sent.pop_front().expect("the chunk the worker ran");
    if let Some((span, _)) = lane.head.take() {
        let (function, retries) = (job.tag.function, job.policy.retries);
        report_retry(
            &span,
            function,
            head.index,
            head.attempts + 1,
            retries,
            error,
            wait,
        );
    }
    head.attempts += 1;
    head.not_before = (!wait.is_zero()).then(|| Instant::now() + wait);
    head.granted = false;
    queue.push_front(head);
}

/// After the worker was lost: the chunks sent behind the one it ran never started, and go back
/// to the front of the queue, in order, for any worker.
fn requeue_behind_head(lane: &mut Lane, queue: &mut VecDeque<InFlight>) {
    while lane.sent.len() > 1 {
        let last = lane.sent.pop_back().expect("more than one chunk");
        queue.push_front(last);
    }
}

/// Waits until a worker writes, a socket is ready, or the first chunk deadline, the time a
/// waiting chunk may be sent (`due`) or the next look at whether the workers live comes.
fn wait(lanes: &mut [Lane], timeout: Option<Duration>, due: Option<Instant>) {
    let limit = lanes
        .iter()
        .filter_map(|l| Some(l.head.as_ref()?.1 + timeout?))
        .chain(due)
        .map(|at| at.saturating_duration_since(Instant::now()))
        .min()
        .map_or(CHECK_ALIVE, |left| left.min(CHECK_ALIVE));
    let mut busy: Vec<&mut Worker> = lanes
        .iter_mut()
        .filter(|l| !l.sent.is_empty())
        .filter_map(|l| l.worker.as_mut())
        .collect();
    if busy.is_empty() {
        // Only chunks waiting out a backoff or the rate: nothing to hear until then.
        std::thread::sleep(limit);
        return;
    }
    // The answer is usually microseconds away, or one wake-up of a worker that slept: spin for
    // it before sleeping.
    let spin_until = crate::backends::spin::deadline();
    if crate::backends::spin::until(spin_until, || busy.iter().any(|w| w.has_news())) {
        return;
    }
    let mut polls: Vec<libc::pollfd> = busy
        .iter()
        .map(|w| libc::pollfd {
            fd: w.socket(),
            events: if w.writing() { libc::POLLOUT } else { 0 },
            revents: 0,
        })
        .collect();
    let writing = polls.iter().any(|p| p.events != 0);
    // Writing what a socket takes needs `poll`, which a ring's write does not wake: then 1 ms
    // at most. Otherwise `poll` only looks (a closed socket is a worker's end).
    // SAFETY: valid `pollfd`s, for the duration of the call.
    let ready = unsafe {
        libc::poll(
            polls.as_mut_ptr(),
            polls.len() as libc::nfds_t,
            i32::from(writing),
        )
    };
    if ready > 0 {
        // Ends and writes are handled here; a death is then heard by `listen`.
        for (w, p) in busy.iter_mut().zip(&polls) {
            if p.revents != 0 {
                w.after_poll(p.revents);
            }
        }
        return;
    }
    if !writing {
        let rings: Vec<ring::Ring<'_>> = busy.iter().map(|w| w.incoming()).collect();
        ring::wait_any(&rings, limit);
    }
}

/// Lands one chunk's outcome; a failure stops the call.
fn finish(out: &mut dyn Land, stopped: &mut bool, index: usize, outcome: Outcome<Vec<u8>>) {
    *stopped |= out.land(index, outcome);
}
