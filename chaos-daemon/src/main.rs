//! `chaos-daemon`: the faultline node daemon.
use anyhow::Context as _;
use chaos_daemon::tls::reload::ReloadingConfig;
use chaos_daemon::{api::Api, config::Config, config::LogFormat, serve, startup};
use clap::Parser as _;
use tokio::{signal::unix, sync::watch};
use tracing::{info, warn};

fn main() -> anyhow::Result<()> {
    // The same binary runs the stress workers, so they need no file of their own on the node.
    let args: Vec<String> = std::env::args_os()
        .take(3)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(code) = chaos_daemon::workers::run::main_if_worker(&args) {
        std::process::exit(code);
    }
    // Before the runtime's threads exist: a namespace is joined per thread.
    let joined = chaos_daemon::hostns::join_init_cgroup_ns();
    daemon(joined)
}

#[tokio::main]
async fn daemon(joined: Result<bool, chaos_daemon::hostns::Error>) -> anyhow::Result<()> {
    let config = Config::parse();
    init_logs(config.log_format);
    if joined.context("joining the node's cgroup namespace")? {
        info!("joined the node's cgroup namespace (PID 1's)");
    }
    if let Err(err) = chaos_daemon::hostns::raise_memlock() {
        warn!(error = %err, "eBPF maps stay under the locked-memory limit");
    }
    config.check_listen()?;
    // Before the kernel is touched: a bad TLS file fails the start naming the file.
    let tls = match config.tls_files() {
        Some(files) => Some(ReloadingConfig::load(files).context("loading the TLS files")?),
        None => None,
    };
    let engine = startup::start(&config).context("starting the daemon")?;
    let cluster = startup::cluster(&config, &engine)
        .await
        .context("connecting to the cluster")?;
    let unix = serve::bind_unix(&config.socket)?;
    let (stop, stopped) = watch::channel(false);
    let mut term = unix::signal(unix::SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = unix::signal(unix::SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down");
        let _ = stop.send(true);
    });
    let api = Api::new(engine.clone(), cluster);
    api.follow_adopted().await;
    let served = serve::serve(
        api,
        unix,
        &config.socket,
        config.listen.map(|addr| serve::TcpApi { addr, tls }),
        config.health_listen,
        stopped,
    )
    .await;
    engine.lock().await.shutdown();
    let _ = std::fs::remove_file(&config.socket);
    info!("stopped");
    served.context("serving the API")
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
