//! Network loss and partition on real namespaces, veths, cgroups and processes, measured by
//! the packets real sockets get back.
mod support;
probe_entry!();

use std::{net::SocketAddr, time::Duration};

use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, network_fault::Action,
    Direction, Fault, FaultState, InjectRequest, Loss, NetworkFault, Partition, PortRange,
    Protocol, WatchRequest,
};
use support::{
    api::{self, get, inject},
    assert_rate_within, require_root, spawn_probe, steady_stream, wait_until, Daemon, ProbeJob,
    TcpAcceptServer, TestCgroup, TwoNs, UdpEchoServer, B_V4, B_V4_ROUTED, B_V6,
};
use tonic::transport::Channel;

/// Datagrams per loss measurement (the issue asks for at least 2,000).
const PACKETS: u64 = 2_000;
/// What network faults need from the kernel (as the daemon probes it).
const NETWORK: &[&str] = &["cgroup_v2", "cgroup_skb"];
/// Bound on a measured loss rate, in standard deviations of the binomial draw.
const SIGMAS: f64 = 5.0;

fn network(spec: NetworkFault, target: &str, duration: Duration) -> InjectRequest {
    api::request(target, 0, duration, Spec::Network(spec))
}

fn loss(percent: f64, direction: Direction) -> NetworkFault {
    NetworkFault {
        direction: direction as i32,
        action: Some(Action::Loss(Loss { percent })),
        ..NetworkFault::default()
    }
}

fn partition(peers: &[&str], direction: Direction) -> NetworkFault {
    NetworkFault {
        direction: direction as i32,
        peers: peers.iter().map(|p| p.to_string()).collect(),
        action: Some(Action::Partition(Partition {})),
        ..NetworkFault::default()
    }
}

/// The programs the kernel runs for a cgroup's packets (`bpftool cgroup show … effective`).
fn effective_programs(cgroup: &TestCgroup) -> String {
    let path = cgroup.path().display().to_string();
    support::util::must_run("bpftool", &["cgroup", "show", &path, "effective"])
}

/// Waits on `Watch` until the fault reaches `Completed`.
async fn completion(client: &mut FaultServiceClient<Channel>, id: &str) -> Fault {
    let mut events = client
        .watch(WatchRequest { id: id.to_string() })
        .await
        .expect("watch")
        .into_inner();
    let wait = async {
        while let Some(event) = events.message().await.expect("watch stream") {
            let fault = event.fault.expect("event carries the fault");
            if fault.state == FaultState::Completed as i32 {
                return fault;
            }
        }
        panic!("watch stream ended before the fault completed");
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("fault never completed")
}

/// A UDP echo round trip with a short idle timeout: a lost datagram never comes back.
fn echo_job(peer: SocketAddr) -> ProbeJob {
    ProbeJob::UdpEcho {
        peer,
        count: PACKETS,
        batch: 50,
        batch_timeout_ms: 150,
    }
}

fn lost(result: &serde_json::Value) -> u64 {
    result["lost"].as_u64().expect("lost")
}

/// 30 % loss in one direction: the target loses 30 % ± 5σ of its round trips, a process in
/// another cgroup beside it loses none, and the kernel's count matches what the sockets saw.
async fn loss_in(direction: Direction) {
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let other = TestCgroup::new();
    let echo = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4, 0)));
    let Some(daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    let fault = inject(
        &mut client,
        network(
            loss(30.0, direction),
            &target.target(),
            Duration::from_secs(120),
        ),
    )
    .await;
    assert_eq!(fault.cgroup_ids, vec![target.id()]);

    // The programs run for the target's cgroup only: the other one's effective list lacks them.
    assert!(effective_programs(&target).contains("net_egress"));
    assert!(
        !effective_programs(&other).contains("net_"),
        "untargeted cgroup runs faultline"
    );

    let mut hit = spawn_probe(echo_job(echo.addr()), &net.a, &target);
    let mut spared = spawn_probe(echo_job(echo.addr()), &net.a, &other);
    let (hit, spared) = (hit.wait(), spared.wait());

    assert_eq!(hit["sent"].as_u64(), Some(PACKETS), "{hit}");
    assert_rate_within(lost(&hit), PACKETS, 0.30, SIGMAS);
    assert_eq!(lost(&spared), 0, "untargeted cgroup lost packets: {spared}");
    let fault = get(&mut client, &fault.id).await;
    let counters = fault.counters.expect("counters");
    assert_eq!(
        counters.affected,
        lost(&hit),
        "kernel count vs lost replies: {fault:?}"
    );
    assert!(counters.matched >= PACKETS, "{fault:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_loss_hits_only_the_target_cgroup() {
    if !require_root() {
        return;
    }
    loss_in(Direction::Egress).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_loss_hits_only_the_target_cgroup() {
    if !require_root() {
        return;
    }
    loss_in(Direction::Ingress).await;
}

/// Partition by CIDR drops every packet to/from the CIDR in the asked direction and nothing
/// else, for IPv4 and IPv6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_drops_all_and_only_the_matching_peers() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let near = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4, 0)));
    let far = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4_ROUTED, 0)));
    let v6 = UdpEchoServer::start(&net.b, SocketAddr::from((B_V6, 0)));
    let Some(daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    inject(
        &mut client,
        network(
            partition(&["198.51.100.0/24", "2001:db8::2/128"], Direction::Egress),
            &target.target(),
            Duration::from_secs(120),
        ),
    )
    .await;

    let mut to_far = spawn_probe(echo_job(far.addr()), &net.a, &target);
    let mut to_v6 = spawn_probe(echo_job(v6.addr()), &net.a, &target);
    let mut to_near = spawn_probe(echo_job(near.addr()), &net.a, &target);
    let (to_far, to_v6, to_near) = (to_far.wait(), to_v6.wait(), to_near.wait());
    assert_eq!(lost(&to_far), PACKETS, "partitioned IPv4 peer: {to_far}");
    assert_eq!(lost(&to_v6), PACKETS, "partitioned IPv6 peer: {to_v6}");
    assert_eq!(lost(&to_near), 0, "peer outside the CIDRs: {to_near}");
    // Egress: the requests never left, so the servers saw nothing.
    assert_eq!(far.echoed(), 0);
    assert_eq!(v6.echoed(), 0);
}

/// An ingress partition lets requests out (the server answers them all) and drops every
/// reply on its way in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_partition_drops_replies_not_requests() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let far = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4_ROUTED, 0)));
    let Some(daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    inject(
        &mut client,
        network(
            partition(&["198.51.100.0/24"], Direction::Ingress),
            &target.target(),
            Duration::from_secs(120),
        ),
    )
    .await;
    let result = spawn_probe(echo_job(far.addr()), &net.a, &target).wait();
    assert_eq!(lost(&result), PACKETS, "{result}");
    assert_eq!(far.echoed(), PACKETS, "requests must get out");
}

/// Protocol and port filters: a TCP partition on one port refuses TCP connections to it,
/// while UDP to the same peer and TCP to another port go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_and_port_filters_narrow_the_fault() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let blocked = TcpAcceptServer::start(&net.b, SocketAddr::from((B_V4, 0)));
    let open = TcpAcceptServer::start(&net.b, SocketAddr::from((B_V4, 0)));
    let echo = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4, blocked.addr().port())));
    let Some(daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    let port = u32::from(blocked.addr().port());
    let spec = NetworkFault {
        protocol: Protocol::Tcp as i32,
        ports: vec![PortRange {
            first: port,
            last: port,
        }],
        ..partition(&["192.0.2.0/24"], Direction::Both)
    };
    inject(
        &mut client,
        network(spec, &target.target(), Duration::from_secs(120)),
    )
    .await;

    let refused = spawn_probe(
        ProbeJob::tcp_connect(blocked.addr(), 1_000),
        &net.a,
        &target,
    )
    .wait();
    let allowed = spawn_probe(ProbeJob::tcp_connect(open.addr(), 5_000), &net.a, &target).wait();
    let udp = spawn_probe(echo_job(echo.addr()), &net.a, &target).wait();
    assert_eq!(refused["connected"], false, "{refused}");
    assert_eq!(blocked.accepted(), 0);
    assert_eq!(allowed["connected"], true, "{allowed}");
    assert_eq!(lost(&udp), 0, "UDP on the same port must pass: {udp}");
}

/// Runs a steady stream from the target through a window that opens 1 s ahead and lasts
/// 500 ms; the in-kernel first/last drop times fall inside the window, every packet inside
/// was dropped, and packets before and after were not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_opens_and_closes_in_the_kernel() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let (sink, mut sender) = steady_stream(&net, &target, 200);
    let Some(daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    let start = chaos_daemon::clock::unix_now_ns() + 1_000_000_000;
    let mut req = network(
        loss(100.0, Direction::Egress),
        &target.target(),
        Duration::from_millis(500),
    );
    req.start_at_unix_ns = start;
    let fault = inject(&mut client, req).await;
    // Pending when the answer left before the start (an emulated guest may answer later).
    if chaos_daemon::clock::unix_now_ns() < start {
        assert_eq!(fault.state, FaultState::Pending as i32);
    }
    let end = fault.end_at_unix_ns;
    assert_eq!(end, start + 500_000_000);

    let done = completion(&mut client, &fault.id).await;
    let before_end = sink.count();
    assert!(
        sink.wait_for_count(before_end + 100, Duration::from_secs(10)),
        "stream did not resume after the window"
    );
    sender.stop();

    let counters = done.counters.expect("counters");
    assert!(counters.affected > 0, "{done:?}");
    assert_eq!(
        counters.affected, counters.matched,
        "100 % loss drops every match"
    );
    assert!(
        counters.seen > counters.matched,
        "packets outside the window were seen: {done:?}"
    );
    assert!(
        done.first_affected_unix_ns >= start,
        "first drop before start: {done:?}"
    );
    assert!(
        done.last_affected_unix_ns < end,
        "last drop at/after end: {done:?}"
    );
}

/// kill -9 of the daemon mid-fault: the kernel keeps dropping until `end` and stops by
/// itself; the next daemon removes the leftover attachment and pins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_fault_ends_on_time_and_restart_cleans_up() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let target = TestCgroup::new();
    let echo = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4, 0)));
    let Some(mut daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    let fault = inject(
        &mut client,
        network(
            loss(100.0, Direction::Egress),
            &target.target(),
            Duration::from_secs(4),
        ),
    )
    .await;
    drop(client);
    daemon.kill9();
    let links = daemon.bpffs_dir().join("links");
    let link = |direction: &str| links.join(format!("net_{}_{direction}", target.id()));
    assert!(link("egress").exists(), "links stay pinned after kill -9");

    let short = |count| ProbeJob::UdpEcho {
        peer: echo.addr(),
        count,
        batch: 20,
        batch_timeout_ms: 100,
    };
    let during = spawn_probe(short(100), &net.a, &target).wait();
    assert_eq!(
        lost(&during),
        100,
        "the fault must go on without the daemon: {during}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            chaos_daemon::clock::unix_now_ns() > fault.end_at_unix_ns
        }),
        "end never came"
    );
    let after = spawn_probe(short(PACKETS), &net.a, &target).wait();
    assert_eq!(lost(&after), 0, "traffic must be clean after end: {after}");

    daemon.restart().await;
    assert!(
        !link("egress").exists(),
        "restart removes the leftover link"
    );
    assert!(!link("ingress").exists());
    let journal = daemon.state_dir().join("journal");
    let left = std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "journal records left in {}", journal.display());
    let mut client = daemon.client().await;
    let recovered = get(&mut client, &fault.id).await;
    assert_eq!(
        recovered.state,
        FaultState::Completed as i32,
        "{recovered:?}"
    );
    assert!(recovered.counters.expect("counters").affected >= 100);
}

/// A fault on a cgroup reaches a child cgroup created after the fault was armed (a container
/// restarted inside a pod), and a second fault on the child adds to the parent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_reach_child_cgroups_created_later_and_compose() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let pod = TestCgroup::new();
    let echo = UdpEchoServer::start(&net.b, SocketAddr::from((B_V4, 0)));
    let Some(daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    let parent_fault = inject(
        &mut client,
        network(
            loss(30.0, Direction::Egress),
            &pod.target(),
            Duration::from_secs(120),
        ),
    )
    .await;
    let container = TestCgroup::child_of(&pod);
    let alone = spawn_probe(echo_job(echo.addr()), &net.a, &container).wait();
    assert_rate_within(lost(&alone), PACKETS, 0.30, SIGMAS);

    // Independent draws: 1 − 0.7 × 0.5 = 65 % lost with a 50 % fault on the child too.
    inject(
        &mut client,
        network(
            loss(50.0, Direction::Egress),
            &container.target(),
            Duration::from_secs(120),
        ),
    )
    .await;
    let both = spawn_probe(echo_job(echo.addr()), &net.a, &container).wait();
    assert_rate_within(lost(&both), PACKETS, 0.65, SIGMAS);
    let parent = get(&mut client, &parent_fault.id).await;
    assert!(parent.counters.expect("counters").matched >= 2 * PACKETS);
}

/// SIGTERM ends every fault, detaches the programs and removes every pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_removes_every_attachment_and_pin() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let Some(mut daemon) = Daemon::start_requiring(&[], NETWORK).await else {
        return;
    };
    let mut client = daemon.client().await;
    inject(
        &mut client,
        network(
            loss(10.0, Direction::Both),
            &target.target(),
            Duration::from_secs(600),
        ),
    )
    .await;
    assert!(effective_programs(&target).contains("net_ingress"));
    drop(client);
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.logs());
    assert!(
        !effective_programs(&target).contains("net_"),
        "programs left attached"
    );
    assert!(
        !daemon.bpffs_dir().exists(),
        "pins left in {}",
        daemon.bpffs_dir().display()
    );
}
