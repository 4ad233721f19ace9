//! What the daemon's probes say about the kernel it runs on, asserted per kernel of the
//! matrix (`cargo xtask vm-test` says which kernel through `FAULTLINE_KERNEL`), and the test
//! that fails on purpose to prove a failure turns its kernel's row red.
mod support;

use chaos_proto::v1::CapabilitiesRequest;
use support::{require_root, skip, Daemon};

/// Expected probe results: (feature, available) per kernel of the matrix.
const EXPECTED: &[(&str, &[(&str, bool)])] = &[
    (
        "host",
        &[
            ("cgroup_skb", true),
            ("cgroup_kill", true),
            ("cgroup_freeze", true),
            ("bpf_lsm_programs", false),
            ("bpf_trampoline", false),
            ("bpf_override_return", false),
        ],
    ),
    (
        "debian-6.1",
        &[
            ("cgroup_skb", true),
            ("cgroup_kill", true),
            ("cgroup_freeze", true),
            ("bpf_lsm_programs", true),
            ("bpf_lsm_active", true),
            ("bpf_trampoline", true),
            ("bpf_override_return", false),
            ("tcx", false),
        ],
    ),
    (
        "debian-6.1-nolsm",
        &[
            ("cgroup_skb", true),
            ("cgroup_kill", true),
            ("cgroup_freeze", true),
            ("bpf_lsm_programs", true),
            ("bpf_lsm_active", false),
            ("bpf_trampoline", true),
            ("bpf_override_return", false),
        ],
    ),
    (
        "faultline-6.1",
        &[
            ("cgroup_skb", true),
            ("cgroup_kill", true),
            ("cgroup_freeze", true),
            ("bpf_lsm_programs", true),
            ("bpf_lsm_active", true),
            ("bpf_trampoline", true),
            ("bpf_override_return", true),
        ],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_match_the_kernel() {
    if !require_root() {
        return;
    }
    let Ok(kernel) = std::env::var("FAULTLINE_KERNEL") else {
        skip(
            "FAULTLINE_KERNEL",
            "set by `cargo xtask vm-test` to name the matrix kernel",
        );
        return;
    };
    let Some((_, expected)) = EXPECTED.iter().find(|(name, _)| *name == kernel) else {
        skip(
            "FAULTLINE_KERNEL",
            &format!("{kernel} has no expectations here"),
        );
        return;
    };
    let daemon = Daemon::start(&[]).await;
    let caps = daemon
        .client()
        .await
        .capabilities(CapabilitiesRequest {})
        .await
        .expect("capabilities")
        .into_inner();
    assert_eq!(caps.kernel_release, support::kernel_release());
    for (feature, available) in *expected {
        let found = caps
            .features
            .iter()
            .find(|f| f.name == *feature)
            .unwrap_or_else(|| panic!("{kernel}: no probe named {feature}: {caps:?}"));
        assert_eq!(
            found.available,
            *available,
            "{kernel}: {feature} should be {}: {}",
            if *available { "available" } else { "refused" },
            found.detail
        );
    }
    let Some((_, routes)) = ROUTES.iter().find(|(name, _)| *name == kernel) else {
        return;
    };
    for (op, route) in *routes {
        let kind = format!("storage.errno.{op}");
        let found = caps
            .faults
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("{kernel}: no {kind}: {caps:?}"));
        match route {
            Some(route) => assert!(
                found.supported && found.detail.ends_with(route),
                "{kernel}: {kind} should go by {route}: {found:?}"
            ),
            None => assert!(
                !found.supported,
                "{kernel}: {kind} should be refused: {found:?}"
            ),
        }
    }
}

/// An operation and the route expected for it (`None`: refused).
type Route = (&'static str, Option<&'static str>);

/// Expected route of some storage errno operations per kernel.
const ROUTES: &[(&str, &[Route])] = &[
    ("host", &[("open", None), ("write", None), ("fsync", None)]),
    (
        "debian-6.1",
        &[
            ("open", Some("bpf_lsm")),
            ("write", Some("bpf_lsm")),
            ("truncate", Some("bpf_lsm")),
            ("fsync", None),
        ],
    ),
    (
        "debian-6.1-nolsm",
        &[
            ("open", Some("fmod_ret")),
            ("write", Some("fmod_ret")),
            ("truncate", Some("fmod_ret")),
            ("fsync", None),
        ],
    ),
    (
        "faultline-6.1",
        &[
            ("open", Some("bpf_lsm")),
            ("write", Some("bpf_lsm")),
            ("fsync", Some("kprobe_override")),
            ("fdatasync", Some("kprobe_override")),
            ("sync_file_range", Some("kprobe_override")),
        ],
    ),
];

/// Fails only under `cargo xtask vm-test --fail-on-purpose`: proves that a failing test makes
/// its kernel's row fail and the command exit non-zero.
#[test]
fn fails_on_purpose() {
    if std::env::var_os("FAULTLINE_FAIL_ON_PURPOSE").is_some() {
        panic!("failing on purpose (--fail-on-purpose)");
    }
    skip("--fail-on-purpose", "this test fails only when asked to");
}
