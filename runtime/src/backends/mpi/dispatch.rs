//! Rank 0's side of a call: the chunks to the serving ranks, at most two in flight each, through
//! the rings of ranks on this host or with non-blocking MPI sends, and their answers back in
//! chunk order.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::time::Instant;

use mpi::point_to_point::Destination;
use mpi::topology::Communicator;
use tracing::Span;

use super::{JOB, MPI_LOCK, TAG_CONTROL, TAG_DATA, claim, rings, wake, world};
use crate::call::{Call, CallTag, Opened, Outcome, chunk_span, report_retry};
use crate::error::ChunkFailure;
use crate::remote::events::relay;
use crate::remote::outgoing::{Land, Ready};
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

/// Runs a prepared call on the serving ranks, landing each chunk's outcome as it arrives (none
/// for chunks not started after a failure: they are not started).
pub(crate) fn run(call: &Call, prepared: Ready<'_>, landed: &mut dyn Land) {
    if let Some((bytes, _)) = &prepared.chunks.raw {
        crate::shm::count_copied(bytes.len());
    }
    let Some(job) = JOB.get() else {
        let failure = ChunkFailure::BadData("MPI is not initialized".into());
        if !prepared.chunks.lengths.is_empty() {
            landed.land(0, Outcome::Failed(failure));
        }
        return;
    };
    let opened = call.open(prepared.chunks.lengths.clone());
    let _entered = opened.span.enter();
    // Ranks of its own: calls from other threads run side by side on the others.
    let held = claim::claim(job.ranks.len(), opened.lengths.len());
    let outgoing = Outgoing::new(call, &prepared);
    let mut driving = Driving::new(job, call, &opened, landed, held);
    // Sends never block rank 0: a rank gets its next chunk while it still runs the last (two in
    // flight), and the ranks pull their chunks' bytes at once (OpenMPI copies large messages on
    // the receiving side) while rank 0 goes on answering. A blocking send could also wait on a
    // rank that itself waits to send rank 0 a large event.
    mpi::request::scope(|scope| {
        let mut sending = Vec::new();
        let mut listener = rings::Listener::new(driving.held.ranks());
        loop {
            if driving.send_more(&outgoing, scope, &mut sending) {
                listener = rings::Listener::new(driving.held.ranks());
            }
            let due = driving.next_due();
            if driving.in_flight == 0 {
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
            driving.hear(frame, rank);
        }
        // Every rank answered every chunk it got, so every send is done; completing them is
        // bookkeeping.
        let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for r in sending {
            r.wait_without_status();
        }
    });
}

/// One attempt's `Run` frames, a cell per chunk.
type Frames = Vec<OnceCell<Result<Vec<u8>, ChunkFailure>>>;

/// Non-blocking sends of one call, each borrowing what it sends until it is done.
type Sending<'a, 'b> = Vec<mpi::request::Request<'a, [u8], &'b mpi::request::LocalScope<'a>>>;

/// What one call sends: every chunk's `Run`, encoded as it is sent (the first rank starts before
/// the last chunk is encoded) and kept to the end (non-blocking sends borrow them until they
/// are done), and each chunk's raw bytes.
struct Outgoing<'a> {
    call: &'a Call,
    prepared: &'a Ready<'a>,
    /// Where each chunk's raw bytes start in the input's.
    offsets: Vec<usize>,
    max_level: u8,
    /// One row of frames per attempt, made when the first chunk reaches that attempt.
    frames: Vec<OnceCell<Frames>>,
}

impl<'a> Outgoing<'a> {
    fn new(call: &'a Call, prepared: &'a Ready<'a>) -> Outgoing<'a> {
        let offsets = prepared
            .chunks
            .raw
            .as_ref()
            .map_or_else(Vec::new, |(_, lens)| {
                lens.iter()
                    .scan(0, |at, len| {
                        let start = *at;
                        *at += len;
                        Some(start)
                    })
                    .collect()
            });
        Outgoing {
            call,
            prepared,
            offsets,
            max_level: filter_to_wire(tracing_core::LevelFilter::current()),
            frames: (0..=call.retries).map(|_| OnceCell::new()).collect(),
        }
    }

    /// A chunk's raw bytes, if the input is sent as raw bytes.
    fn raw(&self, index: usize) -> Option<&'a [u8]> {
        let (bytes, lens) = self.prepared.chunks.raw.as_ref()?;
        let start = self.offsets[index];
        Some(&bytes[start..start + lens[index]])
    }

    /// The raw bytes sent after a chunk's `Run` (those small enough ride in it).
    fn separate(&self, index: usize) -> Option<&'a [u8]> {
        self.raw(index).filter(|r| r.len() > INLINE_RAW)
    }

    /// The `Run` of attempt `attempt` of chunk `index`, encoded on first use.
    fn frame(&self, index: usize, attempt: u32) -> &Result<Vec<u8>, ChunkFailure> {
        let n = self.prepared.chunks.data.len();
        let row =
            self.frames[attempt as usize].get_or_init(|| (0..n).map(|_| OnceCell::new()).collect());
        row[index].get_or_init(|| self.encode(index, attempt))
    }

    fn encode(&self, index: usize, attempt: u32) -> Result<Vec<u8>, ChunkFailure> {
        let (remote, chunks) = (&self.prepared.remote, &self.prepared.chunks);
        let inline = self.raw(index).filter(|r| r.len() <= INLINE_RAW);
        protocol::encode(&Message::Run {
            function: remote.name.to_owned(),
            entry: remote.entry,
            body: remote.body,
            chunk: index as u32,
            chunks: chunks.data.len() as u32,
            attempt,
            retries: self.call.retries,
            max_level: self.max_level,
            args: self.prepared.args.clone(),
            data: inline.map_or_else(
                || chunks.data[index].clone(),
                |bytes| ChunkData::Bytes(bytes.to_vec()),
            ),
            live: Vec::new(),
        })
        .map_err(|e| ChunkFailure::BadData(e.to_string()))
    }
}

/// Sends `frame` and the chunk's separate raw bytes to `rank`: the frame through the rank's ring
/// when it has one with room, else (and the raw bytes always) with non-blocking MPI sends kept in
/// `sending`, and a wake-up for the rank, which waits for them on MPI.
fn send<'a, 'b>(
    rank: usize,
    frame: &'a [u8],
    raw: Option<&'a [u8]>,
    scope: &'b mpi::request::LocalScope<'a>,
    sending: &mut Sending<'a, 'b>,
) {
    let link = rings::link(rank);
    let writing = link.map(rings::Link::lock);
    let by_ring = link.is_some_and(|l| l.push(frame));
    if !by_ring || raw.is_some() {
        let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let world = world();
        let to = world.process_at_rank(rank as i32);
        if !by_ring {
            sending.push(to.immediate_send_with_tag(scope, frame, TAG_CONTROL));
        }
        if let Some(data) = raw {
            sending.push(to.immediate_send_with_tag(scope, data, TAG_DATA));
        }
        drop(_mpi);
        wake::wake(rank);
    }
    drop(writing);
}

/// One call's chunks as rank 0 drives them: to send, on each rank, and answered.
struct Driving<'a> {
    job: &'static super::Job,
    call: &'a Call,
    opened: &'a Opened,
    tag: CallTag,
    queue: VecDeque<usize>,
    retrying: Retrying,
    /// Per rank (0 unused), the chunks sent to it in the order it runs them.
    busy: Vec<VecDeque<InFlight>>,
    in_flight: usize,
    out: &'a mut dyn Land,
    /// A chunk failed: no other starts.
    stopped: bool,
    /// The ranks this call drives.
    held: claim::Held,
}

impl<'a> Driving<'a> {
    fn new(
        job: &'static super::Job,
        call: &'a Call,
        opened: &'a Opened,
        out: &'a mut dyn Land,
        held: claim::Held,
    ) -> Driving<'a> {
        let n = opened.lengths.len();
        Driving {
            job,
            call,
            opened,
            tag: opened.tag(),
            queue: (0..n).collect(),
            retrying: Retrying::new(n, call.policy()),
            busy: (0..job.ranks.len()).map(|_| VecDeque::new()).collect(),
            in_flight: 0,
            out,
            stopped: false,
            held,
        }
    }

    /// When the first chunk waiting out a backoff or its rate may be sent, if any may.
    fn next_due(&self) -> Option<Instant> {
        self.retrying.next_due().filter(|_| !self.stopped)
    }

    /// Sends each rank chunks until it has `IN_FLIGHT`: chunks due again first, then new ones.
    /// Whether the call gave a rank back (see [`claim`]): its listener must change.
    fn send_more<'o, 'b>(
        &mut self,
        outgoing: &'o Outgoing<'o>,
        scope: &'b mpi::request::LocalScope<'o>,
        sending: &mut Sending<'o, 'b>,
    ) -> bool {
        if !self.stopped {
            self.retrying.due_to(&mut self.queue);
        }
        let mut gave_back = false;
        for round in 0..IN_FLIGHT {
            let held = self.held.ranks().to_vec();
            for rank in held {
                // A second chunk only while every rank can still get one: otherwise it would
                // wait behind a long chunk while another rank sits idle.
                let waiting = self.busy[rank].len();
                let ranks = self.held.ranks().len();
                if self.stopped || waiting > round || (round > 0 && self.queue.len() < ranks) {
                    continue;
                }
                if waiting == 0 && self.held.share(rank) {
                    gave_back = true;
                    continue;
                }
                let Some(index) = self.retrying.granted(&mut self.queue) else {
                    break;
                };
                let attempt = self.retrying.attempts[index];
                match outgoing.frame(index, attempt) {
                    Ok(frame) => send(rank, frame, outgoing.separate(index), scope, sending),
                    Err(failure) => {
                        self.out.land(index, Outcome::Failed(failure.clone()));
                        self.stopped = true;
                        continue;
                    }
                }
                let span = self.open_span(rank, index, attempt);
                self.busy[rank].push_back(InFlight {
                    index,
                    span,
                    sent: Instant::now(),
                });
                self.in_flight += 1;
            }
        }
        gave_back
    }

    /// The span of attempt `attempt` of chunk `index` on `rank`.
    fn open_span(&self, rank: usize, index: usize, attempt: u32) -> Span {
        let o = self.opened;
        let span = chunk_span(&o.span, &self.tag, index, o.lengths[index], rank as u64);
        span.record("rank", rank as u64);
        span.record("host", self.job.ranks[rank].1.as_str());
        if attempt > 0 {
            span.record("attempts", attempt + 1);
        }
        span
    }

    /// Takes in one frame from `rank`: an event of the chunk it runs, or its answer.
    fn hear(&mut self, frame: Result<Vec<u8>, String>, rank: usize) {
        let Some(flight) = self.busy.get(rank).and_then(VecDeque::front) else {
            return;
        };
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
                let pid = self.job.ranks[rank].0;
                flight.span.in_scope(|| relay(level, &target, &fields, pid));
                return;
            }
            Ok(Message::Done { result, ran, retry }) => {
                record_ran(&flight.span, ran);
                match retry {
                    Some(error) if self.retrying.again(flight.index) => {
                        let flight = self.busy[rank].pop_front().expect("the chunk it ran");
                        self.in_flight -= 1;
                        let function = self.call.function;
                        self.retrying
                            .later(&flight.span, function, flight.index, &error);
                        return;
                    }
                    _ => Outcome::Done(result),
                }
            }
            Ok(Message::Panicked { message, ran }) => {
                record_ran(&flight.span, ran);
                let host = &self.job.ranks[rank].1;
                Outcome::Failed(ChunkFailure::Panicked(format!(
                    "{message} (on rank {rank}, {host})"
                )))
            }
            Ok(Message::Unknown { .. }) => Outcome::Failed(ChunkFailure::UnknownFunction),
            Ok(Message::BadInput { message }) => Outcome::Failed(ChunkFailure::BadData(message)),
            Ok(other) => Outcome::Failed(ChunkFailure::BadData(format!(
                "rank {rank} answered {other:?}"
            ))),
            Err(e) => Outcome::Failed(ChunkFailure::BadData(e)),
        };
        let flight = self.busy[rank].pop_front().expect("the chunk it ran");
        self.in_flight -= 1;
        self.opened
            .report_overrun(flight.index, flight.sent.elapsed());
        self.stopped |= self.out.land(flight.index, outcome);
        drop(flight.span);
    }
}

/// Records in a chunk's span when its body ran on the rank.
fn record_ran(span: &Span, ran: protocol::Ran) {
    span.record("run.start_unix_ns", ran.start_unix_ns);
    span.record("run.busy_ns", ran.busy_ns);
}

/// The chunks of one call that failed with an `Err` worth another attempt, waiting out their
/// backoff, and each chunk's attempts so far; starts taken from the function's rate.
struct Retrying {
    policy: Policy,
    /// Failed attempts of each chunk so far.
    attempts: Vec<u32>,
    /// Chunks to send again, each with the time it may be.
    waiting: Vec<(Instant, usize)>,
    /// The chunks the rate has granted a start (sent, or waiting for their time in `waiting`).
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
        let Some(limiter) = self.policy.rate else {
            return Some(index);
        };
        let wait = limiter.wait_before_start(!self.granted[index]);
        self.granted[index] = true;
        let Some(at) = wait else {
            return Some(index);
        };
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
