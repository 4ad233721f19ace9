//! Network impairment benchmarks, faultline against netem and tbf on the same interface in
//! the same run: delay accuracy per packet, reordering and TCP goodput under jitter, rate
//! accuracy and burstiness, and how fast a delay takes effect.
//!
//! Needs a kernel with `fq`, `netem` and `tbf` (run by `cargo xtask bench`, in a VM); by
//! hand: `cargo bench -p chaos-daemon --bench impair -- --markdown out.md`.
#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    fmt::Write as _,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, Bandwidth, Delay,
    JitterDistribution, NetworkFault,
};
use support::{api, Daemon, InCgroup, TestCgroup, TwoNs, B_V4};
use tonic::transport::Channel;

/// Datagrams per delay measurement, and the gap between them.
const PACKETS: u64 = 1_000;
const GAP_US: u64 = 2_000;

fn main() -> anyhow::Result<()> {
    let Some(markdown) = support::bench_start() else {
        return Ok(());
    };
    let runtime = support::bench_runtime()?;
    let out = runtime.block_on(run())?;
    support::bench_finish(&out, markdown)?;
    Ok(())
}

/// CLOCK_MONOTONIC in ns: the clock departure times are in, read by sender and receiver.
fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// One datagram as the receiver saw it: sequence, sent and received (CLOCK_MONOTONIC ns).
type Arrival = (u64, u64, u64);

/// A receiver thread in B recording every datagram's arrival.
struct Receiver {
    addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(net: &TwoNs) -> Receiver {
        let sock = net
            .b
            .run(|| UdpSocket::bind(SocketAddr::from((B_V4, 0))))
            .expect("bind the receiver in B");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (arrivals.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let now = mono_ns();
                    if n >= 16 {
                        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                        let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap_or_default());
                        if let Ok(mut v) = a.lock() {
                            v.push((seq, sent, now));
                        }
                    }
                }
            }
        });
        Receiver {
            addr,
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until `quiet` passes with no new arrival, then takes what arrived.
    fn take(&self, quiet: Duration) -> Vec<Arrival> {
        let mut last = usize::MAX;
        loop {
            let now = self.arrivals.lock().map(|v| v.len()).unwrap_or(0);
            if now == last {
                break;
            }
            last = now;
            std::thread::sleep(quiet);
        }
        self.arrivals
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `count` stamped datagrams of `size` bytes from A, one every `gap_us`.
fn send_stamped(net: &TwoNs, to: SocketAddr, count: u64, gap_us: u64, size: usize) -> Vec<u64> {
    net.a.run(move || stamped(to, count, gap_us, size))
}

/// Sends `count` stamped datagrams from this thread's namespace; their send times.
fn stamped(to: SocketAddr, count: u64, gap_us: u64, size: usize) -> Vec<u64> {
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind the sender");
    let mut payload = vec![0u8; size.max(16)];
    let start = mono_ns();
    let mut sent_at = Vec::with_capacity(count as usize);
    for seq in 0..count {
        let due = start + seq * gap_us * 1_000;
        while mono_ns() < due {
            std::hint::spin_loop();
        }
        let now = mono_ns();
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        payload[8..16].copy_from_slice(&now.to_be_bytes());
        let _ = sock.send_to(&payload, to);
        sent_at.push(now);
    }
    sent_at
}

/// `tc` in A on its end of the veth.
fn tc(net: &TwoNs, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["qdisc"];
    full.extend_from_slice(args);
    let dev = net.veth.a.name().to_string();
    let full: Vec<String> = full
        .iter()
        .map(|a| {
            if *a == "DEV" {
                dev.clone()
            } else {
                a.to_string()
            }
        })
        .collect();
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    net.a
        .exec("tc", &refs)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("tc {}: {e}", full.join(" ")))
}

fn delay_spec(latency_ms: f64, jitter_ms: f64, reorder: bool) -> NetworkFault {
    let d = |ms: f64| {
        (ms > 0.0).then_some(prost_types::Duration {
            seconds: 0,
            nanos: (ms * 1e6) as i32,
        })
    };
    NetworkFault {
        delay: Some(Delay {
            latency: d(latency_ms),
            jitter: d(jitter_ms),
            distribution: JitterDistribution::Uniform as i32,
            correlation_percent: 0.0,
            reorder,
        }),
        ..NetworkFault::default()
    }
}

fn rate_spec(bits: u64) -> NetworkFault {
    NetworkFault {
        bandwidth: Some(Bandwidth {
            rate_bits_per_second: bits,
            ..Bandwidth::default()
        }),
        ..NetworkFault::default()
    }
}

/// The fixture: A and B, a target cgroup this process sits in (with a process of it in A,
/// through which the daemon finds A's interface), and a daemon.
struct Lab {
    client: FaultServiceClient<Channel>,
    _daemon: Daemon,
    _resident: support::ProbeHandle,
    _inside: InCgroup,
    target: TestCgroup,
    net: TwoNs,
}

impl Lab {
    /// Runs `measure` under a faultline fault with `spec`, cancelled afterwards.
    async fn faultline<T>(
        &mut self,
        spec: NetworkFault,
        measure: impl FnOnce(&TwoNs) -> T,
    ) -> anyhow::Result<T> {
        let req = api::request(
            &self.target.target(),
            0,
            Duration::from_secs(600),
            Spec::Network(spec),
        );
        let fault = api::inject(&mut self.client, req).await;
        let result = measure(&self.net);
        api::cancel(&mut self.client, &fault.id).await;
        Ok(result)
    }

    /// Runs `measure` with `qdisc` (tc words after `root`) at A's root, removed afterwards.
    fn tc<T>(&self, qdisc: &[&str], measure: impl FnOnce(&TwoNs) -> T) -> anyhow::Result<T> {
        let mut args = vec!["replace", "dev", "DEV", "root"];
        args.extend_from_slice(qdisc);
        tc(&self.net, &args)?;
        let result = measure(&self.net);
        tc(&self.net, &["del", "dev", "DEV", "root"])?;
        Ok(result)
    }
}

async fn run() -> anyhow::Result<String> {
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let mut resident = support::spawn_probe_background(
        support::ProbeJob::Idle {
            max_duration_ms: 3_600_000,
        },
        &net.a,
        &target,
    );
    anyhow::ensure!(
        resident.wait_ready(Duration::from_secs(60)),
        "{}",
        resident.output()
    );
    // This process is the target too: its sender threads enter A.
    let inside = InCgroup::enter(&target)?;
    let daemon = Daemon::start(&[]).await;
    let caps = daemon.capabilities().await;
    if let Some(fq) = caps
        .features
        .iter()
        .find(|f| f.name == "fq" && !f.available)
    {
        anyhow::bail!("this kernel has no fq: {}", fq.detail);
    }
    let client = daemon.client().await;
    let mut lab = Lab {
        client,
        _daemon: daemon,
        _resident: resident,
        _inside: inside,
        target,
        net,
    };
    let mut out = String::new();
    delay_accuracy(&mut lab, &mut out).await?;
    jitter(&mut lab, &mut out).await?;
    rates(&mut lab, &mut out).await?;
    activation(&mut lab, &mut out).await?;
    Ok(out)
}

/// One-way delay of each datagram minus the requested delay, in ms (absolute values).
fn delay_errors(net: &TwoNs, requested_ms: f64) -> Vec<f64> {
    let receiver = Receiver::start(net);
    send_stamped(net, receiver.addr, PACKETS, GAP_US, 64);
    receiver
        .take(Duration::from_millis(300 + 2 * requested_ms as u64))
        .iter()
        .map(|(_, sent, got)| ((got - sent) as f64 / 1e6 - requested_ms).abs())
        .collect()
}

async fn delay_accuracy(lab: &mut Lab, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "## Delay accuracy\n")?;
    writeln!(
        out,
        "|one-way delay − requested| of {PACKETS} UDP datagrams sent every {} ms from A to \
         B over the veth, receiver and sender reading the same CLOCK_MONOTONIC; faultline's \
         TC program + fq against `tc qdisc replace … root netem delay`, on the same interface \
         in the same run. The error includes the stack's own latency, the same for both.\n",
        GAP_US / 1000
    )?;
    writeln!(
        out,
        "| requested | faultline p50 / p99 / max (ms) | netem p50 / p99 / max (ms) |\n|---|---|---|"
    )?;
    for ms in [1.0, 10.0, 100.0] {
        let mut ours = lab
            .faultline(delay_spec(ms, 0.0, false), |net| delay_errors(net, ms))
            .await?;
        let arg = format!("{ms}ms");
        let mut netem = lab.tc(&["netem", "delay", &arg], |net| delay_errors(net, ms))?;
        writeln!(
            out,
            "| {ms} ms | {} | {} |",
            support::percentiles(&mut ours, 3).replace(" | ", " / "),
            support::percentiles(&mut netem, 3).replace(" | ", " / ")
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// Share of datagrams that arrive after a later-sent one.
fn reordering(net: &TwoNs) -> f64 {
    let receiver = Receiver::start(net);
    send_stamped(net, receiver.addr, PACKETS * 2, 1_000, 64);
    let arrivals = receiver.take(Duration::from_millis(300));
    let mut highest = None;
    let mut late = 0;
    for (seq, _, _) in &arrivals {
        if highest.is_some_and(|h| *seq < h) {
            late += 1;
        }
        highest = highest.max(Some(*seq));
    }
    late as f64 / arrivals.len().max(1) as f64
}

/// TCP goodput from A to B over `secs` seconds, in Mbit/s.
fn goodput(net: &TwoNs, secs: u64) -> f64 {
    let listener = net
        .b
        .run(|| TcpListener::bind(SocketAddr::from((B_V4, 0))))
        .expect("listen in B");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return 0u64;
        };
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let start = std::time::Instant::now();
    net.a.run(move || {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return;
        };
        let chunk = vec![0x5au8; 64 * 1024];
        let end = Duration::from_secs(secs);
        while start.elapsed() < end {
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let bytes = reader.join().unwrap_or(0);
    bytes as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e6
}

async fn jitter(lab: &mut Lab, out: &mut String) -> anyhow::Result<()> {
    writeln!(
        out,
        "## Jitter: reordering and TCP goodput under 10 ms ± 5 ms\n"
    )?;
    writeln!(
        out,
        "Uniform jitter. Reordering: datagrams arriving after a later-sent one, of {} sent \
         1 ms apart. Goodput: one TCP connection for 3 s. faultline keeps each flow in order \
         unless `reorder` is asked for; netem's jitter reorders.\n",
        PACKETS * 2
    )?;
    writeln!(
        out,
        "| setup | reordered | TCP goodput (Mbit/s) |\n|---|---:|---:|"
    )?;
    let ours = lab
        .faultline(delay_spec(10.0, 5.0, false), |net| {
            (reordering(net), goodput(net, 3))
        })
        .await?;
    let loose = lab
        .faultline(delay_spec(10.0, 5.0, true), |net| {
            (reordering(net), goodput(net, 3))
        })
        .await?;
    let netem = lab.tc(&["netem", "delay", "10ms", "5ms"], |net| {
        (reordering(net), goodput(net, 3))
    })?;
    for (label, (r, g)) in [
        ("faultline (order kept)", ours),
        ("faultline with reorder", loose),
        ("netem delay 10ms 5ms", netem),
    ] {
        writeln!(out, "| {label} | {:.1} % | {g:.1} |", r * 100.0)?;
    }
    writeln!(out)?;
    Ok(())
}

/// Goodput over 3 s and the coefficient of variation of what arrives per 10 ms (burstiness).
fn paced(net: &TwoNs) -> (f64, f64) {
    let listener = net
        .b
        .run(|| TcpListener::bind(SocketAddr::from((B_V4, 0))))
        .expect("listen in B");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return Vec::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(2)));
        let mut buf = vec![0u8; 256 * 1024];
        let start = std::time::Instant::now();
        let mut bins = vec![0u64; 300];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let bin = (start.elapsed().as_millis() / 10) as usize;
                    if let Some(b) = bins.get_mut(bin) {
                        *b += n as u64;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            if start.elapsed() > Duration::from_secs(4) {
                break;
            }
        }
        bins
    });
    net.a.run(move || {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return;
        };
        let chunk = vec![0x5au8; 64 * 1024];
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let bins = reader.join().unwrap_or_default();
    // Steady state: from 0.5 s to 2.5 s.
    let steady: Vec<f64> = bins[50..250].iter().map(|b| *b as f64).collect();
    let mean = steady.iter().sum::<f64>() / steady.len() as f64;
    let sd = (steady.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / steady.len() as f64).sqrt();
    (
        mean * 8.0 * 100.0 / 1e6,
        if mean > 0.0 { sd / mean } else { 0.0 },
    )
}

async fn rates(lab: &mut Lab, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "## Rate accuracy and burstiness\n")?;
    writeln!(
        out,
        "One TCP connection for 3 s through each limit; goodput between 0.5 s and 2.5 s as a \
         share of the rate (TCP/IP headers take about 4 %), and the coefficient of variation \
         of the bytes arriving per 10 ms (0 = perfectly smooth).\n"
    )?;
    writeln!(
        out,
        "| rate | faultline goodput / rate | CV | netem rate | CV | tbf | CV |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;
    for mbit in [1u64, 10, 100] {
        let rate = mbit * 1_000_000;
        let (g1, c1) = lab.faultline(rate_spec(rate), paced).await?;
        let arg = format!("{mbit}mbit");
        let (g2, c2) = lab.tc(&["netem", "rate", &arg], paced)?;
        // A burst of 10 ms at the rate, at least two full packets.
        let burst = format!("{}", (rate / 8 / 100).max(3_200));
        let (g3, c3) = lab.tc(
            &["tbf", "rate", &arg, "burst", &burst, "latency", "400ms"],
            paced,
        )?;
        let share = |g: f64| g / mbit as f64;
        writeln!(
            out,
            "| {mbit} Mbit/s | {:.3} | {c1:.2} | {:.3} | {c2:.2} | {:.3} | {c3:.2} |",
            share(g1),
            share(g2),
            share(g3)
        )?;
    }
    writeln!(out)?;
    Ok(())
}

/// First datagram whose one-way delay reached `ms`: when it was sent.
fn first_delayed(arrivals: &[Arrival], ms: f64) -> Option<u64> {
    arrivals
        .iter()
        .filter(|(_, sent, got)| (got - sent) as f64 / 1e6 >= ms)
        .map(|(_, sent, _)| *sent)
        .min()
}

async fn activation(lab: &mut Lab, out: &mut String) -> anyhow::Result<()> {
    writeln!(out, "## Activation\n")?;
    writeln!(
        out,
        "A datagram every 100 µs from A; a 20 ms delay is applied while it flows. faultline: \
         from `Inject` returning to the send time of the first datagram delayed by 20 ms \
         (negative: the kernel held packets before the reply reached the client). netem: \
         how long `tc qdisc replace … netem delay 20ms` took, and from its return to the \
         first delayed datagram. Medians of 5.\n"
    )?;
    let (mut ours, mut netem_cmd, mut netem_first) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let receiver = Receiver::start(&lab.net);
        let to = receiver.addr;
        let net_a = lab.net.a.path().to_path_buf();
        let sender = std::thread::spawn(move || stream_for(&net_a, to, Duration::from_millis(600)));
        std::thread::sleep(Duration::from_millis(200));
        let req = api::request(
            &lab.target.target(),
            0,
            Duration::from_secs(600),
            Spec::Network(delay_spec(20.0, 0.0, false)),
        );
        let fault = api::inject(&mut lab.client, req).await;
        let returned = mono_ns();
        let _ = sender.join();
        let arrivals = receiver.take(Duration::from_millis(100));
        api::cancel(&mut lab.client, &fault.id).await;
        if let Some(first) = first_delayed(&arrivals, 20.0) {
            ours.push((first as f64 - returned as f64) / 1e6);
        }

        let receiver = Receiver::start(&lab.net);
        let to = receiver.addr;
        let net_a = lab.net.a.path().to_path_buf();
        let sender = std::thread::spawn(move || stream_for(&net_a, to, Duration::from_millis(600)));
        std::thread::sleep(Duration::from_millis(200));
        let before = mono_ns();
        tc(
            &lab.net,
            &["replace", "dev", "DEV", "root", "netem", "delay", "20ms"],
        )?;
        let after = mono_ns();
        let _ = sender.join();
        let arrivals = receiver.take(Duration::from_millis(100));
        tc(&lab.net, &["del", "dev", "DEV", "root"])?;
        netem_cmd.push((after - before) as f64 / 1e6);
        if let Some(first) = first_delayed(&arrivals, 20.0) {
            netem_first.push((first as f64 - after as f64) / 1e6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    writeln!(out, "| | ms |\n|---|---:|")?;
    writeln!(
        out,
        "| faultline: Inject returned → first delayed datagram sent | {:.2} |",
        median(&mut ours)
    )?;
    writeln!(
        out,
        "| netem: `tc qdisc replace` run time | {:.2} |",
        median(&mut netem_cmd)
    )?;
    writeln!(
        out,
        "| netem: `tc` returned → first delayed datagram sent | {:.2} |\n",
        median(&mut netem_first)
    )?;
    Ok(())
}

/// Sends a stamped datagram every 100 µs from the namespace at `netns` for `length`.
fn stream_for(netns: &std::path::Path, to: SocketAddr, length: Duration) {
    let Ok(file) = std::fs::File::open(netns) else {
        return;
    };
    if support::enter_netns(&file).is_ok() {
        stamped(to, length.as_micros() as u64 / 100, 100, 64);
    }
}
