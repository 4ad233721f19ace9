//! Stress faults: CPU and memory load charged to the target's cgroup by worker processes
//! placed in it (see [`crate::workers`]).
use std::{path::PathBuf, time::Duration};

use chaos_proto::v1::{stress_fault, Counters, Fault, Outcome, StressFault};
use tracing::info;

use super::{actor::Actor, window::Window};
use crate::{
    cgroupfs::usage::{self, Memory},
    error::Error,
    journal::Undo,
    workers::{pool, Load, Pool, Spec},
};

/// Default duty-cycle period of a CPU worker.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(100);
/// Most CPU workers one fault may start.
pub const MAX_WORKERS: u32 = 1024;

/// A validated stress fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Cpu {
        /// 0 = one per CPU allowed to the target.
        workers: u32,
        load_percent: f64,
        period: Duration,
        cpus: Vec<u32>,
    },
    Memory {
        bytes: u64,
        percent_of_limit: f64,
        grow_bytes_per_second: u64,
        allow_oom: bool,
    },
}

impl Plan {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cpu { .. } => "stress.cpu",
            Self::Memory { .. } => "stress.memory",
        }
    }
}

/// Validates a `StressFault` on its own; limits of the target are checked by [`Run::new`].
pub fn plan(spec: &StressFault) -> Result<Plan, Error> {
    match &spec.load {
        None => Err(Error::invalid("stress.load", "set cpu or memory")),
        Some(stress_fault::Load::Cpu(cpu)) => {
            if !(cpu.load_percent > 0.0 && cpu.load_percent <= 100.0) {
                return Err(Error::invalid(
                    "stress.cpu.load_percent",
                    format!("must be in (0, 100], got {}", cpu.load_percent),
                ));
            }
            if cpu.workers > MAX_WORKERS {
                return Err(Error::invalid(
                    "stress.cpu.workers",
                    format!("at most {MAX_WORKERS}, got {}", cpu.workers),
                ));
            }
            let period = match &cpu.period {
                None => DEFAULT_PERIOD,
                Some(d) => Duration::try_from(*d)
                    .map_err(|_| Error::invalid("stress.cpu.period", "must not be negative"))?,
            };
            if period < Duration::from_millis(1) || period > Duration::from_secs(10) {
                return Err(Error::invalid(
                    "stress.cpu.period",
                    format!("must be between 1ms and 10s, got {period:?}"),
                ));
            }
            Ok(Plan::Cpu {
                workers: cpu.workers,
                load_percent: cpu.load_percent,
                period,
                cpus: cpu.cpus.clone(),
            })
        }
        Some(stress_fault::Load::Memory(memory)) => {
            let (bytes, percent) = (memory.bytes, memory.percent_of_limit);
            if bytes == 0 && percent == 0.0 {
                return Err(Error::invalid(
                    "stress.memory.bytes",
                    "set bytes or percent_of_limit",
                ));
            }
            if bytes != 0 && percent != 0.0 {
                return Err(Error::invalid(
                    "stress.memory.percent_of_limit",
                    "set bytes or percent_of_limit, not both",
                ));
            }
            if bytes == 0 && !(percent > 0.0 && percent <= 100.0) {
                return Err(Error::invalid(
                    "stress.memory.percent_of_limit",
                    format!("must be in (0, 100], got {percent}"),
                ));
            }
            Ok(Plan::Memory {
                bytes: memory.bytes,
                percent_of_limit: memory.percent_of_limit,
                grow_bytes_per_second: memory.grow_bytes_per_second,
                allow_oom: memory.allow_oom,
            })
        }
    }
}

/// A stress fault on one target cgroup.
pub struct Run {
    plan: Plan,
    target: PathBuf,
    cgroup: PathBuf,
    specs: Vec<Spec>,
    memory: Memory,
    oom_base: Option<u64>,
    pool: Option<Pool>,
    outcome: Outcome,
    counters: Counters,
}

impl Run {
    /// Checks the plan against the target's CPUs and memory limit and prepares the workers.
    pub fn new(plan: Plan, target: PathBuf, fault_id: &str, window: Window) -> Result<Self, Error> {
        let memory = Memory::of(&target)?;
        let until_unix_ns = window.end_unix_ns;
        let spec = |cpu, load| Spec {
            parent: std::process::id(),
            until_unix_ns,
            join: Vec::new(),
            cpu,
            load,
        };
        let specs = match &plan {
            Plan::Cpu {
                workers,
                load_percent,
                period,
                cpus,
            } => {
                let allowed = usage::cpus_allowed(&target)?;
                for (i, cpu) in cpus.iter().enumerate() {
                    if !allowed.contains(cpu) {
                        return Err(Error::invalid(
                            format!("stress.cpu.cpus[{i}]"),
                            format!(
                                "CPU {cpu} is not allowed to the target (allowed: {allowed:?})"
                            ),
                        ));
                    }
                }
                let count = if *workers == 0 {
                    allowed.len().max(1) as u32
                } else {
                    *workers
                };
                let period_ns = period.as_nanos() as u64;
                let busy_ns = (period_ns as f64 * load_percent / 100.0).round() as u64;
                (0..count as usize)
                    .map(|i| {
                        let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
                        spec(cpu, Load::Cpu { busy_ns, period_ns })
                    })
                    .collect()
            }
            Plan::Memory {
                bytes,
                percent_of_limit,
                grow_bytes_per_second,
                allow_oom,
            } => {
                let limit = memory.limit()?;
                let bytes = if *bytes != 0 {
                    *bytes
                } else {
                    let limit = limit.ok_or_else(|| {
                        Error::invalid(
                            "stress.memory.percent_of_limit",
                            format!("the target has no memory limit ({})", memory.describe()),
                        )
                    })?;
                    (limit as f64 * percent_of_limit / 100.0) as u64
                };
                if let Some(limit) = limit {
                    if bytes >= limit && !allow_oom {
                        return Err(Error::invalid(
                            "stress.memory.bytes",
                            format!(
                                "{bytes} bytes reach the target's memory limit of {limit} bytes \
                                 ({}); set allow_oom to let the OOM killer choose a process",
                                memory.describe()
                            ),
                        ));
                    }
                }
                vec![spec(
                    None,
                    Load::Memory {
                        bytes,
                        grow_bytes_per_second: *grow_bytes_per_second,
                    },
                )]
            }
        };
        Ok(Self {
            plan,
            cgroup: pool::cgroup_for(&target, fault_id),
            target,
            specs,
            memory,
            oom_base: None,
            pool: None,
            outcome: Outcome::default(),
            counters: Counters::default(),
        })
    }
}

impl Actor for Run {
    fn kind(&self) -> &'static str {
        self.plan.kind()
    }

    fn undo(&self) -> Undo {
        Undo::Workers {
            cgroup: self.cgroup.clone(),
        }
    }

    fn open(&mut self) -> Result<(), Error> {
        self.oom_base = self.memory.oom_kills().ok().flatten();
        let pool = Pool::start(&self.target, self.cgroup.clone(), self.specs.clone())?;
        let workers = self.specs.len() as u64;
        self.counters = Counters {
            seen: workers,
            matched: workers,
            affected: workers,
            ..Counters::default()
        };
        info!(workers, cgroup = %pool.cgroup().display(), "stress started");
        self.pool = Some(pool);
        Ok(())
    }

    fn close(&mut self) {
        self.observe();
        if let Some(mut pool) = self.pool.take() {
            pool.stop();
            self.outcome.workers = 0;
            info!("stress workers stopped");
        }
    }

    fn report(&mut self, fault: &mut Fault) {
        self.observe();
        fault.counters = Some(self.counters);
        fault.outcome = Some(self.outcome.clone());
    }

    fn reopen_after_restart(&self) -> bool {
        true
    }
}

impl Run {
    /// Copies what the running workers hold, and the OOM kills since the start, into the
    /// outcome.
    fn observe(&mut self) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        let status = pool.status();
        self.outcome.workers = status.alive;
        self.outcome.memory_bytes = status.resident_bytes;
        if let (Some(base), Ok(Some(now))) = (self.oom_base, self.memory.oom_kills()) {
            self.outcome.oom_kills = now.saturating_sub(base);
        }
    }
}
