//! `inject network` impairment flags: --delay, --jitter, --rate, --corrupt, --duplicate.
use std::time::Duration;

use chaos_proto::v1::{Bandwidth, Corrupt, Delay, Duplicate, JitterDistribution, NetworkFault};
use clap::{Args, ValueEnum};

use super::{
    error::CliError,
    parse::{number_and_unit, parse_duration, parse_percent, parse_size, ParseError},
    request::proto_duration,
};

/// Impairments; any of them compose with each other and with --loss.
#[derive(Debug, Clone, Default, Args)]
pub struct ImpairArgs {
    /// Hold every packet back by this much.
    ///
    /// At most 60s including jitter. Examples: --delay 100ms, --delay 1.5s
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Impairments")]
    pub delay: Option<Duration>,

    /// Vary each packet's delay: half-width for uniform, standard deviation otherwise.
    ///
    /// A packet never overtakes one sent before it in its flow unless --reorder is given.
    /// Example: --delay 100ms --jitter 20ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Impairments")]
    pub jitter: Option<Duration>,

    /// How jitter is drawn [default: uniform].
    ///
    /// Example: --jitter 20ms --distribution normal
    #[arg(
        long,
        value_enum,
        value_name = "DISTRIBUTION",
        requires = "jitter",
        help_heading = "Impairments"
    )]
    pub distribution: Option<DistributionArg>,

    /// Chance that a packet repeats the previous packet's jitter, in [0, 100).
    ///
    /// Example: --jitter 20ms --correlation 25
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, requires = "jitter", help_heading = "Impairments")]
    pub correlation: Option<f64>,

    /// Let packets of a flow overtake each other when their delays cross.
    #[arg(long, requires = "jitter", help_heading = "Impairments")]
    pub reorder: bool,

    /// Limit the rate, like a bottleneck link.
    ///
    /// Units: bit, kbit, mbit, gbit (per second; k/m/g = 10³/10⁶/10⁹), or a plain number of
    /// bit/s. Examples: --rate 10mbit, --rate 512kbit
    #[arg(long, value_name = "RATE", value_parser = parse_rate, help_heading = "Impairments")]
    pub rate: Option<u64>,

    /// Bytes that may leave back to back after an idle period [default: one packet].
    ///
    /// Example: --rate 10mbit --burst 32KiB
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "rate", help_heading = "Impairments")]
    pub burst: Option<u64>,

    /// The bottleneck's queue, in bytes or as waiting time; fuller drops packets [default: 1s].
    ///
    /// Examples: --queue-limit 64KiB, --queue-limit 50ms
    #[arg(long, value_name = "SIZE|DURATION", value_parser = parse_queue_limit, requires = "rate", help_heading = "Impairments")]
    pub queue_limit: Option<QueueLimit>,

    /// Flip a random bit in this percentage of packets; receivers discard them.
    ///
    /// Example: --corrupt 0.1
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, help_heading = "Impairments")]
    pub corrupt: Option<f64>,

    /// Send this percentage of packets twice.
    ///
    /// Example: --duplicate 1
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, help_heading = "Impairments")]
    pub duplicate: Option<f64>,
}

/// `--distribution` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistributionArg {
    Uniform,
    Normal,
    Pareto,
    Paretonormal,
}

impl From<DistributionArg> for JitterDistribution {
    fn from(d: DistributionArg) -> Self {
        match d {
            DistributionArg::Uniform => Self::Uniform,
            DistributionArg::Normal => Self::Normal,
            DistributionArg::Pareto => Self::Pareto,
            DistributionArg::Paretonormal => Self::Paretonormal,
        }
    }
}

/// `--queue-limit`: bytes or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    Bytes(u64),
    Time(Duration),
}

/// Parses a rate in bit/s: `10mbit`, `1.5gbit`, `512kbit`, `800bit`, `1000000`.
pub fn parse_rate(input: &str) -> Result<u64, ParseError> {
    let (number, unit) =
        number_and_unit(input).ok_or_else(|| ParseError::Rate(input.to_owned()))?;
    let multiplier = match unit.trim_end_matches("/s").trim_end_matches("ps") {
        "" | "bit" => 1.0,
        "kbit" | "k" => 1e3,
        "mbit" | "m" => 1e6,
        "gbit" | "g" => 1e9,
        "tbit" | "t" => 1e12,
        _ => return Err(ParseError::Rate(input.to_owned())),
    };
    let bits = number * multiplier;
    if !bits.is_finite() || bits < 1.0 || bits >= u64::MAX as f64 {
        return Err(ParseError::Rate(input.to_owned()));
    }
    Ok(bits.round() as u64)
}

/// Parses `--queue-limit`: a duration (`50ms`) or a size (`64KiB`).
pub fn parse_queue_limit(input: &str) -> Result<QueueLimit, ParseError> {
    let text = input.trim();
    if text.ends_with('s') && !text.to_ascii_lowercase().ends_with("bs") {
        return parse_duration(text).map(QueueLimit::Time);
    }
    parse_size(text).map(QueueLimit::Bytes)
}

impl ImpairArgs {
    /// Sets the impairment fields of a request.
    pub fn fill(&self, network: &mut NetworkFault) -> Result<(), CliError> {
        if self.delay.is_some() || self.jitter.is_some() {
            network.delay = Some(Delay {
                latency: proto_duration("--delay", self.delay)?,
                jitter: proto_duration("--jitter", self.jitter)?,
                distribution: self
                    .distribution
                    .map_or(JitterDistribution::Unspecified, JitterDistribution::from)
                    as i32,
                correlation_percent: self.correlation.unwrap_or(0.0),
                reorder: self.reorder,
            });
        }
        if let Some(rate) = self.rate {
            let (bytes, time) = match self.queue_limit {
                Some(QueueLimit::Bytes(b)) => (b, None),
                Some(QueueLimit::Time(t)) => (0, Some(t)),
                None => (0, None),
            };
            network.bandwidth = Some(Bandwidth {
                rate_bits_per_second: rate,
                burst_bytes: self.burst.unwrap_or(0),
                queue_limit_bytes: bytes,
                queue_limit: proto_duration("--queue-limit", time)?,
            });
        }
        network.corrupt = self.corrupt.map(|percent| Corrupt { percent });
        network.duplicate = self.duplicate.map(|percent| Duplicate { percent });
        Ok(())
    }
}

/// A fault's impairments as flags would give them, e.g. `delay 100ms ± 20ms normal`.
pub fn describe(network: &NetworkFault) -> Vec<String> {
    let time = |d: &Option<prost_types::Duration>| {
        d.as_ref()
            .and_then(|d| Duration::try_from(*d).ok())
            .map(|d| humantime::format_duration(d).to_string())
    };
    let mut out = Vec::new();
    if let Some(delay) = &network.delay {
        let mut text = format!(
            "delay {}",
            time(&delay.latency).unwrap_or_else(|| "0s".into())
        );
        if let Some(jitter) = time(&delay.jitter) {
            let dist = JitterDistribution::try_from(delay.distribution)
                .unwrap_or(JitterDistribution::Unspecified);
            let name = match dist {
                JitterDistribution::Unspecified | JitterDistribution::Uniform => "uniform",
                JitterDistribution::Normal => "normal",
                JitterDistribution::Pareto => "pareto",
                JitterDistribution::Paretonormal => "paretonormal",
            };
            text.push_str(&format!(" ± {jitter} {name}"));
            if delay.correlation_percent > 0.0 {
                text.push_str(&format!(", correlation {}%", delay.correlation_percent));
            }
            if delay.reorder {
                text.push_str(", reorder");
            }
        }
        out.push(text);
    }
    if let Some(b) = &network.bandwidth {
        let mut text = format!("rate {} bit/s", b.rate_bits_per_second);
        if b.burst_bytes != 0 {
            text.push_str(&format!(", burst {} B", b.burst_bytes));
        }
        if b.queue_limit_bytes != 0 {
            text.push_str(&format!(", queue {} B", b.queue_limit_bytes));
        }
        if let Some(q) = time(&b.queue_limit) {
            text.push_str(&format!(", queue {q}"));
        }
        out.push(text);
    }
    if let Some(c) = &network.corrupt {
        out.push(format!("corrupt {}%", c.percent));
    }
    if let Some(d) = &network.duplicate {
        out.push(format!("duplicate {}%", d.percent));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_like_tc() {
        assert_eq!(parse_rate("10mbit").ok(), Some(10_000_000));
        assert_eq!(parse_rate("1.5gbit").ok(), Some(1_500_000_000));
        assert_eq!(parse_rate("512kbit").ok(), Some(512_000));
        assert_eq!(parse_rate("800").ok(), Some(800));
        assert_eq!(parse_rate("10Mbit/s").ok(), Some(10_000_000));
        for bad in ["", "fast", "-1mbit", "10mb", "0"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queue_limits_are_bytes_or_time() {
        assert_eq!(
            parse_queue_limit("50ms").ok(),
            Some(QueueLimit::Time(Duration::from_millis(50)))
        );
        assert_eq!(
            parse_queue_limit("64KiB").ok(),
            Some(QueueLimit::Bytes(65_536))
        );
        assert_eq!(
            parse_queue_limit("1500").ok(),
            Some(QueueLimit::Bytes(1500))
        );
    }
}
