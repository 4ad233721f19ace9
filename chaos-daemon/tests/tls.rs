//! The daemon's TCP port with mTLS (real certificates, `chaosctl` over TCP, files swapped like a Kubernetes Secret while it runs), the plaintext health-only port, and the start-up refusals.
mod support;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::time::Duration;

use chaos_daemon::cli::connect::{connect, connect_over, Transport};
use chaos_daemon::cli::CliError;
use chaos_daemon::tls::client::ClientTls;
use chaos_proto::v1::fault_service_client::FaultServiceClient;
use chaos_proto::v1::CapabilitiesRequest;
use support::certs::{Ca, ClientFiles, SecretVolume};
use support::{require_root, wait_until, Daemon};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

/// How long the daemon gets to notice changed TLS files (it checks every 2 s).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A loopback port free right now: the OS picks it, the probe socket is closed at once.
fn free_port() -> SocketAddr {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a probe port");
    probe.local_addr().expect("probe port address")
}

/// Runs the real `chaosctl` with `args`, none of its settings taken from the environment.
fn chaosctl(args: &[String]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaosctl"));
    for var in [
        "FAULTLINE_SERVER",
        "FAULTLINE_SOCKET",
        "FAULTLINE_TLS_CA",
        "FAULTLINE_TLS_CERT",
        "FAULTLINE_TLS_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).output().expect("run chaosctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Connects with the library over TCP (what `chaosctl --server https://…` does) and
/// makes one call; the error is the one line chaosctl would print.
async fn call(addr: SocketAddr, tls: ClientTls) -> Result<(), String> {
    let transport = Transport::Tcp {
        server: format!("https://{addr}"),
        authority: addr.to_string(),
        tls: Some(tls),
    };
    let mut client = connect(transport).await.map_err(|e| e.to_string())?;
    client
        .capabilities(CapabilitiesRequest {})
        .await
        .map(|_| ())
        .map_err(|e| CliError::from(e).to_string())
}

/// Polls `check` until it holds or `timeout` passes, from inside a multi-threaded runtime.
fn poll_async<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    tokio::task::block_in_place(|| {
        let runtime = tokio::runtime::Handle::current();
        wait_until(timeout, || runtime.block_on(check()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_port_accepts_only_clients_of_its_ca_and_health_port_serves_health_only() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ca, other_ca) = (Ca::new("faultline test CA"), Ca::new("another CA"));
    let volume = SecretVolume::new(tmp.path().join("secret"), &ca.server(), &ca.pem());
    let good = ClientFiles::new(tmp.path(), "good", &ca.pem(), &ca.client("alice"));
    // Trusts the daemon's CA, so only its own certificate can be the problem.
    let stranger = ClientFiles::new(
        tmp.path(),
        "stranger",
        &ca.pem(),
        &other_ca.client("mallory"),
    );
    let (addr, health_addr) = (free_port(), free_port());
    let health_listen = health_addr.to_string();
    let daemon = volume
        .serve(addr, &["--health-listen", &health_listen])
        .await;
    let server = format!("https://{addr}");
    let with = |client: &ClientFiles, with_cert: bool, command: &[&str]| {
        let mut args = vec!["--server".to_string(), server.clone()];
        args.extend(client.flags(with_cert));
        args.extend(command.iter().map(|s| s.to_string()));
        chaosctl(&args)
    };

    let out = with(&good, true, &["capabilities", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(!caps["features"].as_array().expect("features").is_empty());
    let out = with(&good, true, &["list", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok());

    // The daemon's TLS alert reaches the user as the cause.
    let refusals = [
        (
            "no client certificate",
            with(&good, false, &["list"]),
            "received fatal alert: CertificateRequired",
        ),
        (
            "a certificate of another CA",
            with(&stranger, true, &["list"]),
            "received fatal alert: UnknownCA",
        ),
    ];
    for (what, out, cause) in refusals {
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        let expected = format!("error: cannot reach the daemon at {server}: {cause} (");
        assert!(stderr.starts_with(&expected), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}");
    }
    let logs = daemon.logs();
    assert!(logs.contains("TLS handshake refused"), "{logs}");

    // A plaintext client gets nothing from the TLS port.
    let plain = Transport::Tcp {
        server: format!("http://{addr}"),
        authority: addr.to_string(),
        tls: None,
    };
    let err = connect(plain).await.expect_err("plaintext on the TLS port");
    assert!(matches!(err, CliError::ConnectServer { .. }), "{err}");

    // The health port: SERVING, in plaintext, and nothing else there.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{health_addr}"))
        .expect("health URI")
        .connect()
        .await
        .expect("connect to the health port");
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let refused = FaultServiceClient::new(channel)
        .capabilities(CapabilitiesRequest {})
        .await
        .expect_err("no FaultService on the health port");
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_tls_files_are_reloaded_and_bad_ones_are_ignored() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let mut volume = SecretVolume::new(tmp.path().join("secret"), &old_ca.server(), &old_ca.pem());
    // Both clients trust both CAs for the server, so the only thing that decides is
    // whether the daemon accepts their certificate.
    let both = format!("{}{}", old_ca.pem(), new_ca.pem());
    let old = ClientFiles::new(tmp.path(), "old", &both, &old_ca.client("old-client"));
    let new = ClientFiles::new(tmp.path(), "new", &both, &new_ca.client("new-client"));
    let addr = free_port();
    let daemon = volume.serve(addr, &[]).await;

    call(addr, old.tls(true)).await.expect("old client before");
    let before = call(addr, new.tls(true)).await;
    assert!(before.is_err(), "new client before the change: {before:?}");

    let server = new_ca.server();
    volume.update(&server.cert, &server.key, &new_ca.pem());
    let switched = poll_async(RELOAD_TIMEOUT, || async {
        call(addr, new.tls(true)).await.is_ok() && call(addr, old.tls(true)).await.is_err()
    });
    assert!(
        switched,
        "the daemon did not switch CAs within {RELOAD_TIMEOUT:?}\n{}",
        daemon.logs()
    );
    let refused = call(addr, old.tls(true))
        .await
        .expect_err("old client after");
    assert!(
        refused.starts_with(&format!(
            "cannot reach the daemon at https://{addr}: received fatal alert: UnknownCA"
        )),
        "{refused}"
    );

    // A broken certificate: the daemon says which file and keeps serving the last good one.
    volume.update("not a certificate\n", &server.key, &new_ca.pem());
    let warned = wait_until(RELOAD_TIMEOUT, || {
        daemon.logs().lines().any(|line| {
            line.contains("WARN")
                && line.contains("keeping the previous ones")
                && line.contains(&volume.path("tls.crt"))
        })
    });
    assert!(warned, "no warning naming tls.crt\n{}", daemon.logs());
    call(addr, new.tls(true))
        .await
        .expect("the last good files still serve");
}

/// Connects through `connect_over` with a caller-made dialer (as a port-forward would
/// be), TLS on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_over_a_caller_dialed_stream() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("faultline test CA");
    let volume = SecretVolume::new(tmp.path().join("secret"), &ca.server(), &ca.pem());
    let client = ClientFiles::new(tmp.path(), "client", &ca.pem(), &ca.client("plugin"));
    let addr = free_port();
    let _daemon = volume.serve(addr, &[]).await;

    let dials = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&dials);
    let dial = move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::net::TcpStream::connect(addr)
    };
    let mut faults = connect_over(dial, Some(client.tls(true)), "the test's stream")
        .await
        .expect("connect over the dialed stream");
    faults
        .capabilities(CapabilitiesRequest {})
        .await
        .expect("capabilities");
    assert!(dials.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    let refuse = move || tokio::net::TcpStream::connect(addr);
    let err = connect_over(refuse, Some(client.tls(false)), "the test's stream")
        .await
        .expect_err("no client certificate");
    assert!(
        err.to_string()
            .starts_with("cannot reach the daemon at the test's stream: received fatal alert: CertificateRequired"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_plaintext_beyond_loopback_and_bad_tls_files() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("faultline test CA");
    let volume = SecretVolume::new(tmp.path().join("secret"), &ca.server(), &ca.pem());
    let foreign_key = tmp.path().join("foreign.key");
    fs::write(&foreign_key, ca.server().key).expect("write foreign key");
    let absent = tmp.path().join("absent.key");
    let (cert, client_ca) = (volume.path("tls.crt"), volume.path("ca.crt"));
    let (foreign_key, absent) = (
        foreign_key.display().to_string(),
        absent.display().to_string(),
    );
    // The address is never bound: the check comes first.
    let exposed = SocketAddr::from((Ipv4Addr::UNSPECIFIED, free_port().port())).to_string();
    let loopback = free_port().to_string();
    let tls_with_key = |key| {
        vec![
            "--listen",
            &loopback,
            "--tls-cert",
            &cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            &client_ca,
        ]
    };
    let cases: [(Vec<&str>, &str, Vec<String>); 4] = [
        (
            vec!["--listen", &exposed],
            "exit status: 1",
            vec![format!(
                "--listen {exposed}: not a loopback address and no TLS: anyone who can reach it \
                 could inject faults on this node"
            )],
        ),
        (
            tls_with_key(&absent),
            "exit status: 1",
            vec![format!("read {absent}: No such file or directory")],
        ),
        (
            tls_with_key(&foreign_key),
            "exit status: 1",
            vec![format!("{cert} with key {foreign_key}: ")],
        ),
        (
            vec!["--listen", &loopback, "--tls-cert", &cert],
            "exit status: 2",
            vec!["--tls-key <FILE>".into(), "--tls-client-ca <FILE>".into()],
        ),
    ];
    for (args, status, needles) in cases {
        let err = match Daemon::try_start(&args).await {
            Ok(_daemon) => panic!("started with {args:?}"),
            Err(e) => e,
        };
        assert!(
            err.contains(&format!("exited during start-up with {status}")),
            "{args:?}: {err}"
        );
        for needle in needles {
            assert!(err.contains(&needle), "{args:?}: no {needle:?} in\n{err}");
        }
    }
}
