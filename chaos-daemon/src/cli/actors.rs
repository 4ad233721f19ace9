//! Flags of `inject process` and `inject stress`, and the requests they make.
use std::time::{Duration, SystemTime};

use chaos_proto::v1::{
    inject_request, process_fault, stress_fault, CpuStress, InjectRequest, Kill, MainProcess,
    MemoryStress, Pause, ProcessFault, Restart, StressFault,
};
use clap::{ArgGroup, Args};

use super::{
    args::WindowArgs,
    error::CliError,
    parse::{parse_duration, parse_percent, parse_rate, parse_size_or_percent, SizeOrPercent},
    request::proto_duration,
};

pub const PROCESS_AFTER_HELP: &str = "\
EXAMPLES:
  # Kill every process of a container once (SIGKILL, via cgroup.kill)
  chaosctl inject process --target container:3f2a9c1b7d04 --kill --duration 1s

  # Send SIGTERM to PostgreSQL's postmaster every 10 s for 5 minutes
  chaosctl inject process --target cgroup:/system.slice/postgresql.service --kill \\
      --signal TERM --main-only --main-command postgres --every 10s --duration 5m

  # Freeze a consumer for 30 s; it is thawed at the end, on cancel, and by a restarted daemon
  chaosctl inject process --target pid:4242 --pause --duration 30s

  # Kill a container's main process and report when its supervisor starts a new one
  chaosctl inject process --target container:3f2a9c1b7d04 --restart --duration 60s";

pub const STRESS_AFTER_HELP: &str = "\
EXAMPLES:
  # Two workers at 80% each, for a minute
  chaosctl inject stress --target cgroup:/system.slice/postgresql.service --cpu 2 --load 80 --duration 1m

  # One worker per CPU the target may use, pinned to CPUs 0 and 1 in turn
  chaosctl inject stress --target container:3f2a9c1b7d04 --cpu 0 --load 50 --cpus 0,1 --duration 30s

  # Hold 512 MiB in the target's memory cgroup, growing at 64 MiB/s
  chaosctl inject stress --target pid:4242 --memory 512MiB --grow 64MiB/s --duration 2m

  # Fill 90% of the target's memory limit; over the limit only with --allow-oom
  chaosctl inject stress --target pid:4242 --memory 90% --duration 1m

When the target's memory limit is reached, the kernel's OOM killer picks a process of the
target's cgroup: the worker or one of the target's own. `get` reports OOM kills.";

/// Flags of `inject process`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["kill", "pause", "restart"])))]
pub struct ProcessArgs {
    /// Who, when and how long.
    #[command(flatten)]
    pub window: WindowArgs,

    /// Send a signal (--signal, default SIGKILL) to every process of the target, or to its
    /// main process with --main-only; once, or every --every while the window is open.
    #[arg(long)]
    pub kill: bool,

    /// Freeze every process of the target for the window (cgroup freezer).
    #[arg(long)]
    pub pause: bool,

    /// Kill the target's main process once so its supervisor restarts it; the fault
    /// reports when a new process appears.
    #[arg(long)]
    pub restart: bool,

    /// The signal for --kill or --restart: a name (SIGTERM, TERM) or number [default: SIGKILL].
    #[arg(long, value_name = "SIGNAL")]
    pub signal: Option<String>,

    /// With --kill, signal only the main process (the oldest, or --main-pid/--main-command).
    #[arg(long, requires = "kill")]
    pub main_only: bool,

    /// The main process is this pid (it must be in the target).
    #[arg(long, value_name = "PID")]
    pub main_pid: Option<u32>,

    /// The main process is the oldest one with this command name (/proc/PID/comm).
    #[arg(long, value_name = "NAME")]
    pub main_command: Option<String>,

    /// With --kill, repeat every this long while the window is open (at least 10ms).
    ///
    /// Example: --every 500ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "kill")]
    pub every: Option<Duration>,
}

impl ProcessArgs {
    /// The `Inject` request these flags describe.
    pub fn to_inject_request(&self, now: SystemTime) -> Result<InjectRequest, CliError> {
        let main = (self.main_pid.is_some() || self.main_command.is_some()).then(|| MainProcess {
            pid: self.main_pid.unwrap_or(0),
            command: self.main_command.clone().unwrap_or_default(),
        });
        let signal = self.signal.clone().unwrap_or_default();
        let action = if self.pause {
            process_fault::Action::Pause(Pause {})
        } else if self.restart {
            process_fault::Action::Restart(Restart { signal, main })
        } else {
            let interval = proto_duration("--every", self.every)?;
            process_fault::Action::Kill(Kill {
                signal,
                // --main-pid/--main-command alone also mean "the main process only".
                main_only: self.main_only || main.is_some(),
                main,
                interval,
            })
        };
        self.window.to_request(
            now,
            inject_request::Spec::Process(ProcessFault {
                action: Some(action),
            }),
        )
    }
}

/// Flags of `inject stress`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("load").required(true).args(["cpu", "memory"])))]
pub struct StressArgs {
    /// Who, when and how long.
    #[command(flatten)]
    pub window: WindowArgs,

    /// CPU workers to start; 0 = one per CPU the target's cgroup may use. Needs --load.
    #[arg(long, value_name = "WORKERS", requires = "load_percent")]
    pub cpu: Option<u32>,

    /// Busy share of each CPU worker, in (0, 100].
    ///
    /// Examples: --load 80, --load 80%
    #[arg(
        long = "load",
        id = "load_percent",
        value_name = "PERCENT",
        value_parser = parse_percent,
        requires = "cpu"
    )]
    pub load: Option<f64>,

    /// Duty-cycle period of CPU workers [default: 100ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "cpu")]
    pub period: Option<Duration>,

    /// Pin CPU worker i to the i-th of these CPUs (cycling).
    ///
    /// Example: --cpus 0,1
    #[arg(long, value_name = "CPU", value_delimiter = ',', requires = "cpu")]
    pub cpus: Vec<u32>,

    /// Memory to allocate and touch: a size, or a percentage of the target's memory limit.
    ///
    /// Examples: --memory 512MiB, --memory 2G, --memory 90%
    #[arg(long, value_name = "SIZE|PERCENT", value_parser = parse_size_or_percent)]
    pub memory: Option<SizeOrPercent>,

    /// Grow to --memory at this rate instead of at once.
    ///
    /// Example: --grow 64MiB/s
    #[arg(long, value_name = "SIZE/s", value_parser = parse_rate, requires = "memory")]
    pub grow: Option<u64>,

    /// Accept a --memory at or over the target's limit: the OOM killer then picks a process
    /// of the target, possibly one of its own.
    #[arg(long, requires = "memory")]
    pub allow_oom: bool,
}

impl StressArgs {
    /// The `Inject` request these flags describe.
    pub fn to_inject_request(&self, now: SystemTime) -> Result<InjectRequest, CliError> {
        let load = match (self.cpu, self.memory) {
            (Some(workers), _) => {
                let period = proto_duration("--period", self.period)?;
                stress_fault::Load::Cpu(CpuStress {
                    workers,
                    load_percent: self.load.unwrap_or(0.0),
                    period,
                    cpus: self.cpus.clone(),
                })
            }
            (None, Some(amount)) => {
                let (bytes, percent_of_limit) = match amount {
                    SizeOrPercent::Bytes(b) => (b, 0.0),
                    SizeOrPercent::Percent(p) => (0, p),
                };
                stress_fault::Load::Memory(MemoryStress {
                    bytes,
                    percent_of_limit,
                    grow_bytes_per_second: self.grow.unwrap_or(0),
                    allow_oom: self.allow_oom,
                })
            }
            (None, None) => {
                return Err(CliError::Argument {
                    flag: "--cpu",
                    reason: "give --cpu N --load L or --memory SIZE".into(),
                })
            }
        };
        self.window.to_request(
            now,
            inject_request::Spec::Stress(StressFault { load: Some(load) }),
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::args::{Cli, Command, InjectCommand};

    fn request(args: &[&str]) -> InjectRequest {
        let mut argv = vec!["chaosctl", "inject"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("parses");
        let now = SystemTime::now();
        let Command::Inject(inject) = cli.command else {
            panic!("not an inject: {:?}", cli.command);
        };
        match *inject {
            InjectCommand::Process(p) => p.to_inject_request(now),
            InjectCommand::Stress(s) => s.to_inject_request(now),
            other => panic!("unexpected {other:?}"),
        }
        .expect("request")
    }

    #[test]
    fn kill_of_the_main_process_every_half_second() {
        let req = request(&[
            "process",
            "--target",
            "pid:1",
            "--duration",
            "5s",
            "--kill",
            "--signal",
            "TERM",
            "--main-command",
            "postgres",
            "--every",
            "500ms",
        ]);
        let Some(inject_request::Spec::Process(ProcessFault {
            action: Some(process_fault::Action::Kill(kill)),
        })) = req.spec
        else {
            panic!("not a kill: {req:?}");
        };
        assert_eq!(kill.signal, "TERM");
        assert!(kill.main_only);
        assert_eq!(kill.main.map(|m| m.command), Some("postgres".to_string()));
        assert_eq!(kill.interval.map(|i| i.nanos), Some(500_000_000));
    }

    #[test]
    fn stress_forms() {
        let req = request(&[
            "stress",
            "--target",
            "pid:1",
            "--duration",
            "5s",
            "--cpu",
            "2",
            "--load",
            "80%",
        ]);
        assert!(matches!(
            req.spec,
            Some(inject_request::Spec::Stress(StressFault {
                load: Some(stress_fault::Load::Cpu(CpuStress { workers: 2, load_percent, .. }))
            })) if load_percent == 80.0
        ));
        let req = request(&[
            "stress",
            "--target",
            "pid:1",
            "--duration",
            "5s",
            "--memory",
            "50%",
            "--allow-oom",
        ]);
        assert!(matches!(
            req.spec,
            Some(inject_request::Spec::Stress(StressFault {
                load: Some(stress_fault::Load::Memory(MemoryStress {
                    bytes: 0,
                    allow_oom: true,
                    ..
                }))
            }))
        ));
    }

    #[test]
    fn one_action_and_one_load() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["chaosctl", "inject"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).is_ok()
        };
        assert!(!parse(&[
            "process",
            "--target",
            "pid:1",
            "--duration",
            "1s"
        ]));
        assert!(!parse(&[
            "process",
            "--target",
            "pid:1",
            "--duration",
            "1s",
            "--kill",
            "--pause"
        ]));
        assert!(!parse(&[
            "stress",
            "--target",
            "pid:1",
            "--duration",
            "1s",
            "--cpu",
            "2"
        ]));
        assert!(!parse(&[
            "stress",
            "--target",
            "pid:1",
            "--duration",
            "1s",
            "--cpu",
            "1",
            "--load",
            "5",
            "--memory",
            "1G"
        ]));
    }
}
