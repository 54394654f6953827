//! `backend = "mpi"`: the chunks of a call go to the other ranks of an `mpirun` job.
//!
//! `mpirun -n K ./app` starts K copies of the executable. In each, the constructor that starts
//! process workers ([`worker_main`](super::takeover::worker_main)) calls [`enter`]
//! before `main`: with more than one rank it initializes MPI; rank 0 gathers each rank's pid,
//! host and build identity (a rank of another build ends the job with an error naming it) and
//! goes on to `main`; ranks 1..K-1 serve chunks until rank 0 says stop, and never run `main`.
//! The messages are the remote path's ([`Message`], `postcard`), one MPI message each; a chunk
//! of plain data or text follows its `Run` as a second message of raw bytes, sent from the
//! caller's slice and received into an aligned buffer. Chunks are run by the same entries as on
//! processes ([`answer`]), so results, errors and panics are the same.
//!
//! **Waiting.** OpenMPI's blocking calls spin, and a job on a laptop or on 2 cores is
//! oversubscribed; both sides therefore poll (`MPI_Iprobe`), spin briefly, then sleep on a wake
//! socket of their own, which whoever sends them a message pokes ([`wake`]): an idle rank costs
//! no CPU, and a call after a pause starts at once. Ranks on another host, which cannot be poked,
//! are polled at least every 1 ms.
//!
//! **Sends never block rank 0.** Every `Run` and chunk goes with a non-blocking send, up to two
//! chunks per rank at a time: a rank starts its next chunk without waiting for rank 0 to see its
//! answer, the ranks pull their chunks' bytes at the same time, and rank 0 keeps receiving, so
//! a large chunk and a large event from a busy rank can never wait for each other.
//!
//! **What MPI cannot give.** A rank that dies (a signal, `abort`, `exit` in a body) ends the whole
//! job under OpenMPI's default error handler: `mpirun` kills the other ranks, rank 0 included,
//! so the call cannot fail just that chunk as processes do. The dying rank writes which function,
//! chunk and rank it was running to stderr first, and `mpirun` says which rank died. `timeout`
//! cannot stop a running chunk (a rank cannot be killed alone); a chunk that runs over is
//! reported when it ends, as on threads. `retries` does not apply.
//!
//! **Shutdown.** Rank 0 stops the ranks and finalizes MPI from an `atexit` handler: when `main`
//! returns, calls `exit`, or panics. If rank 0 is killed, `mpirun` ends the job.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mpi::Threading;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use serde::de::DeserializeOwned;
use tracing::Span;

mod wake;

use crate::call::{Call, Outcome, chunk_span};
use crate::error::ChunkFailure;
use crate::remote::answer::{Request, answer};
use crate::remote::entry;
use crate::remote::events::{Forwarder, relay};
use crate::remote::input::Piece;
use crate::remote::outgoing::{Args, OutgoingChunks, Remote, decode_results, ready};
use crate::remote::protocol::{self, ChunkData, Message, filter_to_wire};

/// Control messages: [`Message`] frames, either way.
const TAG_CONTROL: i32 = 1;
/// Raw bytes of a chunk, rank 0 → rank, right after its `Run`.
const TAG_DATA: i32 = 2;
/// A rank's `(pid, host)` once at start, rank → rank 0.
const TAG_HELLO: i32 = 3;

/// The MPI state of this process, once initialized.
struct Job {
    universe: Mutex<Option<Universe>>,
    rank: i32,
    /// Per rank: its pid and host.
    ranks: Vec<(u32, String)>,
}

impl Job {
    /// `MPI_Finalize`, once; the caller holds the MPI lock.
    fn finalize(&self) {
        drop(
            self.universe
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
    }
}

static JOB: OnceLock<Job> = OnceLock::new();
/// Every MPI call of this process holds it: MPI is initialized `SERIALIZED`.
static MPI_LOCK: Mutex<()> = Mutex::new(());
static SERVING: AtomicBool = AtomicBool::new(false);

/// Whether this process is a rank serving chunks.
pub(crate) fn is_serving() -> bool {
    SERVING.load(Ordering::Relaxed)
}

/// How many ranks serve chunks: 0 when not under `mpirun` (or with one rank), or on a serving
/// rank itself.
pub(crate) fn serving_ranks() -> usize {
    match JOB.get() {
        Some(job) if job.rank == 0 => job.ranks.len().saturating_sub(1),
        _ => 0,
    }
}

/// The job's size from the launcher's environment, before MPI is initialized.
fn launched_size() -> usize {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
}

fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

/// Called before `main` in every process that is not a worker process: joins the MPI job if
/// `mpirun` started more than one rank. A serving rank never returns.
pub(crate) fn enter() {
    if launched_size() < 2 {
        return;
    }
    let Some((universe, _)) = mpi::initialize_with_threading(Threading::Serialized) else {
        return;
    };
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size() as usize);
    let host = mpi::environment::processor_name().unwrap_or_else(|_| "?".into());
    let me = (std::process::id(), host);
    let mut ranks = vec![me.clone(); size];
    let wake_socket = wake::socket();
    let my_addr = wake_socket
        .as_ref()
        .map(|(_, a)| a.clone())
        .unwrap_or_default();
    let mut addrs: Vec<Vec<u8>> = vec![Vec::new(); size];
    if rank == 0 {
        let mut strangers = Vec::new();
        for _ in 1..size {
            let (bytes, status) = world.any_process().receive_vec_with_tag::<u8>(TAG_HELLO);
            let from = status.source_rank();
            match postcard::from_bytes::<(u32, String, Vec<u8>, Vec<u8>)>(&bytes) {
                Ok((pid, host, build, addr)) => {
                    if build != entry::build_id() {
                        strangers.push(format!("rank {from} on {host}"));
                    }
                    ranks[from as usize] = (pid, host);
                    addrs[from as usize] = addr;
                }
                Err(_) => strangers.push(format!("rank {from}")),
            }
        }
        if !strangers.is_empty() {
            strangers.sort();
            eprintln!(
                "decor: {} of this mpirun job run another build of this program than rank 0 on {}: every rank must run the same executable (copy it to the same path on every host); ending the job",
                strangers.join(", "),
                me.1
            );
            world.abort(3);
        }
    } else if let Ok(hello) = postcard::to_allocvec(&(me.0, &me.1, entry::build_id(), &my_addr)) {
        world
            .process_at_rank(0)
            .send_with_tag(&hello[..], TAG_HELLO);
    }
    meet_wake_sockets(&world, rank, size, wake_socket, &addrs);
    let _ = JOB.set(Job {
        universe: Mutex::new(Some(universe)),
        rank,
        ranks,
    });
    if rank == 0 {
        // SAFETY: registers a plain `extern "C" fn()`.
        unsafe { libc::atexit(stop_ranks) };
    } else {
        drop(world);
        serve(rank)
    }
}

/// Which ranks can poke each other's wake socket: rank 0 sends each rank its address, each
/// rank says hello to it, and rank 0 tells each whether it was heard (see [`wake`]).
fn meet_wake_sockets(
    world: &SimpleCommunicator,
    rank: i32,
    size: usize,
    socket: Option<(std::os::fd::OwnedFd, Vec<u8>)>,
    addrs: &[Vec<u8>],
) {
    let (fd, mine) = match socket {
        Some((fd, mine)) => (Some(fd), mine),
        None => (None, Vec::new()),
    };
    if rank == 0 {
        for r in 1..size {
            world
                .process_at_rank(r as i32)
                .send_with_tag(&mine[..], TAG_HELLO);
        }
        let heard = match &fd {
            Some(fd) if !mine.is_empty() => wake::heard(fd, size - 1, Duration::from_millis(200)),
            _ => Vec::new(),
        };
        let mut peers = vec![None; size];
        for r in 1..size {
            let ok = heard.contains(&(r as u32)) && !addrs[r].is_empty();
            world
                .process_at_rank(r as i32)
                .send_with_tag(&[u8::from(ok)][..], TAG_HELLO);
            if ok {
                peers[r] = Some(addrs[r].clone());
            }
        }
        if let Some(fd) = fd {
            wake::install(fd, peers);
        }
    } else {
        let (theirs, _) = world
            .process_at_rank(0)
            .receive_vec_with_tag::<u8>(TAG_HELLO);
        if let Some(fd) = &fd
            && !theirs.is_empty()
        {
            wake::hello(fd, &theirs, rank as u32);
        }
        let (ok, _) = world
            .process_at_rank(0)
            .receive_vec_with_tag::<u8>(TAG_HELLO);
        let mut peers = vec![None; size];
        if ok.first() == Some(&1) {
            peers[0] = Some(theirs);
        }
        if let Some(fd) = fd {
            wake::install(fd, peers);
        }
    }
}

/// Rank 0, at exit: tells every rank to stop, then finalizes MPI.
extern "C" fn stop_ranks() {
    let Some(job) = JOB.get() else { return };
    let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(stop) = protocol::encode(&Message::Stop) {
        for r in 1..job.ranks.len() {
            world()
                .process_at_rank(r as i32)
                .send_with_tag(&stop[..], TAG_CONTROL);
            wake::wake(r);
        }
    }
    drop(
        job.universe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(),
    );
}

/// What `probe` finds, tried under the MPI lock and again after a [`wake::Backoff`] until it
/// finds something: a wait that does not spin a core. `from` is the rank the message is awaited
/// from (`None`: any); `sending`: this process has non-blocking sends under way.
fn poll<T>(from: Option<i32>, sending: bool, mut probe: impl FnMut() -> Option<T>) -> T {
    let ranks = JOB.get().map_or(0, |j| j.ranks.len());
    let mut backoff = match from {
        Some(r) => wake::Backoff::waiting_on([r as usize], sending),
        None => wake::Backoff::waiting_on(1..ranks, sending),
    };
    loop {
        let found = {
            let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            probe()
        };
        match found {
            Some(got) => return got,
            None => backoff.wait(),
        }
    }
}

/// A message from `source` (`None`: any rank) with `tag`, and the rank it came from.
fn receive(source: Option<i32>, tag: i32, sending: bool) -> (Vec<u8>, i32) {
    poll(source, sending, || {
        let w = world();
        let probe = match source {
            Some(r) => w.process_at_rank(r).immediate_matched_probe_with_tag(tag),
            None => w.any_process().immediate_matched_probe_with_tag(tag),
        };
        probe.map(|matched| {
            let rank = matched.1.source_rank();
            (matched.matched_receive_vec::<u8>().0, rank)
        })
    })
}

fn send(rank: i32, bytes: &[u8], tag: i32) {
    {
        let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        world().process_at_rank(rank).send_with_tag(bytes, tag);
    }
    wake::wake(rank as usize);
}

/// A serving rank's life: chunks from rank 0 until it says stop.
fn serve(rank: i32) -> ! {
    SERVING.store(true, Ordering::Relaxed);
    // Ctrl-C is rank 0's (mpirun forwards it to every rank); we end when rank 0 says so.
    // SAFETY: `signal` with constant arguments.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    install_death_notes();
    let level = Arc::new(AtomicU8::new(0));
    let forwarder = Forwarder::sending(
        Box::new(|m| {
            if let Ok(frame) = protocol::encode(m) {
                send(0, &frame, TAG_CONTROL);
            }
        }),
        level.clone(),
    );
    let _ = tracing::subscriber::set_global_default(forwarder);
    // One receive buffer for every raw chunk: a fresh one per chunk would fault in each of its
    // pages again as the bytes land.
    let mut raw: Vec<u128> = Vec::new();
    loop {
        let (frame, _) = receive(Some(0), TAG_CONTROL, false);
        let msg = match protocol::decode(&frame) {
            Ok((m, _)) => m,
            Err(_) => continue,
        };
        let Message::Run {
            function,
            entry,
            body,
            chunk,
            chunks,
            max_level,
            args,
            data,
            ..
        } = msg
        else {
            break; // `Stop`, or nothing this rank knows: leave cleanly
        };
        level.store(max_level, Ordering::Relaxed);
        if let ChunkData::Raw { len } = &data {
            receive_raw(*len as usize, &mut raw);
        }
        let mapped = match &data {
            ChunkData::File {
                path,
                size,
                modified_ns,
                offset,
                len,
            } => Some(
                map_range(path, *size, *modified_ns, *offset, *len)
                    .map_err(|e| format!("rank {rank} on {}: {e}", host())),
            ),
            _ => None,
        };
        fn piece(data: &ChunkData) -> Result<(&[u8], bool), String> {
            match data {
                ChunkData::Inline(bytes) => Ok((&bytes[..], false)),
                ChunkData::Bytes(bytes) => Ok((&bytes[..], true)),
                ChunkData::Raw { .. } | ChunkData::File { .. } => {
                    Err("raw data or a file range outside the chunk".to_owned())
                }
                ChunkData::Shared { .. } => Err("shared memory does not cross ranks".to_owned()),
            }
        }
        let chunk_piece = match (&data, &mapped) {
            (_, Some(Err(e))) => Err(e.clone()),
            (_, Some(Ok((map, at, len)))) => Ok(Piece {
                bytes: &map[*at..*at + *len],
                raw: true,
            }),
            (ChunkData::Raw { len }, None) => Ok(Piece {
                bytes: bytemuck::cast_slice::<u128, u8>(&raw)
                    .split_at(*len as usize)
                    .0,
                raw: true,
            }),
            (other, None) => piece(other).map(|(bytes, raw)| Piece { bytes, raw }),
        };
        note_chunk(&function, chunk, chunks, rank);
        let reply = answer(Request {
            function: &function,
            entry,
            body,
            args: args
                .iter()
                .map(|a| piece(a).map(|(bytes, raw)| Piece { bytes, raw }))
                .collect(),
            chunk: chunk_piece,
            index: chunk,
            chunks,
        });
        if raw.len() * 16 > KEEP_RAW_BYTES {
            raw = Vec::new();
        }
        note_idle();
        if let Ok(frame) = protocol::encode(&reply) {
            send(0, &frame, TAG_CONTROL);
        }
    }
    if let Some(job) = JOB.get() {
        let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        job.finalize();
    }
    let _ = std::io::stdout().flush();
    // SAFETY: ends this rank without running `main`'s code or other exit handlers twice.
    unsafe { libc::_exit(0) }
}

/// This rank's host, for messages.
fn host() -> String {
    mpi::environment::processor_name().unwrap_or_else(|_| "?".into())
}

/// Maps `len` bytes at `offset` of the file at `path`, after checking it is the file rank 0
/// opened (same length and modification time): the mapping, where the range starts in it, and
/// its length.
fn map_range(
    path: &str,
    size: u64,
    modified_ns: u64,
    offset: u64,
    len: u64,
) -> Result<(memmap2::Mmap, usize, usize), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{path}: {e}"))?;
    let here_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    if meta.len() != size || here_ns != modified_ns {
        return Err(format!(
            "{path} is not the file rank 0 opened: {} bytes modified at {here_ns} ns here, {size} bytes modified at {modified_ns} ns there",
            meta.len()
        ));
    }
    if len == 0 {
        let empty = memmap2::MmapOptions::new()
            .len(1)
            .map_anon()
            .and_then(memmap2::MmapMut::make_read_only)
            .map_err(|e| e.to_string())?;
        return Ok((empty, 0, 0));
    }
    // SAFETY: `sysconf` with a constant argument.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let start = offset - offset % page;
    let at = (offset - start) as usize;
    // SAFETY: a read-only mapping of a file checked above; as for any mapped file, a change on
    // disk while mapped shows through (the same contract as `MappedFile`).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(start)
            .len(at + len as usize)
            .map(&file)
    }
    .map_err(|e| format!("{path}: {e}"))?;
    Ok((map, at, len as usize))
}

/// The largest receive buffer a rank keeps between chunks; a larger chunk's is freed after it.
const KEEP_RAW_BYTES: usize = 64 << 20;

/// The raw bytes of a chunk, into `buf` (aligned for any plain data type), grown to hold them.
fn receive_raw(len: usize, buf: &mut Vec<u128>) {
    let words = len.div_ceil(16);
    if buf.len() < words {
        buf.resize(words, 0);
    }
    let msg = poll(Some(0), false, || {
        world()
            .process_at_rank(0)
            .immediate_matched_probe_with_tag(TAG_DATA)
    });
    let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..]);
    msg.0.matched_receive_into(&mut bytes[..len]);
}

// What a rank that dies says first: set before each chunk, written by a signal handler.
static NOTE: [AtomicU8; 512] = [const { AtomicU8::new(0) }; 512];
static NOTE_LEN: AtomicUsize = AtomicUsize::new(0);

fn note_chunk(function: &str, chunk: u32, chunks: u32, rank: i32) {
    let host = JOB
        .get()
        .and_then(|j| j.ranks.get(rank as usize))
        .map_or("?", |(_, h)| h.as_str());
    let text = format!(
        "decor: rank {rank} on {host} died running chunk {chunk} of {chunks} of {function}; MPI ends the whole job when a rank dies\n"
    );
    let n = text.len().min(NOTE.len());
    for (slot, b) in NOTE.iter().zip(text.as_bytes()) {
        slot.store(*b, Ordering::Relaxed);
    }
    NOTE_LEN.store(n, Ordering::Release);
}

fn note_idle() {
    NOTE_LEN.store(0, Ordering::Release);
}

extern "C" fn on_fatal_signal(sig: i32) {
    let n = NOTE_LEN.load(Ordering::Acquire);
    let mut buf = [0u8; 512];
    for (b, slot) in buf.iter_mut().zip(&NOTE[..n]) {
        *b = slot.load(Ordering::Relaxed);
    }
    // SAFETY: `write` and `raise` are async-signal-safe; the handler was reset to the default
    // (`SA_RESETHAND`), so raising again ends the process with the same signal.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        libc::raise(sig);
    }
}

fn install_death_notes() {
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
    ] {
        // SAFETY: a zeroed `sigaction` with our handler and flags is valid.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as extern "C" fn(i32) as usize;
            action.sa_flags = libc::SA_RESETHAND | libc::SA_ONSTACK;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Chunks sent to one rank before it answered the first.
const IN_FLIGHT: usize = 2;

/// A chunk a rank is running, seen from rank 0.
struct InFlight {
    index: usize,
    span: Span,
    sent: Instant,
}

/// Runs a prepared call on the serving ranks; every chunk's outcome in chunk order. After a
/// chunk fails, chunks not started yet are not started.
pub(crate) fn run<R: DeserializeOwned>(
    call: &Call,
    remote: Result<Remote, String>,
    args: Args,
    chunks: Result<OutgoingChunks<'_>, String>,
) -> Vec<Outcome<R>> {
    let prepared = match ready(remote, args, chunks) {
        Ok(ready) => ready,
        Err(failed) => return vec![Outcome::Failed(failed)],
    };
    let (remote, args, chunks) = (prepared.remote, &prepared.args, &prepared.chunks);
    if let Some((bytes, _)) = &chunks.raw {
        crate::shm::count_copied(bytes.len());
    }
    let Some(job) = JOB.get() else {
        return vec![Outcome::Failed(ChunkFailure::BadData(
            "MPI is not initialized".into(),
        ))];
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

    // Every chunk's `Run`, encoded up front: non-blocking sends borrow them until they are done.
    let frames: Vec<Result<Vec<u8>, ChunkFailure>> = (0..n)
        .map(|index| {
            protocol::encode(&Message::Run {
                function: remote.name.to_owned(),
                entry: remote.entry,
                body: remote.body,
                chunk: index as u32,
                chunks: n as u32,
                max_level,
                args: args.clone(),
                data: chunks.data[index].clone(),
                live: Vec::new(),
            })
            .map_err(|e| ChunkFailure::BadData(e.to_string()))
        })
        .collect();
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
                    let frame = match &frames[index] {
                        Ok(f) => f,
                        Err(failure) => {
                            out[index] = Some(Outcome::Failed(failure.clone()));
                            stopped = true;
                            continue;
                        }
                    };
                    let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                    let world = world();
                    let to = world.process_at_rank(rank as i32);
                    sending.push(to.immediate_send_with_tag(scope, &frame[..], TAG_CONTROL));
                    if let Some((bytes, lens)) = &chunks.raw {
                        let start = offsets[index];
                        let data = &bytes[start..start + lens[index]];
                        sending.push(to.immediate_send_with_tag(scope, data, TAG_DATA));
                    }
                    wake::wake(rank);
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
            let (frame, rank) = receive(None, TAG_CONTROL, !sending.is_empty());
            if !sending.is_empty() {
                let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                sending = sending.into_iter().filter_map(|r| r.test().err()).collect();
            }
            let rank = rank as usize;
            let Some(flight) = busy.get(rank).and_then(VecDeque::front) else {
                continue;
            };
            let pid = job.ranks[rank].0;
            let outcome = match protocol::decode(&frame) {
                Ok((
                    Message::Event {
                        level,
                        target,
                        fields,
                    },
                    _,
                )) => {
                    flight.span.in_scope(|| relay(level, &target, &fields, pid));
                    continue;
                }
                Ok((Message::Done { result, ran }, _)) => {
                    flight.span.record("run.start_unix_ns", ran.start_unix_ns);
                    flight.span.record("run.busy_ns", ran.busy_ns);
                    Outcome::Done(result)
                }
                Ok((Message::Panicked { message, ran }, _)) => {
                    flight.span.record("run.start_unix_ns", ran.start_unix_ns);
                    flight.span.record("run.busy_ns", ran.busy_ns);
                    Outcome::Failed(ChunkFailure::Panicked(format!(
                        "{message} (on rank {rank}, {})",
                        job.ranks[rank].1
                    )))
                }
                Ok((Message::Unknown { .. }, _)) => Outcome::Failed(ChunkFailure::UnknownFunction),
                Ok((Message::BadInput { message }, _)) => {
                    Outcome::Failed(ChunkFailure::BadData(message))
                }
                Ok((other, _)) => Outcome::Failed(ChunkFailure::BadData(format!(
                    "rank {rank} answered {other:?}"
                ))),
                Err(e) => Outcome::Failed(ChunkFailure::BadData(format!("rank {rank}: {e}"))),
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
    // A chunk with no outcome was never sent: an earlier one failed.
    decode_results(out, || Outcome::Skipped)
}
