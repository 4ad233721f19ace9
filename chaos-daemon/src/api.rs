//! gRPC front door: thin tonic shims over the engine, and the one error → status mapping.
use std::{pin::Pin, sync::Arc};

use chaos_proto::v1::{
    fault_service_server::FaultService, AbortAllRequest, AbortAllResponse, CancelRequest,
    CapabilitiesRequest, CapabilitiesResponse, Fault, FaultEvent, GetRequest, InjectRequest,
    ListRequest, ListResponse, RenewRequest, WatchRequest,
};
use tokio_stream::{wrappers::BroadcastStream, Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use tracing::{info_span, Instrument as _};

use crate::{
    engine::Shared,
    error::Error,
    pods::{Cluster, Query},
};

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidArgument { .. } => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::Unavailable(_) => Status::unavailable(message),
            Error::Internal(_) => Status::internal(message),
        }
    }
}

/// The `FaultService` implementation.
#[derive(Clone)]
pub struct Api {
    engine: Shared,
    /// The cluster, when the daemon runs in one: pod targets need it.
    cluster: Option<Arc<Cluster>>,
}

impl Api {
    pub fn new(engine: Shared, cluster: Option<Arc<Cluster>>) -> Self {
        Self { engine, cluster }
    }

    /// Inject, as a plain async function: a pod target is resolved through the API server
    /// first (without the engine's lock), then the engine validates and arms.
    pub async fn inject(&self, req: InjectRequest) -> Result<Fault, Error> {
        let pods = if Query::is_pod_target(&req.target) {
            let cluster = self.cluster.as_ref().ok_or_else(|| {
                Error::FailedPrecondition(
                    "target: pod targets need the daemon to run in a cluster: start it with \
                        --node-name (NODE_NAME) and an in-cluster service account or KUBECONFIG"
                        .into(),
                )
            })?;
            Some(cluster.select(&req).await?)
        } else if !req.container.is_empty() {
            return Err(Error::invalid(
                "container",
                "applies to pod targets (pod:, pods:) only",
            ));
        } else {
            if let Some(cluster) = &self.cluster {
                let dirs = self.engine.lock().await.resolve_dirs(&req.target)?;
                let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
                cluster
                    .check_protected(&dirs, &req.allow_protected_namespaces)
                    .await?;
            }
            None
        };
        let follow = (pods.is_some() && !req.dry_run).then(|| req.clone());
        let mut engine = self.engine.lock().await;
        // Process and stress faults act on cgroup files and start workers: blocking work.
        let fault = tokio::task::block_in_place(|| engine.inject(&self.engine, req, pods))?;
        drop(engine);
        if let Some(req) = follow {
            self.follow(fault.id.clone(), req);
        }
        Ok(fault)
    }

    /// Follows a pod fault's pods for its window (replacements are taken in).
    fn follow(&self, id: String, req: InjectRequest) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let engine = Arc::downgrade(&self.engine);
        let span = info_span!("follow", fault.id = %id);
        tokio::spawn(async move { cluster.follow(engine, id, req).await }.instrument(span));
    }

    /// Follows again the pods of the pod faults a restarted daemon adopted.
    pub async fn follow_adopted(&self) {
        let adopted = self.engine.lock().await.pod_faults();
        for (id, req) in adopted {
            self.follow(id, req);
        }
    }

    /// The fault's current state first, then every change, filtered by id when one is given.
    /// A watch of one fault holds its lease while it is open.
    pub async fn watch(&self, id: String) -> Result<impl Stream<Item = Fault> + use<>, Error> {
        let mut engine = self.engine.lock().await;
        let receiver = engine.subscribe();
        let current = if id.is_empty() {
            engine.list()
        } else {
            let current = engine.get(&id)?;
            engine.watching(&id, true);
            vec![current]
        };
        drop(engine);
        let holder = (!id.is_empty()).then(|| LeaseHolder {
            engine: self.engine.clone(),
            id: id.clone(),
        });
        let changes = BroadcastStream::new(receiver).filter_map(move |item| {
            let _held = &holder;
            match item {
                Ok(fault) if id.is_empty() || fault.id == id => Some(fault),
                // A lagging watcher misses intermediate events; the next one carries full state.
                _ => None,
            }
        });
        Ok(tokio_stream::iter(current).chain(changes))
    }

    pub async fn renew(&self, id: &str) -> Result<Fault, Error> {
        self.engine.lock().await.renew(id)
    }

    pub async fn abort_all(&self) -> Vec<Fault> {
        let mut engine = self.engine.lock().await;
        tokio::task::block_in_place(|| engine.abort_all())
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

/// Held by an open `Watch` of one fault: lets go of the fault's lease when the stream is
/// dropped (the client went away).
struct LeaseHolder {
    engine: Shared,
    id: String,
}

impl Drop for LeaseHolder {
    fn drop(&mut self) {
        let engine = self.engine.clone();
        let id = std::mem::take(&mut self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { engine.lock().await.watching(&id, false) });
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

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<Fault>, Status> {
        let id = request.into_inner().id;
        let span = info_span!("renew", fault.id = %id);
        Ok(Response::new(self.renew(&id).instrument(span).await?))
    }

    async fn abort_all(
        &self,
        _: Request<AbortAllRequest>,
    ) -> Result<Response<AbortAllResponse>, Status> {
        let faults = self.abort_all().instrument(info_span!("abort_all")).await;
        Ok(Response::new(AbortAllResponse { faults }))
    }
}
