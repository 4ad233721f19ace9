//! A fault's time window: validated from the request, in Unix ns.
use std::time::Duration;

use chaos_proto::v1::InjectRequest;

use crate::{clock, error::Error};

/// Limits on windows, from the daemon's flags.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest fault accepted.
    pub max_duration: Duration,
    /// How far in the past `start_at` may be (clock skew between client and node).
    pub start_tolerance: Duration,
}

/// `[start, end)` in Unix ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
}

impl Window {
    /// Checks `start_at_unix_ns` and `duration`; an unset start means now.
    pub fn from_request(req: &InjectRequest, limits: &Limits) -> Result<Self, Error> {
        let now = clock::unix_now_ns();
        let duration = req.duration.as_ref().ok_or_else(|| {
            Error::invalid("duration", "is required: faults are never open-ended")
        })?;
        if duration.seconds < 0
            || duration.nanos < 0
            || (duration.seconds == 0 && duration.nanos == 0)
        {
            return Err(Error::invalid(
                "duration",
                format!(
                    "must be positive, got {}s {}ns",
                    duration.seconds, duration.nanos
                ),
            ));
        }
        let duration_ns = u64::try_from(duration.seconds)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000_000))
            .and_then(|ns| ns.checked_add(duration.nanos as u64))
            .unwrap_or(u64::MAX);
        let max = u64::try_from(limits.max_duration.as_nanos()).unwrap_or(u64::MAX);
        if duration_ns > max {
            return Err(Error::invalid(
                "duration",
                format!(
                    "{} exceeds the daemon's maximum of {} (--max-duration)",
                    humantime::format_duration(Duration::from_nanos(duration_ns)),
                    humantime::format_duration(limits.max_duration)
                ),
            ));
        }
        let start = if req.start_at_unix_ns == 0 {
            now
        } else {
            let tolerance = u64::try_from(limits.start_tolerance.as_nanos()).unwrap_or(u64::MAX);
            if req.start_at_unix_ns.saturating_add(tolerance) < now {
                let late = Duration::from_nanos(now - req.start_at_unix_ns);
                return Err(Error::invalid(
                    "start_at_unix_ns",
                    format!(
                        "is {} in the past (tolerance {}); leave it unset to start now",
                        humantime::format_duration(Duration::from_millis(late.as_millis() as u64)),
                        humantime::format_duration(limits.start_tolerance)
                    ),
                ));
            }
            req.start_at_unix_ns
        };
        let end = start
            .checked_add(duration_ns)
            .ok_or_else(|| Error::invalid("duration", "start_at_unix_ns + duration overflows"))?;
        Ok(Self {
            start_unix_ns: start,
            end_unix_ns: end,
        })
    }
}
