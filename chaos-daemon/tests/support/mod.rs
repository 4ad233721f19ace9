//! Integration-test harness for faultline: real namespaces, veths, cgroups, probe processes, servers and the daemon, each cleaned up by an RAII guard.
//
// Include it with `mod support;` at the top of a test file and invoke
// `probe_entry!();` once at the top level if the file spawns probes. A typical test:
//
// ```ignore
// if !require_root() { return; }
// let net = TwoNs::new();                         // A <-veth-> B, documentation addresses
// let cg = TestCgroup::new();                     // fl-XXXXXXXX under the cgroup2 mount
// let echo = UdpEchoServer::start(&net.b, (B_V4, 0).into());
// let r = spawn_probe(ProbeJob::udp_echo(echo.addr(), 2000), &net.a, &cg).wait();
// assert_eq!(r["received"], 2000);
// ```
//
// Guards drop in reverse declaration order, so declare namespaces and cgroups first
// and the servers and probes that live in them afterwards.

// Each test binary uses a different subset of the harness.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod apiserver;
pub mod blockdev;
pub mod certs;
pub mod cgroup;
pub mod daemon;
pub mod filecalls;
pub mod kubeconfig;
pub mod kubepods;
pub mod netns;
pub mod probe;
pub mod procs;
pub mod servers;
pub mod stream;
pub mod topology;
pub mod traffic;
pub mod util;

pub use cgroup::{cgroup2_mount, enable_v2_controllers, InCgroup, TestCgroup};
pub use daemon::{connect_unix, Daemon};
pub use netns::{enter_netns, Link, Netns, VethPair};
pub use probe::{
    spawn_probe, spawn_probe_background, spawn_probe_in, spawn_probe_with, ProbeHandle, ProbeJob,
};
pub use servers::{TcpAcceptServer, TcpListener, TcpSink, UdpEchoServer, UdpSink};
pub use stream::steady_stream;
pub use topology::{TwoNs, A_V4, A_V6, B_V4, B_V4_ROUTED, B_V6};
pub use util::{
    assert_rate_within, bench_finish, bench_runtime, bench_scale, bench_start, kernel_release,
    percentiles, rate_within, require_root, skip, unique_name, wait_until,
};
