//! The worker side: entering worker mode before `main`, and the loop that runs chunks.
//!
//! A worker is this same executable, started by the pool with one end of a Unix socket pair as
//! file descriptor 3 and `DECOR_WORKER_CHANNEL_<version>=3:<token>` in its environment. Before
//! `main`, the constructor the attributes generate calls
//! [`worker_main`](crate::backends::takeover::worker_main), which calls [`take_over`]: unless that
//! variable is set, it returns at once. If it is, it reads the first frame from the descriptor,
//! which must be a `Hello` with this protocol's magic, version and the same random token; only
//! then does the process become a worker (answering with its build identity, which the parent
//! checks), and it never returns to `main`. Anything else (a stranger setting the variable, a
//! descriptor that is not a socket, a wrong token) leaves the process to run `main` as usual,
//! the variable removed.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::remote::answer::{Request, answer};
use crate::remote::entry;
use crate::remote::events::Forwarder;
use crate::remote::input::Piece;
use crate::remote::protocol::{self, ChunkData, MAGIC, Message, VERSION};
use crate::shm;

use crate::backends::ring::{self, End, Popped, Ring, Rings};
use crate::backends::spin;

/// Set once this process serves chunks: a call of a processes function from a chunk body then
/// runs here, on threads, instead of starting a pool of its own.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a worker serving chunks.
pub(crate) fn is_worker() -> bool {
    IN_WORKER.load(Ordering::Relaxed)
}

/// The environment variable that names the channel and its token. It carries this crate's
/// version, so that another copy of decor linked into the same executable (a semver-incompatible
/// one, through another dependency) leaves it to this one, whose pool started the worker.
pub(crate) const CHANNEL_VAR: &str = concat!(
    "DECOR_WORKER_CHANNEL_",
    env!("CARGO_PKG_VERSION_MAJOR"),
    "_",
    env!("CARGO_PKG_VERSION_MINOR"),
    "_",
    env!("CARGO_PKG_VERSION_PATCH")
);

/// Becomes a worker if this process was started as one by a decor pool (never returning);
/// otherwise returns whether it was asked to (the variable was set, but not by our pool).
pub(crate) fn take_over() -> bool {
    let Some(value) = std::env::var_os(CHANNEL_VAR) else {
        return false;
    };
    // SAFETY: this runs in a constructor before `main`, before any other thread exists.
    unsafe { std::env::remove_var(CHANNEL_VAR) };
    let Some((fd, token)) = value.to_str().and_then(parse_channel) else {
        return true;
    };
    if !is_socket(fd) {
        return true;
    }
    // Close-on-exec from here: a process a chunk body starts must not hold our channel open
    // (the parent would not see us die until that process ended).
    // SAFETY: `fcntl` on a descriptor we checked is open; no memory is involved.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: `fd` is an open socket (checked above) that nothing else in this process owns: the
    // pool placed it there for us.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let Some((parent_pid, max_level, rings)) = handshake(&stream, token) else {
        return true; // `stream` is dropped and the descriptor closed; `main` runs as usual.
    };
    // SAFETY: the parent, which has proven itself with the token, placed the rings' memory file
    // on this descriptor for us; nothing else in this process owns it.
    let file = unsafe { std::fs::File::from_raw_fd(rings) };
    // SAFETY: as for the channel above.
    unsafe { libc::fcntl(rings, libc::F_SETFD, libc::FD_CLOEXEC) };
    let Ok(rings) = Rings::map(&file) else {
        exit(5);
    };
    drop(file);
    run(stream, parent_pid, max_level, rings)
}

fn parse_channel(s: &str) -> Option<(i32, u128)> {
    let (fd, token) = s.split_once(':')?;
    Some((fd.parse().ok()?, u128::from_str_radix(token, 16).ok()?))
}

fn is_socket(fd: i32) -> bool {
    // SAFETY: `fstat` only writes into the buffer we give it.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    }
}

fn handshake(stream: &UnixStream, token: u128) -> Option<(u32, u8, i32)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    match protocol::read(&mut &*stream) {
        Ok(Message::Hello {
            magic: MAGIC,
            version: VERSION,
            token: t,
            parent_pid,
            max_level,
            rings,
            ..
        }) if t == token => {
            stream.set_read_timeout(None).ok()?;
            Some((parent_pid, max_level, rings))
        }
        _ => None,
    }
}

/// The worker's life once the parent has proven itself: tied to the parent, announced, logging
/// through the channel, then serving chunks until the channel closes.
fn run(stream: UnixStream, parent_pid: u32, max_level: u8, rings: Rings) -> ! {
    tie_to_parent(parent_pid);
    let rings = Arc::new(rings);
    let out = Arc::new(Outbox {
        rings: rings.clone(),
        socket: Mutex::new(stream.try_clone().unwrap_or_else(|_| exit(2))),
        parent_pid,
    });
    announce(&stream);
    let level = Arc::new(AtomicU8::new(max_level));
    forward_events(&out, &level);
    IN_WORKER.store(true, Ordering::Relaxed);
    let mut maps = shm::Mappings::default();
    let mut inbox = Inbox {
        incoming: rings.incoming(End::Worker),
        // Frames that come on the socket (after a marker in the ring): regions with their
        // descriptors, and frames too large for the ring.
        reader: std::io::BufReader::with_capacity(
            64 << 10,
            DescriptorReader {
                stream: &stream,
                received: std::collections::VecDeque::new(),
            },
        ),
        frame: Vec::new(),
        stream: &stream,
    };
    loop {
        match inbox.next() {
            Message::Region { id, size } => {
                let Some(fd) = inbox.reader.get_mut().received.pop_front() else {
                    exit(4); // a region without its descriptor: the channel is not ours
                };
                // A mapping that fails shows as an error on the chunk that needs it.
                let _ = maps.add(id, size, std::fs::File::from(fd));
            }
            run @ Message::Run { .. } => run_chunk(run, &mut maps, &level, &out),
            _ => exit(3),
        }
    }
}

/// Ignores the signals that are the parent's to handle, and ends this process with the parent
/// (or at once, if the parent is already gone).
fn tie_to_parent(parent_pid: u32) {
    // SAFETY: plain libc calls with constant arguments. A write to a closed channel must fail
    // rather than kill us before `main` would have ignored SIGPIPE; and we die with the parent.
    // Ctrl-C or a SIGTERM meant for the program is the parent's to handle; we end with it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if !parent_lives(parent_pid) {
        // SAFETY: `_exit` ends the process without running anything of it.
        unsafe { libc::_exit(1) };
    }
}

/// Tells the parent this worker's pid and build identity. The parent compares the build and
/// ends a worker of another build; it reads this one frame from the socket, the rest from the
/// ring.
fn announce(stream: &UnixStream) {
    let ready = Message::Ready {
        pid: std::process::id(),
        build: entry::build_id().to_vec(),
    };
    if protocol::write(&mut &*stream, &ready).is_err() {
        exit(0);
    }
}

/// Sends every event of this process to the parent, at most as verbose as `level` says (set
/// from each chunk's `Run`).
fn forward_events(out: &Arc<Outbox>, level: &Arc<AtomicU8>) {
    let out = out.clone();
    let forwarder = Forwarder::sending(
        Box::new(move |m| {
            let _ = out.send(m);
        }),
        level.clone(),
    );
    let _ = tracing::subscriber::set_global_default(forwarder);
}

/// Runs the chunk a `Run` message asks for and sends the answer.
fn run_chunk(run: Message, maps: &mut shm::Mappings, level: &AtomicU8, out: &Outbox) {
    let Message::Run {
        function,
        entry,
        body,
        args,
        data,
        max_level,
        chunk,
        chunks,
        attempt,
        retries,
        live,
    } = run
    else {
        exit(3);
    };
    level.store(max_level, Ordering::Relaxed);
    maps.keep_only(&live);
    let reply = answer(Request {
        function: &function,
        entry,
        body,
        args: args.iter().map(|a| resolve(maps, a)).collect(),
        chunk: resolve(maps, &data),
        index: chunk,
        chunks,
        attempt,
        retries,
    });
    if let Err(e) = out.send(&reply) {
        // Too large to send: the parent must still hear of the chunk, or it would wait.
        let _ = out.send(&Message::BadInput {
            message: format!("the chunk's answer cannot be sent: {e}"),
        });
    }
}

/// What the parent sends this worker, in order: frames from the ring, and those the ring says
/// are on the socket.
struct Inbox<'a> {
    incoming: Ring<'a>,
    reader: std::io::BufReader<DescriptorReader<'a>>,
    /// The last frame read from the ring.
    frame: Vec<u8>,
    stream: &'a UnixStream,
}

impl Inbox<'_> {
    /// The next message, waiting for it; exits when the parent closed the channel, or when
    /// what came cannot be read (the channel is not ours).
    fn next(&mut self) -> Message {
        loop {
            match self.incoming.pop(&mut self.frame) {
                Ok(Some(Popped::Frame)) => match protocol::decode(&self.frame) {
                    Ok((m, _)) => return m,
                    Err(_) => exit(3),
                },
                Ok(Some(Popped::Elsewhere)) => match protocol::read(&mut self.reader) {
                    Ok(m) => return m,
                    Err(_) => exit(0), // the parent closed the channel (or broke it): we are done
                },
                Ok(None) => self.wait(),
                Err(_) => exit(3),
            }
        }
    }

    /// Waits for the ring to have data. The next chunk of a call is usually microseconds away:
    /// spin for it before sleeping. A sleep ends when the parent writes or nudges (a call about
    /// to write, whose first frame is then spun for: it is still preparing its chunks); every
    /// second, a look at whether the channel closed (the parent ended its pool).
    fn wait(&self) {
        let ready = || self.incoming.has_data();
        if spin::briefly(ready) {
            return;
        }
        let nudged = self.incoming.wait(Duration::from_secs(1));
        if self.incoming.has_data()
            || nudged && spin::until(Instant::now() + spin::AFTER_WAKE, ready)
        {
            return;
        }
        if closed(self.stream) {
            exit(0);
        }
    }
}

/// Whether the parent's end of the channel has closed.
fn closed(stream: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`, for the duration of the call; a zero timeout never waits.
    let ready = unsafe { libc::poll(&mut p, 1, 0) };
    ready > 0 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// The worker's way to the parent, shared by the chunk loop and every thread that logs: frames
/// through the ring, and after a marker on the socket when they are too large for it.
struct Outbox {
    rings: Arc<Rings>,
    /// Held while writing to the ring as well: one writer at a time.
    socket: Mutex<UnixStream>,
    parent_pid: u32,
}

impl Outbox {
    /// Sends `msg`, waiting for room in the ring while the parent reads; exits when the parent
    /// is gone (nothing would read what we write).
    fn send(&self, msg: &Message) -> std::io::Result<()> {
        let frame = protocol::encode(msg)?;
        let socket = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        let ring = self.rings.outgoing(End::Worker);
        let small = frame.len() <= ring::MAX_RECORD;
        let mut naps = 0u32;
        while !(if small {
            ring.push(&frame)
        } else {
            ring.push_marker()
        }) {
            // The parent reads while it waits for this chunk: a full ring empties soon.
            naps += 1;
            if naps.is_multiple_of(1000) && !parent_lives(self.parent_pid) {
                exit(0);
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        if !small && (&*socket).write_all(&frame).is_err() {
            exit(0);
        }
        Ok(())
    }
}

fn parent_lives(parent_pid: u32) -> bool {
    // SAFETY: `getppid` has no arguments and cannot fail.
    unsafe { libc::getppid() as u32 == parent_pid }
}

/// A piece's bytes in this worker: in the message, or in a region the parent sent.
fn resolve<'a>(maps: &'a shm::Mappings, data: &'a ChunkData) -> Result<Piece<'a>, String> {
    match data {
        ChunkData::Inline(bytes) => Ok(Piece { bytes, raw: false }),
        ChunkData::Bytes(bytes) => Ok(Piece { bytes, raw: true }),
        ChunkData::Shared {
            id,
            offset,
            len,
            encoded,
            ..
        } => Ok(Piece {
            bytes: maps.bytes(*id, *offset, *len)?,
            raw: !encoded,
        }),
        ChunkData::Raw { .. } | ChunkData::File { .. } => {
            Err("raw chunk data or a file range outside MPI".into())
        }
    }
}

/// Reads the channel with `recvmsg`, keeping the descriptors that come with the bytes
/// (`SCM_RIGHTS`), in order.
struct DescriptorReader<'a> {
    stream: &'a UnixStream,
    received: std::collections::VecDeque<std::os::fd::OwnedFd>,
}

impl std::io::Read for DescriptorReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        crate::backends::descriptor::receive(self.stream.as_raw_fd(), buf, 0, &mut self.received)
    }
}

fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}
