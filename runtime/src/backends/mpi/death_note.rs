//! What a serving rank that dies says first, on stderr: which function, chunk and rank, since
//! `mpirun` only says which rank died.
//!
//! The note is kept in pieces: the rank and host once, the function when it changes, the chunk
//! before each chunk, so that a chunk pays a few stores and not a formatted line (which cost a
//! rank about half a microsecond of every tiny chunk). The signal handler assembles the line with
//! nothing but copies and digits, which is safe in a signal handler.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};

/// Text a signal handler can read while it may be rewritten: bytes in atomics.
struct Text {
    bytes: [AtomicU8; 256],
    len: AtomicUsize,
}

impl Text {
    const fn new() -> Text {
        Text {
            bytes: [const { AtomicU8::new(0) }; 256],
            len: AtomicUsize::new(0),
        }
    }

    fn set(&self, text: &str) {
        let n = text.len().min(self.bytes.len());
        for (slot, b) in self.bytes.iter().zip(&text.as_bytes()[..n]) {
            slot.store(*b, Ordering::Relaxed);
        }
        self.len.store(n, Ordering::Release);
    }
}

static PLACE: Text = Text::new();
static FUNCTION: Text = Text::new();
static CHUNK: AtomicU32 = AtomicU32::new(0);
static CHUNKS: AtomicU32 = AtomicU32::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);

/// A line assembled on the stack.
struct Line {
    buf: [u8; 768],
    len: usize,
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn push_text(&mut self, text: &Text) {
        let n = text.len.load(Ordering::Acquire);
        for slot in &text.bytes[..n] {
            self.push(&[slot.load(Ordering::Relaxed)]);
        }
    }

    fn push_number(&mut self, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }
}

/// The note's line, if a chunk is running.
fn line() -> Option<Line> {
    if !RUNNING.load(Ordering::Acquire) {
        return None;
    }
    let mut line = Line {
        buf: [0; 768],
        len: 0,
    };
    line.push(b"decor: ");
    line.push_text(&PLACE);
    line.push(b" died running chunk ");
    line.push_number(CHUNK.load(Ordering::Relaxed));
    line.push(b" of ");
    line.push_number(CHUNKS.load(Ordering::Relaxed));
    line.push(b" of ");
    line.push_text(&FUNCTION);
    line.push(b"; MPI ends the whole job when a rank dies\n");
    Some(line)
}

/// Notes this rank's place once, and writes the note when a fatal signal comes.
pub(super) fn install(rank: i32, host: &str) {
    PLACE.set(&format!("rank {rank} on {host}"));
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

/// Before a chunk: which one it is. `function` is set only when it changed from `last`.
pub(super) fn running(function: &str, last: &mut String, chunk: u32, chunks: u32) {
    if function != last {
        FUNCTION.set(function);
        function.clone_into(last);
    }
    CHUNK.store(chunk, Ordering::Relaxed);
    CHUNKS.store(chunks, Ordering::Relaxed);
    RUNNING.store(true, Ordering::Release);
}

/// After a chunk: nothing to say if the rank dies now.
pub(super) fn idle() {
    RUNNING.store(false, Ordering::Release);
}

extern "C" fn on_fatal_signal(sig: i32) {
    if let Some(line) = line() {
        // SAFETY: `write` is async-signal-safe, on a buffer of ours.
        unsafe { libc::write(2, line.buf.as_ptr().cast(), line.len) };
    }
    // SAFETY: `raise` is async-signal-safe; the handler was reset to the default
    // (`SA_RESETHAND`), so raising again ends the process with the same signal.
    unsafe { libc::raise(sig) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_place_chunk_and_function_and_only_while_running() {
        PLACE.set("rank 2 on node7");
        let mut last = String::new();
        running("count_words", &mut last, 31, 120);
        let l = line().expect("a chunk runs");
        assert_eq!(
            std::str::from_utf8(&l.buf[..l.len]).unwrap(),
            "decor: rank 2 on node7 died running chunk 31 of 120 of count_words; MPI ends the whole job when a rank dies\n"
        );
        running("sum", &mut last, 0, 8);
        let l = line().expect("a chunk runs");
        assert!(
            std::str::from_utf8(&l.buf[..l.len])
                .unwrap()
                .contains("chunk 0 of 8 of sum;")
        );
        idle();
        assert!(line().is_none());
    }
}
