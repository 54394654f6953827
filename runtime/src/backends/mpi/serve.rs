//! A serving rank's life: chunks from rank 0 until it says stop, each run by the remote path's
//! [`answer`]; the raw bytes of a chunk received into one kept buffer, a mapped file's range mapped
//! here.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use mpi::point_to_point::Source;
use mpi::topology::Communicator;

use super::{JOB, MPI_LOCK, SERVING, TAG_DATA, death_note, poll, rings, world};
use crate::remote::answer::{Request, answer};
use crate::remote::events::Forwarder;
use crate::remote::input::Piece;
use crate::remote::protocol::{self, ChunkData, Message};

/// A serving rank's life: chunks from rank 0 until it says stop.
pub(super) fn serve(rank: i32) -> ! {
    SERVING.store(true, Ordering::Relaxed);
    // Ctrl-C is rank 0's (mpirun forwards it to every rank); we end when rank 0 says so.
    // SAFETY: `signal` with constant arguments.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    death_note::install(rank, &host());
    let level = forward_events();
    let mut served = Served::default();
    let mut frame = Vec::new();
    loop {
        rings::receive_from_zero(&mut frame);
        let msg = match protocol::decode(&frame) {
            Ok((m, _)) => m,
            Err(_) => continue,
        };
        if !matches!(msg, Message::Run { .. }) {
            break; // `Stop`, or nothing this rank knows: leave cleanly
        }
        let reply = served.run(rank, msg, &level);
        if let Ok(frame) = protocol::encode(&reply) {
            rings::send(0, &frame);
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

/// Sends the events of chunk bodies to rank 0, at or above the level it holds (each `Run`
/// sets it to what rank 0's subscribers want).
fn forward_events() -> Arc<AtomicU8> {
    let level = Arc::new(AtomicU8::new(0));
    let forwarder = Forwarder::sending(
        Box::new(|m| {
            if let Ok(frame) = protocol::encode(m) {
                rings::send(0, &frame);
            }
        }),
        level.clone(),
    );
    let _ = tracing::subscriber::set_global_default(forwarder);
    level
}

/// What a rank keeps from one chunk to the next.
#[derive(Default)]
struct Served {
    /// The function of the last chunk, for the death note.
    last_function: String,
    /// One receive buffer for every raw chunk: a fresh one per chunk would fault in each of its
    /// pages again as the bytes land.
    raw: Vec<u128>,
}

impl Served {
    /// Runs the chunk of a `Run` and gives the reply.
    fn run(&mut self, rank: i32, msg: Message, level: &AtomicU8) -> Message {
        let Message::Run {
            function,
            entry,
            body,
            chunk,
            chunks,
            attempt,
            retries,
            max_level,
            args,
            data,
            ..
        } = msg
        else {
            unreachable!("only a `Run` is run");
        };
        level.store(max_level, Ordering::Relaxed);
        if let ChunkData::Raw { len } = &data {
            receive_raw(*len as usize, &mut self.raw);
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
        death_note::running(&function, &mut self.last_function, chunk, chunks);
        let reply = answer(Request {
            function: &function,
            entry,
            body,
            args: args.iter().map(piece).collect(),
            chunk: chunk_piece(&data, mapped.as_ref(), &self.raw),
            index: chunk,
            chunks,
            attempt,
            retries,
        });
        if self.raw.len() * 16 > KEEP_RAW_BYTES {
            self.raw = Vec::new();
        }
        death_note::idle();
        reply
    }
}

/// A piece that came in the `Run` itself.
fn piece(data: &ChunkData) -> Result<Piece<'_>, String> {
    match data {
        ChunkData::Inline(bytes) => Ok(Piece { bytes, raw: false }),
        ChunkData::Bytes(bytes) => Ok(Piece { bytes, raw: true }),
        ChunkData::Raw { .. } | ChunkData::File { .. } => {
            Err("raw data or a file range outside the chunk".to_owned())
        }
        ChunkData::Shared { .. } => Err("shared memory does not cross ranks".to_owned()),
    }
}

/// The chunk's piece: in its mapped file range, in the raw bytes received after the `Run`, or in
/// the `Run`.
fn chunk_piece<'a>(
    data: &'a ChunkData,
    mapped: Option<&'a Result<(memmap2::Mmap, usize, usize), String>>,
    raw: &'a [u128],
) -> Result<Piece<'a>, String> {
    match (data, mapped) {
        (_, Some(Err(e))) => Err(e.clone()),
        (_, Some(Ok((map, at, len)))) => Ok(Piece {
            bytes: &map[*at..*at + *len],
            raw: true,
        }),
        (ChunkData::Raw { len }, None) => Ok(Piece {
            bytes: bytemuck::cast_slice::<u128, u8>(raw)
                .split_at(*len as usize)
                .0,
            raw: true,
        }),
        (other, None) => piece(other),
    }
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
