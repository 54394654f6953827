//! `backend = "mpi"`: the chunks of a call go to the other ranks of an `mpirun` job.
//!
//! `mpirun -n K ./app` starts K copies of the executable. In each, the constructor that starts
//! process workers ([`worker_main`](super::takeover::worker_main)) calls [`enter`]
//! before `main`: with more than one rank it initializes MPI; rank 0 gathers each rank's pid,
//! host and build identity (a rank of another build ends the job with an error naming it) and
//! goes on to `main`; ranks 1..K-1 serve chunks until rank 0 says stop, and never run `main`.
//! The messages are the remote path's ([`Message`], `postcard`). Between rank 0 and a rank of its
//! own host they go through shared-memory rings ([`rings`]); to a rank on another host (or with
//! `DECOR_MPI_RINGS=0`), and when larger than a ring takes, as one MPI message each. A chunk of
//! plain data or text of at most 16 KiB rides in its `Run`; a larger one follows it as a second
//! MPI message of raw bytes, sent from the caller's slice and received into an aligned buffer.
//! Chunks are run by the same entries as on processes ([`answer`](crate::remote::answer)), so
//! results, errors and panics are the same.
//!
//! Files: this one (start-up, the job's state, waiting and sending), [`dispatch`] (rank 0's side
//! of a call), [`claim`] (which ranks a call drives), [`serve`] (a serving rank's loop),
//! [`rings`] (the rings to ranks of this host), [`wake`] (wake-up sockets), [`death_note`] (what
//! a dying rank says).
//!
//! **Calls side by side.** Calls from several threads of rank 0 each drive ranks of their own
//! ([`claim`]) and listen to those only, so a rank's answers and events always belong to the
//! call that holds it; with more calls than ranks, a call waits for one, and a call holding
//! several gives back each idle one while others wait.
//!
//! **Waiting.** OpenMPI's blocking calls spin, and a job on a laptop or on 2 cores is
//! oversubscribed. A reader of a ring spins briefly, then sleeps on a futex that the writer wakes
//! only when it sleeps. A wait on an MPI message polls (`MPI_Iprobe`), spins briefly, then sleeps
//! on a wake socket of its own, which whoever sends it a message pokes ([`wake`]). Either way an
//! idle rank costs no CPU, and a call after a pause starts at once. Ranks on another host, which
//! cannot be poked, are polled at least every 1 ms.
//!
//! **Sends never block rank 0.** Every `Run` and chunk goes into a ring or with a non-blocking
//! send, up to two chunks per rank at a time: a rank starts its next chunk without waiting for
//! rank 0 to see its answer, the ranks pull their chunks' bytes at the same time, and rank 0
//! keeps receiving, so a large chunk and a large event from a busy rank can never wait for each
//! other.
//!
//! **What MPI cannot give.** A rank that dies (a signal, `abort`, `exit` in a body) ends the whole
//! job under OpenMPI's default error handler: `mpirun` kills the other ranks, rank 0 included,
//! so the call cannot fail just that chunk as processes do. The dying rank writes which function,
//! chunk and rank it was running to stderr first, and `mpirun` says which rank died. `timeout`
//! cannot stop a running chunk (a rank cannot be killed alone); a chunk that runs over is
//! reported when it ends, as on threads. So `retries` reruns only a chunk whose body returned an
//! `Err` that `retry_if` accepts (after its backoff, on whichever rank is free); `rate` paces
//! chunk starts as on every backend.
//!
//! **Shutdown.** Rank 0 stops the ranks and finalizes MPI from an `atexit` handler: when `main`
//! returns, calls `exit`, or panics. If rank 0 is killed, `mpirun` ends the job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use mpi::Threading;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};

mod claim;
mod death_note;
mod dispatch;
mod rings;
mod serve;
mod wake;

pub(crate) use dispatch::run;

use crate::backends::ring;
use crate::remote::entry;
use crate::remote::protocol::{self, Message};

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
        serve::serve(rank)
    }
}

/// What rank 0 tells a rank after its hello: not heard, heard, heard and rings sent.
const NOT_HEARD: u8 = 0;
const HEARD: u8 = 1;
const RINGS_SENT: u8 = 2;

/// Per rank: the wake address to poke it at, if it was heard.
type Peers = Vec<Option<Vec<u8>>>;
/// Per rank: the rings shared with it, if any.
type Links = Vec<Option<ring::Rings>>;

/// Which ranks can poke each other's wake socket, and which talk to rank 0 through rings: rank 0
/// sends each rank its address, each rank says hello to it, and rank 0 tells each whether it
/// was heard (see [`wake`]); a rank that was heard also gets its rings' file on its socket, and
/// says whether it mapped them (see [`rings`]).
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
    let mut peers: Peers = vec![None; size];
    let mut links: Links = (0..size).map(|_| None).collect();
    if rank == 0 {
        meet_as_zero(world, fd.as_ref(), &mine, addrs, &mut peers, &mut links);
    } else {
        meet_as_rank(world, rank, fd.as_ref(), &mut peers, &mut links);
    }
    if let Some(fd) = fd {
        wake::install(fd, peers);
    }
    rings::install(links, rank);
}

/// Rank 0's side of [`meet_wake_sockets`]: its address to every rank, then to each whether it
/// was heard and, if it was and wants them, its rings; then which ranks mapped them.
fn meet_as_zero(
    world: &SimpleCommunicator,
    fd: Option<&std::os::fd::OwnedFd>,
    mine: &[u8],
    addrs: &[Vec<u8>],
    peers: &mut Peers,
    links: &mut Links,
) {
    let size = peers.len();
    for r in 1..size {
        world
            .process_at_rank(r as i32)
            .send_with_tag(mine, TAG_HELLO);
    }
    let heard = match fd {
        Some(fd) if !mine.is_empty() => wake::heard(fd, size - 1, Duration::from_millis(200)),
        _ => Vec::new(),
    };
    for r in 1..size {
        let mut said = NOT_HEARD;
        if heard.contains(&(r as u32)) && !addrs[r].is_empty() {
            peers[r] = Some(addrs[r].clone());
            said = HEARD;
            if let Some(fd) = fd
                && rings::wanted()
            {
                links[r] = rings::hand_out(fd, &addrs[r]);
                if links[r].is_some() {
                    said = RINGS_SENT;
                }
            }
        }
        world
            .process_at_rank(r as i32)
            .send_with_tag(&[said][..], TAG_HELLO);
    }
    for (r, link) in links.iter_mut().enumerate().filter(|(_, l)| l.is_some()) {
        let (mapped, _) = world
            .process_at_rank(r as i32)
            .receive_vec_with_tag::<u8>(TAG_HELLO);
        if mapped.first() != Some(&1) {
            *link = None;
        }
    }
}

/// A serving rank's side of [`meet_wake_sockets`]: rank 0's address, a hello to it, whether it
/// was heard, and its rings if rank 0 sent them.
fn meet_as_rank(
    world: &SimpleCommunicator,
    rank: i32,
    fd: Option<&std::os::fd::OwnedFd>,
    peers: &mut Peers,
    links: &mut Links,
) {
    let (theirs, _) = world
        .process_at_rank(0)
        .receive_vec_with_tag::<u8>(TAG_HELLO);
    if let Some(fd) = fd
        && !theirs.is_empty()
    {
        wake::hello(fd, &theirs, rank as u32);
    }
    let (said, _) = world
        .process_at_rank(0)
        .receive_vec_with_tag::<u8>(TAG_HELLO);
    let said = said.first().copied().unwrap_or(NOT_HEARD);
    if said >= HEARD {
        peers[0] = Some(theirs);
    }
    if said == RINGS_SENT {
        // Taken either way, so that the descriptor does not linger on the socket.
        links[0] = fd.and_then(rings::take).filter(|_| rings::wanted());
        world
            .process_at_rank(0)
            .send_with_tag(&[u8::from(links[0].is_some())][..], TAG_HELLO);
    }
}

/// Rank 0, at exit: tells every rank to stop, then finalizes MPI.
extern "C" fn stop_ranks() {
    let Some(job) = JOB.get() else { return };
    if let Ok(stop) = protocol::encode(&Message::Stop) {
        for r in 1..job.ranks.len() {
            rings::send(r, &stop);
        }
    }
    let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
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
