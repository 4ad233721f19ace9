//! Builds gRPC requests from parsed arguments.

use std::time::SystemTime;

use chaos_proto::v1::{
    inject_request, network_fault, Direction, InjectRequest, Loss, NetworkFault, Partition,
    Protocol,
};

use super::args::{NetworkArgs, WindowArgs};
use super::error::CliError;

impl WindowArgs {
    /// A request with the target and window set, resolving `--start-at +…` against `now`.
    pub fn to_request(
        &self,
        now: SystemTime,
        spec: inject_request::Spec,
    ) -> Result<InjectRequest, CliError> {
        let start_at_unix_ns = match self.start_at {
            Some(start) => start.resolve(now)?,
            // 0 asks the daemon to start now, by its clock.
            None => 0,
        };
        Ok(InjectRequest {
            target: self.target.clone(),
            start_at_unix_ns,
            duration: proto_duration("--duration", Some(self.duration))?,
            spec: Some(spec),
            container: self.container.clone().unwrap_or_default(),
            dry_run: self.dry_run,
            max_targets: self.max_targets.unwrap_or(0),
            max_percent: self.max_percent.unwrap_or(0.0),
            allow_protected_namespaces: self.allow_protected.clone(),
            lease: proto_duration("--lease", self.lease)?,
        })
    }
}

/// A flag's duration as the protobuf type (which refuses what it cannot represent).
pub(super) fn proto_duration(
    flag: &'static str,
    value: Option<std::time::Duration>,
) -> Result<Option<prost_types::Duration>, CliError> {
    value
        .map(prost_types::Duration::try_from)
        .transpose()
        .map_err(|e| CliError::Argument {
            flag,
            reason: e.to_string(),
        })
}

impl NetworkArgs {
    /// The `Inject` request these flags describe, resolving `--start-at +…` against `now`.
    ///
    /// Only conversions happen here: the daemon owns the semantic checks (loss range,
    /// port range, CIDR syntax, partition needing a peer) and names the field it rejects.
    pub fn to_inject_request(&self, now: SystemTime) -> Result<InjectRequest, CliError> {
        // With neither flag (only possible when a caller builds the struct by hand), the
        // action stays unset and the daemon rejects it by name.
        let action = match (self.loss, self.partition) {
            (Some(percent), _) => Some(network_fault::Action::Loss(Loss { percent })),
            (None, true) => Some(network_fault::Action::Partition(Partition {})),
            (None, false) => None,
        };
        let mut network = NetworkFault {
            direction: self
                .direction
                .map_or(Direction::Unspecified, Direction::from) as i32,
            protocol: self.protocol.map_or(Protocol::Unspecified, Protocol::from) as i32,
            ports: self.ports.clone(),
            peers: self.cidrs.clone(),
            action,
            ..NetworkFault::default()
        };
        self.impair.fill(&mut network)?;
        self.window
            .to_request(now, inject_request::Spec::Network(network))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chaos_proto::v1::PortRange;

    use super::*;
    use crate::cli::args::{DirectionArg, ProtocolArg};
    use crate::cli::parse::StartAt;

    fn args() -> NetworkArgs {
        NetworkArgs {
            window: WindowArgs {
                target: "cgroup:/system.slice/postgresql.service".into(),
                duration: Duration::from_millis(60_500),
                ..WindowArgs::default()
            },
            loss: Some(30.0),
            partition: false,
            impair: Default::default(),
            direction: None,
            protocol: None,
            ports: Vec::new(),
            cidrs: Vec::new(),
        }
    }

    fn network(request: &InjectRequest) -> Option<&NetworkFault> {
        match &request.spec {
            Some(inject_request::Spec::Network(network)) => Some(network),
            _ => None,
        }
    }

    #[test]
    fn loss_request_with_defaults() {
        let request = args().to_inject_request(SystemTime::now()).ok();
        let request = request.as_ref();
        assert_eq!(
            request.map(|r| r.target.as_str()),
            Some("cgroup:/system.slice/postgresql.service")
        );
        assert_eq!(request.map(|r| r.start_at_unix_ns), Some(0));
        assert_eq!(
            request.and_then(|r| r.duration),
            Some(prost_types::Duration {
                seconds: 60,
                nanos: 500_000_000
            })
        );
        let network = request.and_then(network);
        assert_eq!(
            network.map(|n| (n.direction, n.protocol)),
            Some((Direction::Unspecified as i32, Protocol::Unspecified as i32))
        );
        assert_eq!(
            network.and_then(|n| n.action),
            Some(network_fault::Action::Loss(Loss { percent: 30.0 }))
        );
    }

    #[test]
    fn partition_request_with_filters_and_relative_start() {
        let args = NetworkArgs {
            loss: None,
            partition: true,
            direction: Some(DirectionArg::Egress),
            protocol: Some(ProtocolArg::Tcp),
            ports: vec![PortRange {
                first: 8000,
                last: 8080,
            }],
            cidrs: vec!["10.0.0.0/8".into()],
            ..args()
        };
        let mut args = args;
        args.window.start_at = Some(StartAt::Relative(Duration::from_secs(5)));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let request = args.to_inject_request(now).ok();
        assert_eq!(
            request.as_ref().map(|r| r.start_at_unix_ns),
            Some(105_000_000_000)
        );
        let network = request.as_ref().and_then(network);
        assert_eq!(
            network.map(|n| (n.direction, n.protocol)),
            Some((Direction::Egress as i32, Protocol::Tcp as i32))
        );
        assert_eq!(
            network.map(|n| n.peers.clone()),
            Some(vec!["10.0.0.0/8".into()])
        );
        assert_eq!(network.map(|n| n.ports.len()), Some(1));
        assert_eq!(
            network.and_then(|n| n.action),
            Some(network_fault::Action::Partition(Partition {}))
        );
    }
}
