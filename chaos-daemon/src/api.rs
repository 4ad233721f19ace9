//! gRPC front door: thin tonic shims over the engine, and the one error → status mapping.
use std::pin::Pin;

use chaos_proto::v1::{
    fault_service_server::FaultService, CancelRequest, CapabilitiesRequest, CapabilitiesResponse,
    Fault, FaultEvent, GetRequest, InjectRequest, ListRequest, ListResponse, WatchRequest,
};
use tokio_stream::{wrappers::BroadcastStream, Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use tracing::{info_span, Instrument as _};

use crate::{engine::Shared, error::Error};

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidArgument { .. } => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            Error::Internal(_) => Status::internal(message),
        }
    }
}

/// The `FaultService` implementation.
#[derive(Clone)]
pub struct Api {
    engine: Shared,
}

impl Api {
    pub fn new(engine: Shared) -> Self {
        Self { engine }
    }

    /// Inject, as a plain async function.
    pub async fn inject(&self, req: InjectRequest) -> Result<Fault, Error> {
        let mut engine = self.engine.lock().await;
        // Process and stress faults act on cgroup files and start workers: blocking work.
        tokio::task::block_in_place(|| engine.inject(&self.engine, req))
    }

    /// The fault's current state first, then every change, filtered by id when one is given.
    pub async fn watch(&self, id: String) -> Result<impl Stream<Item = Fault> + use<>, Error> {
        let mut engine = self.engine.lock().await;
        let receiver = engine.subscribe();
        let current = if id.is_empty() {
            engine.list()
        } else {
            vec![engine.get(&id)?]
        };
        drop(engine);
        let changes = BroadcastStream::new(receiver).filter_map(move |item| match item {
            Ok(fault) if id.is_empty() || fault.id == id => Some(fault),
            // A lagging watcher misses intermediate events; the next one carries full state.
            _ => None,
        });
        Ok(tokio_stream::iter(current).chain(changes))
    }

    pub async fn capabilities(&self) -> CapabilitiesResponse {
        let engine = self.engine.lock().await;
        let probe = engine.probe();
        CapabilitiesResponse {
            kernel_release: probe.kernel_release.clone(),
            features: probe.features.clone(),
            faults: probe.faults(),
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<FaultEvent, Status>> + Send>>;

#[tonic::async_trait]
impl FaultService for Api {
    async fn inject(&self, request: Request<InjectRequest>) -> Result<Response<Fault>, Status> {
        let req = request.into_inner();
        let span = info_span!("inject", target = %req.target);
        Ok(Response::new(self.inject(req).instrument(span).await?))
    }

    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let faults = self.engine.lock().await.list();
        Ok(Response::new(ListResponse { faults }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Fault>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(self.engine.lock().await.get(&id)?))
    }

    async fn cancel(&self, request: Request<CancelRequest>) -> Result<Response<Fault>, Status> {
        let id = request.into_inner().id;
        let span = info_span!("cancel", fault.id = %id);
        let cancelled = async { self.engine.lock().await.cancel(&id) }
            .instrument(span)
            .await?;
        Ok(Response::new(cancelled))
    }

    type WatchStream = EventStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<EventStream>, Status> {
        let stream = self.watch(request.into_inner().id).await?;
        Ok(Response::new(Box::pin(
            stream.map(|fault| Ok(FaultEvent { fault: Some(fault) })),
        )))
    }

    async fn capabilities(
        &self,
        _: Request<CapabilitiesRequest>,
    ) -> Result<Response<CapabilitiesResponse>, Status> {
        Ok(Response::new(self.capabilities().await))
    }
}
