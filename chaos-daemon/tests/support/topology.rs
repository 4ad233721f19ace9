//! The standard two-namespace test topology: A and B joined by one veth, with fixed documentation addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::netns::{Netns, VethPair};

/// A's IPv4 address on the veth.
pub const A_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// A's IPv6 address on the veth.
pub const A_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// B's IPv4 address on the veth, in A's connected subnet.
pub const B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A second IPv4 address of B, outside A's subnet: A reaches 198.51.100.0/24 through a
/// route via B, so tests can target a destination CIDR distinct from the link's.
pub const B_V4_ROUTED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// B's IPv6 address on the veth.
pub const B_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// Two namespaces joined by a veth:
///
/// - A (`a`, end `veth.a`): 192.0.2.1/24, 2001:db8::1/64, route 198.51.100.0/24 via 192.0.2.2
/// - B (`b`, end `veth.b`): 192.0.2.2/24, 198.51.100.2/24, 2001:db8::2/64
///
/// Dropping it deletes both namespaces (and with them the veth).
#[derive(Debug)]
pub struct TwoNs {
    /// The veth between them (no Drop of its own).
    pub veth: VethPair,
    /// The "client" namespace, where probes usually run.
    pub a: Netns,
    /// The "server" namespace, where echo servers and sinks usually run.
    pub b: Netns,
}

impl TwoNs {
    /// Builds the topology described on the type. Panics on failure, after removing
    /// whatever was created.
    pub fn new() -> TwoNs {
        let a = Netns::new();
        let b = Netns::new();
        let veth = VethPair::with_addrs(
            &a,
            &["192.0.2.1/24", "2001:db8::1/64"],
            &b,
            &["192.0.2.2/24", "198.51.100.2/24", "2001:db8::2/64"],
        );
        veth.a.add_route("198.51.100.0/24", Some("192.0.2.2"));
        TwoNs { veth, a, b }
    }
}
