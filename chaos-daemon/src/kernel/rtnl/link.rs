//! Network interfaces as `RTM_GETLINK` lists them.

use super::message::{attr_string, attr_u32, attrs, attrs_after, IfInfoMsg, Plain, Request};
use super::{Error, Rtnl};

// include/uapi/linux/rtnetlink.h and if_link.h.
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_LINK_NETNSID: u16 = 37;

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// The driver kind from `IFLA_LINKINFO`/`IFLA_INFO_KIND` (`veth`, `bridge`, …); `None`
    /// for physical devices and `lo`.
    pub kind: Option<String>,
    /// `IFLA_LINK` when it names another device: for a veth, the peer's index (in the
    /// peer's namespace, where it may equal `ifindex`); for a VLAN or macvlan, the lower
    /// device.
    pub peer_ifindex: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the peer's namespace as this namespace numbers it, present
    /// when the peer lives in another namespace.
    pub peer_netnsid: Option<i32>,
}

impl Rtnl {
    /// Every interface in the socket's namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, Error> {
        let req = Request::new(RTM_GETLINK, 0, &IfInfoMsg::default());
        self.dump("RTM_GETLINK dump", req, RTM_NEWLINK, parse_link)
    }
}

fn parse_link(payload: &[u8]) -> Option<Link> {
    let ifi = IfInfoMsg::read(payload)?;
    let ifindex = u32::try_from(ifi.index).ok()?;
    let mut link = Link {
        ifindex,
        name: String::new(),
        up: ifi.flags & libc::IFF_UP as u32 != 0,
        loopback: ifi.flags & libc::IFF_LOOPBACK as u32 != 0,
        kind: None,
        peer_ifindex: None,
        peer_netnsid: None,
    };
    let mut iflink = None;
    for (ty, value) in attrs_after::<IfInfoMsg>(payload) {
        match ty {
            IFLA_IFNAME => link.name = attr_string(value),
            // A veth whose peer is already gone reports 0 (veth_get_iflink), and the kernel
            // sends IFLA_LINK even then when the peer's namespace differs (nla_put_iflink):
            // https://elixir.bootlin.com/linux/v6.1/source/drivers/net/veth.c
            // https://elixir.bootlin.com/linux/v6.1/source/net/core/rtnetlink.c
            IFLA_LINK => iflink = attr_u32(value),
            IFLA_LINK_NETNSID => link.peer_netnsid = attr_u32(value).map(|v| v as i32),
            IFLA_LINKINFO => {
                link.kind = attrs(value)
                    .find(|(ty, _)| *ty == IFLA_INFO_KIND)
                    .map(|(_, kind)| attr_string(kind));
            }
            _ => {}
        }
    }
    // The same index is the device itself only within one namespace: a veth peer in
    // another one often has the same small index.
    link.peer_ifindex = iflink.filter(|&i| i != 0 && (i != ifindex || link.peer_netnsid.is_some()));
    Some(link)
}
