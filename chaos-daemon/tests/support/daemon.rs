//! The real `chaos-daemon` binary run by a test with private socket, state and bpffs dirs, plus a gRPC client over its Unix socket.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use chaos_proto::v1::CapabilitiesRequest;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::transport::Channel;

use super::probe::tail;
use super::util::{unique_name, wait_until};

/// How long [`Daemon::start`] waits for the daemon to answer `Capabilities`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd daemon gets to exit before it is SIGKILLed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects a gRPC client to a daemon's Unix socket, through the CLI's own
/// `chaos_daemon::cli::connect::connect` so the tests exercise the code chaosctl uses.
/// The error is that function's message (it names the socket and the OS cause).
pub async fn connect_unix(socket: &Path) -> Result<FaultServiceClient<Channel>, String> {
    chaos_daemon::cli::connect::connect(socket)
        .await
        .map_err(|e| e.to_string())
}

/// A `chaos-daemon` process of this build, isolated from other tests:
/// `--socket <tmp>/faultline.sock --state-dir <tmp>/state --bpffs-dir
/// /sys/fs/bpf/faultline-test-XXXXXXXX`, stdout and stderr appended to files in `<tmp>`.
///
/// Drop: SIGTERM (SIGKILL after [`STOP_TIMEOUT`]), prints the logs if the test is
/// panicking, removes the bpffs dir and its pins (unlinking unpins), then `<tmp>`.
/// Async methods need a tokio runtime (`#[tokio::test]`); the blocking ones
/// (`kill9`, `terminate`, Drop) block the calling thread for at most their timeout.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    extra_args: Vec<String>,
    /// Variables set in the daemon's environment on every start (e.g. `KUBECONFIG`).
    env: Vec<(String, String)>,
    bpffs_dir: PathBuf,
    starts: u32,
    // Last field: dropped after the Drop body has stopped the process.
    tmp: tempfile::TempDir,
}

impl Daemon {
    /// Starts the daemon with the private dirs plus `extra_args` and waits until it
    /// answers `Capabilities` over its socket. Panics with its logs if it does not
    /// within [`START_TIMEOUT`].
    pub async fn start(extra_args: &[&str]) -> Daemon {
        match Daemon::try_start(extra_args).await {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Daemon::start`] returning the failure (with the daemon's logs) instead; the
    /// half-started daemon is already cleaned up by then.
    pub async fn try_start(extra_args: &[&str]) -> Result<Daemon, String> {
        Daemon::try_start_with_env(extra_args, &[]).await
    }

    /// [`Daemon::try_start`] with `env` added to the daemon's environment (on restarts too).
    pub async fn try_start_with_env(
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        let tmp = tempfile::Builder::new()
            .prefix("fl-daemon-")
            .tempdir()
            .map_err(|e| format!("daemon temp dir: {e}"))?;
        let mut d = Daemon {
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            bpffs_dir: PathBuf::from("/sys/fs/bpf").join(unique_name("faultline-test-")),
            starts: 0,
            tmp,
        };
        d.spawn_and_wait().await?;
        Ok(d)
    }

    /// Starts the daemon, then asks its `Capabilities` (the same probes the daemon gates
    /// `Inject` with) for `features`; if one is missing, reports the test as skipped with
    /// the probe's reason and returns `None`.
    pub async fn start_requiring(extra_args: &[&str], features: &[&str]) -> Option<Daemon> {
        Daemon::start_requiring_with_env(extra_args, &[], features).await
    }

    /// [`Daemon::start_requiring`] with `env` added to the daemon's environment.
    pub async fn start_requiring_with_env(
        extra_args: &[&str],
        env: &[(&str, &str)],
        features: &[&str],
    ) -> Option<Daemon> {
        let daemon = match Daemon::try_start_with_env(extra_args, env).await {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let caps = daemon.capabilities().await;
        for wanted in features {
            match caps.features.iter().find(|f| f.name == *wanted) {
                Some(found) if found.available => {}
                Some(found) => {
                    super::skip(wanted, &found.detail);
                    return None;
                }
                None => {
                    super::skip(wanted, "the daemon does not probe it");
                    return None;
                }
            }
        }
        Some(daemon)
    }

    /// What the daemon says this kernel lets it do.
    pub async fn capabilities(&self) -> chaos_proto::v1::CapabilitiesResponse {
        self.client()
            .await
            .capabilities(chaos_proto::v1::CapabilitiesRequest {})
            .await
            .expect("capabilities")
            .into_inner()
    }

    /// Sends `req`, which must be refused with `code`; returns the refusal's message.
    pub async fn refused(&self, req: chaos_proto::v1::InjectRequest, code: tonic::Code) -> String {
        let status = self
            .client()
            .await
            .inject(req)
            .await
            .expect_err("the request must be refused");
        assert_eq!(status.code(), code, "{status:?}");
        status.message().to_string()
    }

    /// `Get` of fault `id` from inside a blocking poll (e.g. a [`super::wait_until`]
    /// predicate) on a multi-threaded runtime; `None` if the call fails.
    pub fn get_blocking(&self, id: &str) -> Option<chaos_proto::v1::Fault> {
        let (id, socket) = (id.to_string(), self.socket());
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                let mut client = connect_unix(&socket).await.ok()?;
                let request = chaos_proto::v1::GetRequest { id };
                Some(client.get(request).await.ok()?.into_inner())
            })
        })
    }

    /// Path of the daemon's gRPC Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.tmp.path().join("faultline.sock")
    }

    /// The daemon's `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// The daemon's `--bpffs-dir`, `/sys/fs/bpf/faultline-test-XXXXXXXX`.
    pub fn bpffs_dir(&self) -> &Path {
        &self.bpffs_dir
    }

    /// The private temp dir holding the socket, state dir and logs.
    pub fn tmp_dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Pid of the running daemon, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon process is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last 200 lines of the daemon's stdout and stderr, over all its starts.
    pub fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.tmp.path().join(name)).unwrap_or_default();
        format!(
            "--- chaos-daemon stdout ---\n{}\n--- chaos-daemon stderr ---\n{}",
            tail(&read("daemon.stdout.log"), 200),
            tail(&read("daemon.stderr.log"), 200)
        )
    }

    /// A new gRPC client connected over the socket. Panics (with logs) if it cannot connect.
    pub async fn client(&self) -> FaultServiceClient<Channel> {
        match connect_unix(&self.socket()).await {
            Ok(c) => c,
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }

    /// SIGKILLs the daemon and reaps it (a crash: no cleanup on its side).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs the daemon and waits up to [`STOP_TIMEOUT`] for it to exit; returns its
    /// exit status. Panics (after SIGKILLing it) if it does not exit in time or was not running.
    #[track_caller]
    pub fn terminate(&mut self) -> ExitStatus {
        let Some(child) = self.child.as_mut() else {
            panic!("terminate: the daemon is not running\n{}", self.logs());
        };
        match signal_and_wait(child, Signal::SIGTERM, STOP_TIMEOUT) {
            Some(status) => {
                self.child = None;
                status
            }
            None => {
                self.kill9();
                panic!(
                    "chaos-daemon did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed\n{}",
                    self.logs()
                );
            }
        }
    }

    /// Starts the daemon again with the same socket, state dir, bpffs dir and extra
    /// args, and waits until it answers. A daemon still running is terminated first
    /// (call [`Daemon::kill9`] before for a crash-restart). Panics (with logs) on failure.
    pub async fn restart(&mut self) {
        if self.is_running() {
            self.terminate();
        }
        self.child = None;
        if let Err(e) = self.spawn_and_wait().await {
            panic!("{e}");
        }
    }

    fn log_file(&self, name: &str) -> io::Result<File> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join(name))?;
        writeln!(
            f,
            "=== faultline test harness: daemon start #{} ===",
            self.starts
        )?;
        Ok(f)
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.starts += 1;
        let (socket, state) = (self.socket(), self.state_dir());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos-daemon"));
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state)
            .arg("--bpffs-dir")
            .arg(&self.bpffs_dir)
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null());
        let out = self
            .log_file("daemon.stdout.log")
            .map_err(|e| e.to_string())?;
        let err = self
            .log_file("daemon.stderr.log")
            .map_err(|e| e.to_string())?;
        cmd.stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn chaos-daemon: {e}"))?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_err = String::from("socket not created yet");
        loop {
            if let Some(c) = &mut self.child {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "chaos-daemon exited during start-up with {status}\n{}",
                        self.logs()
                    ));
                }
            }
            if socket.exists() {
                match tokio::time::timeout(Duration::from_secs(2), ready_check(&socket)).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => last_err = e,
                    Err(_) => last_err = "Capabilities call timed out".into(),
                }
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "chaos-daemon not ready within {START_TIMEOUT:?} (last: {last_err})\n{}",
                    self.logs()
                ));
            }
            // Polling interval of the readiness check, not a synchronisation sleep.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One `Capabilities` round trip.
async fn ready_check(socket: &Path) -> Result<(), String> {
    let mut c = connect_unix(socket).await?;
    c.capabilities(CapabilitiesRequest {})
        .await
        .map(|_| ())
        .map_err(|s| format!("Capabilities: {s}"))
}

/// Sends `sig` and polls for exit up to `timeout`; `None` if still running.
fn signal_and_wait(child: &mut Child, sig: Signal, timeout: Duration) -> Option<ExitStatus> {
    let _ = kill(Pid::from_raw(child.id() as i32), sig);
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Removes a bpffs directory tree: unlinking a pin unpins the object. If `dir` is a
/// mount point of its own it is lazily unmounted first. Best effort; reports failures.
fn remove_bpffs_tree(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    remove_tree_inner(dir, &mut problems);
    if let Err(e) = fs::remove_dir(dir) {
        match e.kind() {
            io::ErrorKind::NotFound => {}
            _ if e.raw_os_error() == Some(libc::EBUSY) => {
                let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
                if let Err(e) = fs::remove_dir(dir) {
                    problems.push(format!("rmdir {}: {e}", dir.display()));
                }
            }
            _ => problems.push(format!("rmdir {}: {e}", dir.display())),
        }
    }
    problems
}

fn remove_tree_inner(dir: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let is_dir = fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let r = if is_dir {
            remove_tree_inner(&p, problems);
            fs::remove_dir(&p)
        } else {
            fs::remove_file(&p)
        };
        if let Err(e) = r {
            problems.push(format!("remove {}: {e}", p.display()));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if signal_and_wait(child, Signal::SIGTERM, STOP_TIMEOUT).is_none() {
                eprintln!("warning: chaos-daemon ignored SIGTERM for {STOP_TIMEOUT:?}; killing");
            }
            self.kill9();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for p in remove_bpffs_tree(&self.bpffs_dir) {
            eprintln!("warning: daemon cleanup: {p}");
        }
    }
}
