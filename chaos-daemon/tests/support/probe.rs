//! Probe processes: the test executable re-run as a child, placed in a test cgroup and netns before it starts, running one traffic job and printing one JSON result line.
//
// A separate process is what the daemon's cgroup targeting needs: a thread of the test
// process cannot be in a different cgroup v2 than its siblings. The child is the
// current test binary run as `--exact faultline_probe_entry`; the test file defines that
// test with `probe_entry!()` and it does nothing unless
// `FAULTLINE_PROBE` (the job, as JSON) is set.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cgroup::TestCgroup;
use super::netns::Netns;
use super::util::{random_u32, wait_until};

/// Environment variable carrying the probe's job (JSON) to the child.
pub const PROBE_ENV: &str = "FAULTLINE_PROBE";
/// Marker before the result JSON on the child's stdout.
pub const RESULT_MARKER: &str = "FAULTLINE-PROBE-RESULT ";
/// Name of the `#[test]` that [`probe_entry!`](crate::probe_entry) defines.
pub const PROBE_TEST_NAME: &str = "faultline_probe_entry";

/// Defines the probe entry `#[test] fn faultline_probe_entry()`. Invoke once, at the top
/// level of every test file that spawns probes (right after `mod support;`). In a normal
/// test run it returns at once.
#[macro_export]
macro_rules! probe_entry {
    () => {
        /// Entry point of probe child processes; a no-op unless `FAULTLINE_PROBE` is set.
        #[test]
        fn faultline_probe_entry() {
            $crate::support::probe::probe_main();
        }
    };
}

fn default_batch() -> u64 {
    50
}
fn default_batch_timeout_ms() -> u64 {
    300
}

/// What a probe does. Every result also carries `job`, `pid`, `cgroup` (the probe's
/// `0::` path from `/proc/self/cgroup`) and `netns_ino`, so a test can check placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum ProbeJob {
    /// UDP echo client: sends `count` datagrams numbered 0.. in batches of `batch`; after
    /// each batch waits until all its replies are back or `batch_timeout_ms` pass with
    /// nothing sent or received. Small batches keep socket buffers from overflowing, so
    /// a missing reply is a real loss.
    /// Result: `sent`, `received`, `lost` (sent − received), `late` (replies that came
    /// after their batch gave up), `duplicates`, `errors` (`{"EPERM": n}` from sendto),
    /// `received_seqs` (when count ≤ 1000), `lost_seqs` (when at most 200 were lost).
    UdpEcho {
        /// Where the echo server listens.
        peer: SocketAddr,
        /// Datagrams to send.
        count: u64,
        /// Datagrams per batch (default 50).
        #[serde(default = "default_batch")]
        batch: u64,
        /// Idle time after which a batch stops waiting (default 300 ms).
        #[serde(default = "default_batch_timeout_ms")]
        batch_timeout_ms: u64,
    },
    /// One-way steady UDP stream: datagram `i` is due at `start + i·interval_us`; stops
    /// after `count` datagrams, after `max_duration_ms`, or when asked to stop.
    /// Result: `sent` (successful sendto), `attempts`, `errors` (`{"EPERM": n}`),
    /// `error_total`, `started_unix_ms`, `elapsed_ms`, `first_error_unix_ms`,
    /// `last_error_unix_ms` (null when none).
    UdpSend {
        /// Destination.
        peer: SocketAddr,
        /// Datagrams to send (use a large one for a background sender).
        count: u64,
        /// Gap between datagrams in µs (0: as fast as sendto goes).
        interval_us: u64,
        /// Upper bound on the run time.
        #[serde(default)]
        max_duration_ms: Option<u64>,
    },
    /// One TCP connect. Result: `connected` (bool), `error` (errno name, `TimedOut`, or
    /// null), `elapsed_ms`.
    TcpConnect {
        /// Where to connect.
        peer: SocketAddr,
        /// Connect timeout.
        timeout_ms: u64,
    },
    /// `count` calls of one file system operation on `path` (see [`super::filecalls`]).
    /// Result: `ok`, `errors` (`{"EIO": n}`), or `setup_error`.
    FileCalls {
        op: String,
        path: PathBuf,
        count: u64,
    },
    /// `op` on `path` back to back until the calls fail and then succeed again, or
    /// `max_duration_ms` passes (see [`super::filecalls::edges`]).
    FileEdges {
        op: String,
        path: PathBuf,
        max_duration_ms: u64,
    },
    /// Paced UDP round trips to an echo server, each reply timed (see
    /// [`super::traffic::udp_rtt`]).
    UdpRtt {
        peer: SocketAddr,
        count: u64,
        interval_us: u64,
        size: usize,
    },
    /// TCP bulk send for `duration_ms` (see [`super::traffic::tcp_send`]).
    TcpSend { peer: SocketAddr, duration_ms: u64 },
    /// Sits in its cgroup and namespace doing nothing until stopped, killed, or
    /// `max_duration_ms` passes. Result: `{}` plus the identity fields.
    Idle {
        /// Upper bound on the run time.
        max_duration_ms: u64,
    },
}

impl ProbeJob {
    /// [`ProbeJob::UdpEcho`] with the default batch (50) and batch timeout (300 ms).
    pub fn udp_echo(peer: SocketAddr, count: u64) -> ProbeJob {
        ProbeJob::UdpEcho {
            peer,
            count,
            batch: default_batch(),
            batch_timeout_ms: default_batch_timeout_ms(),
        }
    }

    /// [`ProbeJob::UdpSend`] without a duration bound.
    pub fn udp_send(peer: SocketAddr, count: u64, interval_us: u64) -> ProbeJob {
        ProbeJob::UdpSend {
            peer,
            count,
            interval_us,
            max_duration_ms: None,
        }
    }

    /// [`ProbeJob::TcpConnect`].
    pub fn tcp_connect(peer: SocketAddr, timeout_ms: u64) -> ProbeJob {
        ProbeJob::TcpConnect { peer, timeout_ms }
    }

    /// How long [`ProbeHandle::wait`] waits for this job: its own worst case plus a
    /// generous margin for process start-up on a loaded CI machine.
    pub fn default_deadline(&self) -> Duration {
        let margin = Duration::from_secs(30);
        margin
            + match *self {
                ProbeJob::UdpEcho {
                    count,
                    batch,
                    batch_timeout_ms,
                    ..
                } => Duration::from_millis(count.div_ceil(batch.max(1)) * batch_timeout_ms),
                ProbeJob::UdpSend {
                    count,
                    interval_us,
                    max_duration_ms,
                    ..
                } => {
                    let paced = Duration::from_micros(count.saturating_mul(interval_us));
                    max_duration_ms.map_or(paced, |m| paced.min(Duration::from_millis(m)))
                }
                ProbeJob::TcpConnect { timeout_ms, .. } => Duration::from_millis(timeout_ms),
                ProbeJob::UdpRtt {
                    count, interval_us, ..
                } => Duration::from_micros(count * interval_us) + Duration::from_secs(70),
                ProbeJob::TcpSend { duration_ms, .. } => Duration::from_millis(duration_ms),
                ProbeJob::Idle { max_duration_ms } => Duration::from_millis(max_duration_ms),
                ProbeJob::FileCalls { count, .. } => Duration::from_millis(count),
                ProbeJob::FileEdges {
                    max_duration_ms, ..
                } => Duration::from_millis(max_duration_ms),
            }
    }
}

/// What the parent hands the child: the job plus the files used to signal it.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    job: ProbeJob,
    /// Created by the child once its job has started (after its first send).
    ready_file: PathBuf,
    /// Created by the parent to ask the child to finish early and report.
    stop_file: PathBuf,
}

/// A running probe process. Drop kills (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct ProbeHandle {
    child: Option<Child>,
    pid: u32,
    job: ProbeJob,
    dir: tempfile::TempDir,
    result: Option<Result<Value, String>>,
}

/// Spawns a probe running `job` inside `netns` and `cgroup` (joined before the test
/// binary even starts, so every packet it sends is from there). Panics if it cannot start.
pub fn spawn_probe(job: ProbeJob, netns: &Netns, cgroup: &TestCgroup) -> ProbeHandle {
    spawn_probe_with(job, Some(netns), Some(cgroup))
}

/// Like [`spawn_probe`], for jobs meant to run until stopped: a [`ProbeJob::UdpSend`]
/// with a large count, or [`ProbeJob::Idle`]. Returns once the job has started (first
/// datagram sent); panics if that takes over 20 s. [`ProbeHandle::stop`] ends it and
/// returns its result; dropping the handle just kills it.
#[track_caller]
pub fn spawn_probe_background(job: ProbeJob, netns: &Netns, cgroup: &TestCgroup) -> ProbeHandle {
    let mut h = spawn_probe_with(job, Some(netns), Some(cgroup));
    if !h.wait_ready(Duration::from_secs(20)) {
        panic!("background probe {} did not start\n{}", h.pid, h.output());
    }
    h
}

/// The general form: `None` leaves the probe in the test process's namespace or cgroup.
pub fn spawn_probe_with(
    job: ProbeJob,
    netns: Option<&Netns>,
    cgroup: Option<&TestCgroup>,
) -> ProbeHandle {
    spawn(job, netns, cgroup.map(TestCgroup::path))
}

/// Like [`spawn_probe`], in any cgroup v2 directory `cgroup` rather than a [`TestCgroup`]
/// (e.g. one named by kubelet's rules).
pub fn spawn_probe_in(job: ProbeJob, netns: &Netns, cgroup: &Path) -> ProbeHandle {
    spawn(job, Some(netns), Some(cgroup))
}

/// Starts the probe child, in `netns` and the cgroup directory `cgroup` when given.
fn spawn(job: ProbeJob, netns: Option<&Netns>, cgroup: Option<&Path>) -> ProbeHandle {
    let dir = tempfile::Builder::new()
        .prefix("fl-probe-")
        .tempdir()
        .expect("probe temp dir");
    let envelope = Envelope {
        job: job.clone(),
        ready_file: dir.path().join("ready"),
        stop_file: dir.path().join("stop"),
    };
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        PROBE_TEST_NAME,
        "--nocapture",
        "--test-threads=1",
    ])
    .env(
        PROBE_ENV,
        serde_json::to_string(&envelope).expect("job JSON"),
    )
    .stdin(Stdio::null())
    // Files, not pipes: nobody reads while the child runs, so a pipe could fill up.
    .stdout(File::create(dir.path().join("stdout")).expect("probe stdout file"))
    .stderr(File::create(dir.path().join("stderr")).expect("probe stderr file"));

    // Everything the child needs is prepared here: between fork and exec only
    // async-signal-safe calls (raw syscalls, no allocation) are allowed.
    let ns_file = netns.map(Netns::open);
    let ns_fd = ns_file.as_ref().map(|f| f.as_raw_fd());
    let procs = cgroup
        .map(|c| CString::new(c.join("cgroup.procs").as_os_str().as_bytes()).expect("cgroup path"));
    // SAFETY: the closure only makes raw syscalls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(p) = &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // "0" means the writing process itself.
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
            }
            if let Some(fd) = ns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn probe {job:?}: {e}"));
    drop(ns_file);
    ProbeHandle {
        pid: child.id(),
        child: Some(child),
        job,
        dir,
        result: None,
    }
}

impl ProbeHandle {
    /// The probe's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The job it runs.
    pub fn job(&self) -> &ProbeJob {
        &self.job
    }

    /// Polls until the job has started (first datagram sent, connect begun, or idling) or
    /// the probe exited; returns whether it started within `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let ready = self.dir.path().join("ready");
        wait_until(timeout, || ready.exists() || self.exited()) && ready.exists()
    }

    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits up to the job's [`ProbeJob::default_deadline`] and returns its result.
    /// Panics (with the probe's output) on timeout or failure; the probe is killed.
    #[track_caller]
    pub fn wait(&mut self) -> Value {
        let d = self.job.default_deadline();
        self.wait_timeout(d)
    }

    /// [`ProbeHandle::wait`] with an explicit deadline.
    #[track_caller]
    pub fn wait_timeout(&mut self, timeout: Duration) -> Value {
        match self.try_wait_timeout(timeout) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits up to `timeout` for the probe to exit and parses its result; on timeout
    /// kills it. The error carries the probe's exit status, stdout and stderr.
    pub fn try_wait_timeout(&mut self, timeout: Duration) -> Result<Value, String> {
        if let Some(r) = &self.result {
            return r.clone();
        }
        let Some(child) = self.child.as_mut() else {
            return Err("probe already reaped".into());
        };
        let mut status: Option<ExitStatus> = None;
        let exited = wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        let r = if exited {
            self.child = None;
            let status = status.expect("status");
            parse_result(&self.stdout()).ok_or_else(|| {
                format!(
                    "probe {} ({:?}) exited with {status} and no result\n{}",
                    self.pid,
                    self.job,
                    self.output()
                )
            })
        } else {
            self.kill();
            Err(format!(
                "probe {} ({:?}) did not finish within {timeout:?}; killed\n{}",
                self.pid,
                self.job,
                self.output()
            ))
        };
        self.result = Some(r.clone());
        r
    }

    /// Asks the probe to finish now (a file it checks every few ms) and returns its
    /// result: how a background sender reports its counts.
    #[track_caller]
    pub fn stop(&mut self) -> Value {
        if let Err(e) = File::create(self.dir.path().join("stop")) {
            panic!("create stop file: {e}");
        }
        self.wait_timeout(Duration::from_secs(30))
    }

    /// SIGKILLs and reaps the probe (no result). Safe to call more than once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn stdout(&self) -> String {
        fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    /// The probe's stdout and stderr so far (for failure messages).
    pub fn output(&self) -> String {
        let stderr = fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        format!(
            "--- probe stdout ---\n{}\n--- probe stderr ---\n{}",
            tail(&self.stdout(), 60),
            tail(&stderr, 60)
        )
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Last `n` lines of `s`.
pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Finds the result line: libtest may have printed `test … ` on the same line first.
fn parse_result(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .find_map(|l| l.split_once(RESULT_MARKER))
        .and_then(|(_, json)| serde_json::from_str(json.trim()).ok())
}

// ---------------------------------------------------------------------------------
// Child side.

/// Body of the probe entry test: runs the job in `FAULTLINE_PROBE`, if any, and prints
/// `FAULTLINE-PROBE-RESULT {json}`. Called by [`probe_entry!`](crate::probe_entry).
pub fn probe_main() {
    let Ok(spec) = std::env::var(PROBE_ENV) else {
        return;
    };
    let env: Envelope = serde_json::from_str(&spec).expect("FAULTLINE_PROBE is not a probe job");
    let mut ctl = Control::new(&env);
    let mut result = match env.job {
        ProbeJob::UdpEcho {
            peer,
            count,
            batch,
            batch_timeout_ms,
        } => udp_echo(
            &mut ctl,
            peer,
            count,
            batch.max(1),
            Duration::from_millis(batch_timeout_ms),
        ),
        ProbeJob::UdpSend {
            peer,
            count,
            interval_us,
            max_duration_ms,
        } => udp_send(&mut ctl, peer, count, interval_us, max_duration_ms),
        ProbeJob::UdpRtt {
            peer,
            count,
            interval_us,
            size,
        } => super::traffic::udp_rtt(peer, count, interval_us, size, || ctl.ready()),
        ProbeJob::TcpSend { peer, duration_ms } => {
            super::traffic::tcp_send(peer, duration_ms, || ctl.ready())
        }
        ProbeJob::TcpConnect { peer, timeout_ms } => {
            ctl.ready();
            tcp_connect(peer, Duration::from_millis(timeout_ms))
        }
        ProbeJob::FileCalls {
            ref op,
            ref path,
            count,
        } => {
            ctl.ready();
            super::filecalls::run(op, path, count)
        }
        ProbeJob::FileEdges {
            ref op,
            ref path,
            max_duration_ms,
        } => {
            ctl.ready();
            super::filecalls::edges(op, path, Duration::from_millis(max_duration_ms))
        }
        ProbeJob::Idle { max_duration_ms } => {
            ctl.ready();
            let end = Instant::now() + Duration::from_millis(max_duration_ms);
            while Instant::now() < end && !ctl.stop_requested() {
                std::thread::sleep(Duration::from_millis(5));
            }
            json!({})
        }
    };
    let job_name = serde_json::to_value(&env.job).expect("job")["job"].clone();
    result["job"] = job_name;
    result["pid"] = json!(std::process::id());
    result["cgroup"] = json!(own_cgroup());
    result["netns_ino"] = json!(fs::metadata("/proc/self/ns/net").map(|m| m.ino()).ok());
    // Leading newline: libtest's "test faultline_probe_entry ... " may precede it.
    println!("\n{RESULT_MARKER}{result}");
}

/// This process's cgroup v2 path (the `0::` line of `/proc/self/cgroup`).
fn own_cgroup() -> Option<String> {
    fs::read_to_string("/proc/self/cgroup")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}

/// The child's side of the ready/stop files.
struct Control {
    ready_file: PathBuf,
    stop_file: PathBuf,
    is_ready: bool,
    last_check: Instant,
}

impl Control {
    fn new(env: &Envelope) -> Control {
        Control {
            ready_file: env.ready_file.clone(),
            stop_file: env.stop_file.clone(),
            is_ready: false,
            last_check: Instant::now(),
        }
    }

    fn ready(&mut self) {
        if !self.is_ready {
            self.is_ready = true;
            let _ = File::create(&self.ready_file);
        }
    }

    /// Checks the stop file at most every 5 ms, so a fast sender is not slowed by stat().
    fn stop_requested(&mut self) -> bool {
        if self.last_check.elapsed() < Duration::from_millis(5) {
            return false;
        }
        self.last_check = Instant::now();
        Path::new(&self.stop_file).exists()
    }
}

/// The unspecified address of `peer`'s family, port 0.
fn any_addr(peer: SocketAddr) -> SocketAddr {
    match peer.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// `EPERM`-style name of an I/O error (its kind when it has no errno).
pub(crate) fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{:?}", nix::errno::Errno::from_raw(code)),
        None => format!("{:?}", e.kind()),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const MAGIC: &[u8; 4] = b"FLPB";

/// Datagram payload: magic, a per-run nonce (so strays from another probe never count)
/// and the sequence number.
fn encode(nonce: u32, seq: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..4].copy_from_slice(MAGIC);
    p[4..8].copy_from_slice(&nonce.to_be_bytes());
    p[8..].copy_from_slice(&seq.to_be_bytes());
    p
}

fn decode(nonce: u32, p: &[u8]) -> Option<u64> {
    (p.len() == 16 && &p[..4] == MAGIC && p[4..8] == nonce.to_be_bytes())
        .then(|| u64::from_be_bytes(p[8..16].try_into().expect("8 bytes")))
}

fn udp_echo(ctl: &mut Control, peer: SocketAddr, count: u64, batch: u64, idle: Duration) -> Value {
    let sock = UdpSocket::bind(any_addr(peer)).expect("bind UDP probe socket");
    let nonce = random_u32();
    let n = count as usize;
    let (mut was_sent, mut seen) = (vec![false; n], vec![false; n]);
    let (mut sent, mut received, mut late, mut dups) = (0u64, 0u64, 0u64, 0u64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut buf = [0u8; 2048];
    let mut start = 0u64;
    // Unconnected sendto/recv_from: a connected socket would turn ICMP errors into
    // ECONNREFUSED on later calls, which is not what a lost datagram looks like.
    while start < count && !ctl.stop_requested() {
        let end = (start + batch).min(count);
        let mut pending = 0u64;
        for seq in start..end {
            match sock.send_to(&encode(nonce, seq), peer) {
                Ok(_) => {
                    sent += 1;
                    pending += 1;
                    was_sent[seq as usize] = true;
                }
                Err(e) => *errors.entry(errno_name(&e)).or_default() += 1,
            }
            ctl.ready();
        }
        let mut last = Instant::now();
        while pending > 0 {
            let Some(left) = idle.checked_sub(last.elapsed()).filter(|d| !d.is_zero()) else {
                break;
            };
            sock.set_read_timeout(Some(left)).expect("set_read_timeout");
            match sock.recv_from(&mut buf) {
                Ok((len, _)) => {
                    // Any source: a reply to 198.51.100.2 may come from B's primary address.
                    if let Some(seq) = decode(nonce, &buf[..len]).filter(|s| *s < count) {
                        let i = seq as usize;
                        if seen[i] {
                            dups += 1;
                        } else {
                            seen[i] = true;
                            received += 1;
                            if (start..end).contains(&seq) {
                                pending -= 1;
                            } else {
                                late += 1;
                            }
                        }
                    }
                    last = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    *errors
                        .entry(format!("recv:{}", errno_name(&e)))
                        .or_default() += 1
                }
            }
        }
        start = end;
    }
    let lost: Vec<u64> = (0..count)
        .filter(|&s| was_sent[s as usize] && !seen[s as usize])
        .collect();
    let mut r = json!({
        "sent": sent,
        "received": received,
        "lost": lost.len(),
        "late": late,
        "duplicates": dups,
        "errors": errors,
    });
    if count <= 1000 {
        let seqs: Vec<u64> = (0..count).filter(|&s| seen[s as usize]).collect();
        r["received_seqs"] = json!(seqs);
    }
    if lost.len() <= 200 {
        r["lost_seqs"] = json!(lost);
    }
    r
}

fn udp_send(
    ctl: &mut Control,
    peer: SocketAddr,
    count: u64,
    interval_us: u64,
    max_duration_ms: Option<u64>,
) -> Value {
    let sock = UdpSocket::bind(any_addr(peer)).expect("bind UDP probe socket");
    let nonce = random_u32();
    let max = max_duration_ms.map(Duration::from_millis);
    let (mut sent, mut attempts) = (0u64, 0u64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut first_err, mut last_err): (Option<u64>, Option<u64>) = (None, None);
    let started_unix_ms = unix_ms();
    let t0 = Instant::now();
    for seq in 0..count {
        if max.is_some_and(|m| t0.elapsed() >= m) || ctl.stop_requested() {
            break;
        }
        // Pacing against an absolute schedule, so the rate does not drift.
        let due = t0 + Duration::from_micros(interval_us.saturating_mul(seq));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        attempts += 1;
        match sock.send_to(&encode(nonce, seq), peer) {
            Ok(_) => sent += 1,
            Err(e) => {
                *errors.entry(errno_name(&e)).or_default() += 1;
                let t = unix_ms();
                first_err.get_or_insert(t);
                last_err = Some(t);
            }
        }
        ctl.ready();
    }
    json!({
        "sent": sent,
        "attempts": attempts,
        "errors": errors,
        "error_total": attempts - sent,
        "started_unix_ms": started_unix_ms,
        "elapsed_ms": t0.elapsed().as_millis() as u64,
        "first_error_unix_ms": first_err,
        "last_error_unix_ms": last_err,
    })
}

fn tcp_connect(peer: SocketAddr, timeout: Duration) -> Value {
    let t0 = Instant::now();
    let r = TcpStream::connect_timeout(&peer, timeout);
    json!({
        "connected": r.is_ok(),
        "error": r.as_ref().err().map(errno_name),
        "elapsed_ms": t0.elapsed().as_millis() as u64,
    })
}
