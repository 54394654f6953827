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
use crate::call::{Call, Outcome, chunk_span};
use crate::error::ChunkFailure;
use crate::remote::events::relay;
use crate::remote::outgoing::Ready;
use crate::remote::protocol::{self, ChunkData, Message, filter_to_wire};

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
    // is encoded) and kept to the end: non-blocking sends borrow them until they are done.
    let frames: Vec<OnceCell<Result<Vec<u8>, ChunkFailure>>> =
        (0..n).map(|_| OnceCell::new()).collect();
    let encode = |index: usize| {
        protocol::encode(&Message::Run {
            function: remote.name.to_owned(),
            entry: remote.entry,
            body: remote.body,
            chunk: index as u32,
            chunks: n as u32,
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

    let mut in_flight = 0;
    // Sends never block rank 0: a rank gets its next chunk while it still runs the last (two in
    // flight), and the ranks pull their chunks' bytes at once (OpenMPI copies large messages on
    // the receiving side) while rank 0 goes on answering. A blocking send could also wait on a
    // rank that itself waits to send rank 0 a large event.
    mpi::request::scope(|scope| {
        let mut sending = Vec::new();
        let mut listener = rings::Listener::new();
        loop {
            for round in 0..IN_FLIGHT {
                for (rank, flights) in busy.iter_mut().enumerate().skip(1) {
                    // A second chunk only while every rank can still get one: otherwise it
                    // would wait behind a long chunk while another rank sits idle.
                    if stopped || flights.len() > round || (round > 0 && queue.len() < ranks) {
                        continue;
                    }
                    let Some(index) = queue.pop_front() else {
                        break;
                    };
                    let frame = match frames[index].get_or_init(|| encode(index)) {
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
                        span: open_span(rank, index),
                        sent: Instant::now(),
                    });
                    in_flight += 1;
                }
            }
            if in_flight == 0 {
                break;
            }
            let (frame, rank) = listener.next(!sending.is_empty());
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
                Ok(Message::Done { result, ran }) => {
                    flight.span.record("run.start_unix_ns", ran.start_unix_ns);
                    flight.span.record("run.busy_ns", ran.busy_ns);
                    Outcome::Done(result)
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
