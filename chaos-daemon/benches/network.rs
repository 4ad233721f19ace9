//! Network fault benchmarks: per-packet cost of the program on untargeted traffic (by
//! `BPF_PROG_TEST_RUN`, against an empty program), activation latency, and how far the first
//! and last dropped packets sit from the requested start and end. Writes a Markdown section.
//!
//! Run by `cargo xtask bench`; by hand: `cargo bench -p chaos-daemon --bench network -- --markdown out.md`.
#[path = "../tests/support/mod.rs"]
mod support;

use std::{fmt::Write as _, net::SocketAddr, path::PathBuf, time::Duration};

use aya::programs::{TestRun, TestRunOptions};
use chaos_common::net::{NetFault, ALWAYS, DIR_EGRESS, DIR_INGRESS, SLOTS_PER_TARGET};
use chaos_daemon::{
    clock::{unix_now_ns, KernelClock},
    kernel::{loader, netmaps::NetMaps, pins::Pins},
};
use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, network_fault::Action,
    Direction, Fault, FaultState, InjectRequest, Loss, NetworkFault, WatchRequest,
};
use support::{spawn_probe_background, Daemon, ProbeJob, TestCgroup, TwoNs, UdpSink, B_V4};
use tonic::transport::Channel;

/// Program runs per `BPF_PROG_TEST_RUN` call, and calls per scenario (the median is kept).
const REPEAT: u32 = 200_000;
const ROUNDS: usize = 7;
/// Faults per timing series.
const FAULTS: usize = 100;
/// Gap between the steady stream's packets.
const INTERVAL_US: u64 = 100;

fn main() -> anyhow::Result<()> {
    if std::env::var_os(support::probe::PROBE_ENV).is_some() {
        support::probe::probe_main();
        return Ok(());
    }
    let mut markdown = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--markdown" {
            markdown = args.next().map(PathBuf::from);
        }
    }
    let mut out = String::new();
    per_packet_cost(&mut out)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(timing(&mut out))?;
    print!("{out}");
    if let Some(path) = markdown {
        std::fs::write(&path, &out)?;
    }
    Ok(())
}

/// Moves this process into a cgroup for the duration of a scope, and back.
struct InCgroup {
    home: PathBuf,
}

impl InCgroup {
    fn enter(cgroup: &TestCgroup) -> anyhow::Result<Self> {
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| anyhow::anyhow!("no cgroup v2 line in /proc/self/cgroup"))?;
        let home = support::cgroup2_mount().join(rel.trim_start_matches('/'));
        std::fs::write(cgroup.path().join("cgroup.procs"), "0")?;
        Ok(Self { home })
    }
}

impl Drop for InCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.home.join("cgroup.procs"), "0");
    }
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

/// Per-packet cost of `net_egress` for a packet of an untargeted cgroup, with 0, 1 and
/// 10,000 faults armed on other cgroups (at the same cgroup level, so the lookup really
/// happens and misses), and for a targeted packet, against `net_noop`.
fn per_packet_cost(out: &mut String) -> anyhow::Result<()> {
    let pins =
        Pins::new(PathBuf::from("/sys/fs/bpf").join(support::unique_name("faultline-bench-")));
    pins.prepare()?;
    let result = (|| -> anyhow::Result<()> {
        let mut ebpf = loader::load_with(&pins, KernelClock::Monotonic)?;
        loader::cgroup_skb(&mut ebpf, loader::NET_NOOP)?.load()?;
        let mut maps = NetMaps::take(&mut ebpf)?;
        let frame = udp_frame();
        let frame = frame.as_slice();
        let cgroup = TestCgroup::new();
        let _inside = InCgroup::enter(&cgroup)?;
        let level: u8 = cgroup
            .rel_path()
            .trim_matches('/')
            .split('/')
            .count()
            .try_into()?;
        let fault = NetFault {
            start_ns: 0,
            end_ns: u64::MAX,
            threshold: ALWAYS / 10_000,
            directions: DIR_EGRESS | DIR_INGRESS,
            ..NetFault::default()
        };
        let mut rows = Vec::new();
        let measure = |label: &str, ebpf: &mut aya::Ebpf| -> anyhow::Result<(String, f64)> {
            let program = loader::cgroup_skb(ebpf, loader::NET_EGRESS)?;
            Ok((label.to_string(), median_ns(program, frame)?))
        };
        let noop = median_ns(loader::cgroup_skb(&mut ebpf, loader::NET_NOOP)?, frame)?;
        rows.push(measure("no fault armed", &mut ebpf)?);
        maps.set_levels(&[level].into())?;
        maps.write_fault(0, &fault)?;
        maps.add_target(1 << 40, 0)?;
        rows.push(measure("1 fault on another cgroup", &mut ebpf)?);
        for i in 1..10_000u32 {
            maps.write_fault(i, &fault)?;
            maps.add_target((1 << 40) + u64::from(i), i)?;
        }
        rows.push(measure("10,000 faults on other cgroups", &mut ebpf)?);
        maps.add_target(cgroup.id(), 0)?;
        rows.push(measure(
            "targeted packet (1 fault, 0.01 % loss)",
            &mut ebpf,
        )?);
        for slot in 1..SLOTS_PER_TARGET as u32 {
            maps.add_target(cgroup.id(), slot)?;
        }
        rows.push(measure(
            "targeted packet (8 faults on its cgroup)",
            &mut ebpf,
        )?);

        writeln!(
            out,
            "## Per-packet cost of `net_egress` (`BPF_PROG_TEST_RUN`)\n"
        )?;
        writeln!(
            out,
            "Median of {ROUNDS} runs of {REPEAT} repetitions each, on a 106-byte UDP frame from a \
             process in a cgroup at level {level}; faults sit at the same level, so the \
             untargeted rows pay the real hash lookup and miss. Baseline: `net_noop`, an \
             empty `cgroup_skb` program, in the same run.\n"
        )?;
        writeln!(
            out,
            "| case | ns/packet | × empty program |\n|---|---:|---:|"
        )?;
        writeln!(out, "| empty program (`net_noop`) | {noop:.1} | 1.00 |")?;
        for (label, ns) in rows {
            writeln!(out, "| {label} | {ns:.1} | {:.2} |", ns / noop)?;
        }
        writeln!(
            out,
            "\nTraffic of cgroups at no targeted level pays less still: the program returns \
             after reading `NET_CONFIG`, or, with no network fault at all, is not attached.\n"
        )?;
        Ok(())
    })();
    let _ = pins.remove_all();
    result
}

fn loss_request(target: &str, start_at_unix_ns: u64, duration_ms: u64) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns,
        duration: Some(prost_types::Duration {
            seconds: 0,
            nanos: (duration_ms * 1_000_000) as i32,
        }),
        spec: Some(Spec::Network(NetworkFault {
            direction: Direction::Egress as i32,
            action: Some(Action::Loss(Loss { percent: 100.0 })),
            ..NetworkFault::default()
        })),
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
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!("{:.1} | {:.1} | {:.1}", at(0.5), at(0.99), at(1.0))
}

/// Activation latency and window error against a real daemon and a steady stream.
async fn timing(out: &mut String) -> anyhow::Result<()> {
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let sink = UdpSink::start(&net.b, SocketAddr::from((B_V4, 0)));
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut sender = spawn_probe_background(
        ProbeJob::UdpSend {
            peer: sink.addr(),
            count: u64::MAX,
            interval_us: INTERVAL_US,
            max_duration_ms: Some(600_000),
        },
        &net.a,
        &target,
    );
    anyhow::ensure!(
        sink.wait_for_count(1_000, Duration::from_secs(10)),
        "the steady stream did not start"
    );

    let mut activation = Vec::new();
    for _ in 0..FAULTS {
        let fault = client
            .inject(loss_request(&target.target(), 0, 20))
            .await?
            .into_inner();
        let returned = unix_now_ns();
        let done = completed(&mut client, &fault.id).await?;
        anyhow::ensure!(
            done.first_affected_unix_ns != 0,
            "fault {} dropped nothing",
            done.id
        );
        activation.push((done.first_affected_unix_ns as f64 - returned as f64) / 1e3);
    }
    let (mut start_err, mut stop_err) = (Vec::new(), Vec::new());
    for _ in 0..FAULTS {
        let start = unix_now_ns() + 20_000_000;
        let fault = client
            .inject(loss_request(&target.target(), start, 30))
            .await?
            .into_inner();
        let done = completed(&mut client, &fault.id).await?;
        anyhow::ensure!(
            done.first_affected_unix_ns != 0,
            "fault {} dropped nothing",
            done.id
        );
        start_err.push((done.first_affected_unix_ns as f64 - done.start_at_unix_ns as f64) / 1e3);
        stop_err.push((done.end_at_unix_ns as f64 - done.last_affected_unix_ns as f64) / 1e3);
    }
    sender.stop();

    writeln!(
        out,
        "## Activation and window accuracy (real daemon, real packets)\n"
    )?;
    writeln!(
        out,
        "A process in the target cgroup sends a UDP datagram every {INTERVAL_US} µs across a \
         veth pair; each fault is 100 % egress loss. Times are the kernel's first/last dropped \
         packet (`bpf_ktime_get_tai_ns`), converted to Unix time, {FAULTS} faults per row. \
         Activation is from `Inject` returning to the first dropped packet (negative: the \
         window was already open before the reply reached the client). Start error is first \
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
        "| activation latency (start = now) | {} |",
        summary(&mut activation)
    )?;
    writeln!(
        out,
        "| start error (start 20 ms ahead) | {} |",
        summary(&mut start_err)
    )?;
    writeln!(
        out,
        "| stop error (30 ms windows) | {} |",
        summary(&mut stop_err)
    )?;
    writeln!(out)?;
    Ok(())
}
