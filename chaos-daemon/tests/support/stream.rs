//! A steady one-way UDP stream from a probe in a cgroup of namespace A to a sink in B.
use std::net::SocketAddr;

use super::{spawn_probe_background, ProbeHandle, ProbeJob, TestCgroup, TwoNs, UdpSink, B_V4};

/// How long a stream runs at most if nobody stops it.
const MAX_RUN_MS: u64 = 600_000;

/// Starts a sink in `net.b` and a probe in `cgroup` (in `net.a`) sending to it every
/// `interval_us`; returns once the sink has seen 100 datagrams. Panics if it never does.
pub fn steady_stream(net: &TwoNs, cgroup: &TestCgroup, interval_us: u64) -> (UdpSink, ProbeHandle) {
    let sink = UdpSink::start(&net.b, SocketAddr::from((B_V4, 0)));
    let sender = spawn_probe_background(
        ProbeJob::UdpSend {
            peer: sink.addr(),
            count: u64::MAX,
            interval_us,
            max_duration_ms: Some(MAX_RUN_MS),
        },
        &net.a,
        cgroup,
    );
    assert!(
        sink.wait_for_count(100, std::time::Duration::from_secs(10)),
        "the steady stream did not start"
    );
    (sink, sender)
}
