//! The parent side: a pool of worker processes, each served by a thread of its own.
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
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Span};

use super::protocol::{self, MAGIC, Message, ReadError, Split, VERSION};
use super::relay;
use super::worker::CHANNEL_VAR;
use crate::error::ChunkFailure;

/// One call's work, shared by the slots that serve it.
pub(crate) struct Job {
    pub(crate) function: &'static str,
    pub(crate) queue: Mutex<VecDeque<(usize, Split)>>,
    pub(crate) lengths: Vec<usize>,
    /// Chunks still to copy into shared memory, by the thread that sends each.
    pub(crate) copy: Option<super::shm::PendingCopy>,
    pub(crate) args: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    /// How many slots serve the job.
    pub(crate) workers: usize,
    pub(crate) stop: AtomicBool,
    pub(crate) results: mpsc::Sender<(usize, ChunkResult)>,
}

/// What became of one chunk.
pub(crate) enum ChunkResult {
    /// The encoded result.
    Done(Vec<u8>),
    /// No result.
    Failed(ChunkFailure),
    /// Not run: an earlier failure stopped the call.
    Skipped,
    /// No answer came back for it (only if a pool thread itself failed).
    Lost,
}

struct Task {
    job: Arc<Job>,
    dispatch: Dispatch,
    parent: Span,
}

fn slots() -> &'static Mutex<Vec<mpsc::Sender<Task>>> {
    static SLOTS: OnceLock<Mutex<Vec<mpsc::Sender<Task>>>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// Hands `job` to the first `workers` slots, starting slots as needed.
pub(crate) fn submit(job: &Arc<Job>, workers: usize, parent: &Span) {
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    let mut slots = slots().lock().unwrap_or_else(|e| e.into_inner());
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
            unreachable!("pool threads never stop");
        }
    }
}

fn serve_slot(tasks: mpsc::Receiver<Task>) {
    let mut worker: Option<Worker> = None;
    for task in tasks {
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

/// Chunks sent to a worker ahead of the one it runs, so that it starts the next chunk without
/// waiting for the parent's round trip (two wake-ups across processes per chunk otherwise).
const IN_FLIGHT: usize = 2;

/// A chunk sent, or to send again, to this slot's worker.
struct Sent {
    index: usize,
    split: Split,
    /// Runs of this chunk that a worker's death ended.
    attempts: u32,
}

fn serve(worker: &mut Option<Worker>, task: &Task) {
    let job = &*task.job;
    let mut sent: VecDeque<Sent> = VecDeque::new();
    // Sent to a worker that then died before reaching them: to send again, not counted as tries.
    let mut resend: VecDeque<Sent> = VecDeque::new();
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
                    let Some((index, split)) = claimed else { break };
                    if let (Some(copy), Split::Shared { offset, len, .. }) = (&job.copy, &split) {
                        copy.copy(*offset as usize, *len as usize);
                    }
                    Sent {
                        index,
                        split,
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
                            ChunkResult::Failed(ChunkFailure::WorkerStart(e.to_string())),
                        );
                        continue;
                    }
                },
            };
            if let Err(f) = w.send(job, next.index, &next.split) {
                finish(job, next.index, ChunkResult::Failed(f));
                continue;
            }
            sent.push_back(next);
        }
        let Some(head) = sent.pop_front() else { break };
        let w = worker.as_mut().expect("a worker holds the chunks sent");
        let span = tracing::info_span!(
            parent: &task.parent,
            "chunk",
            index = head.index,
            len = job.lengths[head.index],
            worker = w.pid
        );
        let outcome = span.in_scope(|| w.receive(job));
        let result = match outcome {
            Outcome::Done(bytes) => ChunkResult::Done(bytes),
            Outcome::Failed(f) => ChunkResult::Failed(f),
            Outcome::Died(status) => {
                let pid = w.pid;
                *worker = None;
                // The chunks queued behind the head never started: they go to the next worker.
                resend.extend(sent.drain(..));
                if head.attempts < job.retries {
                    tracing::warn!(parent: &span, pid, %status, attempt = head.attempts + 1, "worker died; running the chunk again");
                    resend.push_front(Sent {
                        attempts: head.attempts + 1,
                        ..head
                    });
                    continue;
                }
                ChunkResult::Failed(ChunkFailure::WorkerDied { pid, status })
            }
            Outcome::TimedOut(limit) => {
                let pid = w.pid;
                w.kill();
                *worker = None;
                resend.extend(sent.drain(..));
                ChunkResult::Failed(ChunkFailure::TimedOut { pid, limit })
            }
        };
        finish(job, head.index, result);
    }
    // After a failure, whatever no slot will run is reported as skipped.
    for s in resend {
        finish(job, s.index, ChunkResult::Skipped);
    }
    loop {
        let next = job
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let Some((index, _)) = next else { break };
        finish(job, index, ChunkResult::Skipped);
    }
}

/// Hands one chunk's result to the caller; a failure stops the call.
fn finish(job: &Job, index: usize, result: ChunkResult) {
    if matches!(result, ChunkResult::Failed(_)) {
        job.stop.store(true, Ordering::Relaxed);
    }
    let _ = job.results.send((index, result));
}

enum Outcome {
    Done(Vec<u8>),
    Failed(ChunkFailure),
    Died(String),
    TimedOut(Duration),
}

/// One worker process and the parent's end of its channel.
struct Worker {
    child: Child,
    stream: UnixStream,
    pid: u32,
    functions: Vec<String>,
}

impl Worker {
    /// Starts this executable as a worker and completes the handshake.
    fn start() -> io::Result<Worker> {
        let exe = std::env::current_exe()?;
        let (ours, theirs) = UnixStream::pair()?;
        let token = random_token();
        let child_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(&exe);
        cmd.arg("--decor-worker")
            .env(CHANNEL_VAR, format!("3:{token:032x}"))
            .stdin(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls: `dup2` puts the channel on
        // descriptor 3 (clearing close-on-exec there), `prctl` asks for SIGKILL when this thread,
        // the slot's long-lived thread, goes away with the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(child_fd, 3) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        drop(theirs);
        let hello = Message::Hello {
            magic: MAGIC,
            version: VERSION,
            token,
            parent_pid: std::process::id(),
            max_level: level_filter_number(LevelFilter::current()),
        };
        let answer = (|| {
            ours.set_read_timeout(Some(Duration::from_secs(20)))?;
            protocol::write(&mut &ours, &hello)?;
            protocol::read(&mut &ours).map_err(|e| io::Error::other(e.to_string()))
        })();
        match answer {
            Ok(Message::Ready { pid, functions }) => Ok(Worker {
                child,
                stream: ours,
                pid,
                functions,
            }),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!(
                    "{} did not complete the worker handshake ({}); is it built with decor and run from the same binary?",
                    exe.display(),
                    match other {
                        Ok(m) => format!("unexpected {m:?}"),
                        Err(e) => e.to_string(),
                    }
                )))
            }
        }
    }

    /// Sends one chunk to run after those already sent.
    fn send(&mut self, job: &Job, index: usize, split: &Split) -> Result<(), ChunkFailure> {
        if !self.functions.iter().any(|f| f == job.function) {
            return Err(ChunkFailure::UnknownFunction);
        }
        let run = Message::Run {
            function: job.function.to_owned(),
            chunk: index as u32,
            chunks: job.lengths.len() as u32,
            max_level: level_filter_number(LevelFilter::current()),
            args: job.args.clone(),
            split: split.clone(),
        };
        // A write to a worker that died fails here or shows when its answer is read.
        let _ = protocol::write(&mut &self.stream, &run);
        Ok(())
    }

    /// Waits for the outcome of the oldest chunk sent (the worker answers in order), relaying its
    /// events; the timeout counts from now, when that chunk is the one running.
    fn receive(&mut self, job: &Job) -> Outcome {
        let deadline = job.timeout.map(|t| (Instant::now() + t, t));
        loop {
            if let Some((at, limit)) = deadline {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                    return Outcome::TimedOut(limit);
                }
            } else {
                let _ = self.stream.set_read_timeout(None);
            }
            match protocol::read(&mut &self.stream) {
                Ok(Message::Event {
                    level,
                    target,
                    fields,
                }) => relay::event(level, &target, &fields, self.pid),
                Ok(Message::Done { result }) => return Outcome::Done(result),
                Ok(Message::Panicked { message }) => {
                    return Outcome::Failed(ChunkFailure::Panicked(message));
                }
                Ok(Message::Unknown { .. }) => {
                    return Outcome::Failed(ChunkFailure::UnknownFunction);
                }
                Ok(Message::BadInput { message }) => {
                    return Outcome::Failed(ChunkFailure::BadData(message));
                }
                Ok(other) => {
                    self.kill();
                    return Outcome::Died(format!("protocol error: unexpected {other:?}"));
                }
                Err(ReadError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if let Some((_, limit)) = deadline {
                        return Outcome::TimedOut(limit);
                    }
                    return Outcome::Died(self.reap());
                }
                Err(ReadError::Decode(e)) => {
                    self.kill();
                    return Outcome::Died(format!("protocol error: {e}"));
                }
                Err(ReadError::Closed | ReadError::Io(_)) => return Outcome::Died(self.reap()),
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a worker whose channel closed, killing it if it lingers; says how it ended.
    fn reap(&mut self) -> String {
        for _ in 0..200 {
            match self.child.try_wait() {
                Ok(Some(status)) => return describe(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return format!("unknown ({e})"),
            }
        }
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => describe(status),
            Err(e) => format!("unknown ({e})"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe(status: ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGBUS => " (SIGBUS)",
            libc::SIGILL => " (SIGILL)",
            libc::SIGFPE => " (SIGFPE)",
            libc::SIGINT => " (SIGINT)",
            _ => "",
        };
        format!("killed by signal {sig}{name}")
    } else {
        match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => "ended".to_owned(),
        }
    }
}

fn level_filter_number(f: LevelFilter) -> u8 {
    match f.into_level() {
        None => 0,
        Some(l) => super::worker::level_number(&l),
    }
}

/// 128 bits from the standard library's randomly seeded hasher (seeded by the OS per process).
fn random_token() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        h.write_u32(std::process::id());
        h.finish()
    };
    (u128::from(word()) << 64) | u128::from(word())
}
