//! Network namespace ids (`RTM_GETNSID`): how the socket's namespace numbers another one,
//! which is how a veth names the namespace of its peer (`IFLA_LINK_NETNSID`).
use std::os::fd::AsRawFd as _;

use super::message::{attr_u32, attrs_after, Plain, Request};
use super::{Error, Rtnl};

// include/uapi/linux/rtnetlink.h and net_namespace.h.
const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;

/// `struct rtgenmsg`, padded as netlink aligns it (attributes follow at 4 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RtGenMsg {
    family: u8,
    _pad: [u8; 3],
}
const _: () = assert!(size_of::<RtGenMsg>() == 4);
// SAFETY: integers only, padding explicit.
unsafe impl Plain for RtGenMsg {}

impl Rtnl {
    /// The id this socket's namespace gives the namespace `netns` is a handle of; `None`
    /// when it has given it none (no device of it links there).
    pub fn nsid_of(&mut self, netns: &std::fs::File) -> Result<Option<i32>, Error> {
        let mut req = Request::new(RTM_GETNSID, 0, &RtGenMsg::default());
        req.attr_u32(NETNSA_FD, netns.as_raw_fd() as u32);
        let nsid = self.query("RTM_GETNSID", req, RTM_NEWNSID, |payload| {
            attrs_after::<RtGenMsg>(payload)
                .find(|(ty, _)| *ty == NETNSA_NSID)
                .and_then(|(_, value)| attr_u32(value))
                .map(|v| v as i32)
        })?;
        // NETNSA_NSID_NOT_ASSIGNED.
        Ok(nsid.filter(|&id| id >= 0))
    }
}
