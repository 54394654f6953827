//! Passing a descriptor to another process over a Unix socket (`SCM_RIGHTS`): shared memory to a
//! worker process over its stream socket, and an MPI rank's rings over its datagram socket.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `sendmsg` of `bytes` with `fd` attached, without waiting, to the socket's peer or to the
/// address `to` (a datagram socket); what `sendmsg` returns.
pub(crate) fn send(
    socket: RawFd,
    to: Option<(libc::sockaddr_un, libc::socklen_t)>,
    bytes: &[u8],
    fd: RawFd,
) -> isize {
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut to = to;
    // SAFETY: a zeroed `msghdr` is valid; it points at our buffers and address, which outlive the
    // call, and the control message is built with the libc macros inside `control`, which is
    // large enough for one descriptor. `sendmsg` only reads the buffer `iov` points at.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        if let Some((addr, len)) = &mut to {
            msg.msg_name = (&raw mut *addr).cast();
            msg.msg_namelen = *len;
        }
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<i32>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<i32>() as u32) as _;
        libc::CMSG_DATA(cmsg).cast::<i32>().write_unaligned(fd);
        libc::sendmsg(socket, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    }
}

/// `recvmsg` into `buf`, with `flags` (`MSG_CMSG_CLOEXEC` is added): how many bytes came, and
/// each descriptor that came with them (close-on-exec), in order, pushed onto `received`.
pub(crate) fn receive(
    socket: RawFd,
    buf: &mut [u8],
    flags: i32,
    received: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    // Room for a few descriptors' control message; senders send one at a time.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed `msghdr` is valid; we point it at our buffers, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: `recvmsg` writes at most the lengths we gave into our buffers.
    let n = unsafe { libc::recvmsg(socket, &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages `recvmsg` filled in, with the libc macros; each
    // descriptor in them is new in this process and owned from here on.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<i32>();
                let count =
                    ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / size_of::<i32>();
                for i in 0..count {
                    received.push_back(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}
