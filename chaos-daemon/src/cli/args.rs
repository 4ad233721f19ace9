//! The command-line model of `chaosctl` (clap derive), shared with future front-ends such
//! as a `kubectl-chaos` plugin: flatten [`NetworkArgs`] or [`OutputArgs`] into their commands.

use std::path::PathBuf;
use std::time::Duration;

use chaos_proto::v1::{Direction, PortRange, Protocol};
use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, ValueEnum};

use super::parse::{parse_duration, parse_percent, parse_port_range, parse_start_at, StartAt};

/// Where chaos-daemon listens unless `--socket` or `FAULTLINE_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/faultline/faultline.sock";

/// Section of `--help` listing the flags every subcommand accepts.
const GLOBAL_HEADING: &str = "Global options";

const TOP_LONG_ABOUT: &str = "\
Command-line client of faultline, the eBPF node-level fault injector.

chaosctl talks to the chaos-daemon of this node over its Unix socket, or to a daemon \
over TCP with --server (mutual TLS with --tls-ca, --tls-cert and --tls-key). It injects \
faults into a target's traffic for a bounded time window (the kernel opens and closes the \
window itself), lists and watches them, cancels them early, and reports what the node's \
kernel can do.";

const TOP_AFTER_HELP: &str = "\
EXAMPLES:
  # What can this node do?
  chaosctl capabilities

  # Drop 30% of PostgreSQL's packets for a minute
  chaosctl inject network --target cgroup:/system.slice/postgresql.service --loss 30 --duration 60s

  # Follow every fault's state changes as JSON lines
  chaosctl watch -o json

  # List the faults of a remote node's daemon over mutual TLS
  chaosctl --server https://node-1.example:7465 --tls-ca ca.crt \\
      --tls-cert client.crt --tls-key client.key list

EXIT CODES:
  0  success
  1  any other failure (daemon unreachable, internal error, output closed)
  2  invalid argument, rejected by chaosctl or by the daemon (INVALID_ARGUMENT)
  3  unknown fault id or target (NOT_FOUND)
  4  this node cannot do that fault (FAILED_PRECONDITION); see `chaosctl capabilities`";

const INJECT_AFTER_HELP: &str = "\
EXAMPLES:
  chaosctl inject network --target cgroup:/system.slice/postgresql.service --loss 30 --duration 60s
  chaosctl inject network --target pid:4242 --duration 5m \\
      --partition --cidr 10.0.0.0/8 --direction egress
  chaosctl inject process --target container:3f2a9c1b7d04 --pause --duration 30s
  chaosctl inject stress --target cgroup:/system.slice/postgresql.service --cpu 2 --load 80 --duration 1m
  chaosctl inject storage --target cgroup:/system.slice/postgresql.service \\
      --errno EIO --ops fsync --path /var/lib/postgresql/data --duration 30s
  chaosctl inject io-limit --target container:3f2a9c1b7d04 --path /data --write-bps 1MiB/s --duration 2m
  chaosctl inject disk-fill --target container:3f2a9c1b7d04 --path /data --fill 95% --duration 5m";

const NETWORK_AFTER_HELP: &str = "\
EXAMPLES:
  # Drop 30% of every packet of PostgreSQL's service for a minute
  chaosctl inject network --target cgroup:/system.slice/postgresql.service --loss 30 --duration 60s

  # Cut a container off from 10.0.0.0/8 (its outgoing packets) for 5 minutes
  chaosctl inject network --target container:3f2a9c1b7d04 --duration 5m \\
      --partition --cidr 10.0.0.0/8 --direction egress

  # The same, with the window opening 10 s from now
  chaosctl inject network --target container:3f2a9c1b7d04 --duration 5m --start-at +10s \\
      --partition --cidr 10.0.0.0/8 --direction egress

  # Lose 0.5% of a process's TCP packets on ports 5432 and 8000-8080, at a fixed time
  chaosctl inject network --target pid:4242 --loss 0.5% --protocol tcp \\
      --port 5432 --port 8000-8080 --duration 10m --start-at 2030-01-01T12:00:00Z

  # 100 ms ± 20 ms (normal) on a container's outgoing packets, limited to 10 Mbit/s, 0.5% lost
  chaosctl inject network --target container:3f2a9c1b7d04 --duration 5m \\
      --delay 100ms --jitter 20ms --distribution normal --rate 10mbit --loss 0.5

  # The same delay on what a pod receives (at the node's end of its veth)
  chaosctl inject network --target container:3f2a9c1b7d04 --duration 5m \\
      --delay 100ms --direction ingress

  # A bad link for Kafka traffic: 0.1% corrupted, 1% duplicated
  chaosctl inject network --target pid:4242 --port 9092 --corrupt 0.1 --duplicate 1 --duration 2m

  # Print the armed fault (with its id and window in Unix ns) as JSON
  chaosctl -o json inject network --target pid:4242 --loss 10 --duration 30s";

const LIST_AFTER_HELP: &str = "\
EXAMPLES:
  chaosctl list
  chaosctl list -o json | jq -r '.[] | select(.state == \"active\") | .id'";

const GET_AFTER_HELP: &str = "\
EXAMPLES:
  chaosctl get 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11
  chaosctl get 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11 -o json | jq .counters";

const CANCEL_AFTER_HELP: &str = "\
EXAMPLES:
  chaosctl cancel 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11";

const WATCH_AFTER_HELP: &str = "\
EXAMPLES:
  # Every fault's state changes, until Ctrl-C
  chaosctl watch

  # One fault, as one JSON object per line
  chaosctl watch 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11 -o json";

const RENEW_AFTER_HELP: &str = "\
EXAMPLES:
  # Keep a leased fault alive from a script, every 10 s
  while chaosctl renew 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11 >/dev/null; do sleep 10; done";

const ABORT_ALL_AFTER_HELP: &str = "\
EXAMPLES:
  # Stop every experiment on this node now
  chaosctl abort-all";

const CAPABILITIES_AFTER_HELP: &str = "\
EXAMPLES:
  chaosctl capabilities
  chaosctl capabilities -o json | jq '.faults[] | select(.supported | not)'";

/// `chaosctl`: the whole command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "chaosctl",
    version,
    about = "Inject, list and watch faultline's eBPF faults on this node",
    long_about = TOP_LONG_ABOUT,
    after_help = TOP_AFTER_HELP
)]
pub struct Cli {
    /// How to reach the daemon.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// How to print responses.
    #[command(flatten)]
    pub output: OutputArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommand path the user typed, e.g. "chaosctl inject network", found by matching
/// arguments against subcommand names; used to point a usage error at the right `--help`
/// (clap's error for a bad value does not say which subcommand it was in).
pub fn command_path<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let command = Cli::command();
    let root = command.get_name().to_owned();
    subcommand_path(command, &root, args)
}

/// `root` followed by the subcommands of `command` found among `args` (the first is the
/// program name), e.g. "kubectl chaos network": what [`command_path`] and the plugin's
/// own `command_path` print.
pub fn subcommand_path<I, S>(mut command: clap::Command, root: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut path = vec![root.to_owned()];
    for arg in args.into_iter().skip(1) {
        let Some(arg) = arg.as_ref().to_str() else {
            continue;
        };
        let Some(sub) = command.find_subcommand(arg).cloned() else {
            continue;
        };
        path.push(sub.get_name().to_owned());
        command = sub;
    }
    path.join(" ")
}

/// Flags that locate the daemon.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Path of chaos-daemon's Unix socket.
    ///
    /// Example: --socket /tmp/faultline.sock
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_HEADING,
        env = "FAULTLINE_SOCKET",
        default_value = DEFAULT_SOCKET,
        value_name = "PATH"
    )]
    pub socket: PathBuf,

    /// Reach the daemon over TCP instead of the Unix socket: https:// for TLS (needs
    /// --tls-ca), http:// for a plaintext port (loopback only, unless the daemon runs with
    /// --insecure-listen).
    ///
    /// Example: --server https://node-1.example:7465
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_HEADING,
        env = "FAULTLINE_SERVER",
        value_name = "URL"
    )]
    pub server: Option<String>,

    /// PEM certificates of the CA that signed the daemon's certificate (https:// only).
    ///
    /// Example: --tls-ca ca.crt
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_HEADING,
        env = "FAULTLINE_TLS_CA",
        value_name = "FILE"
    )]
    pub tls_ca: Option<PathBuf>,

    /// PEM client certificate to present (https:// only; a daemon with mTLS requires it).
    ///
    /// Example: --tls-cert client.crt --tls-key client.key
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_HEADING,
        env = "FAULTLINE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_HEADING,
        env = "FAULTLINE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Name the daemon's certificate must be valid for [default: the host of --server].
    ///
    /// Example: --tls-server-name faultline.node-1
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_HEADING,
        value_name = "NAME"
    )]
    pub tls_server_name: Option<String>,
}

/// Flags that choose the output format.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format: aligned columns for people, or JSON for scripts.
    ///
    /// JSON is one document per response (an array for `list`), and one object per line
    /// for `watch`. Example: -o json
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        help_heading = GLOBAL_HEADING,
        value_enum,
        default_value_t = OutputFormat::Table,
        value_name = "FORMAT"
    )]
    pub format: OutputFormat,
}

/// How responses are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned human-readable columns; times in RFC 3339 UTC.
    Table,
    /// JSON; times in Unix nanoseconds.
    Json,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Inject a fault into a target for a bounded time window.
    #[command(subcommand, after_help = INJECT_AFTER_HELP)]
    Inject(Box<InjectCommand>),
    /// List the faults the daemon knows: pending, active and recently finished.
    #[command(after_help = LIST_AFTER_HELP)]
    List,
    /// Show one fault in detail, with fresh counters.
    #[command(after_help = GET_AFTER_HELP)]
    Get(IdArgs),
    /// End a fault now (a finished fault is shown unchanged).
    #[command(after_help = CANCEL_AFTER_HELP)]
    Cancel(IdArgs),
    /// Print faults' state changes as they happen, until Ctrl-C or the daemon stops.
    ///
    /// The current state of each watched fault comes first, then one line (or one JSON
    /// object) per change.
    #[command(after_help = WATCH_AFTER_HELP)]
    Watch(WatchArgs),
    /// Show what this node's kernel lets faultline do, and why not when it cannot.
    #[command(after_help = CAPABILITIES_AFTER_HELP)]
    Capabilities,
    /// Hold a fault's lease (--lease) for one more period from now.
    #[command(after_help = RENEW_AFTER_HELP)]
    Renew(IdArgs),
    /// End every fault of this daemon now.
    #[command(after_help = ABORT_ALL_AFTER_HELP)]
    AbortAll,
}

/// The kinds of fault `inject` can arm.
#[derive(Debug, Clone, Subcommand)]
pub enum InjectCommand {
    /// Drop (--loss, --partition), delay, rate-limit, corrupt or duplicate a target's packets.
    ///
    /// The fault applies to the packets of the target's cgroup that match every filter
    /// given (--direction, --protocol, --port, --cidr), from --start-at for --duration.
    /// Impairments act on egress unless --direction says otherwise (ingress: where packets
    /// leave the other end of the target's veth); delay and rate need the fq qdisc, which
    /// the daemon installs on those interfaces for the window.
    #[command(after_help = NETWORK_AFTER_HELP)]
    Network(NetworkArgs),
    /// Kill, pause (freeze) or restart a target's processes.
    ///
    /// Acts on every process of the target's cgroup and its child cgroups, or on its main
    /// process (the oldest one, or one chosen by --main-pid / --main-command).
    #[command(after_help = super::actors::PROCESS_AFTER_HELP)]
    Process(super::actors::ProcessArgs),
    /// Load a target's CPU or memory with worker processes charged to its cgroup.
    ///
    /// The workers run inside the target's cgroup (a child cgroup of it), so its limits
    /// and accounting see the load; they stop at the window's end, on cancel, and if the
    /// daemon dies.
    #[command(after_help = super::actors::STRESS_AFTER_HELP)]
    Stress(super::actors::StressArgs),
    /// Make a target's file system calls under a path fail with an errno (EIO, ENOSPC...).
    ///
    /// The chosen calls (--ops) on the file or directory tree at --path fail in the kernel
    /// with --errno, for the target's processes only, from --start-at for --duration;
    /// --percent and --max-failures bound how many fail. For a full disk or a slow disk,
    /// see `inject disk-fill` and `inject io-limit`.
    #[command(after_help = super::storage::STORAGE_AFTER_HELP)]
    Storage(super::storage::StorageArgs),
    /// Slow down a target's I/O to the disk holding a path (bytes/s and IOPS limits).
    ///
    /// The path is resolved in the target's mount namespace; the limits apply to the
    /// target's reads and writes of the whole disk holding it.
    #[command(after_help = super::storage::IO_LIMIT_AFTER_HELP)]
    IoLimit(super::storage::IoLimitArgs),
    /// Fill the file system a target sees at a path, for the window.
    ///
    /// The path is resolved in the target's mount namespace, so a container's path means
    /// the container's file system.
    #[command(after_help = super::storage::DISK_FILL_AFTER_HELP)]
    DiskFill(super::storage::DiskFillArgs),
}

/// A fault id argument.
#[derive(Debug, Clone, Args)]
pub struct IdArgs {
    /// The fault's id, as printed by `inject` or `list`.
    ///
    /// Example: 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Arguments of `watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// The fault to watch; every fault when omitted.
    ///
    /// Example: 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11
    #[arg(value_name = "ID")]
    pub id: Option<String>,
}

/// Flags of `inject network`; [`NetworkArgs::to_inject_request`] turns them into a request.
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("action")
        .required(true)
        .multiple(true)
        .args(["loss", "partition", "delay", "jitter", "rate", "corrupt", "duplicate"])
))]
pub struct NetworkArgs {
    /// Who, when and how long.
    #[command(flatten)]
    pub window: WindowArgs,

    /// Drop this percentage of matching packets, each packet drawn on its own.
    ///
    /// In (0, 100], resolution 0.01; the % sign is optional.
    /// Examples: --loss 30, --loss 30%, --loss 0.01
    #[arg(
        long,
        value_name = "PERCENT",
        value_parser = parse_percent,
        allow_negative_numbers = true
    )]
    pub loss: Option<f64>,

    /// Drop every matching packet (a partition); needs at least one --cidr.
    ///
    /// Example: --partition --cidr 10.0.0.0/8
    #[arg(long, conflicts_with = "loss")]
    pub partition: bool,

    /// Delay, bandwidth, corruption, duplication of the packets the target sends.
    #[command(flatten)]
    pub impair: Box<super::impair::ImpairArgs>,

    /// Which packets by direction, seen from the target [default: both for --loss and
    /// --partition, egress for impairments].
    ///
    /// Example: --direction egress
    #[arg(long, value_enum, value_name = "DIRECTION")]
    pub direction: Option<DirectionArg>,

    /// Which transport protocol [default: any].
    ///
    /// Example: --protocol tcp
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub protocol: Option<ProtocolArg>,

    /// Only packets whose local or peer port is this port or in this inclusive range.
    ///
    /// Repeat the flag or separate with commas for several; any port when omitted.
    /// Examples: --port 5432, --port 8000-8080, --port 80,443
    #[arg(
        long = "port",
        value_name = "PORT|FIRST-LAST",
        value_parser = parse_port_range,
        value_delimiter = ','
    )]
    pub ports: Vec<PortRange>,

    /// Only packets to or from peers in this IPv4 or IPv6 CIDR.
    ///
    /// Repeat the flag or separate with commas for several; any peer when omitted.
    /// Examples: --cidr 10.0.0.0/8, --cidr fd00::1/128
    #[arg(long = "cidr", value_name = "CIDR", value_delimiter = ',')]
    pub cidrs: Vec<String>,
}

/// The target and window every fault kind takes.
#[derive(Debug, Clone, Default, Args)]
pub struct WindowArgs {
    /// Who to affect: cgroup:<path>, pid:<pid>, container:<id>, or (daemon in a cluster)
    /// pod:<namespace>/<name> or pods:<namespace>?labelSelector=<selector>.
    ///
    /// The daemon resolves it to cgroup v2 ids: a cgroup path relative to the cgroup2
    /// mount, the cgroup of a process, of a container, or of each pod of its node (the
    /// pod-level cgroup, so restarted containers stay targeted; pods on other nodes or not
    /// running are reported, not skipped silently). pods:*?labelSelector=… spans every
    /// namespace.
    /// Examples: --target cgroup:/system.slice/postgresql.service, --target pid:4242,
    /// --target container:3f2a9c1b7d04, --target pod:db/postgres-0,
    /// --target 'pods:db?labelSelector=app=postgres,role=replica'
    #[arg(long, value_name = "TARGET")]
    pub target: String,

    /// Pod targets: act on this container of each pod instead of the whole pod.
    ///
    /// Example: --container postgres
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,

    /// Resolve and validate everything, print what would be affected, and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Refuse the fault if it would act on more than this many cgroups (pods).
    ///
    /// Example: --max-targets 1
    #[arg(long, value_name = "N")]
    pub max_targets: Option<u32>,

    /// Pod selectors: refuse if the pods acted on are more than this percent of the running
    /// pods the selector matches.
    ///
    /// Example: --max-percent 50
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub max_percent: Option<f64>,

    /// Allow targets in this protected namespace (kube-system and the daemon's own are
    /// protected by default). Repeatable.
    ///
    /// Example: --allow-protected kube-system
    #[arg(long = "allow-protected", value_name = "NAMESPACE")]
    pub allow_protected: Vec<String>,

    /// End the fault early unless it is renewed (`chaosctl renew ID`, or an open
    /// `chaosctl watch ID`) at least this often: a fault then never outlives the client
    /// that started it by more than the lease.
    ///
    /// Example: --lease 30s
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lease: Option<Duration>,

    /// How long the fault's window stays open; faults never run open-ended.
    ///
    /// Examples: --duration 60s, --duration 1m30s, --duration 500ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,

    /// When the window opens: an RFC 3339 time, or +<duration> from now [default: now].
    ///
    /// Examples: --start-at +5s, --start-at +300ms, --start-at 2030-01-01T12:00:00Z
    #[arg(long, value_name = "TIME|+DURATION", value_parser = parse_start_at)]
    pub start_at: Option<StartAt>,
}

/// `--direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Packets the target sends.
    Egress,
    /// Packets the target receives.
    Ingress,
    /// Both ways.
    Both,
}

impl From<DirectionArg> for Direction {
    fn from(arg: DirectionArg) -> Self {
        match arg {
            DirectionArg::Egress => Direction::Egress,
            DirectionArg::Ingress => Direction::Ingress,
            DirectionArg::Both => Direction::Both,
        }
    }
}

/// `--protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// TCP segments.
    Tcp,
    /// UDP datagrams.
    Udp,
    /// ICMP and ICMPv6 messages.
    Icmp,
    /// Every IP packet.
    Any,
}

impl From<ProtocolArg> for Protocol {
    fn from(arg: ProtocolArg) -> Self {
        match arg {
            ProtocolArg::Tcp => Protocol::Tcp,
            ProtocolArg::Udp => Protocol::Udp,
            ProtocolArg::Icmp => Protocol::Icmp,
            ProtocolArg::Any => Protocol::Any,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_model_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn command_path_follows_subcommands_only() {
        let path = |args: &[&str]| command_path(args);
        assert_eq!(path(&["chaosctl"]), "chaosctl");
        assert_eq!(
            path(&["chaosctl", "-o", "json", "list", "--x"]),
            "chaosctl list"
        );
        assert_eq!(
            path(&["chaosctl", "inject", "network", "--target", "list"]),
            "chaosctl inject network"
        );
    }

    #[test]
    fn socket_defaults_and_globals_work_after_subcommand() {
        let cli = Cli::try_parse_from(["chaosctl", "list", "-o", "json", "--socket", "/tmp/s"]);
        let cli = cli.map_err(|e| e.to_string());
        assert!(matches!(
            cli,
            Ok(Cli {
                command: Command::List,
                ..
            })
        ));
        if let Ok(cli) = cli {
            assert_eq!(cli.output.format, OutputFormat::Json);
            assert_eq!(cli.connection.socket, PathBuf::from("/tmp/s"));
        }
    }

    #[test]
    fn loss_and_partition_are_exclusive_and_one_is_required() {
        let base = [
            "chaosctl",
            "inject",
            "network",
            "--target",
            "pid:1",
            "--duration",
            "1s",
        ];
        let with = |extra: &[&str]| {
            Cli::try_parse_from(base.iter().chain(extra.iter()).copied()).map(|_| ())
        };
        assert!(with(&["--loss", "30"]).is_ok());
        assert!(with(&["--partition"]).is_ok());
        assert!(with(&[]).is_err());
        assert!(with(&["--loss", "30", "--partition"]).is_err());
    }

    #[test]
    fn ports_and_cidrs_repeat_and_split_on_commas() {
        let cli = Cli::try_parse_from([
            "chaosctl",
            "inject",
            "network",
            "--target",
            "pid:1",
            "--duration",
            "1s",
            "--loss",
            "-5",
            "--port",
            "80,443",
            "--port",
            "8000-8080",
            "--cidr",
            "10.0.0.0/8,fd00::/8",
        ]);
        let Ok(Cli {
            command: Command::Inject(inject),
            ..
        }) = cli
        else {
            panic!("did not parse: {cli:?}");
        };
        let InjectCommand::Network(args) = *inject else {
            panic!("not a network fault: {inject:?}");
        };
        assert_eq!(args.loss, Some(-5.0));
        let ports: Vec<_> = args.ports.iter().map(|p| (p.first, p.last)).collect();
        assert_eq!(ports, [(80, 80), (443, 443), (8000, 8080)]);
        assert_eq!(args.cidrs, ["10.0.0.0/8", "fd00::/8"]);
    }
}
