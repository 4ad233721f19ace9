//! Target resolution on real cgroup trees: `pid:`, `container:` and `cgroup:` forms all reach
//! the cgroup the process really runs in.
mod support;
probe_entry!();

use std::{os::unix::fs::MetadataExt as _, path::Path};

use chaos_proto::v1::{
    inject_request::Spec, network_fault::Action, InjectRequest, Loss, NetworkFault,
};
use support::kubepods::Dirs;
use support::{require_root, spawn_probe_background, Daemon, Netns, ProbeJob, TestCgroup};

const ID: &str = "4f3c2b1a09876543210fedcba98765434f3c2b1a09876543210fedcba9876543";

fn request(target: String) -> InjectRequest {
    InjectRequest {
        target,
        start_at_unix_ns: 0,
        duration: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
        spec: Some(Spec::Network(NetworkFault {
            action: Some(Action::Loss(Loss { percent: 1.0 })),
            ..NetworkFault::default()
        })),
        ..InjectRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_and_container_targets_resolve_to_the_process_cgroup() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let pod = TestCgroup::new();
    // kubelet's systemd layout and a cgroupfs docker layout, side by side.
    let mut dirs = Dirs::default();
    let systemd = Path::new("kubepods.slice").join(format!("cri-containerd-{ID}.scope"));
    let systemd = dirs.make(pod.path(), &systemd);
    let other_id = "aa".repeat(32);
    let cgroupfs = dirs.make(pod.path(), &Path::new("docker").join(&other_id));
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;

    let inode = |p: &Path| std::fs::metadata(p).expect("stat").ino();
    for (target, want) in [
        (format!("container:{ID}"), inode(&systemd)),
        (format!("container:{}", &ID[..12]), inode(&systemd)),
        (format!("container:{other_id}"), inode(&cgroupfs)),
        (pod.target(), pod.id()),
        (format!("cgroup:{}", pod.path().display()), pod.id()),
    ] {
        let fault = client
            .inject(request(target.clone()))
            .await
            .expect(&target)
            .into_inner();
        assert_eq!(fault.cgroup_ids, vec![want], "{target}");
    }

    let mut idle = spawn_probe_background(
        ProbeJob::Idle {
            max_duration_ms: 60_000,
        },
        &ns,
        &pod,
    );
    let fault = client
        .inject(request(format!("pid:{}", idle.pid())))
        .await
        .expect("pid target")
        .into_inner();
    assert_eq!(fault.cgroup_ids, vec![pod.id()]);
    idle.kill();
}
