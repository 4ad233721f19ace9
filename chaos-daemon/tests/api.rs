//! The API against a real daemon: every bad input gets its code and names its field, and a
//! refused request leaves nothing behind.
mod support;

use chaos_proto::v1::{
    inject_request::Spec, network_fault::Action, CancelRequest, CapabilitiesRequest, Direction,
    GetRequest, InjectRequest, ListRequest, Loss, NetworkFault, Partition, PortRange,
};
use support::{require_root, Daemon, TestCgroup};
use tonic::Code;

fn loss_spec(percent: f64) -> NetworkFault {
    NetworkFault {
        action: Some(Action::Loss(Loss { percent })),
        ..NetworkFault::default()
    }
}

fn request(target: &str, spec: NetworkFault) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns: 0,
        duration: Some(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        }),
        spec: Some(Spec::Network(spec)),
        ..InjectRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_code_and_field() {
    if !require_root() {
        return;
    }
    let cgroup = TestCgroup::new();
    let target = cgroup.target();
    let daemon = Daemon::start(&["--max-duration", "1h"]).await;
    let mut client = daemon.client().await;
    let now = chaos_daemon::clock::unix_now_ns();

    let with = |f: &dyn Fn(&mut InjectRequest)| {
        let mut req = request(&target, loss_spec(30.0));
        f(&mut req);
        req
    };
    let cases: Vec<(&str, InjectRequest, Code, &str)> = vec![
        (
            "loss 0",
            request(&target, loss_spec(0.0)),
            Code::InvalidArgument,
            "network.loss.percent",
        ),
        (
            "loss 150",
            request(&target, loss_spec(150.0)),
            Code::InvalidArgument,
            "network.loss.percent",
        ),
        (
            "loss -1",
            request(&target, loss_spec(-1.0)),
            Code::InvalidArgument,
            "network.loss.percent",
        ),
        (
            "loss NaN",
            request(&target, loss_spec(f64::NAN)),
            Code::InvalidArgument,
            "network.loss.percent",
        ),
        (
            "no action",
            request(&target, NetworkFault::default()),
            Code::InvalidArgument,
            "network.action",
        ),
        (
            "no spec",
            with(&|r| r.spec = None),
            Code::InvalidArgument,
            "spec",
        ),
        (
            "no duration",
            with(&|r| r.duration = None),
            Code::InvalidArgument,
            "duration",
        ),
        (
            "duration 0",
            with(&|r| r.duration = Some(prost_types::Duration::default())),
            Code::InvalidArgument,
            "duration",
        ),
        (
            "duration over max",
            with(&|r| {
                r.duration = Some(prost_types::Duration {
                    seconds: 7_200,
                    nanos: 0,
                })
            }),
            Code::InvalidArgument,
            "duration",
        ),
        (
            "start in the past",
            with(&|r| r.start_at_unix_ns = now - 60_000_000_000),
            Code::InvalidArgument,
            "start_at_unix_ns",
        ),
        (
            "malformed CIDR",
            request(
                &target,
                NetworkFault {
                    peers: vec!["10.0.0.0/33".into()],
                    ..loss_spec(5.0)
                },
            ),
            Code::InvalidArgument,
            "network.peers[0]",
        ),
        (
            "reversed ports",
            request(
                &target,
                NetworkFault {
                    ports: vec![PortRange {
                        first: 9000,
                        last: 80,
                    }],
                    ..loss_spec(5.0)
                },
            ),
            Code::InvalidArgument,
            "network.ports[0]",
        ),
        (
            "port 0",
            request(
                &target,
                NetworkFault {
                    ports: vec![PortRange { first: 0, last: 0 }],
                    ..loss_spec(5.0)
                },
            ),
            Code::InvalidArgument,
            "network.ports[0]",
        ),
        (
            "partition without peers",
            request(
                &target,
                NetworkFault {
                    action: Some(Action::Partition(Partition {})),
                    ..Default::default()
                },
            ),
            Code::InvalidArgument,
            "network.peers",
        ),
        (
            "unknown direction",
            request(
                &target,
                NetworkFault {
                    direction: 42,
                    ..loss_spec(5.0)
                },
            ),
            Code::InvalidArgument,
            "network.direction",
        ),
        (
            "empty target",
            request("", loss_spec(5.0)),
            Code::InvalidArgument,
            "target",
        ),
        (
            "unknown scheme",
            request("vm:db-1", loss_spec(5.0)),
            Code::InvalidArgument,
            "target",
        ),
        (
            "bad pid",
            request("pid:abc", loss_spec(5.0)),
            Code::InvalidArgument,
            "target",
        ),
        (
            "bad container id",
            request("container:xyz", loss_spec(5.0)),
            Code::InvalidArgument,
            "target",
        ),
        (
            "missing cgroup",
            request("cgroup:/faultline-no-such-cgroup", loss_spec(5.0)),
            Code::NotFound,
            "faultline-no-such-cgroup",
        ),
        (
            "missing pid",
            request("pid:2147483646", loss_spec(5.0)),
            Code::NotFound,
            "2147483646",
        ),
        (
            "missing container",
            request("container:0123456789abcdef", loss_spec(5.0)),
            Code::NotFound,
            "0123456789abcdef",
        ),
    ];
    for (name, req, code, field) in cases {
        let status = client.inject(req).await.expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().starts_with(field) || status.message().contains(field),
            "{name}: message {:?} does not name {field}",
            status.message()
        );
    }

    // Nothing was armed, attached or journaled by any of them.
    let listed = client
        .list(ListRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(listed.faults.is_empty(), "{listed:?}");
    let links = daemon.bpffs_dir().join("links");
    assert_eq!(std::fs::read_dir(&links).map(|d| d.count()).unwrap_or(0), 0);
    let journal = daemon.state_dir().join("journal");
    assert_eq!(
        std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0),
        0
    );

    for (name, status) in [
        (
            "get",
            client
                .get(GetRequest { id: "nope".into() })
                .await
                .expect_err("get"),
        ),
        (
            "cancel",
            client
                .cancel(CancelRequest { id: "nope".into() })
                .await
                .expect_err("cancel"),
        ),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{name}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_fault_and_detaches_the_programs() {
    if !require_root() {
        return;
    }
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut req = request(&cgroup.target(), loss_spec(50.0));
    req.duration = Some(prost_types::Duration {
        seconds: 600,
        nanos: 0,
    });
    if let Some(Spec::Network(spec)) = req.spec.as_mut() {
        spec.direction = Direction::Egress as i32;
    }
    let fault = client.inject(req).await.expect("inject").into_inner();
    let link = daemon
        .bpffs_dir()
        .join(format!("links/net_{}_egress", cgroup.id()));
    assert!(link.exists(), "{}", link.display());
    let cancelled = client
        .cancel(CancelRequest {
            id: fault.id.clone(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(
        cancelled.state,
        chaos_proto::v1::FaultState::Cancelled as i32
    );
    assert!(!link.exists(), "last fault gone: programs detached");
    assert!(cancelled.ended_at_unix_ns > 0);
    // A second cancel returns the finished fault unchanged.
    let again = client
        .cancel(CancelRequest { id: fault.id })
        .await
        .expect("second cancel")
        .into_inner();
    assert_eq!(again.ended_at_unix_ns, cancelled.ended_at_unix_ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_report_this_kernel() {
    if !require_root() {
        return;
    }
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let caps = client
        .capabilities(CapabilitiesRequest {})
        .await
        .expect("capabilities")
        .into_inner();
    let release = nix::sys::utsname::uname().expect("uname");
    assert_eq!(caps.kernel_release, release.release().to_string_lossy());
    let feature = |name: &str| {
        caps.features
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no feature {name}: {caps:?}"))
    };
    assert!(feature("cgroup_v2").available);
    assert!(feature("cgroup_skb").available, "{caps:?}");
    for kind in ["network.loss", "network.partition"] {
        let support = caps.faults.iter().find(|f| f.kind == kind).expect(kind);
        assert!(support.supported, "{support:?}");
    }
}
