//! Network fault benchmarks: the program's cost (`BPF_PROG_TEST_RUN`, against an empty
//! program), per-packet cost on real traffic with up to 10,000 faults armed, activation
//! latency, and how far the first and last dropped packets sit from the requested window.
//!
//! Run by `cargo xtask bench`; by hand: `cargo bench -p chaos-daemon --bench network -- --markdown out.md`.
#[path = "../tests/support/mod.rs"]
mod support;

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use aya::programs::{TestRun, TestRunOptions};
use chaos_common::net::SLOTS_PER_TARGET;
use chaos_daemon::{
    clock::{unix_now_ns, KernelClock},
    kernel::{loader, pins::Pins},
};
use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, network_fault::Action,
    Direction, Fault, FaultState, InjectRequest, Loss, NetworkFault, WatchRequest,
};
use support::{steady_stream, Daemon, InCgroup, TestCgroup, TwoNs};
use tonic::transport::Channel;

/// Program runs per `BPF_PROG_TEST_RUN` call, and calls per scenario (the median is kept).
const REPEAT: u32 = 200_000;
const ROUNDS: usize = 7;
/// Faults per timing series.
const FAULTS: usize = 100;
/// Gap between the steady stream's packets.
const INTERVAL_US: u64 = 100;

fn main() -> anyhow::Result<()> {
    // Probes are this binary run again with a job.
    let Some(markdown) = support::bench_start() else {
        return Ok(());
    };
    let mut out = String::new();
    program_cost(&mut out)?;
    let runtime = support::bench_runtime()?;
    runtime.block_on(traffic_cost(&mut out))?;
    runtime.block_on(timing(&mut out))?;
    support::bench_finish(&out, markdown)?;
    Ok(())
}

/// An Ethernet + IPv4 + UDP datagram with 64 bytes of payload, as `BPF_PROG_TEST_RUN` wants.
fn udp_frame() -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 20 + 8 + 64];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut frame[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(20u16 + 8 + 64).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[127, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[127, 0, 0, 2]);
    let udp = &mut frame[34..42];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5432u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(8u16 + 64).to_be_bytes());
    frame
}

fn median_ns(program: &aya::programs::CgroupSkb, frame: &[u8]) -> anyhow::Result<f64> {
    let mut runs = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let result = program.test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: REPEAT,
            ..TestRunOptions::default()
        })?;
        runs.push(result.duration.as_nanos() as f64);
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[ROUNDS / 2])
}

/// Cost of the program itself, by `BPF_PROG_TEST_RUN`: `net_egress` with its attachment's
/// slot list empty (what every packet of a targeted cgroup pays before any fault matches)
/// against `net_noop`, an empty program, in the same run.
fn program_cost(out: &mut String) -> anyhow::Result<()> {
    let pins =
        Pins::new(PathBuf::from("/sys/fs/bpf").join(support::unique_name("faultline-bench-")));
    pins.prepare()?;
    let result = (|| -> anyhow::Result<()> {
        let mut ebpf = loader::load_with(&pins, KernelClock::Monotonic, &Default::default())?;
        loader::cgroup_skb(&mut ebpf, loader::NET_NOOP)?.load()?;
        let frame = udp_frame();
        let noop = median_ns(loader::cgroup_skb(&mut ebpf, loader::NET_NOOP)?, &frame)?;
        let egress = median_ns(loader::cgroup_skb(&mut ebpf, loader::NET_EGRESS)?, &frame)?;
        writeln!(out, "## Cost of the program (`BPF_PROG_TEST_RUN`)\n")?;
        writeln!(
            out,
            "Median of {ROUNDS} runs of {REPEAT} repetitions each, 106-byte UDP frame. \
             `net_egress` runs only for packets of targeted cgroups; with no fault slot in its \
             attachment's storage it returns after one pointer load.\n"
        )?;
        writeln!(
            out,
            "| program | ns/packet | × empty program |\n|---|---:|---:|"
        )?;
        writeln!(out, "| `net_noop` (empty) | {noop:.1} | 1.00 |")?;
        writeln!(
            out,
            "| `net_egress`, no fault slot | {egress:.1} | {:.2} |\n",
            egress / noop
        )?;
        Ok(())
    })();
    let _ = pins.remove_all();
    result
}

/// Datagrams per real-traffic measurement, and rounds (the median is kept).
const SENDS: u32 = 200_000;
const SEND_ROUNDS: usize = 5;

/// ns per `sendto` of a 64-byte UDP datagram to a sink on loopback, from this process.
fn sendto_ns(sink: &std::net::UdpSocket) -> anyhow::Result<f64> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let to = sink.local_addr()?;
    let payload = [0u8; 64];
    let mut drain = [0u8; 128];
    let mut rounds = Vec::new();
    for _ in 0..SEND_ROUNDS {
        let begin = std::time::Instant::now();
        for i in 0..SENDS {
            socket.send_to(&payload, to)?;
            // Keep the sink's buffer from filling: read what arrived every 64 sends.
            if i % 64 == 63 {
                while sink.recv(&mut drain).is_ok() {}
            }
        }
        rounds.push(begin.elapsed().as_nanos() as f64 / f64::from(SENDS));
        while sink.recv(&mut drain).is_ok() {}
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[SEND_ROUNDS / 2])
}

/// Per-packet cost on real traffic: an untargeted sender with 0, 1 and 10,000 faults armed
/// on other cgroups, and a targeted sender whose fault never matches.
async fn traffic_cost(out: &mut String) -> anyhow::Result<()> {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0")?;
    sink.set_nonblocking(true)?;
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut rows = Vec::new();
    let baseline = sendto_ns(&sink)?;
    rows.push(("untargeted sender, no fault", baseline));

    let others: Vec<TestCgroup> = (0..1_250).map(|_| TestCgroup::new()).collect();
    let mut armed = 0;
    for cgroup in &others {
        for _ in 0..SLOTS_PER_TARGET {
            client
                .inject(loss_request(&cgroup.target(), 0, 600_000))
                .await?;
            armed += 1;
            if armed == 1 {
                rows.push((
                    "untargeted sender, 1 fault on another cgroup",
                    sendto_ns(&sink)?,
                ));
            }
        }
    }
    anyhow::ensure!(armed == 10_000, "armed {armed} faults");
    rows.push((
        "untargeted sender, 10,000 faults on 1,250 other cgroups",
        sendto_ns(&sink)?,
    ));

    let target = TestCgroup::new();
    let mut spec = loss_request(&target.target(), 0, 600_000);
    if let Some(Spec::Network(network)) = spec.spec.as_mut() {
        network.ports = vec![chaos_proto::v1::PortRange { first: 1, last: 1 }];
    }
    client.inject(spec).await?;
    {
        let _inside = InCgroup::enter(&target)?;
        rows.push((
            "targeted sender, fault filtered out by port",
            sendto_ns(&sink)?,
        ));
    }
    drop(client);
    drop(daemon);
    drop(others);

    writeln!(out, "## Per-packet cost on real traffic\n")?;
    writeln!(
        out,
        "Median of {SEND_ROUNDS} runs of {SENDS} `sendto` calls of a 64-byte UDP datagram to a \
         socket on 127.0.0.1, through the whole stack, from a process in an untargeted cgroup; \
         faults are 100 % egress loss on other cgroups (8 per cgroup at most). The programs are \
         attached to targeted cgroups only, so untargeted packets run no faultline code \
         whatever the number of faults: the ratios show the noise floor of the measurement.\n"
    )?;
    writeln!(out, "| case | ns/packet | × no fault |\n|---|---:|---:|")?;
    for (label, ns) in rows {
        writeln!(out, "| {label} | {ns:.0} | {:.3} |", ns / baseline)?;
    }
    writeln!(out)?;
    Ok(())
}

fn loss_request(target: &str, start_at_unix_ns: u64, duration_ms: u64) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns,
        duration: Some(prost_types::Duration {
            seconds: (duration_ms / 1_000) as i64,
            nanos: ((duration_ms % 1_000) * 1_000_000) as i32,
        }),
        spec: Some(Spec::Network(NetworkFault {
            direction: Direction::Egress as i32,
            action: Some(Action::Loss(Loss { percent: 100.0 })),
            ..NetworkFault::default()
        })),
        ..InjectRequest::default()
    }
}

async fn completed(client: &mut FaultServiceClient<Channel>, id: &str) -> anyhow::Result<Fault> {
    let mut events = client
        .watch(WatchRequest { id: id.to_string() })
        .await?
        .into_inner();
    let wait = async {
        while let Some(event) = events.message().await? {
            if let Some(fault) = event.fault {
                if fault.state == FaultState::Completed as i32 {
                    return Ok(fault);
                }
            }
        }
        anyhow::bail!("watch ended before fault {id} completed")
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await?
}

/// p50, p99 and max of signed µs values.
fn summary(values: &mut [f64]) -> String {
    support::percentiles(values, 1)
}

/// Activation latency and window error against a real daemon and a steady stream.
async fn timing(out: &mut String) -> anyhow::Result<()> {
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let (_sink, mut sender) = steady_stream(&net, &target, INTERVAL_US);
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;

    // Under emulation (a VM of the matrix) everything is slower: windows scale up.
    let scale = support::bench_scale();
    let (window_ms, ahead_ms) = (30 * scale, 20 * scale);
    let (mut activation, mut from_call) = (Vec::new(), Vec::new());
    let mut missed = 0;
    for _ in 0..FAULTS {
        let called = unix_now_ns();
        let fault = client
            .inject(loss_request(&target.target(), 0, window_ms))
            .await?
            .into_inner();
        let returned = unix_now_ns();
        let done = completed(&mut client, &fault.id).await?;
        if done.first_affected_unix_ns == 0 {
            missed += 1;
            continue;
        }
        activation.push((done.first_affected_unix_ns as f64 - returned as f64) / 1e3);
        from_call.push((done.first_affected_unix_ns as f64 - called as f64) / 1e3);
    }
    let (mut start_err, mut stop_err) = (Vec::new(), Vec::new());
    for _ in 0..FAULTS {
        let start = unix_now_ns() + ahead_ms * 1_000_000;
        let fault = client
            .inject(loss_request(&target.target(), start, window_ms))
            .await?
            .into_inner();
        let done = completed(&mut client, &fault.id).await?;
        if done.first_affected_unix_ns == 0 {
            missed += 1;
            continue;
        }
        start_err.push((done.first_affected_unix_ns as f64 - done.start_at_unix_ns as f64) / 1e3);
        stop_err.push((done.end_at_unix_ns as f64 - done.last_affected_unix_ns as f64) / 1e3);
    }
    sender.stop();
    anyhow::ensure!(
        !activation.is_empty() && !start_err.is_empty(),
        "no fault of {} dropped a packet",
        2 * FAULTS
    );

    writeln!(
        out,
        "## Activation and window accuracy (real daemon, real packets)\n"
    )?;
    writeln!(
        out,
        "A process in the target cgroup sends a UDP datagram every {INTERVAL_US} µs across a \
         veth pair; each fault is 100 % egress loss. Times are the kernel's first/last dropped \
         packet (`bpf_ktime_get_tai_ns`), converted to Unix time, {FAULTS} faults per row. \
         Activation is measured from the `Inject` call and from its reply to the first dropped \
         packet (negative: the window was already open before the reply reached the client). Start error is first \
         drop − requested start; stop error is requested end − last drop: both are bounded \
         below by 0 (the kernel never drops outside the window) and above by the \
         {INTERVAL_US} µs gap between packets plus scheduling jitter.\n"
    )?;
    writeln!(
        out,
        "| measure (µs) | p50 | p99 | max |\n|---|---:|---:|---:|"
    )?;
    writeln!(
        out,
        "| `Inject` sent → first dropped packet (start = now) | {} |",
        summary(&mut from_call)
    )?;
    writeln!(
        out,
        "| `Inject` returned → first dropped packet (start = now) | {} |",
        summary(&mut activation)
    )?;
    writeln!(
        out,
        "| start error (start {ahead_ms} ms ahead) | {} |",
        summary(&mut start_err)
    )?;
    writeln!(
        out,
        "| stop error ({window_ms} ms windows) | {} |",
        summary(&mut stop_err)
    )?;
    writeln!(
        out,
        "\nWith 100 % loss every packet inside the window is dropped, so a large stop error \
         means the sender sent nothing in that time (a sleeping user-space sender on a busy \
         2-core machine), not that the window closed early. `Inject` itself spends most of \
         its time writing and fsync'ing the journal record before anything is armed.\n"
    )?;
    if missed > 0 {
        writeln!(
            out,
            "{missed} of {} faults saw no packet of the stream inside their window (left out \
             of the rows above).\n",
            2 * FAULTS
        )?;
    }
    Ok(())
}
