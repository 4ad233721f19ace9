//! Calls of the fault API that tests make over and over: inject, get, cancel, and a request
//! with a window.
use std::time::Duration;

use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, CancelRequest, Fault,
    GetRequest, InjectRequest,
};
use tonic::transport::Channel;

/// A request for `spec` on `target`, opening at `start_at_unix_ns` (0 = now) for `window`.
pub fn request(target: &str, start_at_unix_ns: u64, window: Duration, spec: Spec) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns,
        duration: Some(prost_types::Duration {
            seconds: window.as_secs() as i64,
            nanos: window.subsec_nanos() as i32,
        }),
        spec: Some(spec),
        ..InjectRequest::default()
    }
}

pub async fn inject(client: &mut FaultServiceClient<Channel>, req: InjectRequest) -> Fault {
    client.inject(req).await.expect("inject").into_inner()
}

pub async fn get(client: &mut FaultServiceClient<Channel>, id: &str) -> Fault {
    client
        .get(GetRequest { id: id.to_string() })
        .await
        .expect("get")
        .into_inner()
}

pub async fn cancel(client: &mut FaultServiceClient<Channel>, id: &str) -> Fault {
    client
        .cancel(CancelRequest { id: id.to_string() })
        .await
        .expect("cancel")
        .into_inner()
}
