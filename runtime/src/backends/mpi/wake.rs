//! Waking a rank that waits, so that an idle rank can sleep without a call after a pause paying
//! for it. MPI has no blocking wait that does not spin (OpenMPI's blocking calls poll a core), so
//! a waiting rank probes, spins briefly, then sleeps in `ppoll` on a Unix datagram socket of its
//! own; whoever sends it an MPI message also sends a byte to that socket, which wakes it at once.
//!
//! The sockets are abstract (autobound, no file) and work between ranks of one host (one network
//! namespace). At start every rank tells rank 0 its address and tries rank 0's; rank 0 says which
//! ranks it heard, and only those are woken. A wait on a rank that cannot be woken (another host),
//! sleeps at most 1 ms at a time, as before; a rank whose own non-blocking sends are still under
//! way (only its MPI calls move them on) at most 50 µs; any other up to 500 ms (a safety net:
//! every message it waits for comes with a wake-up).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::backends::descriptor;

/// This process's wake socket and the addresses of the peers it can wake.
pub(super) struct Wake {
    socket: OwnedFd,
    /// Per rank: its address, if it can be woken from here.
    peers: Vec<Option<Vec<u8>>>,
}

static WAKE: OnceLock<Wake> = OnceLock::new();

/// A new socket and its address, or `None` where it cannot be had.
pub(super) fn socket() -> Option<(OwnedFd, Vec<u8>)> {
    // SAFETY: plain socket calls on a descriptor we own; `addr` is a zeroed `sockaddr_un` whose
    // family alone is set, which asks the kernel to pick an abstract address (autobind).
    unsafe {
        let fd = libc::socket(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let family = size_of::<libc::sa_family_t>() as libc::socklen_t;
        if libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), family) != 0 {
            return None;
        }
        let mut len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::getsockname(fd.as_raw_fd(), (&raw mut addr).cast(), &mut len) != 0 {
            return None;
        }
        let name_len = (len as usize).saturating_sub(family as usize);
        let name: Vec<u8> = addr.sun_path[..name_len.min(addr.sun_path.len())]
            .iter()
            .map(|&c| c as u8)
            .collect();
        Some((fd, name))
    }
}

/// The abstract address `name` as a `sockaddr_un` and its length, if it fits.
fn address(name: &[u8]) -> Option<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: a zeroed `sockaddr_un` is valid; it is filled within its bounds below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if name.len() > addr.sun_path.len() {
        return None;
    }
    for (d, &s) in addr.sun_path.iter_mut().zip(name) {
        *d = s as libc::c_char;
    }
    let len = (size_of::<libc::sa_family_t>() + name.len()) as libc::socklen_t;
    Some((addr, len))
}

/// Sends `payload` to the socket at `name`; whether it went.
fn poke(socket: &OwnedFd, name: &[u8], payload: &[u8]) -> bool {
    let Some((addr, len)) = address(name) else {
        return false;
    };
    // SAFETY: a valid address and buffer, for the duration of the call.
    unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            (&raw const addr).cast(),
            len,
        ) == payload.len() as isize
    }
}

/// Start-up: sends the descriptor `fd` to the socket at `name` (`SCM_RIGHTS`); whether it went.
pub(super) fn send_fd(socket: &OwnedFd, name: &[u8], fd: BorrowedFd<'_>) -> bool {
    let to = address(name);
    to.is_some() && descriptor::send(socket.as_raw_fd(), to, &[2], fd.as_raw_fd()) == 1
}

/// Start-up: the first descriptor sent to `socket` with [`send_fd`] within `within`; datagrams
/// without one are skipped.
pub(super) fn receive_fd(socket: &OwnedFd, within: Duration) -> Option<OwnedFd> {
    let end = Instant::now() + within;
    let mut received = std::collections::VecDeque::new();
    loop {
        let mut byte = [0u8; 4];
        let fd = socket.as_raw_fd();
        while descriptor::receive(fd, &mut byte, libc::MSG_DONTWAIT, &mut received).is_ok() {
            if let Some(fd) = received.pop_front() {
                return Some(fd);
            }
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sleep_on(socket, left);
    }
}

/// Start-up check: says "rank `rank` here" to the socket at `name`.
pub(super) fn hello(socket: &OwnedFd, name: &[u8], rank: u32) {
    poke(socket, name, &rank.to_le_bytes());
}

/// Start-up check: the ranks heard saying hello on `socket` within `within`, by rank.
pub(super) fn heard(socket: &OwnedFd, expected: usize, within: Duration) -> Vec<u32> {
    let end = Instant::now() + within;
    let mut ranks = Vec::new();
    loop {
        let mut buf = [0u8; 4];
        // SAFETY: `recv` writes at most 4 bytes into `buf`.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                4,
                libc::MSG_DONTWAIT,
            )
        };
        if n == 4 {
            ranks.push(u32::from_le_bytes(buf));
            continue;
        }
        let left = end.saturating_duration_since(Instant::now());
        if ranks.len() >= expected || left.is_zero() {
            return ranks;
        }
        sleep_on(socket, left);
    }
}

/// Keeps the socket and the peers it can wake.
pub(super) fn install(socket: OwnedFd, peers: Vec<Option<Vec<u8>>>) {
    let _ = WAKE.set(Wake { socket, peers });
}

/// Wakes `rank` if it can be woken: after sending it an MPI message.
pub(super) fn wake(rank: usize) {
    if let Some(w) = WAKE.get()
        && let Some(Some(name)) = w.peers.get(rank)
    {
        poke(&w.socket, name, &[1]);
    }
}

/// Whether every one of `ranks` can wake this process.
pub(super) fn wakeable_by(ranks: impl IntoIterator<Item = usize>) -> bool {
    WAKE.get().is_some_and(|w| {
        ranks
            .into_iter()
            .all(|r| w.peers.get(r).is_some_and(Option::is_some))
    })
}

/// Reads every byte waiting on `socket`; how many there were.
fn drain(socket: &OwnedFd) -> usize {
    let mut n = 0;
    let mut buf = [0u8; 64];
    // SAFETY: `recv` writes at most `buf.len()` bytes into `buf`.
    while unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    } > 0
    {
        n += 1;
    }
    n
}

/// Sleeps until a byte arrives on `socket` or `at_most` passes.
fn sleep_on(socket: &OwnedFd, at_most: Duration) {
    let mut p = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: at_most.as_secs() as libc::time_t,
        tv_nsec: at_most.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid `pollfd` and a valid `timespec`, for the duration of the call.
    unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
}

/// Waits between probes: a few spins, then sleeps growing from 10 µs by 10 µs to 100 µs, then
/// doubling up to `cap`, on the wake socket when there is one (a wake-up ends the sleep and starts
/// the growth again).
pub(super) struct Backoff {
    tries: u32,
    sleep: Duration,
    cap: Duration,
}

impl Backoff {
    /// For a wait on messages from `ranks`; `sending`: this process has non-blocking sends in
    /// flight, which only its own MPI calls move on, so it must not sleep long.
    pub(super) fn waiting_on(ranks: impl IntoIterator<Item = usize>, sending: bool) -> Backoff {
        if !sending && wakeable_by(ranks) {
            Backoff {
                cap: Duration::from_millis(500),
                ..Self::polling(false)
            }
        } else {
            Self::polling(sending)
        }
    }

    /// For a wait on news that comes without a wake-up on the socket (a ring's write, or a rank
    /// on another host): sleeps of at most 1 ms, or 50 µs while `sending`.
    pub(super) fn polling(sending: bool) -> Backoff {
        Backoff {
            tries: 0,
            sleep: Duration::from_micros(10),
            // Probing is what moves our own sends on: keep at it.
            cap: Duration::from_micros(if sending { 50 } else { 1000 }),
        }
    }

    pub(super) fn wait(&mut self) {
        self.tries += 1;
        if self.tries < 50 {
            std::hint::spin_loop();
            return;
        }
        match WAKE.get() {
            Some(w) => {
                if drain(&w.socket) > 0 {
                    // A wake-up came since the last probe: probe again at once.
                    self.sleep = Duration::from_micros(10);
                    return;
                }
                sleep_on(&w.socket, self.sleep);
                if drain(&w.socket) > 0 {
                    self.sleep = Duration::from_micros(10);
                    return;
                }
            }
            None => std::thread::sleep(self.sleep),
        }
        // Gently at first (a reply is often tens of microseconds away), then doubling.
        self.sleep = if self.sleep < Duration::from_micros(100) {
            self.sleep + Duration::from_micros(10)
        } else {
            self.sleep * 2
        }
        .min(self.cap);
    }
}
