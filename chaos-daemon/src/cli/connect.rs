//! Opens a gRPC channel to chaos-daemon over its Unix socket.

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::error::CliError;

/// How long to wait for the socket to accept; a local daemon answers in microseconds,
/// so anything longer means it is wedged and the user should hear about it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// tonic needs an HTTP URI, but the connector below ignores it and dials the socket.
const PLACEHOLDER_URI: &str = "http://[::]:50051";

/// Connects to the daemon's `FaultService` at `socket`, failing fast with
/// [`CliError::Connect`] if nothing listens there.
pub async fn connect(socket: &Path) -> Result<FaultServiceClient<Channel>, CliError> {
    let unreachable = |cause: String| CliError::Connect {
        socket: socket.to_owned(),
        cause,
    };
    let endpoint = Endpoint::try_from(PLACEHOLDER_URI)
        .map_err(|e| unreachable(root_cause(&e)))?
        .connect_timeout(CONNECT_TIMEOUT);
    let path = socket.to_owned();
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| unreachable(root_cause(&e)))?;
    Ok(FaultServiceClient::new(channel))
}

/// The innermost error's message: tonic's outer layers only say "transport error",
/// while the OS error ("No such file or directory") tells the user what to fix.
fn root_cause(err: &(dyn Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
