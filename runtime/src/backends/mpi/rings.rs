//! Rank 0 and each rank of its own host talk through a pair of shared-memory rings
//! ([`ring`], the same as a worker process's), not through MPI messages:
//! a control frame (a `Run`, an answer, an event) is a copy into shared memory, and a sleeping
//! reader is woken by a futex only when it sleeps, instead of an MPI progress loop on each side
//! and a wake-up datagram per message.
//!
//! MPI stays for what a ring does not carry: a chunk's raw bytes (`TAG_DATA`), frames larger than
//! [`RUN_FRAME`](ring::RUN_FRAME) (after a marker in the ring, which keeps the order), and every message of a rank
//! on another host. At start, rank 0 makes each rank's rings in a memory file and sends its
//! descriptor over the rank's wake socket (`SCM_RIGHTS`, which only reaches a process of the same
//! host); a rank that maps them says so, and only then are they used. `DECOR_MPI_RINGS=0` in rank
//! 0's environment keeps every message on MPI, as for ranks on other hosts; in a serving rank's,
//! that rank's messages only (`mpirun -n 2 ./app : -n 1 env DECOR_MPI_RINGS=0 ./app`).

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use mpi::point_to_point::{MatchedReceiveVec, Source};
use mpi::topology::Communicator;

use super::{MPI_LOCK, TAG_CONTROL, receive, wake, world};
use crate::backends::ring::{self, End, Popped, Ring, Rings};
use crate::backends::spin;

/// The rings to one peer, and the lock its writers take (events come from any thread of a rank).
pub(super) struct Link {
    rings: Rings,
    end: End,
    writing: Mutex<()>,
    /// On rank 0: frames MPI brought from this rank before rank 0 read their marker. Kept here,
    /// not in one call's listener: a marker can be left for the next call to read.
    early: Mutex<VecDeque<Vec<u8>>>,
}

/// Per rank, the link to it, if it has one: on rank 0, one per rank of its host; on a serving
/// rank, only to rank 0.
static LINKS: OnceLock<Vec<Option<Link>>> = OnceLock::new();

/// Whether this rank offers (rank 0) or accepts (a serving rank) rings: not with
/// `DECOR_MPI_RINGS=0` in its environment.
pub(super) fn wanted() -> bool {
    std::env::var("DECOR_MPI_RINGS").map_or(true, |v| v != "0")
}

/// Rank 0, at start: makes a rank's rings and sends their file to its wake socket at `name`;
/// the rings, if the descriptor went.
pub(super) fn hand_out(socket: &OwnedFd, name: &[u8]) -> Option<Rings> {
    let (rings, file) = Rings::create().ok()?;
    wake::send_fd(socket, name, file.as_fd()).then_some(rings)
}

/// A serving rank, at start: the rings rank 0 sent to `socket`, mapped.
pub(super) fn take(socket: &OwnedFd) -> Option<Rings> {
    let fd = wake::receive_fd(socket, Duration::from_secs(2))?;
    Rings::map(&std::fs::File::from(fd)).ok()
}

/// Keeps this process's links: `rings[r]`, the rings to rank `r` if it has them.
pub(super) fn install(rings: Vec<Option<Rings>>, rank: i32) {
    let end = if rank == 0 { End::Parent } else { End::Worker };
    let links = rings
        .into_iter()
        .map(|r| {
            r.map(|rings| Link {
                rings,
                end,
                writing: Mutex::new(()),
                early: Mutex::new(VecDeque::new()),
            })
        })
        .collect();
    let _ = LINKS.set(links);
}

/// The link to `rank`, if it has one.
pub(super) fn link(rank: usize) -> Option<&'static Link> {
    LINKS.get()?.get(rank)?.as_ref()
}

impl Link {
    /// Holds the writing end until the guard drops: a frame that goes by MPI after its marker
    /// must not be overtaken by another writer's.
    pub(super) fn lock(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `frame` to the peer's ring if it is small enough and there is room; otherwise
    /// writes the marker, once there is room for it, and returns false: the caller then sends
    /// the frame by MPI, still holding [`lock`](Self::lock).
    pub(super) fn push(&self, frame: &[u8]) -> bool {
        let out = self.rings.outgoing(self.end);
        if frame.len() <= ring::RUN_FRAME && out.push(frame) {
            return true;
        }
        // A full ring is read as soon as its reader's call goes on: wait for room.
        while !out.push_marker() {
            std::thread::sleep(Duration::from_micros(50));
        }
        false
    }

    fn incoming(&self) -> Ring<'_> {
        self.rings.incoming(self.end)
    }

    fn early(&self) -> MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.early.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends a control frame to `rank` through the ring if it can, else with a blocking MPI send: a
/// serving rank's answers and events, and rank 0's `Stop` at exit (its calls use non-blocking
/// sends, in [`dispatch`](super::dispatch)).
pub(super) fn send(rank: usize, frame: &[u8]) {
    let link = link(rank);
    let _writing = link.map(Link::lock);
    if !link.is_some_and(|l| l.push(frame)) {
        super::send(rank as i32, frame, TAG_CONTROL);
    }
}

/// A serving rank: the next control frame from rank 0, into `frame`. A ring whose contents
/// cannot be trusted ends the rank, and so the job, with a message: nothing it says could be
/// believed.
pub(super) fn receive_from_zero(frame: &mut Vec<u8>) {
    let Some(link) = link(0) else {
        *frame = receive(Some(0), TAG_CONTROL, false).0;
        return;
    };
    let incoming = link.incoming();
    loop {
        match incoming.pop(frame) {
            Ok(Some(Popped::Frame)) => return,
            Ok(Some(Popped::Elsewhere)) => {
                *frame = receive(Some(0), TAG_CONTROL, false).0;
                return;
            }
            Ok(None) => {
                // Rank 0's next chunk is usually microseconds away when a call is under way.
                if !spin::briefly(|| incoming.has_data()) {
                    incoming.wait(Duration::from_secs(1));
                }
            }
            Err(e) => {
                eprintln!("decor: the ring from rank 0 is broken ({e}); ending the job");
                std::process::abort();
            }
        }
    }
}

/// Rank 0's reading of its ranks' answers during a call: each rank's ring, then MPI for the
/// ranks without one and for frames a marker sent there.
pub(super) struct Listener {
    /// Ranks with rings, in order.
    ranks: Vec<usize>,
    /// Their links, and their incoming rings.
    links: Vec<&'static Link>,
    rings: Vec<Ring<'static>>,
    /// Whether some rank has no ring: MPI must then be watched too.
    others: bool,
    /// Every rank listened to.
    all: Vec<usize>,
}

impl Listener {
    /// Listens to `ranks` only (the ones a call holds): another call's frames stay where they
    /// are, for that call.
    pub(super) fn new(ranks: &[usize]) -> Listener {
        let (with_rings, links): (Vec<usize>, Vec<&'static Link>) =
            ranks.iter().filter_map(|&r| Some((r, link(r)?))).unzip();
        Listener {
            others: with_rings.len() < ranks.len(),
            rings: links.iter().map(|l| l.incoming()).collect(),
            ranks: with_rings,
            links,
            all: ranks.to_vec(),
        }
    }

    /// The next frame from any rank and the rank; `sending`: rank 0 has non-blocking sends under
    /// way, which only its MPI calls move on. A broken ring is an error for that rank. `None`
    /// once `until` has passed with no frame (a chunk waiting out its backoff is due).
    pub(super) fn next(
        &mut self,
        sending: bool,
        until: Option<Instant>,
    ) -> Option<(Result<Vec<u8>, String>, usize)> {
        let mut frame = Vec::new();
        let mut backoff = None;
        loop {
            if until.is_some_and(|at| Instant::now() >= at) {
                return None;
            }
            for (i, ring) in self.rings.iter().enumerate() {
                let rank = self.ranks[i];
                match ring.pop(&mut frame) {
                    Ok(Some(Popped::Frame)) => return Some((Ok(frame), rank)),
                    Ok(Some(Popped::Elsewhere)) => {
                        let early = self.links[i].early().pop_front();
                        let frame = early
                            .unwrap_or_else(|| receive(Some(rank as i32), TAG_CONTROL, sending).0);
                        return Some((Ok(frame), rank));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let broken = format!("the ring from rank {rank} is broken: {e}");
                        return Some((Err(broken), rank));
                    }
                }
            }
            if (self.others || sending)
                && let Some((frame, rank)) = self.probe_any()
            {
                return Some((Ok(frame), rank));
            }
            if self.others {
                // Ranks on other hosts cannot be woken through memory: poll them.
                backoff
                    .get_or_insert_with(|| wake::Backoff::polling(sending))
                    .wait();
            } else if !spin::briefly(|| self.rings.iter().any(Ring::has_data)) {
                // Probing is what moves our own sends on: keep at it while there are some.
                let limit = if sending {
                    Duration::from_micros(50)
                } else {
                    Duration::from_millis(500)
                };
                let left = until.map_or(limit, |at| at.saturating_duration_since(Instant::now()));
                ring::wait_any(&self.rings, limit.min(left));
            }
        }
    }

    /// One look at MPI for a control frame from each rank listened to: one from a rank without
    /// rings is returned; one from a rank with rings is kept until its marker is read.
    fn probe_any(&mut self) -> Option<(Vec<u8>, usize)> {
        for &rank in &self.all {
            loop {
                let frame = {
                    let _mpi = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(matched) = world()
                        .process_at_rank(rank as i32)
                        .immediate_matched_probe_with_tag(TAG_CONTROL)
                    else {
                        break;
                    };
                    matched.matched_receive_vec::<u8>().0
                };
                match self.ranks.iter().position(|&r| r == rank) {
                    Some(i) => self.links[i].early().push_back(frame),
                    None => return Some((frame, rank)),
                }
            }
        }
        None
    }
}
