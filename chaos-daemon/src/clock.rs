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

/// Blocks the calling thread until the wall clock reads `unix_ns`, with an absolute
/// `clock_nanosleep`, which wakes within the timer slack (50 µs by default) rather than the
/// runtime timer's millisecond: for the edges the daemon itself carries out (freeze, thaw).
pub fn sleep_until_unix(unix_ns: u64) {
    let request = libc::timespec {
        tv_sec: (unix_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (unix_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `request` is a valid timespec; no remainder is asked for with TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_REALTIME,
                libc::TIMER_ABSTIME,
                &request,
                std::ptr::null_mut(),
            )
        };
        // EINTR: a signal; sleep again to the same absolute time.
        if rc != libc::EINTR {
            return;
        }
    }
}

/// Runs `edge` at `unix_ns` with the calling thread briefly under `SCHED_FIFO`, so that the
/// wake-up is not queued behind the busy processes a fault is about (the target's own, or
/// stress workers). Falls back to the normal policy where the kernel refuses (no
/// CAP_SYS_NICE, or an RT budget of 0 in the daemon's cgroup).
/// <https://man7.org/linux/man-pages/man7/sched.7.html>
pub fn at_unix<T>(unix_ns: u64, edge: impl FnOnce() -> T) -> T {
    // SAFETY: plain syscalls on the calling thread with valid, initialised arguments.
    unsafe {
        let thread = libc::pthread_self();
        let mut policy = 0;
        let mut old = std::mem::zeroed::<libc::sched_param>();
        let saved = libc::pthread_getschedparam(thread, &mut policy, &mut old) == 0;
        let rt = libc::sched_param { sched_priority: 1 };
        let raised = saved && libc::pthread_setschedparam(thread, libc::SCHED_FIFO, &rt) == 0;
        sleep_until_unix(unix_ns);
        let result = edge();
        if raised {
            libc::pthread_setschedparam(thread, policy, &old);
        }
        result
    }
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
