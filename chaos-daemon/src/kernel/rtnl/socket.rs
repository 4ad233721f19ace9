//! The socket itself: opening it, sending a request, and reading acks and multipart dumps.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::message::{attr_u32, messages, parse_error, Request, NLM_F_ACK, NLM_F_DUMP};
use super::message::{NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, NLM_F_DUMP_INTR};
use super::{io_error, kernel, malformed, Error, Rtnl, DUMP_ATTEMPTS};

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, Error> {
        // SAFETY: plain syscall with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Error::Socket {
                call: "socket(AF_NETLINK, NETLINK_ROUTE)",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Extended acks carry the kernel's reason ("Specified qdisc kind is unknown") next to
        // the errno; capped acks stop it from echoing our whole request back. Best effort:
        // without them errors are plain errnos.
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            let on: libc::c_int = 1;
            // SAFETY: `on` is a live c_int and its size is passed.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_NETLINK,
                    opt,
                    std::ptr::from_ref(&on).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// Sends `req` with `NLM_F_ACK` and waits for the kernel's ack or error.
    pub(super) fn execute(&mut self, request: &str, mut req: Request) -> Result<(), Error> {
        let seq = self.send(request, &mut req, NLM_F_ACK)?;
        loop {
            let n = self.recv(request)?;
            for msg in messages(&self.buf[..n]) {
                let (hdr, payload) = msg.map_err(|reason| malformed(request, reason))?;
                // Anything else is left over from an earlier request.
                if hdr.seq != seq || hdr.ty != NLMSG_ERROR {
                    continue;
                }
                let (errno, extack) = parse_error(hdr.flags, payload)
                    .ok_or_else(|| malformed(request, "short NLMSG_ERROR"))?;
                return match errno {
                    0 => Ok(()),
                    errno => Err(kernel(request, errno, extack)),
                };
            }
        }
    }

    /// Sends `req` and returns what `parse` makes of the one `reply_ty` message answering it
    /// (`None` when the kernel answered with something else).
    pub(super) fn query<T>(
        &mut self,
        request: &str,
        mut req: Request,
        reply_ty: u16,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let seq = self.send(request, &mut req, 0)?;
        loop {
            let n = self.recv(request)?;
            for msg in messages(&self.buf[..n]) {
                let (hdr, payload) = msg.map_err(|reason| malformed(request, reason))?;
                if hdr.seq != seq {
                    continue;
                }
                if hdr.ty == NLMSG_ERROR {
                    let (errno, extack) = parse_error(hdr.flags, payload)
                        .ok_or_else(|| malformed(request, "short NLMSG_ERROR"))?;
                    return Err(kernel(request, errno, extack));
                }
                return Ok((hdr.ty == reply_ty).then(|| parse(payload)).flatten());
            }
        }
    }

    /// Sends a dump request and collects what `parse` makes of each `reply_ty` message
    /// (`None` skips one). Restarts when the kernel says the dump was interrupted.
    pub(super) fn dump<T>(
        &mut self,
        request: &str,
        mut req: Request,
        reply_ty: u16,
        mut parse: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, Error> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.send(request, &mut req, NLM_F_DUMP)?;
            let mut items = Vec::new();
            let mut interrupted = false;
            loop {
                let n = self.recv(request)?;
                let mut status = None;
                for msg in messages(&self.buf[..n]) {
                    let (hdr, payload) = msg.map_err(|reason| malformed(request, reason))?;
                    if hdr.seq != seq {
                        continue;
                    }
                    interrupted |= hdr.flags & NLM_F_DUMP_INTR != 0;
                    match hdr.ty {
                        // NLMSG_DONE carries the dump's final status, an int, negative when
                        // the dump failed part-way.
                        NLMSG_DONE => {
                            let code = attr_u32(payload).map_or(0, |c| c as i32);
                            status = Some((code.saturating_neg(), None));
                            break;
                        }
                        NLMSG_ERROR => {
                            status = Some(
                                parse_error(hdr.flags, payload)
                                    .ok_or_else(|| malformed(request, "short NLMSG_ERROR"))?,
                            );
                            break;
                        }
                        NLMSG_OVERRUN => return Err(malformed(request, "NLMSG_OVERRUN")),
                        ty if ty == reply_ty => items.extend(parse(payload)),
                        _ => {}
                    }
                }
                match status {
                    None => continue,
                    Some((0, _)) => break,
                    Some((errno, extack)) => return Err(kernel(request, errno, extack)),
                }
            }
            if !interrupted {
                return Ok(items);
            }
        }
        Err(Error::Interrupted {
            request: request.to_owned(),
        })
    }

    fn send(&mut self, request: &str, req: &mut Request, flags: u16) -> Result<u32, Error> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = req
            .finish(self.seq, flags)
            .map_err(|reason| Error::Invalid {
                request: request.to_owned(),
                reason,
            })?;
        let addr = kernel_addr();
        loop {
            // SAFETY: `bytes` and `addr` are live for the call and their sizes are passed.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    0,
                    std::ptr::from_ref(&addr).cast(),
                    size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                // A netlink datagram is taken whole or not at all.
                return Ok(self.seq);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(io_error(request, "sendto", e));
            }
        }
    }

    /// Receives one datagram from the kernel into `self.buf`, growing it first if the
    /// datagram would not fit (peeked with `MSG_PEEK | MSG_TRUNC`, which returns its full size).
    fn recv(&mut self, request: &str) -> Result<usize, Error> {
        loop {
            let peeked = self.recvfrom(libc::MSG_PEEK | libc::MSG_TRUNC);
            let size = match peeked {
                Ok((size, _)) => size,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(request, "recvfrom", e)),
            };
            if size > self.buf.len() {
                self.buf.resize(size, 0);
            }
            match self.recvfrom(0) {
                // Only the kernel (port 0) answers our requests; drop anything else.
                Ok((n, 0)) => return Ok(n.min(self.buf.len())),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(request, "recvfrom", e)),
            }
        }
    }

    /// `recvfrom` into `self.buf`: (returned size, sender's port id).
    fn recvfrom(&mut self, flags: libc::c_int) -> io::Result<(usize, u32)> {
        let mut addr = kernel_addr();
        let mut addr_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `self.buf` is writable for its length; `addr`/`addr_len` describe a live
        // sockaddr_nl.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                flags,
                std::ptr::from_mut(&mut addr).cast(),
                &mut addr_len,
            )
        };
        match usize::try_from(n) {
            Ok(n) => Ok((n, addr.nl_pid)),
            Err(_) => Err(io::Error::last_os_error()),
        }
    }
}

// Socket options from include/uapi/linux/netlink.h.
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

/// The kernel's netlink address (port 0).
fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain integers; all zero is valid (and has a private pad field,
    // so it cannot be built with a literal).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}
