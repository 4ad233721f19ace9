//! `chaos-daemon`: the faultline node daemon.
use anyhow::Context as _;
use chaos_daemon::{api::Api, config::Config, config::LogFormat, serve, startup};
use clap::Parser as _;
use tokio::{signal::unix, sync::watch};
use tracing::info;

fn main() -> anyhow::Result<()> {
    // The same binary runs the stress workers, so they need no file of their own on the node.
    let args: Vec<String> = std::env::args_os()
        .take(3)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(code) = chaos_daemon::workers::run::main_if_worker(&args) {
        std::process::exit(code);
    }
    daemon()
}

#[tokio::main]
async fn daemon() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logs(config.log_format);
    let engine = startup::start(&config).context("starting the daemon")?;
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
    let served = serve::serve(
        Api::new(engine.clone()),
        unix,
        &config.socket,
        config.listen,
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
