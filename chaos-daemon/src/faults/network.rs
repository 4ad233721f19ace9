//! Network loss and partition: request → kernel parameters, and arming them in the maps.
use chaos_common::net::{
    NetFault, PortRange, ALWAYS, DIR_EGRESS, DIR_INGRESS, FLAG_PEERS, MAX_PORT_RANGES, PROTO_ANY,
    PROTO_ICMP, PROTO_TCP, PROTO_UDP,
};
use chaos_proto::v1::{network_fault::Action, Direction, NetworkFault, Protocol};

use crate::{
    error::Error,
    kernel::{
        self,
        netmaps::{NetMaps, Peer},
    },
};

/// Most peer CIDRs one fault may list.
pub const MAX_PEERS_PER_FAULT: usize = 256;

/// A validated network fault, ready to be written at a slot.
#[derive(Clone, Debug, PartialEq)]
pub struct NetPlan {
    /// Parameters without the window.
    pub fault: NetFault,
    pub peers: Vec<Peer>,
    /// `network.loss`, `network.partition`, or the first impairment (`network.delay`, ...).
    pub kind: &'static str,
    /// Interfaces whose root qdisc and egress filter carry the impairments (empty without
    /// them); found from the target's processes when the fault is injected.
    pub ifaces: Vec<crate::kernel::ifaces::Iface>,
}

/// Validates a `NetworkFault`; errors name the field.
pub fn plan(spec: &NetworkFault) -> Result<NetPlan, Error> {
    let mut fault = NetFault {
        directions: match Direction::try_from(spec.direction) {
            Ok(Direction::Unspecified | Direction::Both) => DIR_EGRESS | DIR_INGRESS,
            Ok(Direction::Egress) => DIR_EGRESS,
            Ok(Direction::Ingress) => DIR_INGRESS,
            Err(_) => {
                return Err(Error::invalid(
                    "network.direction",
                    format!("unknown value {}", spec.direction),
                ))
            }
        },
        protocol: match Protocol::try_from(spec.protocol) {
            Ok(Protocol::Unspecified | Protocol::Any) => PROTO_ANY,
            Ok(Protocol::Tcp) => PROTO_TCP,
            Ok(Protocol::Udp) => PROTO_UDP,
            Ok(Protocol::Icmp) => PROTO_ICMP,
            Err(_) => {
                return Err(Error::invalid(
                    "network.protocol",
                    format!("unknown value {}", spec.protocol),
                ))
            }
        },
        ..NetFault::default()
    };
    if spec.ports.len() > MAX_PORT_RANGES {
        return Err(Error::invalid(
            "network.ports",
            format!("at most {MAX_PORT_RANGES} ranges, got {}", spec.ports.len()),
        ));
    }
    for (i, range) in spec.ports.iter().enumerate() {
        let field = format!("network.ports[{i}]");
        let last = if range.last == 0 {
            range.first
        } else {
            range.last
        };
        if range.first == 0 || range.first > 65_535 || last > 65_535 {
            return Err(Error::invalid(
                field,
                format!("ports are 1-65535, got {}-{}", range.first, last),
            ));
        }
        if last < range.first {
            return Err(Error::invalid(
                field,
                format!("range is reversed: {}-{}", range.first, last),
            ));
        }
        fault.ports[i] = PortRange {
            first: range.first as u16,
            last: last as u16,
        };
    }
    fault.port_count = spec.ports.len() as u8;
    let peers = parse_peers(&spec.peers)?;
    if !peers.is_empty() {
        fault.flags |= FLAG_PEERS;
    }
    let impairments = super::shape::plan(spec, &mut fault)?;
    let kind = match &spec.action {
        None => match impairments.first() {
            Some(kind) => kind,
            None => {
                return Err(Error::invalid(
                    "network.action",
                    "set loss, partition, delay, bandwidth, corrupt or duplicate",
                ))
            }
        },
        Some(Action::Loss(loss)) => {
            fault.threshold = threshold("network.loss.percent", loss.percent)?;
            "network.loss"
        }
        Some(Action::Partition(_)) => {
            if peers.is_empty() {
                return Err(Error::invalid(
                    "network.peers",
                    "a partition needs at least one peer CIDR (use loss 100 to drop everything)",
                ));
            }
            fault.threshold = ALWAYS;
            "network.partition"
        }
    };
    Ok(NetPlan {
        fault,
        peers,
        kind,
        ifaces: Vec::new(),
    })
}

/// Draw threshold for a percentage (`field` names it in errors): an event is chosen when a
/// uniform 32-bit draw is below it, so the probability is exact to 2⁻³² (no modulo bias).
pub fn threshold(field: &str, percent: f64) -> Result<u64, Error> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(Error::invalid(
            field,
            format!("must be in (0, 100], got {percent}"),
        ));
    }
    // Resolution 0.01 %: basis points of a percent, 1..=10_000.
    let hundredths = (percent * 100.0).round() as u64;
    if hundredths == 0 {
        return Err(Error::invalid(
            field,
            format!("{percent} is below the 0.01 resolution"),
        ));
    }
    if hundredths >= 10_000 {
        return Ok(ALWAYS);
    }
    Ok((hundredths * ALWAYS + 5_000) / 10_000)
}

fn parse_peers(peers: &[String]) -> Result<Vec<Peer>, Error> {
    if peers.len() > MAX_PEERS_PER_FAULT {
        return Err(Error::invalid(
            "network.peers",
            format!("at most {MAX_PEERS_PER_FAULT} CIDRs, got {}", peers.len()),
        ));
    }
    peers
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let net: ipnet::IpNet = text
                .trim()
                .parse()
                .or_else(|_| {
                    // A bare address is a /32 or /128.
                    text.trim()
                        .parse::<std::net::IpAddr>()
                        .map(ipnet::IpNet::from)
                })
                .map_err(|_| {
                    Error::invalid(
                        format!("network.peers[{i}]"),
                        format!("{text:?} is not an IPv4 or IPv6 CIDR"),
                    )
                })?;
            Ok(match net.trunc() {
                ipnet::IpNet::V4(v4) => Peer {
                    addr: v4.addr().to_ipv6_mapped().octets(),
                    prefix: 96 + u32::from(v4.prefix_len()),
                },
                ipnet::IpNet::V6(v6) => Peer {
                    addr: v6.addr().octets(),
                    prefix: u32::from(v6.prefix_len()),
                },
            })
        })
        .collect()
}

/// Writes the fault's parameters (with its window, in the kernel clock) and peers at `slot`,
/// before any attachment points at the slot; true when they were new (not those of a fault
/// adopted after a restart). On failure everything written is taken back out.
pub fn arm(
    maps: &mut NetMaps,
    slot: u32,
    plan: &NetPlan,
    window_ns: (u64, u64),
) -> Result<bool, kernel::Error> {
    let fault = NetFault {
        start_ns: window_ns.0,
        end_ns: window_ns.1,
        ..plan.fault
    };
    let result = (|| {
        // A restarted daemon re-arms adopted faults: keep their counters if already there.
        let fresh = maps.fault(slot)? != fault;
        if fresh {
            maps.write_fault(slot, &fault)?;
        }
        for peer in &plan.peers {
            maps.add_peer(slot, peer)?;
        }
        Ok(fresh)
    })();
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = disarm(maps, slot, plan);
    }
    result
}

/// Clears a slot's peers and parameters, once no attachment points at it any more.
pub fn disarm(maps: &mut NetMaps, slot: u32, plan: &NetPlan) -> Result<(), kernel::Error> {
    let mut first_error = None;
    for peer in &plan.peers {
        if let Err(err) = maps.remove_peer(slot, peer) {
            first_error.get_or_insert(err);
        }
    }
    if let Err(err) = maps.clear_fault(slot) {
        first_error.get_or_insert(err);
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use chaos_proto::v1::{Loss, Partition, PortRange as ApiRange};

    use super::*;

    fn loss(percent: f64) -> NetworkFault {
        NetworkFault {
            action: Some(Action::Loss(Loss { percent })),
            ..NetworkFault::default()
        }
    }

    fn field_of(result: Result<NetPlan, Error>) -> String {
        match result {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    const F: &str = "network.loss.percent";

    #[test]
    fn thresholds_are_exact_to_two_to_the_minus_32() {
        assert_eq!(threshold(F, 100.0).ok(), Some(ALWAYS));
        assert_eq!(threshold(F, 50.0).ok(), Some(ALWAYS / 2));
        assert_eq!(threshold(F, 0.01).ok(), Some((ALWAYS + 5_000) / 10_000));
        for bad in [0.0, -1.0, 100.5, f64::NAN, 0.001] {
            assert!(threshold(F, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(field_of(plan(&loss(150.0))), "network.loss.percent");
        assert_eq!(field_of(plan(&NetworkFault::default())), "network.action");
        let mut reversed = loss(10.0);
        reversed.ports = vec![ApiRange {
            first: 90,
            last: 80,
        }];
        assert_eq!(field_of(plan(&reversed)), "network.ports[0]");
        let mut cidr = loss(10.0);
        cidr.peers = vec!["10.0.0.0/8".into(), "10.0.0.0/99".into()];
        assert_eq!(field_of(plan(&cidr)), "network.peers[1]");
        let partition = NetworkFault {
            action: Some(Action::Partition(Partition {})),
            ..NetworkFault::default()
        };
        assert_eq!(field_of(plan(&partition)), "network.peers");
    }

    #[test]
    fn maps_ipv4_peers_into_ipv6() {
        let mut spec = loss(10.0);
        spec.peers = vec![
            "192.0.2.7/24".into(),
            "2001:db8::/32".into(),
            "198.51.100.1".into(),
        ];
        let plan = plan(&spec).expect("valid");
        assert_eq!(plan.peers[0].prefix, 96 + 24);
        assert_eq!(&plan.peers[0].addr[10..], &[0xff, 0xff, 192, 0, 2, 0]);
        assert_eq!(plan.peers[1].prefix, 32);
        assert_eq!(plan.peers[2].prefix, 128);
        assert_eq!(plan.fault.flags, FLAG_PEERS);
    }
}
