//! Runs a parsed `chaosctl` command against the daemon and prints the response.

use std::io::Write;
use std::time::SystemTime;

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use chaos_proto::v1::{
    AbortAllRequest, CancelRequest, CapabilitiesRequest, GetRequest, ListRequest, RenewRequest,
    WatchRequest,
};
use tonic::transport::Channel;

use super::args::{Cli, Command, InjectCommand, OutputFormat};
use super::connect::{connect, Transport};
use super::error::CliError;
use super::output;

/// Connects to the daemon named by `cli`, runs its command and prints to stdout.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let mut client = connect(Transport::from_args(&cli.connection)?).await?;
    let mut stdout = std::io::stdout();
    let result = execute(&mut client, cli.command, cli.output.format, &mut stdout).await;
    stdout.flush()?;
    result
}

/// Runs `command` on `client`, writing the response to `out` in `format`. Returns when
/// the response is printed; for `watch`, when the stream ends or on Ctrl-C.
pub async fn execute(
    client: &mut FaultServiceClient<Channel>,
    command: Command,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        Command::Inject(inject) => {
            let now = SystemTime::now();
            let request = match *inject {
                InjectCommand::Network(args) => args.to_inject_request(now)?,
                InjectCommand::Process(args) => args.to_inject_request(now)?,
                InjectCommand::Stress(args) => args.to_inject_request(now)?,
                InjectCommand::Storage(args) => args.to_inject_request(now)?,
                InjectCommand::IoLimit(args) => args.to_inject_request(now)?,
                InjectCommand::DiskFill(args) => args.to_inject_request(now)?,
            };
            let fault = client.inject(request).await?.into_inner();
            if fault.dry_run || !fault.targets.is_empty() {
                output::write_fault_detail(out, format, &fault)
            } else {
                output::write_fault(out, format, &fault)
            }
        }
        Command::List => {
            let faults = client.list(ListRequest {}).await?.into_inner().faults;
            output::write_faults(out, format, &faults)
        }
        Command::Get(args) => {
            let fault = client.get(GetRequest { id: args.id }).await?.into_inner();
            output::write_fault_detail(out, format, &fault)
        }
        Command::Cancel(args) => {
            let fault = client
                .cancel(CancelRequest { id: args.id })
                .await?
                .into_inner();
            output::write_fault(out, format, &fault)
        }
        Command::Watch(args) => {
            let id = args.id.unwrap_or_default();
            watch(client, WatchRequest { id }, format, out).await
        }
        Command::Capabilities => {
            let caps = client
                .capabilities(CapabilitiesRequest {})
                .await?
                .into_inner();
            output::write_capabilities(out, format, &caps)
        }
        Command::Renew(args) => {
            let fault = client
                .renew(RenewRequest { id: args.id })
                .await?
                .into_inner();
            output::write_fault(out, format, &fault)
        }
        Command::AbortAll => {
            let faults = client
                .abort_all(AbortAllRequest {})
                .await?
                .into_inner()
                .faults;
            output::write_faults(out, format, &faults)
        }
    }
}

/// Prints events until the daemon ends the stream or the user presses Ctrl-C; Ctrl-C is
/// the normal way to stop watching, so it is a success.
async fn watch(
    client: &mut FaultServiceClient<Channel>,
    request: WatchRequest,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut stream = client.watch(request).await?.into_inner();
    let interrupted = async {
        // Without a handler, SIGINT keeps its default action (exit), so waiting forever
        // here is correct rather than ending the watch at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            () = &mut interrupted => return Ok(()),
            event = stream.message() => match event? {
                Some(event) => {
                    if let Some(fault) = event.fault {
                        output::write_event(out, format, &fault, SystemTime::now())?;
                    }
                }
                None => return Ok(()),
            },
        }
    }
}
