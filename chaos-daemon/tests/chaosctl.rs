//! `chaosctl` against a real daemon: JSON output parsed, errors as one line with their code.
mod support;

use std::process::Command;

use serde_json::Value;
use support::{require_root, Daemon, TestCgroup};

fn chaosctl(daemon: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .arg("--socket")
        .arg(daemon.socket())
        .args(args)
        .output()
        .expect("run chaosctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(daemon: &Daemon, args: &[&str]) -> Value {
    let (code, stdout, stderr) = chaosctl(daemon, args);
    assert_eq!(code, 0, "chaosctl {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_get_list_cancel_as_json() {
    if !require_root() {
        return;
    }
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    let target = cgroup.target();
    let before = chaos_daemon::clock::unix_now_ns();
    let fault = json(
        &daemon,
        &[
            "-o",
            "json",
            "inject",
            "network",
            "--target",
            &target,
            "--loss",
            "12.5",
            "--duration",
            "90s",
            "--direction",
            "egress",
            "--protocol",
            "udp",
            "--port",
            "5432",
            "--cidr",
            "198.51.100.0/24",
            "--start-at",
            "+2s",
        ],
    );
    let id = fault["id"].as_str().expect("id").to_string();
    let start = fault["start_at_unix_ns"].as_u64().expect("start");
    let end = fault["end_at_unix_ns"].as_u64().expect("end");
    assert!(start >= before + 1_000_000_000, "{fault}");
    assert_eq!(end - start, 90_000_000_000, "{fault}");
    assert_eq!(fault["state"], "pending");
    assert_eq!(fault["kind"], "network.loss");
    assert_eq!(fault["cgroup_ids"][0].as_u64(), Some(cgroup.id()));
    assert_eq!(fault["spec"]["loss_percent"].as_f64(), Some(12.5));
    assert_eq!(fault["spec"]["peers"][0], "198.51.100.0/24");

    let got = json(&daemon, &["get", &id, "-o", "json"]);
    assert_eq!(got["id"], fault["id"]);
    let listed = json(&daemon, &["list", "-o", "json"]);
    assert!(listed
        .as_array()
        .expect("array")
        .iter()
        .any(|f| f["id"] == fault["id"]));
    let caps = json(&daemon, &["capabilities", "-o", "json"]);
    assert!(caps["features"].as_array().expect("features").len() >= 3);

    let cancelled = json(&daemon, &["cancel", &id, "-o", "json"]);
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["ended_at_unix_ns"].as_u64() > Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_one_line_with_the_code() {
    if !require_root() {
        return;
    }
    let cgroup = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    let target = cgroup.target();
    for (args, code, needle) in [
        (
            vec![
                "inject",
                "network",
                "--target",
                &target,
                "--loss",
                "150",
                "--duration",
                "5s",
            ],
            2,
            "network.loss.percent",
        ),
        (
            vec![
                "inject",
                "network",
                "--target",
                "cgroup:/faultline-absent",
                "--loss",
                "5",
                "--duration",
                "5s",
            ],
            3,
            "NOT_FOUND",
        ),
        (vec!["get", "no-such-fault"], 3, "NOT_FOUND"),
    ] {
        let (exit, _, stderr) = chaosctl(&daemon, &args);
        assert_eq!(exit, code, "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_and_stress_from_the_command_line() {
    if !require_root() {
        return;
    }
    let cgroup = TestCgroup::new();
    let _sleeper = support::procs::spawn_in(&[cgroup.path()], "exec sleep 1000");
    assert!(support::wait_until(
        std::time::Duration::from_secs(10),
        || { cgroup.procs().len() == 1 }
    ));
    let daemon = Daemon::start(&[]).await;
    let target = cgroup.target();
    let pause = json(
        &daemon,
        &[
            "-o",
            "json",
            "inject",
            "process",
            "--target",
            &target,
            "--pause",
            "--duration",
            "1m",
        ],
    );
    assert_eq!(pause["kind"], "process.pause");
    let id = pause["id"].as_str().expect("id").to_string();
    assert!(support::wait_until(
        std::time::Duration::from_secs(10),
        || { json(&daemon, &["-o", "json", "get", &id])["outcome"]["frozen"] == true }
    ));
    let (code, detail, _) = chaosctl(&daemon, &["get", &id]);
    assert_eq!(code, 0);
    assert!(
        detail.contains("Frozen:") && detail.contains("true"),
        "{detail}"
    );
    // A second pause of the same cgroup is refused: the first end would thaw it.
    let (code, _, stderr) = chaosctl(
        &daemon,
        &[
            "inject",
            "process",
            "--target",
            &target,
            "--pause",
            "--duration",
            "1m",
        ],
    );
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("already paused"), "{stderr}");
    let cancelled = json(&daemon, &["-o", "json", "cancel", &id]);
    assert_eq!(cancelled["state"], "cancelled");

    // The daemon names the field of a load over 100 %.
    let (code, _, stderr) = chaosctl(
        &daemon,
        &[
            "inject",
            "stress",
            "--target",
            &target,
            "--cpu",
            "1",
            "--load",
            "150",
            "--duration",
            "5s",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("stress.cpu.load_percent"), "{stderr}");
    let stress = json(
        &daemon,
        &[
            "-o",
            "json",
            "inject",
            "stress",
            "--target",
            &target,
            "--cpu",
            "1",
            "--load",
            "10",
            "--duration",
            "1m",
        ],
    );
    assert_eq!(stress["kind"], "stress.cpu");
    assert_eq!(stress["outcome"]["workers"], 1);
    let id = stress["id"].as_str().expect("id").to_string();
    let cancelled = json(&daemon, &["-o", "json", "cancel", &id]);
    assert_eq!(cancelled["outcome"]["workers"], 0);
}
