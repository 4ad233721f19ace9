//! Network impairments (delay, bandwidth, corruption, duplication) on real namespaces, veths,
//! cgroups and sockets, measured by what the packets did. They need `fq`, which the host
//! kernel lacks: there the refusal is checked, and the VM matrix measures the rest.
mod support;
probe_entry!();

use std::{net::SocketAddr, time::Duration};

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use chaos_proto::v1::{
    inject_request::Spec, network_fault::Action, Bandwidth, Corrupt, Delay, Direction, Duplicate,
    FaultState, InjectRequest, JitterDistribution, Loss, NetworkFault,
};
use serde_json::Value;
use support::{
    api::{self, cancel, get, inject},
    assert_rate_within, rate_within, require_root, spawn_probe, spawn_probe_background,
    traffic::Rtts,
    Daemon, ProbeHandle, ProbeJob, TcpSink, TestCgroup, TwoNs, UdpEchoServer, B_V4,
};
use tonic::transport::Channel;

/// What delay and bandwidth need from the kernel (as the daemon probes it).
const PACED: &[&str] = &["cgroup_v2", "fq", "tc_shape_program"];
/// What corruption and duplication need: no fq.
const UNPACED: &[&str] = &["cgroup_v2", "tc_shape_program"];
/// Bound on a measured rate, in standard deviations of the binomial draw.
const SIGMAS: f64 = 5.0;

fn ms(n: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: (n / 1000) as i64,
        nanos: ((n % 1000) * 1_000_000) as i32,
    })
}

fn request(
    spec: NetworkFault,
    target: &TestCgroup,
    start_at_unix_ns: u64,
    window: Duration,
) -> InjectRequest {
    api::request(
        &target.target(),
        start_at_unix_ns,
        window,
        Spec::Network(spec),
    )
}

fn delay(latency_ms: u64, jitter_ms: u64, reorder: bool) -> NetworkFault {
    NetworkFault {
        delay: Some(Delay {
            latency: ms(latency_ms),
            jitter: ms(jitter_ms),
            distribution: JitterDistribution::Uniform as i32,
            correlation_percent: 0.0,
            reorder,
        }),
        ..NetworkFault::default()
    }
}

/// A and B joined by a veth, an echo server in B, and a target cgroup with a process in A
/// (the daemon finds the target's interfaces through it). Fields drop in order: the process
/// and server before the cgroup and the namespaces.
struct Lab {
    _resident: ProbeHandle,
    echo: UdpEchoServer,
    target: TestCgroup,
    net: TwoNs,
}

impl Lab {
    /// The fixture and a daemon that has `needs`; None (the test skips) without root or
    /// without them.
    async fn start(needs: &[&str]) -> Option<(Lab, Daemon, FaultServiceClient<Channel>)> {
        if !require_root() {
            return None;
        }
        let lab = Lab::new();
        let daemon = Daemon::start_requiring(&[], needs).await?;
        let client = daemon.client().await;
        Some((lab, daemon, client))
    }

    fn new() -> Lab {
        let net = TwoNs::new();
        let target = TestCgroup::new();
        let echo = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4, 0)));
        Lab {
            _resident: resident(&net, &target),
            echo,
            target,
            net,
        }
    }
}

/// A process of the target in A.
fn resident(net: &TwoNs, target: &TestCgroup) -> ProbeHandle {
    let mut idle = spawn_probe_background(
        ProbeJob::Idle {
            max_duration_ms: 600_000,
        },
        &net.a,
        target,
    );
    assert!(
        idle.wait_ready(Duration::from_secs(30)),
        "{}",
        idle.output()
    );
    idle
}

fn rtt_job(peer: SocketAddr, count: u64, interval_us: u64) -> ProbeJob {
    ProbeJob::UdpRtt {
        peer,
        count,
        interval_us,
        size: 64,
    }
}

fn qdisc(net: &TwoNs) -> String {
    net.a
        .exec("tc", &["qdisc", "show", "dev", net.veth.a.name(), "root"])
        .unwrap_or_else(|e| e)
}

fn filters(net: &TwoNs) -> String {
    net.a
        .exec(
            "tc",
            &["filter", "show", "dev", net.veth.a.name(), "egress"],
        )
        .unwrap_or_default()
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// 50 ms ± 10 ms uniform: the RTTs of 500 probes have the requested mean and spread and stay
/// within the jitter's bounds; packets reorder when allowed and never when not; a process of
/// another cgroup in the same namespace is not delayed; the fq qdisc goes at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_and_jitter_shape_round_trips() {
    let Some((lab, _daemon, mut client)) = Lab::start(PACED).await else {
        return;
    };
    let (net, target, echo) = (&lab.net, &lab.target, &lab.echo);
    let other = TestCgroup::new();
    let before = qdisc(net);
    let window = Duration::from_secs(300);
    let fault = inject(&mut client, request(delay(50, 10, true), target, 0, window)).await;
    assert!(qdisc(net).contains("qdisc fq fa17:"), "{}", qdisc(net));

    // Baseline and untargeted traffic at the same time, from the same namespace.
    let mut spared = spawn_probe(rtt_job(echo.addr(), 200, 5_000), &net.a, &other);
    let mut hit = spawn_probe(rtt_job(echo.addr(), 500, 2_000), &net.a, target);
    let (hit, spared) = (hit.wait(), spared.wait());
    let (base, rtt) = (Rtts::of(&spared), Rtts::of(&hit));
    let (median, iqr, min) = (rtt.median(), rtt.iqr(), rtt.min());
    eprintln!(
        "delay 50±10: median {median:.2} iqr {iqr:.2} min {min:.2}; untargeted median {:.2}",
        base.median()
    );
    assert_eq!(count(&hit, "received"), 500, "{hit}");
    assert!(base.median() < 20.0, "untargeted traffic delayed: {spared}");
    // Uniform on [40, 60]: median 50, quartiles 45 and 55. Over 500 draws a quartile's
    // standard error is about 0.4 ms, which bounds the median from below; from above, the
    // machine's own lateness adds to it (an emulated guest's timers fire up to a few ms late,
    // more under load than `base` shows), and how late is what `cargo xtask bench` measures.
    // No packet leaves before its 40 ms.
    assert!(
        (49.0..=55.0 + base.median()).contains(&median),
        "median {median}"
    );
    assert!((8.5..=11.5).contains(&iqr), "interquartile range {iqr}");
    assert!(min >= 40.0, "a packet left early: {min}");
    assert!(
        rtt.below(60.0 + base.median() + 5.0) > 0.9,
        "late packets: {hit}"
    );
    assert!(
        count(&hit, "reordered") > 0,
        "reordering was allowed: {hit}"
    );
    let seen = get(&mut client, &fault.id).await;
    let counters = seen.counters.expect("counters");
    assert!(counters.delayed >= 500, "{counters:?}");
    cancel(&mut client, &fault.id).await;
    assert_eq!(qdisc(net), before, "the root qdisc is put back");
    assert!(!filters(net).contains("faultline"), "{}", filters(net));

    // Same jitter, order kept: no reply overtakes another.
    let fault = inject(
        &mut client,
        request(delay(50, 10, false), target, 0, window),
    )
    .await;
    let ordered = spawn_probe(rtt_job(echo.addr(), 500, 1_000), &net.a, target).wait();
    assert_eq!(count(&ordered, "received"), 500, "{ordered}");
    assert_eq!(count(&ordered, "reordered"), 0, "{ordered}");
    let min = Rtts::of(&ordered).min();
    assert!(min >= 40.0, "{min}");
    cancel(&mut client, &fault.id).await;
}

/// Ingress: the replies are held where they leave the other end of the target's veth (B's
/// side), with fq and the filter there and not on A's; both directions add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_delay_acts_on_the_other_end_of_the_veth() {
    let Some((lab, _daemon, mut client)) = Lab::start(PACED).await else {
        return;
    };
    let (net, target, echo) = (&lab.net, &lab.target, &lab.echo);
    let b_qdisc = || {
        net.b
            .exec("tc", &["qdisc", "show", "dev", net.veth.b.name(), "root"])
            .unwrap_or_else(|e| e)
    };
    let before = (qdisc(net), b_qdisc());
    for (direction, least) in [(Direction::Ingress, 30.0), (Direction::Both, 60.0)] {
        let spec = NetworkFault {
            direction: direction as i32,
            ..delay(30, 0, false)
        };
        let fault = inject(
            &mut client,
            request(spec, target, 0, Duration::from_secs(300)),
        )
        .await;
        assert!(b_qdisc().contains("qdisc fq fa17:"), "{}", b_qdisc());
        let r = spawn_probe(rtt_job(echo.addr(), 200, 5_000), &net.a, target).wait();
        let rtt = Rtts::of(&r);
        let (median, min) = (rtt.median(), rtt.min());
        eprintln!("{direction:?} delay 30 ms: median rtt {median:.2}, min {min:.2}");
        assert_eq!(count(&r, "received"), 200, "{r}");
        assert!(min >= least, "{direction:?}: {min} ms < {least} ms");
        assert!(median < least + 15.0, "{direction:?}: {median} ms");
        cancel(&mut client, &fault.id).await;
        assert_eq!((qdisc(net), b_qdisc()), before, "qdiscs put back");
    }
}

/// Impairments compose with loss in one fault: 20 % of round trips lost (within 5σ), every
/// one that comes back delayed by at least 20 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_and_loss_compose() {
    let Some((lab, _daemon, mut client)) = Lab::start(PACED).await else {
        return;
    };
    let (net, target, echo) = (&lab.net, &lab.target, &lab.echo);
    let spec = NetworkFault {
        direction: Direction::Egress as i32,
        action: Some(Action::Loss(Loss { percent: 20.0 })),
        ..delay(20, 0, false)
    };
    let fault = inject(
        &mut client,
        request(spec, target, 0, Duration::from_secs(300)),
    )
    .await;
    let n = 1_000;
    let r = spawn_probe(rtt_job(echo.addr(), n, 1_000), &net.a, target).wait();
    let lost = n - count(&r, "received");
    assert_rate_within(lost, n, 0.2, SIGMAS);
    assert!(Rtts::of(&r).min() >= 20.0, "{r}");
    let counters = get(&mut client, &fault.id)
        .await
        .counters
        .expect("counters");
    assert!(counters.delayed >= n - lost, "{counters:?}");
    cancel(&mut client, &fault.id).await;
}

/// TCP through a 10 Mbit/s bottleneck: the interface sends at the rate (± 5 %) and the
/// receiver gets nearly all of it; another cgroup's TCP is not limited. With a 20 ms
/// queue, a UDP flood at twice the rate is dropped rather than delayed further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_paces_tcp_and_drops_when_the_queue_is_full() {
    let Some((lab, _daemon, mut client)) = Lab::start(PACED).await else {
        return;
    };
    let (net, target, echo) = (&lab.net, &lab.target, &lab.echo);
    let other = TestCgroup::new();
    let sink = TcpSink::start(&net.b, SocketAddr::from((B_V4, 0)));
    let rate = 10_000_000u64;
    let spec = NetworkFault {
        bandwidth: Some(Bandwidth {
            rate_bits_per_second: rate,
            ..Bandwidth::default()
        }),
        ..NetworkFault::default()
    };
    let fault = inject(
        &mut client,
        request(spec, target, 0, Duration::from_secs(300)),
    )
    .await;
    // Bytes the interface sent, from the namespace's own /proc/net/dev (sysfs would show
    // the root namespace's devices).
    let tx_bytes = || -> u64 {
        let dev = net.a.exec("cat", &["/proc/net/dev"]).unwrap_or_default();
        dev.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{}:", net.veth.a.name())))
            .and_then(|fields| fields.split_whitespace().nth(8)?.parse().ok())
            .unwrap_or(0)
    };
    let mut send = spawn_probe(
        ProbeJob::TcpSend {
            peer: sink.addr(),
            duration_ms: 5_000,
        },
        &net.a,
        target,
    );
    assert!(
        send.wait_ready(Duration::from_secs(30)),
        "{}",
        send.output()
    );
    // Past slow start: measure 3 s of steady state.
    assert!(support::wait_until(Duration::from_secs(10), || sink
        .bytes()
        > 1_000_000));
    let (t0, wire0, got0) = (std::time::Instant::now(), tx_bytes(), sink.bytes());
    std::thread::sleep(Duration::from_secs(3));
    let (secs, wire1, got1) = (t0.elapsed().as_secs_f64(), tx_bytes(), sink.bytes());
    let wire = (wire1 - wire0) as f64 * 8.0 / secs;
    let goodput = (got1 - got0) as f64 * 8.0 / secs;
    eprintln!("rate 10 Mbit/s: wire {wire:.0} bit/s, goodput {goodput:.0} bit/s");
    assert!(
        (0.95..=1.05).contains(&(wire / rate as f64)),
        "wire rate {wire}"
    );
    assert!(goodput > 0.9 * rate as f64, "goodput {goodput}");
    send.wait();
    // Untargeted TCP beside it is not held to the rate.
    let free = spawn_probe(
        ProbeJob::TcpSend {
            peer: sink.addr(),
            duration_ms: 1_000,
        },
        &net.a,
        &other,
    )
    .wait();
    assert!(
        count(&free, "bytes") as f64 * 8.0 > 3.0 * rate as f64,
        "untargeted TCP was limited: {free}"
    );
    cancel(&mut client, &fault.id).await;

    // 1000-byte datagrams every 400 µs = 20 Mbit/s into a 10 Mbit/s link with a 20 ms queue.
    let spec = NetworkFault {
        bandwidth: Some(Bandwidth {
            rate_bits_per_second: rate,
            queue_limit: ms(20),
            ..Bandwidth::default()
        }),
        ..NetworkFault::default()
    };
    let fault = inject(
        &mut client,
        request(spec, target, 0, Duration::from_secs(300)),
    )
    .await;
    let flood = spawn_probe(
        ProbeJob::UdpRtt {
            peer: echo.addr(),
            count: 2_500,
            interval_us: 400,
            size: 1_000,
        },
        &net.a,
        target,
    )
    .wait();
    let rtt = Rtts::of(&flood);
    let counters = get(&mut client, &fault.id)
        .await
        .counters
        .expect("counters");
    eprintln!(
        "flood: {} of 2500 back, median rtt {:.1} ms, {counters:?}",
        count(&flood, "received"),
        rtt.median()
    );
    assert!(counters.queue_dropped > 500, "{counters:?}");
    assert!(
        count(&flood, "received") < 2_000,
        "{}",
        count(&flood, "received")
    );
    // 20 ms of queue plus one packet's serialisation, plus the machine's own latency; an
    // unbounded queue would have grown to about a second by the flood's end.
    assert!(
        rtt.q(0.9) < 20.0 + 1.0 + 50.0,
        "delay grew past the queue: {flood}"
    );
    cancel(&mut client, &fault.id).await;
}

/// 10 % corrupt and 10 % duplicate: the receiver discards corrupted datagrams (its checksum
/// error count rises by as many) and sees the duplicates, each within 5σ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_duplicate_reach_the_receiver() {
    let Some((lab, _daemon, mut client)) = Lab::start(UNPACED).await else {
        return;
    };
    let (net, target, echo) = (&lab.net, &lab.target, &lab.echo);
    let spec = NetworkFault {
        corrupt: Some(Corrupt { percent: 10.0 }),
        duplicate: Some(Duplicate { percent: 10.0 }),
        ..NetworkFault::default()
    };
    let csum_errors = || -> u64 {
        let text = net
            .b
            .exec("cat", &["/proc/net/netstat"])
            .unwrap_or_default();
        let mut lines = text.lines().filter(|l| l.starts_with("IpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return 0;
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "InCsumErrors")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let errors_before = csum_errors();
    let fault = inject(
        &mut client,
        request(spec, target, 0, Duration::from_secs(300)),
    )
    .await;
    let n = 2_000;
    let r = spawn_probe(rtt_job(echo.addr(), n, 500), &net.a, target).wait();
    let lost = n - count(&r, "received");
    let dups = count(&r, "duplicates");
    let discarded = csum_errors() - errors_before;
    let counters = get(&mut client, &fault.id)
        .await
        .counters
        .expect("counters");
    let seen = format!(
        "sent {}, lost {lost}, duplicates {dups}, csum errors {discarded}, {counters:?}",
        count(&r, "sent")
    );
    eprintln!("corrupt/duplicate: {seen}");
    // A duplicate is cloned before the original is corrupted: the clone stays clean.
    for (what, hits) in [("lost", lost), ("duplicates", dups)] {
        if let Err(why) = rate_within(hits, n, 0.1 * 0.9, SIGMAS) {
            panic!("{what}: {why}; {seen}");
        }
    }
    // Every corrupted packet was discarded by the receiver for its checksum, but for a flip
    // in the IP version or header length, which is a header error instead (8 bits of 736).
    assert!(discarded <= counters.corrupted, "{discarded}");
    assert!(
        counters.corrupted - discarded <= counters.corrupted / 20 + 2,
        "{discarded}"
    );
    // Packets both duplicated and corrupted arrive once: neither lost nor doubled.
    assert_eq!(
        counters.corrupted - lost,
        counters.duplicated - dups,
        "{counters:?}"
    );
    cancel(&mut client, &fault.id).await;
}

/// The window opens and closes in the kernel: after kill -9 of the daemon, packets are
/// undelayed once the window ends, and the restarted daemon puts the qdisc back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_ends_in_the_kernel_and_a_restart_restores_the_qdisc() {
    let Some((lab, mut daemon, mut client)) = Lab::start(PACED).await else {
        return;
    };
    let (net, target, echo) = (&lab.net, &lab.target, &lab.echo);
    let before = qdisc(net);
    let start = chaos_daemon::clock::unix_now_ns() + 1_500_000_000;
    let fault = inject(
        &mut client,
        request(delay(40, 0, false), target, start, Duration::from_secs(4)),
    )
    .await;
    daemon.kill9();
    // 8 s of probes, one every 10 ms, across the whole window and past it.
    let r = spawn_probe(rtt_job(echo.addr(), 800, 10_000), &net.a, target).wait();
    let t0 = r["started_unix_ms"].as_u64().expect("started") as f64;
    let (open, close) = (
        fault.start_at_unix_ns as f64 / 1e6,
        fault.end_at_unix_ns as f64 / 1e6,
    );
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for s in r["rtt_us"].as_array().expect("rtt") {
        let sent = t0 + s[1].as_f64().expect("sent") / 1000.0;
        let rtt = s[2].as_f64().expect("rtt") / 1000.0;
        // 100 ms either side of an edge is left out: the probe reads its clock a moment
        // before the packet meets the program.
        if sent > open + 100.0 && sent < close - 100.0 {
            inside.push(rtt);
        } else if sent < open - 100.0 || sent > close + 100.0 {
            outside.push(rtt);
        }
    }
    assert!(
        inside.len() > 300 && outside.len() > 300,
        "{} / {}",
        inside.len(),
        outside.len()
    );
    // A packet the machine held up for long between the probe's clock and the program can
    // land on the other side of an edge: 98 % rather than all.
    let share =
        |v: &[f64], f: fn(f64) -> bool| v.iter().filter(|r| f(**r)).count() as f64 / v.len() as f64;
    assert!(
        share(&inside, |r| r >= 40.0) > 0.98,
        "undelayed inside the window: {r}"
    );
    assert!(
        share(&outside, |r| r < 40.0) > 0.98,
        "delayed outside the window, with no daemon: {r}"
    );
    daemon.restart().await;
    let done = daemon.get_blocking(&fault.id).expect("get after restart");
    assert_eq!(done.state, FaultState::Completed as i32);
    assert_eq!(qdisc(net), before, "{}", daemon.logs());
    assert!(!filters(net).contains("faultline"), "{}", filters(net));
}

/// Where `fq` is missing (the host), delay and bandwidth are refused with the reason; where
/// it exists, Capabilities says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impairments_are_refused_without_fq() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let _resident = resident(&net, &target);
    let daemon = Daemon::start(&[]).await;
    let caps = daemon.capabilities().await;
    let fq = caps
        .features
        .iter()
        .find(|f| f.name == "fq")
        .expect("fq probed");
    let delay_kind = caps
        .faults
        .iter()
        .find(|f| f.kind == "network.delay")
        .expect("network.delay listed");
    assert_eq!(delay_kind.supported, fq.available, "{caps:?}");
    if fq.available {
        return;
    }
    for spec in [
        delay(100, 0, false),
        NetworkFault {
            bandwidth: Some(Bandwidth {
                rate_bits_per_second: 1_000_000,
                ..Bandwidth::default()
            }),
            ..NetworkFault::default()
        },
    ] {
        let message = daemon
            .refused(
                request(spec, &target, 0, Duration::from_secs(10)),
                tonic::Code::FailedPrecondition,
            )
            .await;
        assert!(message.contains("fq"), "{message}");
    }
    assert_eq!(qdisc(&net).lines().count(), 1, "{}", qdisc(&net));
}
