//! The worker process: joins the target's cgroups, says "ready", loads the CPU or memory
//! until its deadline, and exits early if the daemon that started it is gone.
use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use super::spec::{Load, Spec, WORKER_ARG};

/// How often a worker checks that its parent is still the daemon.
const PARENT_CHECK: Duration = Duration::from_millis(50);
const PAGE: usize = 4096;

/// Runs the worker and returns its exit code when `args` ask for one (`chaos-daemon
/// __worker <json>`); `None` for the daemon's own command lines.
pub fn main_if_worker(args: &[String]) -> Option<i32> {
    if args.get(1).map(String::as_str) != Some(WORKER_ARG) {
        return None;
    }
    let spec: Spec = match args.get(2).map(|json| serde_json::from_str(json)) {
        Some(Ok(spec)) => spec,
        Some(Err(err)) => return Some(refuse(&format!("bad worker spec: {err}"))),
        None => return Some(refuse("missing worker spec")),
    };
    Some(run(&spec))
}

fn refuse(reason: &str) -> i32 {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{reason}");
    let _ = out.flush();
    2
}

fn run(spec: &Spec) -> i32 {
    // PR_SET_PDEATHSIG was set before exec; a parent that died before that is seen here.
    if nix::unistd::getppid().as_raw() as u32 != spec.parent {
        return 0;
    }
    for procs in &spec.join {
        if let Err(err) = std::fs::write(procs, "0") {
            return refuse(&format!("joining {}: {err}", procs.display()));
        }
    }
    if let Some(cpu) = spec.cpu {
        let mut set = nix::sched::CpuSet::new();
        let pinned = set
            .set(cpu as usize)
            .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
        if let Err(errno) = pinned {
            return refuse(&format!("pinning to CPU {cpu}: {errno}"));
        }
    }
    let mut out = std::io::stdout();
    if writeln!(out, "ready").and_then(|()| out.flush()).is_err() {
        return 1;
    }
    let alive = || {
        nix::unistd::getppid().as_raw() as u32 == spec.parent
            && crate::clock::unix_now_ns() < spec.until_unix_ns
    };
    let nap = || {
        // Until the next parent check, or the deadline if that comes first.
        let left = spec
            .until_unix_ns
            .saturating_sub(crate::clock::unix_now_ns());
        std::thread::sleep(PARENT_CHECK.min(Duration::from_nanos(left)));
    };
    match &spec.load {
        Load::Cpu { busy_ns, period_ns } => burn(*busy_ns, *period_ns, &alive),
        Load::Memory {
            bytes,
            grow_bytes_per_second,
        } => return hold(*bytes, *grow_bytes_per_second, &alive, &nap),
        Load::Thaw { freezers } => return thaw_at(spec.until_unix_ns, freezers),
    }
    0
}

/// Sleeps until the deadline whatever happens to the daemon, then thaws.
fn thaw_at(until_unix_ns: u64, freezers: &[crate::cgroupfs::freeze::Freezer]) -> i32 {
    crate::clock::at_unix(until_unix_ns, || {
        let mut code = 0;
        for freezer in freezers {
            if let Err(err) = freezer.thaw() {
                eprintln!("thaw guard: {err}");
                code = 1;
            }
        }
        code
    })
}

/// Busy for `busy_ns` of each `period_ns`, asleep for the rest, each period anchored to the
/// first so that sleep overshoot does not accumulate.
fn burn(busy_ns: u64, period_ns: u64, alive: &dyn Fn() -> bool) {
    let start = Instant::now();
    let period = Duration::from_nanos(period_ns.max(1));
    let busy = Duration::from_nanos(busy_ns.min(period_ns));
    let mut cycle = 0u32;
    let mut checked = Instant::now();
    loop {
        let cycle_start = start + period * cycle;
        let busy_end = cycle_start + busy;
        let mut now = Instant::now();
        while now < busy_end {
            std::hint::spin_loop();
            now = Instant::now();
            if now.duration_since(checked) >= PARENT_CHECK {
                if !alive() {
                    return;
                }
                checked = now;
            }
        }
        cycle += 1;
        let next = start + period * cycle;
        if let Some(rest) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(rest);
        }
        if !alive() {
            return;
        }
        checked = Instant::now();
    }
}

/// Maps `bytes` of anonymous memory, touches it page by page (at the growth rate), then
/// holds it until the deadline. Touching is what charges it to the cgroup.
fn hold(bytes: u64, grow_bytes_per_second: u64, alive: &dyn Fn() -> bool, nap: &dyn Fn()) -> i32 {
    let Some(len) = usize::try_from(bytes)
        .ok()
        .and_then(std::num::NonZeroUsize::new)
    else {
        return 0;
    };
    // SAFETY: a fresh private anonymous mapping, written only through `base` below.
    let base = unsafe {
        nix::sys::mman::mmap_anonymous(
            None,
            len,
            nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
            nix::sys::mman::MapFlags::MAP_PRIVATE | nix::sys::mman::MapFlags::MAP_NORESERVE,
        )
    };
    let Ok(base) = base else {
        eprintln!("stress worker: mmap of {bytes} bytes failed");
        return 3;
    };
    let base = base.as_ptr().cast::<u8>();
    let start = Instant::now();
    let mut touched = 0usize;
    let mut checked = Instant::now();
    while touched < len.get() {
        let allowed = if grow_bytes_per_second == 0 {
            len.get()
        } else {
            let by_rate = start.elapsed().as_secs_f64() * grow_bytes_per_second as f64;
            (by_rate as usize).min(len.get())
        };
        while touched < allowed {
            // SAFETY: `touched < len`, inside the mapping.
            unsafe { base.add(touched).write_volatile(1) };
            touched += PAGE;
            if touched.is_multiple_of(256 * PAGE) && checked.elapsed() >= PARENT_CHECK {
                if !alive() {
                    return 0;
                }
                checked = Instant::now();
            }
        }
        if touched < len.get() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !alive() {
            return 0;
        }
    }
    while alive() {
        nap();
    }
    0
}
