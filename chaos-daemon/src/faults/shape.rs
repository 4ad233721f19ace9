//! Network impairments (delay, bandwidth, corruption, duplication): request → the kernel
//! parameters of a network fault's slot.
use std::{sync::OnceLock, time::Duration};

use chaos_common::shape::JitterTables;

use chaos_common::net::{
    NetFault, DIST_NORMAL, DIST_ONE, DIST_PARETO, DIST_PARETONORMAL, DIST_UNIFORM, SHAPE_EGRESS,
    SHAPE_INGRESS, SHAPE_ON, SHAPE_REORDER,
};
use chaos_proto::v1::{Bandwidth, Delay, Direction, JitterDistribution, NetworkFault};

use super::{jitter, network::threshold};
use crate::error::Error;

/// Longest delay a packet may be given (latency plus its largest jitter draw). The `fq`
/// qdisc the daemon installs holds packets up to [`FQ_HORIZON`]; farther timestamps would be
/// capped there, so they are refused instead.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Longest wait in a bandwidth queue.
pub const MAX_QUEUE: Duration = Duration::from_secs(60);
/// Queue of a bandwidth fault that sets no limit: one second of waiting.
pub const DEFAULT_QUEUE: Duration = Duration::from_secs(1);
/// `fq`'s horizon as installed: a delayed packet can wait MAX_DELAY behind a full queue.
pub const FQ_HORIZON: Duration = Duration::from_secs(MAX_DELAY.as_secs() + MAX_QUEUE.as_secs());

/// The jitter tables, made once.
pub fn tables() -> &'static JitterTables {
    static TABLES: OnceLock<Box<JitterTables>> = OnceLock::new();
    TABLES.get_or_init(jitter::tables)
}

/// Fills the impairment fields of `fault` from the request; returns the fault kinds asked
/// for (`network.delay`, ...), empty when there is none. Errors name the field.
pub fn plan(spec: &NetworkFault, fault: &mut NetFault) -> Result<Vec<&'static str>, Error> {
    let mut kinds = Vec::new();
    if let Some(delay) = &spec.delay {
        plan_delay(delay, fault)?;
        kinds.push("network.delay");
    }
    if let Some(bandwidth) = &spec.bandwidth {
        plan_bandwidth(bandwidth, fault)?;
        kinds.push("network.bandwidth");
    }
    if let Some(corrupt) = &spec.corrupt {
        fault.corrupt = threshold("network.corrupt.percent", corrupt.percent)?;
        kinds.push("network.corrupt");
    }
    if let Some(duplicate) = &spec.duplicate {
        fault.duplicate = threshold("network.duplicate.percent", duplicate.percent)?;
        kinds.push("network.duplicate");
    }
    if !kinds.is_empty() {
        // Unset means egress, as netem on the target's own interface would act; loss and
        // partition keep "both" for unset.
        fault.shape |= SHAPE_ON
            | match Direction::try_from(spec.direction) {
                Ok(Direction::Ingress) => SHAPE_INGRESS,
                Ok(Direction::Both) => SHAPE_EGRESS | SHAPE_INGRESS,
                _ => SHAPE_EGRESS,
            };
    }
    Ok(kinds)
}

fn nanos(field: &str, d: Option<&prost_types::Duration>) -> Result<u64, Error> {
    let Some(d) = d else { return Ok(0) };
    if d.seconds < 0 || d.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    Ok(d.seconds as u64 * 1_000_000_000 + d.nanos as u64)
}

fn plan_delay(delay: &Delay, fault: &mut NetFault) -> Result<(), Error> {
    fault.delay_ns = nanos("network.delay.latency", delay.latency.as_ref())?;
    fault.jitter_ns = nanos("network.delay.jitter", delay.jitter.as_ref())?;
    if fault.delay_ns == 0 && fault.jitter_ns == 0 {
        return Err(Error::invalid(
            "network.delay",
            "set latency, jitter or both",
        ));
    }
    fault.distribution = match JitterDistribution::try_from(delay.distribution) {
        Ok(JitterDistribution::Unspecified | JitterDistribution::Uniform) => DIST_UNIFORM,
        Ok(JitterDistribution::Normal) => DIST_NORMAL,
        Ok(JitterDistribution::Pareto) => DIST_PARETO,
        Ok(JitterDistribution::Paretonormal) => DIST_PARETONORMAL,
        Err(_) => {
            return Err(Error::invalid(
                "network.delay.distribution",
                format!("unknown value {}", delay.distribution),
            ))
        }
    };
    // The largest draw: the half-width for uniform, the table's top quantile otherwise.
    let widest = if fault.distribution == DIST_UNIFORM {
        fault.jitter_ns as u128
    } else {
        let top = tables()
            .get(usize::from(fault.distribution - 1))
            .into_iter()
            .flat_map(|table| table.quantiles.iter())
            .map(|q| q.unsigned_abs())
            .max()
            .unwrap_or(0);
        fault.jitter_ns as u128 * u128::from(top) / DIST_ONE as u128
    };
    if fault.delay_ns as u128 + widest > MAX_DELAY.as_nanos() {
        return Err(Error::invalid(
            "network.delay",
            format!(
                "latency {} plus the largest jitter draw {} exceeds {}: packets are held by \
                 the fq qdisc, whose horizon faultline sets to {}",
                humantime::format_duration(Duration::from_nanos(fault.delay_ns)),
                humantime::format_duration(Duration::from_nanos(widest as u64)),
                humantime::format_duration(MAX_DELAY),
                humantime::format_duration(FQ_HORIZON),
            ),
        ));
    }
    let correlation = delay.correlation_percent;
    if !(0.0..100.0).contains(&correlation) {
        return Err(Error::invalid(
            "network.delay.correlation_percent",
            format!("must be in [0, 100), got {correlation}"),
        ));
    }
    if correlation > 0.0 {
        fault.correlation = threshold("network.delay.correlation_percent", correlation)?;
    }
    if delay.reorder {
        fault.shape |= SHAPE_REORDER;
    }
    Ok(())
}

fn plan_bandwidth(bandwidth: &Bandwidth, fault: &mut NetFault) -> Result<(), Error> {
    let rate = bandwidth.rate_bits_per_second;
    if rate < 8 {
        return Err(Error::invalid(
            "network.bandwidth.rate_bits_per_second",
            format!("must be at least 8 bit/s, got {rate}"),
        ));
    }
    fault.rate_bits = rate;
    // Time the link takes to send `bytes`.
    let time_of = |bytes: u64| (u128::from(bytes) * 8_000_000_000 / u128::from(rate)) as u64;
    fault.burst_ns = time_of(bandwidth.burst_bytes).min(MAX_QUEUE.as_nanos() as u64);
    let by_bytes = (bandwidth.queue_limit_bytes != 0).then(|| time_of(bandwidth.queue_limit_bytes));
    let by_time = match &bandwidth.queue_limit {
        Some(d) => Some(nanos("network.bandwidth.queue_limit", Some(d))?),
        None => None,
    };
    let queue = match (by_bytes, by_time) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => DEFAULT_QUEUE.as_nanos() as u64,
    };
    if queue > MAX_QUEUE.as_nanos() as u64 {
        return Err(Error::invalid(
            "network.bandwidth.queue_limit",
            format!(
                "a queue of {} at this rate exceeds the {} packets may wait",
                humantime::format_duration(Duration::from_nanos(queue)),
                humantime::format_duration(MAX_QUEUE)
            ),
        ));
    }
    // 0 would mean "no limit" to the program; a zero-length queue still lets one packet in.
    fault.queue_ns = queue.max(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use chaos_proto::v1::{Corrupt, Duplicate};

    use super::*;

    fn ms(n: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: n / 1000,
            nanos: ((n % 1000) * 1_000_000) as i32,
        })
    }

    fn field_of(spec: &NetworkFault) -> String {
        let mut fault = NetFault::default();
        match plan(spec, &mut fault) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn delay_and_rate_become_kernel_units() {
        let spec = NetworkFault {
            delay: Some(Delay {
                latency: ms(100),
                jitter: ms(20),
                distribution: JitterDistribution::Normal as i32,
                correlation_percent: 25.0,
                reorder: false,
            }),
            bandwidth: Some(Bandwidth {
                rate_bits_per_second: 10_000_000,
                burst_bytes: 12_500,
                queue_limit_bytes: 125_000,
                queue_limit: None,
            }),
            corrupt: Some(Corrupt { percent: 0.1 }),
            duplicate: Some(Duplicate { percent: 1.0 }),
            ..NetworkFault::default()
        };
        let mut fault = NetFault::default();
        let kinds = plan(&spec, &mut fault).expect("valid");
        assert_eq!(kinds.len(), 4);
        assert_eq!(fault.delay_ns, 100_000_000);
        assert_eq!(fault.jitter_ns, 20_000_000);
        assert_eq!(fault.distribution, DIST_NORMAL);
        assert_eq!(fault.correlation, (1u64 << 32) / 4);
        assert_eq!(fault.rate_bits, 10_000_000);
        // 12.5 kB at 10 Mbit/s = 10 ms; 125 kB = 100 ms.
        assert_eq!(fault.burst_ns, 10_000_000);
        assert_eq!(fault.queue_ns, 100_000_000);
        assert_eq!(fault.shape, SHAPE_ON | SHAPE_EGRESS);
    }

    #[test]
    fn names_the_bad_field() {
        let delay = |latency, jitter| NetworkFault {
            delay: Some(Delay {
                latency,
                jitter,
                ..Delay::default()
            }),
            ..NetworkFault::default()
        };
        assert_eq!(field_of(&delay(None, None)), "network.delay");
        assert_eq!(field_of(&delay(ms(59_000), ms(2_000))), "network.delay");
        assert_eq!(field_of(&delay(ms(-5), None)), "network.delay.latency");
        let slow = NetworkFault {
            bandwidth: Some(Bandwidth {
                rate_bits_per_second: 4,
                ..Bandwidth::default()
            }),
            ..NetworkFault::default()
        };
        assert_eq!(field_of(&slow), "network.bandwidth.rate_bits_per_second");
        let bloated = NetworkFault {
            bandwidth: Some(Bandwidth {
                rate_bits_per_second: 8_000,
                queue_limit_bytes: 1_000_000,
                ..Bandwidth::default()
            }),
            ..NetworkFault::default()
        };
        assert_eq!(field_of(&bloated), "network.bandwidth.queue_limit");
        let corrupt = NetworkFault {
            corrupt: Some(Corrupt { percent: 0.0 }),
            ..NetworkFault::default()
        };
        assert_eq!(field_of(&corrupt), "network.corrupt.percent");
    }

    #[test]
    fn impairments_default_to_egress() {
        let shape_of = |direction: Direction| {
            let spec = NetworkFault {
                direction: direction as i32,
                duplicate: Some(Duplicate { percent: 5.0 }),
                ..NetworkFault::default()
            };
            let mut fault = NetFault::default();
            plan(&spec, &mut fault).expect("valid");
            fault.shape & (SHAPE_EGRESS | SHAPE_INGRESS)
        };
        assert_eq!(shape_of(Direction::Unspecified), SHAPE_EGRESS);
        assert_eq!(shape_of(Direction::Ingress), SHAPE_INGRESS);
        assert_eq!(shape_of(Direction::Both), SHAPE_EGRESS | SHAPE_INGRESS);
    }
}
