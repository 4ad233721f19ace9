//! Guard rails on a real daemon: a dry run arms nothing, a lease not held ends its fault,
//! Renew and an open Watch hold it, abort-all ends every fault; each measured on real
//! packets and on the programs the kernel runs for the target.
mod support;
probe_entry!();

use std::{net::SocketAddr, time::Duration};

use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, network_fault::Action,
    AbortAllRequest, Fault, FaultState, InjectRequest, ListRequest, Loss, NetworkFault,
    RenewRequest, WatchRequest,
};
use support::{
    api::{self, get, inject},
    require_root, spawn_probe, Daemon, ProbeJob, TestCgroup, TwoNs, UdpEchoServer, B_V4,
};
use tonic::{transport::Channel, Code};

/// What network faults need from the kernel (as the daemon probes it).
const NETWORK: &[&str] = &["cgroup_v2", "cgroup_skb"];
/// Round trips per check: with 100 % loss one is enough, a few hundred rule out chance.
const PACKETS: u64 = 200;

/// Every packet of `target` dropped for `window`, with an optional lease.
fn blackout(target: &TestCgroup, window: Duration, lease: Option<Duration>) -> InjectRequest {
    let spec = NetworkFault {
        action: Some(Action::Loss(Loss { percent: 100.0 })),
        ..NetworkFault::default()
    };
    InjectRequest {
        lease: lease.map(|l| prost_types::Duration::try_from(l).expect("lease")),
        ..api::request(&target.target(), 0, window, Spec::Network(spec))
    }
}

/// A daemon that can do network faults, cgroups for its faults to target, and a UDP echo
/// server in namespace B for their processes in namespace A to measure what they lose.
///
/// Fields drop in order: the daemon ends its faults before their cgroups go.
struct Lab {
    daemon: Daemon,
    echo: UdpEchoServer,
    targets: Vec<TestCgroup>,
    net: TwoNs,
}

impl Lab {
    /// A lab with `targets` cgroups; `None` (the test skipped) when not root or without
    /// network faults on this kernel.
    async fn start(targets: usize) -> Option<Lab> {
        if !require_root() {
            return None;
        }
        let net = TwoNs::new();
        let targets = (0..targets).map(|_| TestCgroup::new()).collect();
        let echo = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4, 0)));
        let daemon = Daemon::start_requiring(&[], NETWORK).await?;
        Some(Lab {
            daemon,
            echo,
            targets,
            net,
        })
    }

    /// Round trips from a process in `cgroup` that did not come back.
    fn lost(&self, cgroup: &TestCgroup) -> u64 {
        let job = ProbeJob::UdpEcho {
            peer: self.echo.addr(),
            count: PACKETS,
            batch: 50,
            batch_timeout_ms: 150,
        };
        spawn_probe(job, &self.net.a, cgroup).wait()["lost"]
            .as_u64()
            .expect("lost")
    }
}

/// Asserts the daemon refuses `request` as INVALID_ARGUMENT, for the field `field`.
async fn assert_invalid(daemon: &Daemon, request: InjectRequest, field: &str) {
    let message = daemon.refused(request, Code::InvalidArgument).await;
    assert!(message.starts_with(field), "{message}");
}

/// Asserts Renew of `id` fails with `code`; `what` says why it should.
async fn assert_renew_fails(
    client: &mut FaultServiceClient<Channel>,
    id: &str,
    code: Code,
    what: &str,
) {
    let status = client
        .renew(RenewRequest { id: id.into() })
        .await
        .expect_err(what);
    assert_eq!(status.code(), code, "{status:?}");
}

/// Abort-all: the faults it ended.
async fn abort_all(client: &mut FaultServiceClient<Channel>) -> Vec<Fault> {
    client
        .abort_all(AbortAllRequest {})
        .await
        .expect("abort-all")
        .into_inner()
        .faults
}

/// Whether the kernel runs faultline's programs for `cgroup`'s packets.
fn attached(cgroup: &TestCgroup) -> bool {
    let path = cgroup.path().display().to_string();
    support::util::must_run("bpftool", &["cgroup", "show", &path, "effective"]).contains("net_")
}

/// Polls Get until the fault has ended (any end state), within `deadline`.
async fn ended(client: &mut FaultServiceClient<Channel>, id: &str, deadline: Duration) -> Fault {
    let start = std::time::Instant::now();
    loop {
        let fault = get(client, id).await;
        if fault.ended_at_unix_ns != 0 {
            return fault;
        }
        assert!(
            start.elapsed() < deadline,
            "fault {id} still armed after {deadline:?}: {fault:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_resolves_the_target_and_arms_nothing() {
    let Some(lab) = Lab::start(1).await else {
        return;
    };
    let target = &lab.targets[0];
    let mut client = lab.daemon.client().await;
    let answer = inject(
        &mut client,
        InjectRequest {
            dry_run: true,
            ..blackout(target, Duration::from_secs(60), None)
        },
    )
    .await;
    assert!(answer.dry_run, "{answer:?}");
    assert!(answer.id.is_empty(), "a dry run has no id: {answer:?}");
    assert_eq!(answer.cgroup_ids, vec![target.id()]);
    let listed = client
        .list(ListRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(listed.faults.is_empty(), "{:?}", listed.faults);
    assert!(!attached(target), "a dry run attached programs");
    assert_eq!(lab.lost(target), 0, "a dry run dropped packets");
    // A dry run checks what the real one would: a bad request is refused the same way.
    let bad = InjectRequest {
        dry_run: true,
        ..blackout(&TestCgroup::new(), Duration::ZERO, None)
    };
    assert_invalid(&lab.daemon, bad, "duration").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_not_held_ends_the_fault_early() {
    let Some(lab) = Lab::start(1).await else {
        return;
    };
    let target = &lab.targets[0];
    let mut client = lab.daemon.client().await;
    let lease = Duration::from_secs(2);
    let window = Duration::from_secs(300);
    let fault = inject(&mut client, blackout(target, window, Some(lease))).await;
    assert!(fault.lease_expires_unix_ns > 0, "{fault:?}");
    assert_eq!(lab.lost(target), PACKETS, "fault not in force");

    let fault = ended(&mut client, &fault.id, Duration::from_secs(60)).await;
    assert_eq!(fault.state, FaultState::Cancelled as i32, "{fault:?}");
    assert!(fault.message.contains("lease expired"), "{}", fault.message);
    assert!(fault.ended_at_unix_ns < fault.end_at_unix_ns);
    assert!(!attached(target), "programs left attached after the lease");
    assert_eq!(lab.lost(target), 0, "packets dropped after the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_and_an_open_watch_hold_the_lease() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let Some(daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    let lease = Duration::from_secs(3);
    let fault = inject(
        &mut client,
        blackout(&target, Duration::from_secs(300), Some(lease)),
    )
    .await;
    let id = fault.id.clone();

    // Renewed well within the lease for three lease periods: still armed.
    for _ in 0..30 {
        let renewed = client
            .renew(RenewRequest { id: id.clone() })
            .await
            .expect("renew")
            .into_inner();
        assert_eq!(
            renewed.ended_at_unix_ns, 0,
            "ended while renewed: {renewed:?}"
        );
        tokio::time::sleep(lease / 10).await;
    }
    // An open Watch of the fault holds it for as long again, with no Renew.
    let mut events = client
        .watch(WatchRequest { id: id.clone() })
        .await
        .expect("watch")
        .into_inner();
    let first = events.message().await.expect("watch").expect("first event");
    assert_eq!(first.fault.expect("fault").id, id);
    let watched = std::time::Instant::now();
    while watched.elapsed() < lease * 3 {
        tokio::time::sleep(lease / 10).await;
        let now = get(&mut client, &id).await;
        assert_eq!(now.ended_at_unix_ns, 0, "ended while watched: {now:?}");
    }
    assert!(attached(&target));
    // The watcher goes away: one more period, then the fault ends.
    drop(events);
    let fault = ended(&mut client, &id, Duration::from_secs(60)).await;
    assert!(fault.message.contains("lease expired"), "{}", fault.message);
    assert!(!attached(&target));

    // Renew of what cannot be renewed.
    let precondition = Code::FailedPrecondition;
    assert_renew_fails(&mut client, &id, precondition, "renew of an ended fault").await;
    assert_renew_fails(
        &mut client,
        "no-such-fault",
        Code::NotFound,
        "renew of an unknown id",
    )
    .await;
    let window = Duration::from_secs(60);
    let plain = inject(&mut client, blackout(&target, window, None)).await;
    assert_renew_fails(
        &mut client,
        &plain.id,
        precondition,
        "renew without a lease",
    )
    .await;
    let short = blackout(&target, window, Some(Duration::from_millis(100)));
    assert_invalid(&daemon, short, "lease").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_all_ends_every_fault_at_once() {
    let Some(lab) = Lab::start(2).await else {
        return;
    };
    let (one, two) = (&lab.targets[0], &lab.targets[1]);
    let mut client = lab.daemon.client().await;
    let window = Duration::from_secs(300);
    let a = inject(&mut client, blackout(one, window, None)).await;
    let b = inject(&mut client, blackout(two, window, None)).await;
    assert_eq!(lab.lost(one), PACKETS);
    assert_eq!(lab.lost(two), PACKETS);

    let aborted = abort_all(&mut client).await;
    let mut ids: Vec<&str> = aborted.iter().map(|f| f.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![a.id.as_str(), b.id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    for fault in &aborted {
        assert_eq!(fault.state, FaultState::Cancelled as i32, "{fault:?}");
        assert!(fault.message.contains("abort"), "{}", fault.message);
    }
    assert!(!attached(one) && !attached(two));
    assert_eq!(lab.lost(one), 0);
    assert_eq!(lab.lost(two), 0);
    // Nothing armed is left: a second abort-all ends nothing.
    let again = abort_all(&mut client).await;
    assert!(again.is_empty(), "{again:?}");
}
