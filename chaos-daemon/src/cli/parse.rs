//! Value parsers for `chaosctl` flags: durations, start times, port ranges, percentages,
//! sizes and errno values.
//!
//! They reject only what cannot be represented in a request (not a number, malformed
//! syntax). Range checks such as "loss in (0, 100]" are the daemon's: it answers
//! INVALID_ARGUMENT naming the field, and repeating them here would let the two drift.
//! Two flags of `inject storage` are the exceptions: `--errno`, whose name is mapped here
//! to one canonical spelling (so a typo fails before anything is armed), and `--percent`,
//! whose 0 would silently mean 100 in the request.

use std::time::{Duration, SystemTime};

use chaos_proto::v1::PortRange;
use nix::errno::Errno;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::CliError;

/// Why a flag's value could not be parsed; clap prints it after the flag's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A percentage that is not a finite number.
    #[error("`{0}` is not a number (examples: 30, 30%, 0.01)")]
    Percent(String),
    /// A size that is not a number with an optional binary or decimal unit.
    #[error("`{0}` is not a size (examples: 512MiB, 2GiB, 1G, 100M, 4096)")]
    Size(String),
    /// An amount that is neither a size nor a percentage.
    #[error("`{0}` is not a size or a percentage (examples: 512MiB, 50%)")]
    SizeOrPercent(String),
    /// A failure share outside (0, 100] or not a number.
    #[error("`{0}` is not a percentage in (0, 100] (examples: 100, 1, 0.5%)")]
    FailPercent(String),
    /// A count that is not a whole number of at least 1.
    #[error("`{0}` is not a whole number of at least 1 (omit the flag for no limit)")]
    Count(String),
    /// An errno that is neither a known name nor a number in [1, 4095].
    #[error(
        "`{0}` is not an errno name nor a number in [1, 4095] (names in any case, e.g. \
         {examples}; or a number, e.g. 5)",
        examples = ERRNO_EXAMPLES
    )]
    Errno(String),
    /// A rate that is not a number with an optional bit/s unit.
    #[error("`{0}` is not a rate (examples: 10mbit, 512kbit, 1gbit, 800 for bit/s)")]
    Rate(String),
    /// A port that is not `P` or `A-B` with decimal numbers.
    #[error("`{0}` is not a port or port range (examples: 443, 8000-8080)")]
    Port(String),
    /// A duration humantime cannot read.
    #[error("`{input}` is not a duration (examples: 10s, 1m30s, 500ms): {reason}")]
    Duration {
        /// The value as given.
        input: String,
        /// humantime's explanation.
        reason: String,
    },
    /// A start time that is neither RFC 3339 nor `+<duration>`.
    #[error(
        "`{input}` is not an RFC 3339 time (e.g. 2030-01-01T12:00:00Z) nor an offset \
         from now (e.g. +5s, +300ms): {reason}"
    )]
    StartAt {
        /// The value as given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// When a fault's window opens, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// An absolute time, Unix nanoseconds.
    Absolute(u64),
    /// An offset from the moment the request is built (`+5s`).
    Relative(Duration),
}

impl StartAt {
    /// The start as Unix nanoseconds, resolving a relative start against `now`. The
    /// client computes it (rather than sending an offset) so the window is anchored to
    /// when the user pressed enter, whatever the RPC latency.
    pub fn resolve(self, now: SystemTime) -> Result<u64, CliError> {
        match self {
            Self::Absolute(ns) => Ok(ns),
            Self::Relative(offset) => {
                let since_epoch = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_err(|_| start_at_error("the local clock is before 1970"))?;
                let start = since_epoch
                    .checked_add(offset)
                    .ok_or_else(|| start_at_error("the offset is too large"))?;
                u64::try_from(start.as_nanos())
                    .map_err(|_| start_at_error("the start does not fit in Unix nanoseconds"))
            }
        }
    }
}

fn start_at_error(reason: &str) -> CliError {
    CliError::Argument {
        flag: "--start-at",
        reason: reason.to_owned(),
    }
}

/// Parses `--loss`: `30`, `30%` or `0.01` (percent, the `%` sign optional).
pub fn parse_percent(input: &str) -> Result<f64, ParseError> {
    let number = input
        .trim()
        .strip_suffix('%')
        .unwrap_or(input.trim())
        .trim();
    match number.parse::<f64>() {
        // NaN and infinities parse as f64 but are not percentages anyone meant; a NaN
        // could also slip through a range check written as `p <= 0 || p > 100`.
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(ParseError::Percent(input.to_owned())),
    }
}

/// Parses `inject storage --percent`: like [`parse_percent`], but only in (0, 100], since
/// the request's 0 means 100.
pub fn parse_fail_percent(input: &str) -> Result<f64, ParseError> {
    match parse_percent(input) {
        Ok(value) if value > 0.0 && value <= 100.0 => Ok(value),
        _ => Err(ParseError::FailPercent(input.to_owned())),
    }
}

/// Parses a count that must be at least 1, such as `--max-failures 10`.
pub fn parse_positive_count(input: &str) -> Result<u64, ParseError> {
    let text = input.trim();
    // `u64::from_str` accepts a leading '+', which reads as an offset rather than a count.
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Count(input.to_owned()));
    }
    match text.parse::<u64>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(ParseError::Count(input.to_owned())),
    }
}

/// Errno names most storage faults use, listed in `--errno`'s error message.
const ERRNO_EXAMPLES: &str = "EIO, ENOSPC, EACCES, EROFS, EDQUOT, EPERM, EBUSY, EAGAIN, \
                              ENOMEM, EINTR, ENOENT, EEXIST, ETIMEDOUT";

/// The largest errno a system call can return (the kernel's MAX_ERRNO).
const MAX_ERRNO: u16 = 4095;

/// Names of the C library that are aliases of another errno, and that errno's name.
const ERRNO_ALIASES: &[(&str, &str)] = &[
    ("EWOULDBLOCK", "EAGAIN"),
    ("EDEADLOCK", "EDEADLK"),
    ("ENOTSUP", "EOPNOTSUPP"),
];

/// Parses `--errno`: a name in any case (`EIO`, `enospc`) or a number in [1, 4095] (`5`).
/// Returns what the request carries: the canonical upper-case name, or the number in
/// decimal when a number was given.
pub fn parse_errno(input: &str) -> Result<String, ParseError> {
    let text = input.trim();
    let bad = || ParseError::Errno(input.to_owned());
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u16>() {
            Ok(number @ 1..=MAX_ERRNO) => Ok(number.to_string()),
            _ => Err(bad()),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = ERRNO_ALIASES
        .iter()
        .find(|(alias, _)| *alias == upper)
        .map_or(upper.as_str(), |(_, canonical)| canonical);
    errno_named(name).ok_or_else(bad)
}

/// The errno whose upper-case name is `name`, spelled as the C library spells it.
fn errno_named(name: &str) -> Option<String> {
    (1..=i32::from(MAX_ERRNO))
        .map(Errno::from_raw)
        .filter(|errno| *errno != Errno::UnknownErrno)
        .map(|errno| format!("{errno:?}"))
        .find(|known| known == name)
}

/// Parses a size in bytes: `4096`, `512MiB`, `512M` (= MiB), `1.5GiB`, `100MB` (decimal).
pub fn parse_size(input: &str) -> Result<u64, ParseError> {
    let (number, unit) =
        number_and_unit(input).ok_or_else(|| ParseError::Size(input.to_owned()))?;
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(ParseError::Size(input.to_owned())),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(ParseError::Size(input.to_owned()));
    }
    Ok(bytes as u64)
}

/// A decimal number and the unit after it, lowercased: `1.5GiB` → (1.5, "gib").
pub fn number_and_unit(input: &str) -> Option<(f64, String)> {
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit.trim().to_ascii_lowercase()))
}

/// `--memory` or `--fill`: a size, or a percentage (of a limit, of a file system).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SizeOrPercent {
    Bytes(u64),
    Percent(f64),
}

/// Parses `--memory` or `--fill`: `512MiB` or `50%`.
pub fn parse_size_or_percent(input: &str) -> Result<SizeOrPercent, ParseError> {
    if input.trim().ends_with('%') {
        return parse_percent(input)
            .map(SizeOrPercent::Percent)
            .map_err(|_| ParseError::SizeOrPercent(input.to_owned()));
    }
    parse_size(input)
        .map(SizeOrPercent::Bytes)
        .map_err(|_| ParseError::SizeOrPercent(input.to_owned()))
}

/// Parses `--grow`: a size per second, `64MiB/s` (the `/s` optional).
pub fn parse_rate(input: &str) -> Result<u64, ParseError> {
    let text = input.trim();
    parse_size(text.strip_suffix("/s").unwrap_or(text))
}

/// Parses `--port`: a port `443` or an inclusive range `8000-8080`. A single port is sent
/// as `first == last` rather than `last = 0` so the request reads the same in any log.
/// Values above 65535 or reversed ranges are left for the daemon to reject by field name.
pub fn parse_port_range(input: &str) -> Result<PortRange, ParseError> {
    let bad = || ParseError::Port(input.to_owned());
    let number = |s: &str| {
        let s = s.trim();
        // `u32::from_str` accepts a leading '+', which is not port syntax.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u32>().map_err(|_| bad())
    };
    match input.split_once('-') {
        Some((first, last)) => Ok(PortRange {
            first: number(first)?,
            last: number(last)?,
        }),
        None => {
            let port = number(input)?;
            Ok(PortRange {
                first: port,
                last: port,
            })
        }
    }
}

/// Parses `--duration` and the offset of `--start-at +…` with humantime (`10s`, `1m30s`, `500ms`).
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    humantime::parse_duration(input.trim()).map_err(|e| ParseError::Duration {
        input: input.to_owned(),
        reason: e.to_string(),
    })
}

/// Parses `--start-at`: an RFC 3339 time or `+<duration>` from now.
pub fn parse_start_at(input: &str) -> Result<StartAt, ParseError> {
    let trimmed = input.trim();
    let error = |reason: String| ParseError::StartAt {
        input: input.to_owned(),
        reason,
    };
    if let Some(offset) = trimmed.strip_prefix('+') {
        return humantime::parse_duration(offset.trim())
            .map(StartAt::Relative)
            .map_err(|e| error(e.to_string()));
    }
    let at = OffsetDateTime::parse(trimmed, &Rfc3339).map_err(|e| error(e.to_string()))?;
    u64::try_from(at.unix_timestamp_nanos())
        .map(StartAt::Absolute)
        .map_err(|_| error("it is before 1970 or after 2554".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert_eq!(
            parse_size_or_percent("50%"),
            Ok(SizeOrPercent::Percent(50.0))
        );
        assert_eq!(
            parse_size_or_percent("1G"),
            Ok(SizeOrPercent::Bytes(1 << 30))
        );
        assert_eq!(parse_rate("64MiB/s"), Ok(64 << 20));
    }

    #[test]
    fn percent_forms() {
        assert_eq!(parse_percent("30"), Ok(30.0));
        assert_eq!(parse_percent("30%"), Ok(30.0));
        assert_eq!(parse_percent("0.01"), Ok(0.01));
        assert_eq!(parse_percent(" 12.5 % "), Ok(12.5));
    }

    #[test]
    fn percent_out_of_range_is_left_to_the_daemon() {
        assert_eq!(parse_percent("150"), Ok(150.0));
        assert_eq!(parse_percent("0"), Ok(0.0));
        assert_eq!(parse_percent("-5"), Ok(-5.0));
    }

    #[test]
    fn percent_rejects_non_numbers() {
        for bad in ["", "%", "abc", "30%%", "NaN", "inf", "3O"] {
            assert!(parse_percent(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn fail_percent_is_in_range() {
        assert_eq!(parse_fail_percent("100"), Ok(100.0));
        assert_eq!(parse_fail_percent("0.01%"), Ok(0.01));
        assert_eq!(parse_fail_percent("1"), Ok(1.0));
        for bad in ["0", "-1", "100.5", "NaN", "inf", "", "lots"] {
            assert!(parse_fail_percent(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn positive_counts() {
        assert_eq!(parse_positive_count("10"), Ok(10));
        assert_eq!(parse_positive_count(" 1 "), Ok(1));
        for bad in ["0", "-1", "+3", "", "ten", "1.5", "99999999999999999999"] {
            assert!(parse_positive_count(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn errno_names_and_numbers() {
        let ok = |s: &str| parse_errno(s).ok();
        assert_eq!(ok("EIO").as_deref(), Some("EIO"));
        assert_eq!(ok("eio").as_deref(), Some("EIO"));
        assert_eq!(ok(" EnoSpc ").as_deref(), Some("ENOSPC"));
        assert_eq!(ok("etimedout").as_deref(), Some("ETIMEDOUT"));
        assert_eq!(ok("EDQUOT").as_deref(), Some("EDQUOT"));
        assert_eq!(ok("EWOULDBLOCK").as_deref(), Some("EAGAIN"));
        assert_eq!(ok("5").as_deref(), Some("5"));
        assert_eq!(ok("005").as_deref(), Some("5"));
        assert_eq!(ok("4095").as_deref(), Some("4095"));
    }

    #[test]
    fn errno_rejects_unknown_names_and_numbers() {
        for bad in [
            "",
            "EFOO",
            "IO",
            "0",
            "4096",
            "-5",
            "+5",
            "UnknownErrno",
            "E IO",
        ] {
            assert!(parse_errno(bad).is_err(), "{bad:?} accepted");
        }
        let message = parse_errno("EFOO").err().map(|e| e.to_string());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("EIO, ENOSPC")),
            "{message:?}"
        );
    }

    #[test]
    fn port_forms() {
        let range = |first, last| Ok(PortRange { first, last });
        assert_eq!(parse_port_range("443"), range(443, 443));
        assert_eq!(parse_port_range("8000-8080"), range(8000, 8080));
        assert_eq!(parse_port_range(" 80 - 90 "), range(80, 90));
        // Semantic errors are the daemon's to name.
        assert_eq!(parse_port_range("70000"), range(70000, 70000));
        assert_eq!(parse_port_range("90-80"), range(90, 80));
    }

    #[test]
    fn port_rejects_malformed() {
        for bad in [
            "",
            "-",
            "80-",
            "-80",
            "http",
            "80-90-100",
            "+80",
            "8 0",
            "99999999999",
        ] {
            assert!(parse_port_range(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn start_at_relative() {
        assert_eq!(
            parse_start_at("+5s"),
            Ok(StartAt::Relative(Duration::from_secs(5)))
        );
        assert_eq!(
            parse_start_at("+300ms"),
            Ok(StartAt::Relative(Duration::from_millis(300)))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            StartAt::Relative(Duration::from_millis(300))
                .resolve(now)
                .ok(),
            Some(1_000_300_000_000)
        );
    }

    #[test]
    fn start_at_rfc3339() {
        assert_eq!(
            parse_start_at("2030-01-01T00:00:00.5Z"),
            Ok(StartAt::Absolute(1_893_456_000_500_000_000))
        );
        assert_eq!(
            parse_start_at("2030-01-01T01:00:00+01:00"),
            Ok(StartAt::Absolute(1_893_456_000_000_000_000))
        );
    }

    #[test]
    fn start_at_rejects_unrepresentable() {
        assert!(parse_start_at("1969-12-31T23:59:59Z").is_err());
        assert!(parse_start_at("tomorrow").is_err());
        assert!(parse_start_at("+").is_err());
        assert!(parse_start_at("5s").is_err());
    }

    #[test]
    fn relative_start_overflow_is_an_argument_error() {
        let err = StartAt::Relative(Duration::from_secs(u64::MAX / 2))
            .resolve(SystemTime::UNIX_EPOCH)
            .err();
        assert!(matches!(
            err,
            Some(CliError::Argument {
                flag: "--start-at",
                ..
            })
        ));
    }
}
