//! The teaching parts of `kubectl chaos --help`: descriptions, examples and exit codes.

pub(super) const TOP_LONG_ABOUT: &str = "\
Inject faultline's eBPF faults into Kubernetes pods: network loss, partitions and \
impairments, storage errors, slow or full disks, killed, paused or restarted processes, CPU \
and memory stress.

Every node runs a faultline daemon (the DaemonSet of deploy/daemonset). kubectl chaos asks \
the API server which nodes run the pods you name, finds the daemon pod of each of those \
nodes (--daemon-namespace, --daemon-selector), and talks to it through a port-forward of \
its API port (--daemon-port), with mutual TLS end to end when --tls-ca, --tls-cert and \
--tls-key are given. Each daemon acts on the pods of its own node only; the answer lists \
every pod matched, per node.

Guard rails hold across the cluster: --max-targets and --max-percent are checked against \
every pod that would be targeted before anything is sent, and when one node refuses a \
fault that others armed, those are cancelled. Pods in kube-system and the daemon's \
namespace are protected unless --allow-protected names their namespace.";

pub(super) const TOP_AFTER_HELP: &str = "\
EXAMPLES:
  # Cut PostgreSQL's replicas off from 10.0.0.0/8 for a minute
  kubectl chaos network -n db -l app=postgres,role=replica --partition --cidr 10.0.0.0/8 \\
      --duration 60s

  # Kill every process of one pod once
  kubectl chaos process -n db postgres-0 --kill --duration 1s

  # See what a fault would touch, without arming anything
  kubectl chaos network -n db -l app=postgres --loss 30 --duration 30s --dry-run

  # Every fault on every node, then stop them all
  kubectl chaos list
  kubectl chaos abort-all

EXIT CODES:
  0  success
  1  any other failure (API server or a daemon unreachable, a daemon failed, output closed)
  2  invalid argument, rejected by kubectl chaos or by a daemon (INVALID_ARGUMENT)
  3  no such pod, no pod to act on, or unknown fault id (NOT_FOUND)
  4  refused by a guard rail, no faultline daemon on a node, or a node cannot do the fault
     (FAILED_PRECONDITION)
  5  not allowed: a protected namespace, or RBAC (PERMISSION_DENIED, HTTP 401/403)";

pub(super) const POD_ARGS_HELP: &str = "\
POD is NAME or pod/NAME in --namespace; or leave it out and select pods with -l/--selector \
(in --namespace, or in every namespace with -A). A selector goes to each node's daemon as is, \
so pods that replace matched ones during the window are targeted too.";

pub(super) const NETWORK_AFTER_HELP: &str = "\
EXAMPLES:
  # Partition PostgreSQL's replicas from 10.0.0.0/8 for a minute
  kubectl chaos network -n db -l app=postgres,role=replica --partition --cidr 10.0.0.0/8 \\
      --duration 60s

  # Drop 30% of one pod's packets on port 5432 for 5 minutes
  kubectl chaos network -n db postgres-0 --loss 30 --port 5432 --duration 5m

  # 100 ms ± 20 ms on what every Kafka broker sends, in every namespace
  kubectl chaos network -A -l app=kafka --delay 100ms --jitter 20ms --duration 2m

  # At most one pod, and only one container of it
  kubectl chaos network -n db -l app=postgres --max-targets 1 --container postgres \\
      --loss 10 --duration 1m";

pub(super) const PROCESS_AFTER_HELP: &str = "\
EXAMPLES:
  # Kill every process of a pod once (SIGKILL)
  kubectl chaos process -n db postgres-0 --kill --duration 1s

  # Freeze half of the consumers at most, for 30 s
  kubectl chaos process -n shop -l app=consumer --max-percent 50 --pause --duration 30s

  # Restart one container's main process and report when it is back
  kubectl chaos process -n db pod/postgres-1 --container postgres --restart --duration 60s";

pub(super) const STRESS_AFTER_HELP: &str = "\
EXAMPLES:
  # Two CPU workers at 80% in a pod, for a minute
  kubectl chaos stress -n db postgres-0 --cpu 2 --load 80 --duration 1m

  # Hold 512 MiB in a pod's memory cgroup, growing at 64 MiB/s
  kubectl chaos stress -n db postgres-0 --memory 512MiB --grow 64MiB/s --duration 2m";

pub(super) const STORAGE_AFTER_HELP: &str = "\
EXAMPLES:
  # PostgreSQL's fsync calls on its data directory fail with EIO for 30 s
  kubectl chaos storage -n db postgres-0 --errno EIO --ops fsync \\
      --path /var/lib/postgresql/data --duration 30s

  # WAL writes of every replica fail as if the disk were full
  kubectl chaos storage -n db -l app=postgres,role=replica --errno ENOSPC --ops write,create \\
      --path /var/lib/postgresql/data/pg_wal --duration 1m";

pub(super) const IO_LIMIT_AFTER_HELP: &str = "\
EXAMPLES:
  # A slow disk for one pod: 1 MiB/s and 50 write IOPS
  kubectl chaos io-limit -n db postgres-0 --path /var/lib/postgresql --write-bps 1MiB/s \\
      --write-iops 50 --duration 2m";

pub(super) const DISK_FILL_AFTER_HELP: &str = "\
EXAMPLES:
  # Fill the volume a pod sees at /var/lib/postgresql to 95% for 5 minutes
  kubectl chaos disk-fill -n db postgres-0 --path /var/lib/postgresql --fill 95% --duration 5m";

pub(super) const LIST_AFTER_HELP: &str = "\
EXAMPLES:
  kubectl chaos list
  kubectl chaos list -o wide
  kubectl chaos list -o json | jq -r '.[] | select(.state == \"active\") | .id'";

pub(super) const GET_AFTER_HELP: &str = "\
EXAMPLES:
  kubectl chaos get 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11
  kubectl chaos get 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11 -o yaml";

pub(super) const CANCEL_AFTER_HELP: &str = "\
EXAMPLES:
  kubectl chaos cancel 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11";

pub(super) const RENEW_AFTER_HELP: &str = "\
EXAMPLES:
  # Keep a fault injected with --lease 30s alive from a script
  while kubectl chaos renew 0b6f4f2e-6c1a-4f5e-9d43-2a8e1f0c7b11 >/dev/null; do sleep 10; done";

pub(super) const ABORT_ALL_AFTER_HELP: &str = "\
EXAMPLES:
  # Stop every experiment on every node now
  kubectl chaos abort-all";
