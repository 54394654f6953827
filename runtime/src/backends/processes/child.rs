//! One worker process, seen from the parent: starting it, sending it chunks, reading its replies,
//! and ending it.
//!
//! A [`Worker`] is the child process and the parent's end of its channel. It is owned by one pool
//! slot of the pool (see [`pool`](super::pool)), driven by the calling thread that holds the
//! slot; dropping it kills the process.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tracing::level_filters::LevelFilter;

use super::job::Job;
use super::outbox::SocketOutbox;
use super::worker::CHANNEL_VAR;
use crate::backends::ring::{self, End, Popped, Ring, Rings};
use crate::error::ChunkFailure;
use crate::remote::entry;
use crate::remote::protocol::{
    self, ChunkData, FieldValue, MAGIC, Message, Ran, ReadError, VERSION,
};

/// Another program to start workers from, for tests of what happens when a worker is another
/// build; `None`: this executable.
pub(crate) static WORKER_PROGRAM: std::sync::Mutex<Option<std::path::PathBuf>> =
    std::sync::Mutex::new(None);

/// What a worker answered for one chunk.
pub(crate) enum Reply {
    /// The result, when the body ran, and whether it is an `Err` to run again (how it reads).
    Done(Vec<u8>, Ran, Option<String>),
    /// The chunk failed; when its body ran, if it did.
    Failed(ChunkFailure, Option<Ran>),
}

/// What the parent heard from a worker.
pub(crate) enum Heard {
    /// An event of the chunk it runs.
    Event {
        level: u8,
        target: String,
        fields: Vec<(String, FieldValue)>,
    },
    /// The outcome of the chunk it ran.
    Reply(Reply),
    /// It ended (how), or broke the protocol and was killed.
    Died(String),
    /// A frame it sent on the socket did not come before the chunk's deadline.
    Late,
}

/// The descriptor a worker finds its rings' file on.
const RING_FD: i32 = 4;

/// One worker process and the parent's end of its channel.
pub(crate) struct Worker {
    child: Child,
    /// The small frames both ways (see [`ring`]).
    rings: Rings,
    /// The last frame read from the ring.
    frame: Vec<u8>,
    /// How the worker ended, once its end of the socket closed.
    ended: Option<String>,
    stream: UnixStream,
    /// The same socket, read through a buffer: frames too large for the ring.
    reader: std::io::BufReader<UnixStream>,
    /// The read timeout set on the socket now, so that it is set only when it changes.
    read_timeout: Option<Duration>,
    pub(crate) pid: u32,
    /// Frames sent but not yet written: the socket takes them as the worker reads.
    outbox: SocketOutbox,
    /// The shared-memory regions this worker has been sent.
    regions: HashSet<u64>,
}

impl Worker {
    /// Starts this executable as a worker and completes the handshake.
    pub(crate) fn start() -> io::Result<Worker> {
        if !in_main_executable() {
            return Err(io::Error::other(
                "this code is in a shared library, and workers run the executable that loaded it, which does not have its #[parallel_chunks] functions; use backend = \"threads\"",
            ));
        }
        let (ours, theirs) = UnixStream::pair()?;
        let (rings, ring_file) = Rings::create()?;
        let token = random_token();
        let mut child = spawn(token, theirs.as_raw_fd(), ring_file.as_raw_fd())?;
        drop(theirs);
        drop(ring_file);
        match greet(&ours, token) {
            Ok(Message::Ready { pid, build }) if build == entry::build_id() => Ok(Worker {
                child,
                rings,
                frame: Vec::new(),
                ended: None,
                reader: std::io::BufReader::with_capacity(64 << 10, ours.try_clone()?),
                read_timeout: Some(Duration::from_secs(20)),
                stream: ours,
                pid,
                outbox: SocketOutbox::default(),
                regions: HashSet::new(),
            }),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(refusal(other))
            }
        }
    }

    /// Sends one chunk to run after those already sent: its `attempt`, 0 for the first.
    pub(crate) fn send(
        &mut self,
        job: &Job,
        index: usize,
        attempt: u32,
        data: &ChunkData,
    ) -> Result<(), ChunkFailure> {
        let size = job.args.iter().map(ChunkData::inline_len).sum::<usize>() + data.inline_len();
        if size > protocol::MAX_PAYLOAD {
            return Err(ChunkFailure::BadData(format!(
                "the chunk and the other arguments are {size} bytes, over the {} bytes a message may carry; pass large inputs as `&[T]` of plain data, which go through shared memory",
                protocol::MAX_PAYLOAD
            )));
        }
        self.regions.retain(|id| job.live.contains(id));
        for piece in std::iter::once(data).chain(&job.args) {
            self.send_region(piece)?;
        }
        let run = Message::Run {
            function: job.remote.name.to_owned(),
            entry: job.remote.entry,
            body: job.remote.body,
            chunk: index as u32,
            chunks: job.lengths.len() as u32,
            attempt,
            retries: job.policy.retries,
            max_level: protocol::filter_to_wire(LevelFilter::current()),
            args: job.args.clone(),
            data: data.clone(),
            live: job.live.clone(),
        };
        let frame = protocol::encode(&run).map_err(|e| ChunkFailure::BadData(e.to_string()))?;
        if frame.len() <= ring::RUN_FRAME && self.rings.outgoing(End::Parent).push(&frame) {
            return Ok(());
        }
        self.on_socket(&frame, None)
    }

    /// Queues a frame on the socket, with a descriptor if given, after a marker in the ring
    /// that keeps it in order with the ring's frames. Queued, never waited on: a worker busy
    /// writing a result or events cannot read, and the parent must go on reading them, or both
    /// would wait on each other. The rest is written while waiting for the answer (`receive`).
    fn on_socket(&mut self, frame: &[u8], fd: Option<OwnedFd>) -> Result<(), ChunkFailure> {
        // The ring holds at most `IN_FLIGHT` runs of at most `RUN_FRAME` bytes and a marker
        // per region besides: it has room unless the worker stopped reading, which `receive`
        // then finds out.
        if !self.rings.outgoing(End::Parent).push_marker() {
            return Err(ChunkFailure::BadData(
                "the worker's channel is full: it stopped reading".into(),
            ));
        }
        self.outbox.queue(frame, fd);
        if self.flush().is_err() {
            self.kill();
        }
        Ok(())
    }

    /// Queues the region `data` lies in, with its descriptor, if this worker has not had it.
    fn send_region(&mut self, data: &ChunkData) -> Result<(), ChunkFailure> {
        if let ChunkData::Shared { fd, id, size, .. } = data
            && !self.regions.contains(id)
        {
            // SAFETY: `fd` is the region's descriptor, open for as long as the call that sends
            // it; we duplicate it to hold until it is written.
            let fd = unsafe { BorrowedFd::borrow_raw(*fd) }
                .try_clone_to_owned()
                .map_err(|e| ChunkFailure::BadData(format!("shared memory: {e}")))?;
            let frame = protocol::encode(&Message::Region {
                id: *id,
                size: *size,
            })
            .map_err(|e| ChunkFailure::BadData(e.to_string()))?;
            self.on_socket(&frame, Some(fd))?;
            self.regions.insert(*id);
        }
        Ok(())
    }

    /// Writes what the socket takes now of the queued frames, without waiting.
    fn flush(&mut self) -> io::Result<()> {
        self.outbox.flush(self.stream.as_raw_fd())
    }

    /// What the worker sent next, if it has sent something: a frame from the ring, or the frame
    /// the ring says is on the socket, which is read at once, waiting for it until `deadline`.
    pub(crate) fn hear(&mut self, deadline: Option<Instant>) -> Option<Heard> {
        match self.rings.incoming(End::Parent).pop(&mut self.frame) {
            Ok(Some(Popped::Frame)) => Some(match protocol::decode(&self.frame) {
                Ok((m, _)) => self.heard(m),
                Err(e) => self.broken(&e),
            }),
            Ok(Some(Popped::Elsewhere)) => Some(self.read_socket(deadline)),
            Ok(None) => self.ended.take().map(Heard::Died),
            Err(e) => Some(self.broken(&e)),
        }
    }

    /// Ends a worker whose frames cannot be read.
    fn broken(&mut self, e: &dyn std::fmt::Display) -> Heard {
        self.kill();
        Heard::Died(format!("protocol error: {e}"))
    }

    fn heard(&mut self, msg: Message) -> Heard {
        Heard::Reply(match msg {
            Message::Event {
                level,
                target,
                fields,
            } => {
                return Heard::Event {
                    level,
                    target,
                    fields,
                };
            }
            Message::Done { result, ran, retry } => Reply::Done(result, ran, retry),
            Message::Panicked { message, ran } => {
                Reply::Failed(ChunkFailure::Panicked(message), Some(ran))
            }
            Message::Unknown { .. } => Reply::Failed(ChunkFailure::UnknownFunction, None),
            Message::BadInput { message } => Reply::Failed(ChunkFailure::BadData(message), None),
            other => return self.broken(&format_args!("unexpected {other:?}")),
        })
    }

    /// Wakes the worker if it sleeps: a call is about to write to it.
    pub(crate) fn nudge(&self) {
        self.rings.outgoing(End::Parent).nudge();
    }

    /// Whether the worker has written something not yet heard.
    pub(crate) fn has_news(&self) -> bool {
        self.rings.incoming(End::Parent).has_data()
    }

    /// The ring the worker writes to, to sleep on.
    pub(crate) fn incoming(&self) -> Ring<'_> {
        self.rings.incoming(End::Parent)
    }

    /// Whether frames wait to be written to the socket.
    pub(crate) fn writing(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// The parent's end of the socket, to wait on with `poll`.
    pub(crate) fn socket(&self) -> i32 {
        self.stream.as_raw_fd()
    }

    /// After `poll` said what the socket is ready for (`revents`): writes what it takes of the
    /// queued frames, and notes how the worker ended if its end closed, for [`hear`](Self::hear)
    /// to say once what it wrote last has been heard.
    pub(crate) fn after_poll(&mut self, revents: i16) {
        if revents & libc::POLLOUT != 0 && self.flush().is_err() {
            self.kill();
        }
        if revents & (libc::POLLHUP | libc::POLLERR) != 0 && !self.has_news() {
            self.ended = Some(self.reap());
        }
    }

    /// Reads the frame the ring said is on the socket, within the chunk's deadline.
    fn read_socket(&mut self, deadline: Option<Instant>) -> Heard {
        let timeout = match deadline {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Heard::Late;
                }
                Some(left)
            }
            None => None,
        };
        // `SO_RCVTIMEO` only when it changes: a system call per frame otherwise.
        if timeout != self.read_timeout {
            if self.stream.set_read_timeout(timeout).is_err() && deadline.is_some() {
                return Heard::Late;
            }
            self.read_timeout = timeout;
        }
        match protocol::read(&mut self.reader) {
            Ok(m) => self.heard(m),
            Err(ReadError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && deadline.is_some() =>
            {
                Heard::Late
            }
            Err(ReadError::Decode(e)) => self.broken(&e),
            Err(ReadError::Closed | ReadError::Io(_)) => Heard::Died(self.reap()),
        }
    }

    pub(crate) fn kill(&mut self) {
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

/// Starts the worker process: this executable (or [`WORKER_PROGRAM`]) with the channel
/// `child_fd` on descriptor 3, the rings' file `ring_fd` on [`RING_FD`], and `token` in
/// [`CHANNEL_VAR`].
fn spawn(token: u128, child_fd: i32, ring_fd: i32) -> io::Result<Child> {
    // `/proc/self/exe` names the file this process runs even after it was deleted or replaced
    // by a rebuild, so the worker always has the parent's code. The worker gets the parent's
    // arguments, `argv[0]` included, so that state `main`'s callers derive from them (a
    // `LazyLock` over `std::env::args()`) is the same there.
    let mut args = std::env::args_os();
    let program = WORKER_PROGRAM
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| "/proc/self/exe".into());
    let mut cmd = Command::new(program);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args)
        .env(CHANNEL_VAR, format!("3:{token:032x}"))
        .stdin(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls: `dup2` puts the channel on
    // descriptor 3 and the rings' file on 4 (clearing close-on-exec there), `signal` ignores
    // SIGINT and SIGTERM from the start (Ctrl-C is the parent's to handle; the worker ends with
    // it), `prctl` asks for SIGKILL when this thread, the pool's long-lived spawner, goes away
    // with the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(child_fd, 3) < 0 || libc::dup2(ring_fd, RING_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Sends the `Hello` that proves this parent to the worker, and reads what it answers.
fn greet(ours: &UnixStream, token: u128) -> io::Result<Message> {
    let hello = Message::Hello {
        magic: MAGIC,
        version: VERSION,
        token,
        parent_pid: std::process::id(),
        max_level: protocol::filter_to_wire(LevelFilter::current()),
        build: entry::build_id().to_vec(),
        rings: RING_FD,
    };
    ours.set_read_timeout(Some(Duration::from_secs(20)))?;
    protocol::write(&mut &*ours, &hello)?;
    protocol::read(&mut &*ours).map_err(|e| io::Error::other(e.to_string()))
}

/// Why a started process is not a worker of this program, from what it answered the `Hello`.
fn refusal(answer: io::Result<Message>) -> io::Error {
    if let Ok(Message::Ready { build, .. }) = &answer {
        return io::Error::other(format!(
            "the worker is another build of this program (build {}, this one {}): it does not have this program's functions",
            hex(build),
            hex(entry::build_id())
        ));
    }
    io::Error::other(format!(
        "{} did not complete the worker handshake ({}); is it built with decor and run from the same binary?",
        std::env::current_exe()
            .map_or_else(|_| "this executable".into(), |p| p.display().to_string()),
        match answer {
            Ok(m) => format!("unexpected {m:?}"),
            Err(e) => e.to_string(),
        }
    ))
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

/// Whether this code (decor, and so every function the workers run) is in the executable that
/// `/proc/self/exe` starts, rather than in a shared library another program loaded: started as a
/// worker, that program would run its own `main`.
fn in_main_executable() -> bool {
    let base_of = |addr: usize| {
        // SAFETY: `dladdr` only reads the loader's tables and fills the struct we give it.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            (libc::dladdr(addr as *const libc::c_void, &mut info) != 0)
                .then_some(info.dli_fbase as usize)
        }
    };
    // SAFETY: `getauxval` reads the auxiliary vector the kernel gave this process.
    let entry = unsafe { libc::getauxval(libc::AT_ENTRY) } as usize;
    let ours = crate::backends::takeover::worker_main as fn() as usize;
    match (base_of(entry), base_of(ours)) {
        (Some(a), Some(b)) => a == b,
        // Without the loader's answer, assume the common case.
        _ => true,
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
