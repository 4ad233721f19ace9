//! Converts between Unix time (the API's) and the kernel clock the eBPF programs read.
//!
//! With `CLOCK_TAI` (Linux ≥ 6.1) the two differ by the kernel's TAI offset, a whole number of
//! seconds that only `adjtimex` changes, so a window given in Unix time stays put even if the
//! wall clock is stepped before it opens. Without it, `CLOCK_MONOTONIC` is used and the offset
//! is sampled when the fault is armed: a later clock step then shifts the window.
use nix::time::{clock_gettime, ClockId};

/// Which kernel clock windows are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelClock {
    Tai,
    Monotonic,
}

impl KernelClock {
    /// Name reported by `Capabilities`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tai => "CLOCK_TAI",
            Self::Monotonic => "CLOCK_MONOTONIC",
        }
    }

    /// Value of the object's `CLOCK` global.
    pub fn global(self) -> u8 {
        match self {
            Self::Tai => chaos_common::clock::TAI,
            Self::Monotonic => chaos_common::clock::MONOTONIC,
        }
    }

    fn id(self) -> ClockId {
        match self {
            Self::Tai => ClockId::CLOCK_TAI,
            Self::Monotonic => ClockId::CLOCK_MONOTONIC,
        }
    }

    /// Now in this clock.
    pub fn now_ns(self) -> u64 {
        read_ns(self.id())
    }

    /// `kernel − unix` in ns. TAI's offset is rounded to whole seconds (it is one), which
    /// removes the jitter of the two reads; the monotonic offset keeps the tightest of a few
    /// samples.
    pub fn offset_ns(self) -> i128 {
        let mut best: Option<(u64, i128)> = None;
        for _ in 0..5 {
            let before = read_ns(ClockId::CLOCK_REALTIME);
            let kernel = read_ns(self.id());
            let after = read_ns(ClockId::CLOCK_REALTIME);
            let spread = after.saturating_sub(before);
            let unix = before / 2 + after / 2;
            let offset = i128::from(kernel) - i128::from(unix);
            if best.is_none_or(|(s, _)| spread < s) {
                best = Some((spread, offset));
            }
        }
        let offset = best.map_or(0, |(_, offset)| offset);
        match self {
            Self::Tai => (offset + 500_000_000).div_euclid(1_000_000_000) * 1_000_000_000,
            Self::Monotonic => offset,
        }
    }

    /// Unix ns → this clock.
    pub fn from_unix(self, unix_ns: u64) -> u64 {
        clamp(i128::from(unix_ns) + self.offset_ns())
    }

    /// This clock → Unix ns; 0 stays 0 (never).
    pub fn to_unix(self, kernel_ns: u64) -> u64 {
        if kernel_ns == 0 {
            return 0;
        }
        clamp(i128::from(kernel_ns) - self.offset_ns())
    }
}

/// Now in Unix ns.
pub fn unix_now_ns() -> u64 {
    read_ns(ClockId::CLOCK_REALTIME)
}

fn read_ns(id: ClockId) -> u64 {
    // clock_gettime cannot fail for these clock ids on Linux; 0 would only disarm windows.
    clock_gettime(id).map_or(0, |ts| {
        (ts.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec() as u64)
    })
}

fn clamp(value: i128) -> u64 {
    u64::try_from(value.max(0)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_unix_time() {
        for clock in [KernelClock::Tai, KernelClock::Monotonic] {
            let unix = unix_now_ns() + 5_000_000_000;
            let back = clock.to_unix(clock.from_unix(unix));
            assert!(
                back.abs_diff(unix) < 1_000_000,
                "{clock:?}: {unix} -> {back}"
            );
        }
    }

    #[test]
    fn tai_offset_is_whole_seconds() {
        assert_eq!(KernelClock::Tai.offset_ns() % 1_000_000_000, 0);
    }
}
