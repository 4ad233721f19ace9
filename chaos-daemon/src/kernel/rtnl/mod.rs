//! A small blocking rtnetlink client: list links, swap the root qdisc, attach cls_bpf filters on clsact.

mod filter;
mod link;
mod message;
mod nsid;
mod qdisc;
mod socket;

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

pub use filter::{Filter, TcDir};
pub use link::Link;
pub use qdisc::{FqOptions, Qdisc};

use crate::kernel::netns;

/// Parent of a device's root qdisc (include/uapi/linux/pkt_sched.h).
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;
/// Parent of the clsact (and ingress) qdisc; the same value as `TC_H_INGRESS`.
pub const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
/// Handle tc gives the clsact qdisc (`ffff:`).
pub const CLSACT_HANDLE: u32 = 0xFFFF_0000;
/// Minor of the clsact ingress hook (`ffff:fff2`).
pub const TC_H_MIN_INGRESS: u16 = 0xFFF2;
/// Minor of the clsact egress hook (`ffff:fff3`).
pub const TC_H_MIN_EGRESS: u16 = 0xFFF3;

/// `TC_H_MAKE(major << 16, minor)`: tc's `major:minor` handle notation as one u32.
pub fn tc_handle(major: u16, minor: u16) -> u32 {
    (u32::from(major) << 16) | u32::from(minor)
}

// Attributes shared by qdiscs and filters (include/uapi/linux/rtnetlink.h).
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;

/// How often a dump is restarted when the kernel flags it as interrupted by a concurrent change.
const DUMP_ATTEMPTS: usize = 3;

/// An rtnetlink operation failed. Messages name the request (message type, object and
/// interface index), then the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the netlink socket failed.
    #[error("netlink socket: {call}: {source}")]
    Socket {
        call: &'static str,
        source: io::Error,
    },
    /// Entering the namespace to create the socket in failed.
    #[error("netlink socket: {0}")]
    Netns(#[from] netns::Error),
    /// `sendto` or `recvfrom` on the socket failed.
    #[error("{request}: {call}: {source}")]
    Io {
        request: String,
        call: &'static str,
        source: io::Error,
    },
    /// The kernel refused the request with `source` (an errno); `extack` is the reason it
    /// gave, when it gave one.
    #[error("{request}: {source}{}", .extack.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        request: String,
        source: io::Error,
        extack: Option<String>,
    },
    /// Another qdisc (an `ingress` one) holds the slot clsact needs.
    #[error("{request}: qdisc {found} already holds clsact's place (ffff:)")]
    Occupied { request: String, found: String },
    /// The kernel's reply could not be parsed.
    #[error("{request}: malformed reply: {reason}")]
    Malformed {
        request: String,
        reason: &'static str,
    },
    /// A dump was interrupted by concurrent changes every time it was tried.
    #[error("{request}: dump interrupted by concurrent changes {DUMP_ATTEMPTS} times")]
    Interrupted { request: String },
    /// The arguments cannot be encoded, or would mean something else to the kernel.
    #[error("{request}: {reason}")]
    Invalid {
        request: String,
        reason: &'static str,
    },
}

impl Error {
    /// The errno behind the error, when there is one (`EEXIST` for [`Error::Occupied`]).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Socket { source, .. }
            | Error::Io { source, .. }
            | Error::Kernel { source, .. } => source.raw_os_error(),
            Error::Netns(e) => e.errno(),
            Error::Occupied { .. } => Some(libc::EEXIST),
            Error::Malformed { .. } | Error::Interrupted { .. } | Error::Invalid { .. } => None,
        }
    }
}

/// A NETLINK_ROUTE socket. A netlink socket stays bound to the network namespace it was
/// created in, whichever thread uses it later.
#[derive(Debug)]
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the network namespace behind `netns` (`/run/netns/NAME`,
    /// `/proc/PID/ns/net`): a short-lived thread enters it and creates the socket, which
    /// stays there and can be used from any thread afterwards.
    pub fn open_in(netns: &Path) -> Result<Self, Error> {
        netns::run_in(netns, Rtnl::open)?
    }
}

fn kernel(request: &str, errno: i32, extack: Option<String>) -> Error {
    Error::Kernel {
        request: request.to_owned(),
        source: io::Error::from_raw_os_error(errno),
        extack,
    }
}

fn malformed(request: &str, reason: &'static str) -> Error {
    Error::Malformed {
        request: request.to_owned(),
        reason,
    }
}

fn io_error(request: &str, call: &'static str, source: io::Error) -> Error {
    Error::Io {
        request: request.to_owned(),
        call,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_errors_read_like_tc() {
        assert_eq!(tc_handle(0xffff, TC_H_MIN_EGRESS), 0xffff_fff3);
        assert_eq!(tc_handle(1, 0), 0x1_0000);
        let e = kernel("RTM_NEWQDISC fq on ifindex 3", libc::EEXIST, None);
        assert_eq!(
            e.to_string(),
            "RTM_NEWQDISC fq on ifindex 3: File exists (os error 17)"
        );
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let e = kernel(
            "RTM_NEWQDISC fq on ifindex 3",
            libc::ENOENT,
            Some("Specified qdisc kind is unknown".into()),
        );
        assert!(e
            .to_string()
            .ends_with("(os error 2): Specified qdisc kind is unknown"));
    }
}
