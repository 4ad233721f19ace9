//! Self-tests of the integration-test harness (no fault, no daemon): namespaces, veths, cgroups, probes and servers work and clean up after themselves.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::cgroup::find_cgroup2_mount;
use support::*;

probe_entry!();

/// Whether `ip netns list` shows `name`.
fn netns_listed(name: &str) -> bool {
    util::must_run("ip", &["netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Checks `ip -j addr show` output: the link is up and has each of `want`, none of
/// them tentative (`nodad`).
fn assert_addrs(ip_json: &str, want: &[&str]) {
    let v: serde_json::Value = serde_json::from_str(ip_json).unwrap();
    let link = &v[0];
    assert_eq!(link["operstate"], "UP", "{link}");
    let infos = link["addr_info"].as_array().unwrap();
    for addr in want {
        let info = infos
            .iter()
            .find(|i| i["local"] == *addr)
            .unwrap_or_else(|| panic!("{addr} missing: {link}"));
        assert!(info.get("tentative").is_none(), "{addr} tentative: {info}");
    }
}

/// Checks the identity fields every probe result carries.
fn assert_placed(r: &serde_json::Value, ns: &Netns, cg: &TestCgroup) {
    assert_eq!(r["cgroup"], cg.rel_path(), "probe not in its cgroup: {r}");
    assert_eq!(r["netns_ino"], ns.ino(), "probe not in its netns: {r}");
}

#[test]
fn finds_cgroup2_mount_in_hybrid_and_pure_v2_mountinfo() {
    let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    assert_eq!(
        find_cgroup2_mount(hybrid),
        Some(PathBuf::from("/sys/fs/cgroup/unified"))
    );
    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        find_cgroup2_mount(v2),
        Some(PathBuf::from("/sys/fs/cgroup"))
    );
    let escaped = "30 23 0:26 / /mnt/a\\040b rw - cgroup2 cgroup2 rw\n";
    assert_eq!(find_cgroup2_mount(escaped), Some(PathBuf::from("/mnt/a b")));
    // A bind mount of a sub-cgroup is skipped: paths relative to it would be wrong.
    let sub = "50 23 0:26 /kubepods /mnt/x rw - cgroup2 cgroup2 rw\n";
    assert_eq!(find_cgroup2_mount(sub), None);
    assert!(cgroup2_mount().join("cgroup.procs").exists());
}

#[test]
fn test_cgroup_has_paths_id_and_target_and_is_removed() {
    if !require_root() {
        return;
    }
    let cg = TestCgroup::new();
    let path = cg.path().to_owned();
    assert!(path.starts_with(cgroup2_mount()));
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("fl-"), "{name}");
    assert_eq!(cg.rel_path(), format!("/{name}"));
    assert_eq!(cg.id(), fs::metadata(&path).unwrap().ino());
    assert_eq!(cg.target(), format!("cgroup:/{name}"));
    assert!(cg.procs().is_empty());
    drop(cg);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn netns_threads_run_inside_the_namespace() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    assert!(netns_listed(ns.name()));
    let host = fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    let inside = ns.run(|| fs::metadata("/proc/thread-self/ns/net").unwrap().ino());
    assert_eq!(inside, ns.ino());
    assert_ne!(inside, host);
    let spawned = ns.spawn(|| fs::metadata("/proc/thread-self/ns/net").unwrap().ino());
    assert_eq!(spawned.join().unwrap(), ns.ino());
    // The calling thread never moved.
    assert_eq!(
        fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
        host
    );
    let name = ns.name().to_owned();
    drop(ns);
    assert!(!netns_listed(&name));
    assert!(!Path::new(&format!("/run/netns/{name}")).exists());
}

#[test]
fn veth_ends_are_up_with_their_addresses() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let a = net.a.ip(&["-j", "addr", "show", "dev", net.veth.a.name()]);
    let b = net.b.ip(&["-j", "addr", "show", "dev", net.veth.b.name()]);
    assert_addrs(&a, &["192.0.2.1", "2001:db8::1"]);
    assert_addrs(&b, &["192.0.2.2", "198.51.100.2", "2001:db8::2"]);
    let route = net.a.ip(&["route", "get", "198.51.100.2"]);
    assert!(route.contains("via 192.0.2.2"), "{route}");
    assert!(net.veth.a.ifindex() > 1 && net.veth.b.ifindex() > 1);
    for l in [&net.veth.a, &net.veth.b] {
        assert!(l.name().len() <= 15);
    }
}

/// The headline self-test: 2,000 echoed datagrams from a probe in a test cgroup in A to
/// a server in B, with no fault, lose nothing.
#[test]
fn udp_echo_of_2000_datagrams_loses_none() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let cg = TestCgroup::new();
    let echo = UdpEchoServer::start(&net.b, SocketAddr::new(B_V4.into(), 0));
    let r = spawn_probe(ProbeJob::udp_echo(echo.addr(), 2000), &net.a, &cg).wait();
    assert_placed(&r, &net.a, &cg);
    assert_eq!(r["job"], "udp_echo");
    assert_eq!(r["sent"], 2000, "{r}");
    assert_eq!(r["received"], 2000, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["lost_seqs"], serde_json::json!([]), "{r}");
    assert!(
        r.get("received_seqs").is_none(),
        "large lists are omitted: {r}"
    );
    assert!(echo.echoed() >= 2000);
}

#[test]
fn udp_echo_over_ipv6_and_through_the_route() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let cg = TestCgroup::new();
    for ip in [std::net::IpAddr::from(B_V6), B_V4_ROUTED.into()] {
        let echo = UdpEchoServer::start(&net.b, SocketAddr::new(ip, 0));
        let r = spawn_probe(ProbeJob::udp_echo(echo.addr(), 300), &net.a, &cg).wait();
        assert_placed(&r, &net.a, &cg);
        assert_eq!(
            (r["sent"].as_u64(), r["received"].as_u64()),
            (Some(300), Some(300)),
            "{ip}: {r}"
        );
        let seqs: Vec<u64> = serde_json::from_value(r["received_seqs"].clone()).unwrap();
        assert_eq!(seqs, (0..300).collect::<Vec<_>>());
    }
}

#[test]
fn udp_send_stream_reaches_the_sink() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let cg = TestCgroup::new();
    let sink = UdpSink::start(&net.b, SocketAddr::new(B_V4.into(), 0));
    let r = spawn_probe(ProbeJob::udp_send(sink.addr(), 200, 500), &net.a, &cg).wait();
    assert_placed(&r, &net.a, &cg);
    assert_eq!(r["sent"], 200, "{r}");
    assert_eq!(r["error_total"], 0, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    assert!(r["first_error_unix_ms"].is_null());
    assert!(
        sink.wait_for_count(200, Duration::from_secs(10)),
        "sink saw {}",
        sink.count()
    );
}

#[test]
fn tcp_connect_probe_connects_and_sees_refusal() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let cg = TestCgroup::new();
    let server = TcpAcceptServer::start(&net.b, SocketAddr::new(B_V4.into(), 0));
    let r = spawn_probe(ProbeJob::tcp_connect(server.addr(), 5000), &net.a, &cg).wait();
    assert_placed(&r, &net.a, &cg);
    assert_eq!(r["connected"], true, "{r}");
    assert!(wait_until(Duration::from_secs(10), || server.accepted() >= 1));

    // Same address, a port with no listener: B answers with a RST.
    let closed = {
        let l = net
            .b
            .run(|| std::net::TcpListener::bind((B_V4, 0)).unwrap());
        l.local_addr().unwrap()
    };
    let r = spawn_probe(ProbeJob::tcp_connect(closed, 5000), &net.a, &cg).wait();
    assert_eq!(r["connected"], false, "{r}");
    assert_eq!(r["error"], "ECONNREFUSED", "{r}");
}

#[test]
fn background_probe_runs_in_its_cgroup_until_stopped() {
    if !require_root() {
        return;
    }
    let net = TwoNs::new();
    let cg = TestCgroup::new();
    let sink = UdpSink::start(&net.b, SocketAddr::new(B_V4.into(), 0));
    let mut p = spawn_probe_background(
        ProbeJob::udp_send(sink.addr(), u64::MAX / 2, 1000),
        &net.a,
        &cg,
    );
    assert!(cg.procs().contains(&(p.pid() as i32)), "{:?}", cg.procs());
    assert!(sink.wait_for_count(20, Duration::from_secs(10)));
    let r = p.stop();
    assert_placed(&r, &net.a, &cg);
    assert!(r["sent"].as_u64().unwrap() >= 20, "{r}");
    assert_eq!(r["error_total"], 0, "{r}");
    assert!(!pid_alive(p.pid()));
    assert!(cg.procs().is_empty());
}

#[test]
fn dropping_a_probe_handle_kills_the_probe() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let cg = TestCgroup::new();
    let p = spawn_probe_background(
        ProbeJob::Idle {
            max_duration_ms: 120_000,
        },
        &ns,
        &cg,
    );
    let pid = p.pid();
    assert!(pid_alive(pid));
    drop(p);
    // Drop reaps, so the pid is gone at once.
    assert!(!pid_alive(pid));
    assert!(cg.procs().is_empty());
}

/// Guards clean up while unwinding from a panic: namespaces, veth, cgroup (killing the
/// process still in it), servers and probes.
#[test]
fn guards_clean_up_when_the_test_panics() {
    if !require_root() {
        return;
    }
    let mut seen: Option<(String, String, PathBuf, u32, u32)> = None;
    let r = catch_unwind(AssertUnwindSafe(|| {
        // Declared first, assigned later: dropped last, so the cgroup (dropped earlier)
        // has to kill a probe that is still running inside it.
        let probe;
        let net = TwoNs::new();
        let cg = TestCgroup::new();
        let _echo = UdpEchoServer::start(&net.b, SocketAddr::new(B_V4.into(), 0));
        probe = spawn_probe_background(
            ProbeJob::Idle {
                max_duration_ms: 120_000,
            },
            &net.a,
            &cg,
        );
        let p2 = spawn_probe_background(
            ProbeJob::Idle {
                max_duration_ms: 120_000,
            },
            &net.a,
            &cg,
        );
        seen = Some((
            net.a.name().to_owned(),
            net.b.name().to_owned(),
            cg.path().to_owned(),
            probe.pid(),
            p2.pid(),
        ));
        panic!("deliberate panic inside the harness self-test");
    }));
    assert!(r.is_err());
    let (a, b, cg, pid1, pid2) = seen.expect("setup ran");
    for ns in [&a, &b] {
        assert!(!netns_listed(ns), "netns {ns} left behind");
        assert!(!Path::new(&format!("/run/netns/{ns}")).exists());
    }
    assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    assert!(!pid_alive(pid1) && !pid_alive(pid2));
}

#[test]
fn wait_until_reports_success_and_timeout() {
    let mut n = 0;
    assert!(wait_until(Duration::from_secs(5), || {
        n += 1;
        n >= 5
    }));
    assert_eq!(n, 5);
    assert!(!wait_until(Duration::from_millis(30), || false));
}

#[test]
fn rate_bound_accepts_plausible_counts() {
    assert_rate_within(100, 1000, 0.1, 4.0);
    assert_rate_within(130, 1000, 0.1, 4.0); // 3.2 σ
    assert_rate_within(0, 2000, 0.0, 4.0);
    assert_rate_within(1, 2000, 0.0, 4.0); // the 1/trials slack
    assert_rate_within(2000, 2000, 1.0, 4.0);
}

#[test]
#[should_panic(expected = "rate out of bounds")]
fn rate_bound_rejects_implausible_counts() {
    assert_rate_within(300, 1000, 0.1, 5.0);
}

#[test]
fn unique_names_fit_interface_names() {
    let a = unique_name("fl-");
    let b = unique_name("fl-");
    assert_ne!(a, b);
    assert_eq!(a.len(), 11);
}
