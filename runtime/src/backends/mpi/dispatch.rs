//! Rank 0's side of a call: the chunks to the serving ranks, at most two in flight each, through
//! the rings of ranks on this host or with non-blocking MPI sends, and their answers back in
//! chunk order.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use mpi::point_to_point::Destination;
use mpi::topology::Communicator;
use tracing::Span;

use super::{JOB, MPI_LOCK, TAG_CONTROL, TAG_DATA, rings, wake, world};
use crate::call::{Call, Outcome, chunk_span, report_retry};
use crate::error::ChunkFailure;
use crate::remote::events::relay;
use crate::remote::outgoing::Ready;
use crate::remote::protocol::{self, ChunkData, Message, filter_to_wire};
use crate::retry::Policy;

/// Chunks sent to one rank before it answered the first.
const IN_FLIGHT: usize = 2;

/// The largest chunk of raw bytes that rides in its `Run` (one message, through a ring on this
/// host) rather than as a second MPI message.
const INLINE_RAW: usize = 16 << 10;

/// A chunk a rank is running, seen from rank 0.
struct InFlight {
    index: usize,
    span: Span,
    sent: Instant,
}

/// Runs a prepared call on the serving ranks; every chunk's outcome in chunk order, none for
/// chunks not started after a failure (they are not started).
pub(crate) fn run(call: &Call, prepared: Ready<'_>) -> Vec<Option<Outcome<Vec<u8>>>> {
    let (remote, args, chunks) = (prepared.remote, &prepared.args, &prepared.chunks);
    if let Some((bytes, _)) = &chunks.raw {
        crate::shm::count_copied(bytes.len());
    }
    let Some(job) = JOB.get() else {
        return vec![Some(Outcome::Failed(ChunkFailure::BadData(
            "MPI is not initialized".into(),
        )))];
    };
    let n = chunks.data.len();
    let opened = call.open(chunks.lengths.clone());
    let _entered = opened.span.enter();
    let tag = opened.tag();
    // One call at a time on the ranks: a rank serves one chunk at a time anyway.
    static CALLS: Mutex<()> = Mutex::new(());
    let _one = CALLS.lock().unwrap_or_else(|e| e.into_inner());

    let offsets: Vec<usize> = chunks
        .raw
        .as_ref()
        .map(|(_, lens)| {
            lens.iter()
                .scan(0, |at, len| {
                    let start = *at;
                    *at += len;
                    Some(start)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut queue: VecDeque<usize> = (0..n).collect();
    let mut retrying = Retrying::new(n, call.policy());
    let ranks = job.ranks.len() - 1;
    let mut busy: Vec<VecDeque<InFlight>> = (0..=ranks).map(|_| VecDeque::new()).collect();
    let mut out: Vec<Option<Outcome<Vec<u8>>>> = (0..n).map(|_| None).collect();
    let mut stopped = false;
    let max_level = filter_to_wire(tracing_core::LevelFilter::current());

    // A chunk's raw bytes, sent after its `Run`, unless small enough to ride in it.
    let raw = |index: usize| {
        let (bytes, lens) = chunks.raw.as_ref()?;
        let start = offsets[index];
        Some(&bytes[start..start + lens[index]])
    };
    let inline = |index: usize| raw(index).filter(|r| r.len() <= INLINE_RAW);
    let separate = |index: usize| raw(index).filter(|r| r.len() > INLINE_RAW);
    // Every chunk's `Run`, encoded as it is sent (the first rank starts before the last chunk
    // is encoded) and kept to the end: non-blocking sends borrow them until they are done. One
    // row of frames per attempt, made when the first chunk reaches that attempt.
    type Frames = Vec<OnceCell<Result<Vec<u8>, ChunkFailure>>>;
    let frames: Vec<OnceCell<Frames>> = (0..=call.retries).map(|_| OnceCell::new()).collect();
    let encode = |index: usize, attempt: u32| {
        protocol::encode(&Message::Run {
            function: remote.name.to_owned(),
            entry: remote.entry,
            body: remote.body,
            chunk: index as u32,
            chunks: n as u32,
            attempt,
            retries: call.retries,
            max_level,
            args: args.clone(),
            data: inline(index).map_or_else(
                || chunks.data[index].clone(),
                |bytes| ChunkData::Bytes(bytes.to_vec()),
            ),
            live: Vec::new(),
        })
        .map_err(|e| ChunkFailure::BadData(e.to_string()))
    };
    let open_span = |rank: usize, index: usize| {
        let span = chunk_span(
            &opened.span,
            &tag,
            index,
            opened.lengths[index],
            rank as u64,
        );
        span.record("rank", rank as u64);
        span.record("host", job.ranks[rank].1.as_str());
        span
    };
    let open_span = |rank: usize, index: usize, attempts: u32| {
        let span = open_span(rank, index);
        if attempts > 0 {
            span.record("attempts", attempts + 1);
        }
        span
    };

    let mut in_flight = 0;
    // Sends never block rank 0: a rank gets its next chunk while it still runs the last (two in
    // flight), and the ranks pull their chunks' bytes at once (OpenMPI copies large messages on
    // the receiving side) while rank 0 goes on answering. A blocking send could also wait on a
    // rank that itself waits to send rank 0 a large event.
    mpi::request::scope(|scope| {
        let mut sending = Vec::new();
        let mut listener = rings::Listener::new();
        loop {
            if !stopped {
                retrying.due_to(&mut queue);
            }
            for round in 0..IN_FLIGHT {
                for (rank, flights) in busy.iter_mut().enumerate().skip(1) {
                    // A second chunk only while every rank can still get one: otherwise it
                    // would wait behind a long chunk while another rank sits idle.
                    if stopped || flights.len() > round || (round > 0 && queue.len() < ranks) {
                        continue;
                    }
                    let Some(index) = retrying.granted(&mut queue) else {
                        break;
                    };
                    let attempt = retrying.attempts[index];
                    let row = frames[attempt as usize]
                        .get_or_init(|| (0..n).map(|_| OnceCell::new()).collect());
                    let frame = match row[index].get_or_init(|| encode(index, attempt)) {
                        Ok(f) => f,
                        Err(failure) => {
                            out[index] = Some(Outcome::Failed(failure.clone()));
                            stopped = true;
                            continue;
                        }
                    };
                    let raw = separate(index);
                    let link = rings::link(rank);
                    let writing = link.map(rings::Link::lock);
                    let by_ring = link.is_some_and(|l| l.push(frame));
                    if !by_ring || raw.is_some() {
                        let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                        let world = world();
                        let to = world.process_at_rank(rank as i32);
                        if !by_ring {
                            sending.push(to.immediate_send_with_tag(
                                scope,
                                &frame[..],
                                TAG_CONTROL,
                            ));
                        }
                        if let Some(data) = raw {
                            sending.push(to.immediate_send_with_tag(scope, data, TAG_DATA));
                        }
                        drop(_mpi);
                        // The rank waits for these on MPI, with a wake-up from its socket.
                        wake::wake(rank);
                    }
                    drop(writing);
                    flights.push_back(InFlight {
                        index,
                        span: open_span(rank, index, attempt),
                        sent: Instant::now(),
                    });
                    in_flight += 1;
                }
            }
            let due = retrying.next_due().filter(|_| !stopped);
            if in_flight == 0 {
                match due {
                    Some(at) => {
                        std::thread::sleep(at.saturating_duration_since(Instant::now()));
                        continue;
                    }
                    None => break,
                }
            }
            let Some((frame, rank)) = listener.next(!sending.is_empty(), due) else {
                continue;
            };
            if !sending.is_empty() {
                let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                sending = sending.into_iter().filter_map(|r| r.test().err()).collect();
            }
            let Some(flight) = busy.get(rank).and_then(VecDeque::front) else {
                continue;
            };
            let pid = job.ranks[rank].0;
            let decoded = frame.and_then(|f| {
                protocol::decode(&f)
                    .map(|(message, _)| message)
                    .map_err(|e| format!("rank {rank}: {e}"))
            });
            let outcome = match decoded {
                Ok(Message::Event {
                    level,
                    target,
                    fields,
                }) => {
                    flight.span.in_scope(|| relay(level, &target, &fields, pid));
                    continue;
                }
                Ok(Message::Done { result, ran, retry }) => {
                    flight.span.record("run.start_unix_ns", ran.start_unix_ns);
                    flight.span.record("run.busy_ns", ran.busy_ns);
                    match retry {
                        Some(error) if retrying.again(flight.index) => {
                            let flight = busy[rank].pop_front().expect("the chunk it ran");
                            in_flight -= 1;
                            retrying.later(&flight.span, call.function, flight.index, &error);
                            continue;
                        }
                        _ => Outcome::Done(result),
                    }
                }
                Ok(Message::Panicked { message, ran }) => {
                    flight.span.record("run.start_unix_ns", ran.start_unix_ns);
                    flight.span.record("run.busy_ns", ran.busy_ns);
                    Outcome::Failed(ChunkFailure::Panicked(format!(
                        "{message} (on rank {rank}, {})",
                        job.ranks[rank].1
                    )))
                }
                Ok(Message::Unknown { .. }) => Outcome::Failed(ChunkFailure::UnknownFunction),
                Ok(Message::BadInput { message }) => {
                    Outcome::Failed(ChunkFailure::BadData(message))
                }
                Ok(other) => Outcome::Failed(ChunkFailure::BadData(format!(
                    "rank {rank} answered {other:?}"
                ))),
                Err(e) => Outcome::Failed(ChunkFailure::BadData(e)),
            };
            let Some(flight) = busy[rank].pop_front() else {
                continue;
            };
            in_flight -= 1;
            opened.report_overrun(flight.index, flight.sent.elapsed());
            if matches!(outcome, Outcome::Failed(_)) {
                stopped = true;
            }
            out[flight.index] = Some(outcome);
            drop(flight.span);
        }
        // Every rank answered every chunk it got, so every send is done; completing them is
        // bookkeeping.
        let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for r in sending {
            r.wait_without_status();
        }
    });
    out
}

/// The chunks of one call that failed with an `Err` worth another attempt, waiting out their
/// backoff, and each chunk's attempts so far; starts taken from the function's rate.
struct Retrying {
    policy: Policy,
    /// Failed attempts of each chunk so far.
    attempts: Vec<u32>,
    /// Chunks to send again, each with the time it may be.
    waiting: Vec<(Instant, usize)>,
    /// The chunks the rate has already granted a start (at their time in `waiting`).
    granted: Vec<bool>,
}

impl Retrying {
    fn new(n: usize, policy: Policy) -> Retrying {
        Retrying {
            policy,
            attempts: vec![0; n],
            waiting: Vec::new(),
            granted: vec![false; n],
        }
    }

    /// Moves the chunks whose time has come to the front of `queue`, lowest index first.
    fn due_to(&mut self, queue: &mut VecDeque<usize>) {
        let now = Instant::now();
        let mut due: Vec<usize> = Vec::new();
        self.waiting.retain(|&(at, index)| {
            let waits = at > now;
            if !waits {
                due.push(index);
            }
            waits
        });
        due.sort_unstable();
        for index in due.into_iter().rev() {
            queue.push_front(index);
        }
    }

    /// The next chunk of `queue` to send now; `None` when the queue is empty, or when the rate
    /// granted its first chunk a start later: that chunk then waits for it, holding no rank.
    fn granted(&mut self, queue: &mut VecDeque<usize>) -> Option<usize> {
        let index = queue.pop_front()?;
        let Some(limiter) = self.policy.rate.filter(|_| !self.granted[index]) else {
            return Some(index);
        };
        let at = limiter.take();
        if at <= Instant::now() {
            return Some(index);
        }
        self.granted[index] = true;
        self.waiting.push((at, index));
        None
    }

    /// When the first waiting chunk may be sent.
    fn next_due(&self) -> Option<Instant> {
        self.waiting.iter().map(|&(at, _)| at).min()
    }

    /// Whether chunk `index`, which just failed, runs again.
    fn again(&self, index: usize) -> bool {
        self.policy.again(self.attempts[index])
    }

    /// Chunk `index` failed with `error` and runs again after its backoff: said at WARN in the
    /// failed attempt's `span`.
    fn later(&mut self, span: &Span, function: &'static str, index: usize, error: &str) {
        self.attempts[index] += 1;
        let next = self.attempts[index];
        let wait = self.policy.backoff.wait(next);
        report_retry(
            span,
            function,
            index,
            next,
            self.policy.retries,
            error,
            wait,
        );
        self.granted[index] = false;
        self.waiting.push((Instant::now() + wait, index));
    }
}
