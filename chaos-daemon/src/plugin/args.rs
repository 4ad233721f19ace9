//! The command line of `kubectl chaos`: chaosctl's per-kind flag structs behind a pod
//! positional or a label selector, plus where the cluster and its daemons are.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgGroup, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use super::help;
use crate::cli::actors::{ProcessArgs, StressArgs};
use crate::cli::args::{
    subcommand_path, ConnectionArgs, IdArgs, InjectCommand, NetworkArgs, WindowArgs,
};
use crate::cli::storage::{DiskFillArgs, IoLimitArgs, StorageArgs};

/// The namespace of the faultline DaemonSet, unless `--daemon-namespace` says otherwise.
pub const DEFAULT_DAEMON_NAMESPACE: &str = "faultline";
/// The labels of the daemon pods, unless `--daemon-selector` says otherwise.
pub const DEFAULT_DAEMON_SELECTOR: &str = "app.kubernetes.io/name=faultline";
/// The daemon's gRPC port inside its pod, unless `--daemon-port` says otherwise.
pub const DEFAULT_DAEMON_PORT: u16 = 7465;

/// Section of `--help` for the flags that locate the cluster and the daemons.
const CLUSTER_HEADING: &str = "Cluster options";
/// Section of `--help` for the flags every subcommand accepts (chaosctl's name for it).
const GLOBAL_HEADING: &str = "Global options";

/// `--lease` as this front-end renews it.
const LEASE_HELP: &str = "End the fault early unless it is renewed (`kubectl chaos renew ID`, for \
the id of each node's fault) at least this often: a fault then never outlives the client that \
started it by more than the lease.

Example: --lease 30s";

/// The subcommands that inject a fault, each with chaosctl's hidden `--target`.
const INJECT_SUBCOMMANDS: &[&str] = &[
    "network",
    "process",
    "stress",
    "storage",
    "io-limit",
    "disk-fill",
];

/// `kubectl chaos`: the whole command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kubectl-chaos",
    bin_name = "kubectl chaos",
    version,
    about = "Inject faultline's eBPF faults into pods, on whichever nodes they run",
    long_about = help::TOP_LONG_ABOUT,
    after_help = help::TOP_AFTER_HELP
)]
pub struct PluginCli {
    /// Where the cluster and its daemons are, and how to print.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// TLS to the daemons (chaosctl's flags; --socket and --server do not apply).
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Flags that locate the cluster and the daemons, and choose the output.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The namespace of POD or --selector [default: the kubeconfig context's namespace].
    ///
    /// Example: -n db
    #[arg(
        short = 'n',
        long,
        global = true,
        help_heading = CLUSTER_HEADING,
        value_name = "NAMESPACE"
    )]
    pub namespace: Option<String>,

    /// The kubeconfig context to use [default: its current context].
    ///
    /// Example: --context staging
    #[arg(long, global = true, help_heading = CLUSTER_HEADING, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster
    /// service account].
    ///
    /// Example: --kubeconfig ~/.kube/staging.yaml
    #[arg(long, global = true, help_heading = CLUSTER_HEADING, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The namespace of the faultline daemon pods.
    #[arg(
        long,
        global = true,
        help_heading = CLUSTER_HEADING,
        value_name = "NAMESPACE",
        default_value = DEFAULT_DAEMON_NAMESPACE
    )]
    pub daemon_namespace: String,

    /// The label selector of the faultline daemon pods (one per node).
    #[arg(
        long,
        global = true,
        help_heading = CLUSTER_HEADING,
        value_name = "SELECTOR",
        default_value = DEFAULT_DAEMON_SELECTOR
    )]
    pub daemon_selector: String,

    /// The daemon's API port inside its pod, reached by port-forward.
    #[arg(
        long,
        global = true,
        help_heading = CLUSTER_HEADING,
        value_name = "PORT",
        default_value_t = DEFAULT_DAEMON_PORT
    )]
    pub daemon_port: u16,

    /// Output format: a table of pods (or faults), the table with more columns, or the
    /// faults as JSON or YAML (an array of the daemons' answers; times in Unix ns).
    ///
    /// Example: -o wide
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        help_heading = GLOBAL_HEADING,
        value_enum,
        default_value_t = Format::Table,
        value_name = "FORMAT"
    )]
    pub format: Format,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns: one row per pod (inject) or per fault (list).
    Table,
    /// The table with the fault's kind, state, window and the pod's cgroup.
    Wide,
    /// JSON, as chaosctl prints it.
    Json,
    /// YAML, with the fields of the JSON.
    Yaml,
}

/// Which pods a fault is for: one by name, or a label selector.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("pods").required(true).args(["pod", "selector"])))]
pub struct PodSelection {
    /// The pod: NAME or pod/NAME, in --namespace.
    ///
    /// Example: postgres-0, pod/postgres-0
    #[arg(value_name = "POD")]
    pub pod: Option<String>,

    /// Every pod with these labels, in kubectl's selector syntax.
    ///
    /// Examples: -l app=postgres,role=replica, -l 'tier in (db,cache)'
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// With --selector: the pods of every namespace instead of --namespace's.
    #[arg(
        short = 'A',
        long = "all-namespaces",
        requires = "selector",
        conflicts_with = "pod"
    )]
    pub all_namespaces: bool,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum PluginCommand {
    /// Drop (--loss, --partition), delay, rate-limit, corrupt or duplicate pods' packets.
    #[command(after_help = help::NETWORK_AFTER_HELP)]
    Network {
        #[command(flatten)]
        pods: PodSelection,
        #[command(flatten)]
        fault: NetworkArgs,
    },
    /// Kill, pause (freeze) or restart pods' processes.
    #[command(after_help = help::PROCESS_AFTER_HELP)]
    Process {
        #[command(flatten)]
        pods: PodSelection,
        #[command(flatten)]
        fault: ProcessArgs,
    },
    /// Load pods' CPU or memory with workers charged to their cgroups.
    #[command(after_help = help::STRESS_AFTER_HELP)]
    Stress {
        #[command(flatten)]
        pods: PodSelection,
        #[command(flatten)]
        fault: StressArgs,
    },
    /// Make pods' file system calls under a path fail with an errno (EIO, ENOSPC...).
    #[command(after_help = help::STORAGE_AFTER_HELP)]
    Storage {
        #[command(flatten)]
        pods: PodSelection,
        #[command(flatten)]
        fault: StorageArgs,
    },
    /// Slow down pods' I/O to the disk holding a path (bytes/s and IOPS limits).
    #[command(after_help = help::IO_LIMIT_AFTER_HELP)]
    IoLimit {
        #[command(flatten)]
        pods: PodSelection,
        #[command(flatten)]
        fault: IoLimitArgs,
    },
    /// Fill the file system pods see at a path, for the window.
    #[command(after_help = help::DISK_FILL_AFTER_HELP)]
    DiskFill {
        #[command(flatten)]
        pods: PodSelection,
        #[command(flatten)]
        fault: DiskFillArgs,
    },
    /// List the faults of every node's daemon: pending, active and recently finished.
    #[command(after_help = help::LIST_AFTER_HELP)]
    List,
    /// Show one fault in detail, from whichever node's daemon holds it.
    #[command(after_help = help::GET_AFTER_HELP)]
    Get(IdArgs),
    /// End a fault now, on whichever node's daemon holds it.
    #[command(after_help = help::CANCEL_AFTER_HELP)]
    Cancel(IdArgs),
    /// Hold a fault's lease (--lease) for one more period from now.
    #[command(after_help = help::RENEW_AFTER_HELP)]
    Renew(IdArgs),
    /// End every fault of every node's daemon now.
    #[command(after_help = help::ABORT_ALL_AFTER_HELP)]
    AbortAll,
}

impl PluginCommand {
    /// The pods and the fault of an inject subcommand, the fault as chaosctl's
    /// [`InjectCommand`]; any other subcommand back as it was.
    pub fn into_inject(self) -> Result<(PodSelection, InjectCommand), Box<Self>> {
        Ok(match self {
            Self::Network { pods, fault } => (pods, InjectCommand::Network(fault)),
            Self::Process { pods, fault } => (pods, InjectCommand::Process(fault)),
            Self::Stress { pods, fault } => (pods, InjectCommand::Stress(fault)),
            Self::Storage { pods, fault } => (pods, InjectCommand::Storage(fault)),
            Self::IoLimit { pods, fault } => (pods, InjectCommand::IoLimit(fault)),
            Self::DiskFill { pods, fault } => (pods, InjectCommand::DiskFill(fault)),
            other @ (Self::List
            | Self::Get(_)
            | Self::Cancel(_)
            | Self::Renew(_)
            | Self::AbortAll) => return Err(Box::new(other)),
        })
    }
}

/// The window (and its `--target`) of any fault kind.
pub fn window_mut(fault: &mut InjectCommand) -> &mut WindowArgs {
    match fault {
        InjectCommand::Network(args) => &mut args.window,
        InjectCommand::Process(args) => &mut args.window,
        InjectCommand::Stress(args) => &mut args.window,
        InjectCommand::Storage(args) => &mut args.window,
        InjectCommand::IoLimit(args) => &mut args.window,
        InjectCommand::DiskFill(args) => &mut args.window,
    }
}

/// The clap command of `kubectl chaos`: the derived model with chaosctl's `--target`
/// hidden (the positional POD or `--selector` fills it), its `--socket` and `--server`
/// hidden (each node's daemon is reached by port-forward), and the TLS flags' help
/// adjusted to that.
pub fn command() -> clap::Command {
    let mut command = PluginCli::command()
        .mut_arg("socket", |a| a.hide(true))
        .mut_arg("server", |a| a.hide(true))
        .mut_arg("tls_ca", |a| {
            a.help("PEM certificates of the CA that signed the daemons' certificate; with it, TLS runs through the port-forward to each daemon")
                .long_help(None::<&str>)
        })
        .mut_arg("tls_cert", |a| {
            a.help("PEM client certificate to present (a daemon with mTLS requires it)")
                .long_help(None::<&str>)
        })
        .mut_arg("tls_server_name", |a| {
            a.help("Name the daemons' certificate must be valid for [default: chaos-daemon.<daemon namespace>.svc]")
                .long_help(None::<&str>)
        });
    for name in INJECT_SUBCOMMANDS {
        command = command.mut_subcommand(*name, |sub| {
            let about = sub
                .get_long_about()
                .or(sub.get_about())
                .map(|a| format!("{a}\n\n{}", help::POD_ARGS_HELP))
                .unwrap_or_else(|| help::POD_ARGS_HELP.to_owned());
            // Derive requires a value for the String field: an empty default satisfies it,
            // and `parse_from` replaces it with the pod target.
            sub.long_about(about)
                .mut_arg("target", |a| a.hide(true).required(false).default_value(""))
                .mut_arg("lease", |a| a.long_help(LEASE_HELP))
        });
    }
    command
}

/// Parses `kubectl chaos` arguments (the first is the program name). Errors are clap's,
/// ready for [`clap::Error::print`] or [`crate::cli::clap_error_line`].
pub fn parse_from<I, T>(args: I) -> Result<PluginCli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = command();
    let matches = command.try_get_matches_from_mut(args)?;
    for (flag, id) in [("--socket", "socket"), ("--server", "server")] {
        if from_command_line(&matches, id) {
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                format!("{flag} is chaosctl's: kubectl chaos reaches each node's daemon by port-forward through the API server (see --daemon-namespace, --daemon-port)"),
            ));
        }
    }
    if let Some((_, sub)) = matches.subcommand() {
        if from_command_line(sub, "target") {
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                "--target is chaosctl's: name a pod (NAME or pod/NAME) or select pods with -l/--selector",
            ));
        }
    }
    PluginCli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// Whether the user typed argument `id` (not a default or an environment variable).
fn from_command_line(matches: &ArgMatches, id: &str) -> bool {
    // `value_source` panics on ids unknown to these matches in debug builds; only ask
    // when the id exists.
    matches.ids().any(|i| i.as_str() == id)
        && matches.value_source(id) == Some(ValueSource::CommandLine)
}

/// The subcommand path typed, e.g. "kubectl chaos network", for a usage error's
/// "see '… --help'" (clap's error for a bad value does not say which subcommand it was in).
pub fn command_path<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    subcommand_path(PluginCli::command(), "kubectl chaos", args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<PluginCli, String> {
        parse_from(std::iter::once("kubectl-chaos").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn command_model_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn pod_positional_and_globals_after_it() {
        let cli = parse(&[
            "process",
            "postgres-0",
            "-n",
            "db",
            "--kill",
            "--duration",
            "1s",
            "-o",
            "wide",
        ]);
        let cli = cli.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.cluster.namespace.as_deref(), Some("db"));
        assert_eq!(cli.cluster.format, Format::Wide);
        assert_eq!(cli.cluster.daemon_namespace, DEFAULT_DAEMON_NAMESPACE);
        assert_eq!(cli.cluster.daemon_port, DEFAULT_DAEMON_PORT);
        let Ok((pods, mut fault)) = cli.command.into_inject() else {
            panic!("not an inject command");
        };
        assert_eq!(pods.pod.as_deref(), Some("postgres-0"));
        assert!(matches!(fault, InjectCommand::Process(_)));
        assert_eq!(window_mut(&mut fault).target, "");
    }

    #[test]
    fn selector_and_all_namespaces() {
        let cli = parse(&[
            "network",
            "-A",
            "-l",
            "app=postgres,role=replica",
            "--partition",
            "--cidr",
            "10.0.0.0/8",
            "--duration",
            "60s",
            "--max-percent",
            "50",
        ]);
        let cli = cli.unwrap_or_else(|e| panic!("{e}"));
        let Ok((pods, mut fault)) = cli.command.into_inject() else {
            panic!("not an inject command");
        };
        assert_eq!(pods.selector.as_deref(), Some("app=postgres,role=replica"));
        assert!(pods.all_namespaces);
        assert_eq!(window_mut(&mut fault).max_percent, Some(50.0));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let base = ["network", "--loss", "5", "--duration", "1s"];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            parse(&args)
        };
        assert!(with(&["p"]).is_ok());
        // Neither a pod nor a selector; both; -A without a selector.
        assert!(with(&[]).is_err());
        assert!(with(&["p", "-l", "a=b"]).is_err());
        assert!(with(&["p", "-A"]).is_err());
        let target = with(&["--target", "pid:1", "p"]).err().unwrap_or_default();
        assert!(target.contains("--target is chaosctl's"), "{target}");
        let server = with(&["p", "--server", "http://127.0.0.1:1"])
            .err()
            .unwrap_or_default();
        assert!(server.contains("--server is chaosctl's"), "{server}");
    }

    #[test]
    fn help_teaches_pods_and_hides_chaosctl_flags() {
        let mut command = command();
        command.build();
        let help = command
            .find_subcommand_mut("network")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        assert!(help.contains("Usage: kubectl chaos network"), "{help}");
        assert!(help.contains("--selector"), "{help}");
        assert!(help.contains("POD is NAME or pod/NAME"), "{help}");
        assert!(
            help.contains("kubectl chaos network -n db -l app=postgres"),
            "{help}"
        );
        assert!(!help.contains("--target"), "{help}");
        assert!(!help.contains("--socket"), "{help}");
        assert!(help.contains("kubectl chaos renew ID"), "{help}");
    }

    #[test]
    fn command_path_follows_subcommands() {
        assert_eq!(
            command_path(["kubectl-chaos", "-n", "db", "network", "--x"]),
            "kubectl chaos network"
        );
        assert_eq!(command_path(["kubectl-chaos"]), "kubectl chaos");
    }
}
