//! The parent's queue of frames for a worker's socket: written as the socket takes them, never
//! waited on.
//!
//! A worker busy writing a result or events cannot read; if the parent waited for the socket to
//! take a frame, and the worker for the parent to read its own, both would wait forever. So the
//! parent queues what goes on the socket (regions with their descriptors, frames too large for the
//! ring) and writes what the socket takes each time it looks, while it reads the worker's replies.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::backends::descriptor;

/// Frames queued for one socket, with the descriptors to send alongside.
#[derive(Default)]
pub(crate) struct SocketOutbox {
    /// Frames queued but not yet written.
    bytes: Vec<u8>,
    /// Bytes ever written to the socket, and ever queued: positions in the stream.
    written: u64,
    queued: u64,
    /// Descriptors to send with the byte at these positions (`SCM_RIGHTS`).
    descriptors: VecDeque<(u64, OwnedFd)>,
}

impl SocketOutbox {
    /// Queues `frame`, with `fd` to go with its first byte if given.
    pub(crate) fn queue(&mut self, frame: &[u8], fd: Option<OwnedFd>) {
        if let Some(fd) = fd {
            self.descriptors.push_back((self.queued, fd));
        }
        self.bytes.extend_from_slice(frame);
        self.queued += frame.len() as u64;
    }

    /// Whether frames wait to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Writes what `socket` takes now of the queued frames, without waiting; a descriptor goes
    /// with the first byte of its frame, alone in its `sendmsg` so that it cannot come with bytes
    /// of the frame before.
    pub(crate) fn flush(&mut self, socket: RawFd) -> io::Result<()> {
        while !self.bytes.is_empty() {
            let (len, fd) = self.next_write();
            let n = match fd {
                Some(fd) => descriptor::send(socket, None, &self.bytes[..len], fd),
                // SAFETY: `send` reads at most `len` bytes of our buffer; `MSG_DONTWAIT` makes it
                // return instead of waiting, `MSG_NOSIGNAL` an error instead of SIGPIPE.
                None => unsafe {
                    libc::send(
                        socket,
                        self.bytes.as_ptr().cast(),
                        len,
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                },
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if fd.is_some() {
                self.descriptors.pop_front(); // the kernel holds its own copy now
            }
            self.bytes.drain(..n as usize);
            self.written += n as u64;
        }
        Ok(())
    }

    /// How many bytes the next write may take (up to the next descriptor's frame), and the
    /// descriptor to send with them if one starts here.
    fn next_write(&self) -> (usize, Option<RawFd>) {
        let (len, fd) = match self.descriptors.front() {
            Some((at, fd)) if *at == self.written => {
                let next = self
                    .descriptors
                    .get(1)
                    .map(|(at, _)| (at - self.written) as usize);
                (next.unwrap_or(usize::MAX), Some(fd.as_raw_fd()))
            }
            Some((at, _)) => ((at - self.written) as usize, None),
            None => (usize::MAX, None),
        };
        (len.min(self.bytes.len()), fd)
    }
}
