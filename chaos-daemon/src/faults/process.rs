//! Process faults: kill (once or in rounds), pause (freeze until the end), restart (kill the
//! main process and watch its supervisor start a new one).
use std::{
    collections::BTreeSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use chaos_proto::v1::{process_fault, Counters, Fault, MainProcess, Outcome, ProcessFault};
use nix::sys::signal::Signal;
use tracing::{info, warn};

use super::{actor::Actor, signal, window::Window};
use crate::{
    cgroupfs::{
        freeze::Freezer,
        kill,
        procs::{self, MainSelector},
    },
    clock,
    error::Error,
    journal::Undo,
    workers,
};

/// Shortest repeat period accepted for kill rounds.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The thaw guard acts this long after the end: a live daemon has thawed by then and stops
/// it, so the two never contend for the edge; a dead daemon's pause ends this late.
const GUARD_DELAY: Duration = Duration::from_millis(1);
/// How often a restart is looked for.
const RESTART_POLL: Duration = Duration::from_millis(1);

/// A validated process fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Kill {
        signal: Signal,
        /// Only the main process, chosen this way.
        main: Option<MainSelector>,
        interval: Option<Duration>,
    },
    Pause,
    Restart {
        signal: Signal,
        main: MainSelector,
    },
}

impl Plan {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kill { .. } => "process.kill",
            Self::Pause => "process.pause",
            Self::Restart { .. } => "process.restart",
        }
    }
}

/// Validates a `ProcessFault`; errors name the field.
pub fn plan(spec: &ProcessFault) -> Result<Plan, Error> {
    match &spec.action {
        None => Err(Error::invalid(
            "process.action",
            "set one of kill, pause or restart",
        )),
        Some(process_fault::Action::Kill(kill)) => {
            let interval = match &kill.interval {
                None => None,
                Some(d) => {
                    let interval = Duration::try_from(*d).map_err(|_| {
                        Error::invalid("process.kill.interval", "must not be negative")
                    })?;
                    if interval.is_zero() {
                        None
                    } else if interval < MIN_INTERVAL {
                        return Err(Error::invalid(
                            "process.kill.interval",
                            format!("must be at least {MIN_INTERVAL:?}, got {interval:?}"),
                        ));
                    } else {
                        Some(interval)
                    }
                }
            };
            let main = match (&kill.main, kill.main_only) {
                (Some(main), true) => Some(selector(main)),
                (None, true) => Some(MainSelector::default()),
                (Some(_), false) => {
                    return Err(Error::invalid(
                        "process.kill.main",
                        "only applies with main_only: every process is signalled otherwise",
                    ))
                }
                (None, false) => None,
            };
            Ok(Plan::Kill {
                signal: signal::parse("process.kill.signal", &kill.signal)?,
                main,
                interval,
            })
        }
        Some(process_fault::Action::Pause(_)) => Ok(Plan::Pause),
        Some(process_fault::Action::Restart(restart)) => Ok(Plan::Restart {
            signal: signal::parse("process.restart.signal", &restart.signal)?,
            main: restart.main.as_ref().map(selector).unwrap_or_default(),
        }),
    }
}

fn selector(main: &MainProcess) -> MainSelector {
    MainSelector {
        pid: (main.pid != 0).then_some(main.pid),
        command: (!main.command.trim().is_empty()).then(|| main.command.trim().to_string()),
    }
}

/// A process fault on its target's cgroups.
pub struct Run {
    plan: Plan,
    dirs: Vec<PathBuf>,
    window: Window,
    freezers: Vec<Freezer>,
    counters: Counters,
    outcome: Outcome,
    /// Processes present when the main process was killed, to recognise a new one.
    restart: Option<(Instant, BTreeSet<u32>)>,
    next_round: Option<u64>,
    frozen: bool,
    /// When the freeze and the thaw were written (Unix ns), reported as first and last affected.
    froze_at: u64,
    thawed_at: u64,
    /// Thaws at the end even if this daemon is killed before.
    guard: Option<workers::Guard>,
}

impl Run {
    /// Resolves what the fault will act on (the freezer files for a pause), so that the
    /// journal records them before anything is frozen.
    pub fn new(plan: Plan, dirs: Vec<PathBuf>, window: Window) -> Result<Self, Error> {
        let freezers = match plan {
            Plan::Pause => dirs
                .iter()
                .map(|dir| Freezer::for_cgroup(dir))
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        Ok(Self::with_freezers(plan, dirs, window, freezers))
    }

    /// A fault recorded in the journal, acting on the freezers recorded there: a restarted
    /// daemon thaws exactly what was frozen, even if the target changed since.
    pub fn with_freezers(
        plan: Plan,
        dirs: Vec<PathBuf>,
        window: Window,
        freezers: Vec<Freezer>,
    ) -> Self {
        Self {
            plan,
            dirs,
            window,
            freezers,
            counters: Counters::default(),
            outcome: Outcome::default(),
            restart: None,
            next_round: None,
            frozen: false,
            froze_at: 0,
            thawed_at: 0,
            guard: None,
        }
    }

    fn pids(&self) -> Result<BTreeSet<u32>, Error> {
        let mut all = BTreeSet::new();
        for dir in &self.dirs {
            all.extend(procs::pids(dir)?);
        }
        Ok(all)
    }

    fn main_pid(&self, selector: &MainSelector) -> Result<u32, Error> {
        let dirs: Vec<&std::path::Path> = self.dirs.iter().map(PathBuf::as_path).collect();
        Ok(procs::main_process(&dirs, selector)?)
    }

    fn kill_round(&mut self) -> Result<(), Error> {
        let Plan::Kill { signal, main, .. } = &self.plan else {
            return Ok(());
        };
        let (signal, main) = (*signal, main.clone());
        let mut round = kill::Killed::default();
        let mut chosen = 0;
        match main {
            Some(selector) => {
                let pid = self.main_pid(&selector)?;
                self.outcome.main_pid = pid;
                round.found = self.pids()?.len() as u64;
                chosen = 1;
                if kill::signal_one(pid, signal)? {
                    round.signalled = 1;
                }
            }
            None => {
                for dir in &self.dirs {
                    let killed = kill::kill_tree(dir, signal)?;
                    round.found += killed.found;
                    round.signalled += killed.signalled;
                }
                chosen += round.found;
            }
        }
        self.counters.seen += round.found;
        self.counters.matched += chosen;
        self.counters.affected += round.signalled;
        self.outcome.signalled += round.signalled;
        self.outcome.rounds += 1;
        info!(signal = %signal, found = round.found, signalled = round.signalled,
            round = self.outcome.rounds, "kill round");
        Ok(())
    }
}

impl Actor for Run {
    fn kind(&self) -> &'static str {
        self.plan.kind()
    }

    fn undo(&self) -> Undo {
        match self.plan {
            Plan::Pause => Undo::Freeze {
                freezers: self.freezers.clone(),
            },
            _ => Undo::Nothing,
        }
    }

    fn open(&mut self) -> Result<(), Error> {
        match self.plan.clone() {
            Plan::Kill { interval, .. } => {
                self.kill_round()?;
                self.next_round = interval.map(|i| self.window.start_unix_ns + i.as_nanos() as u64);
            }
            Plan::Pause => {
                let requested = clock::unix_now_ns();
                for (i, freezer) in self.freezers.iter().enumerate() {
                    if let Err(err) = freezer.freeze() {
                        for done in &self.freezers[..i] {
                            let _ = done.thaw();
                        }
                        return Err(err.into());
                    }
                }
                self.froze_at = requested;
                let guard = workers::Guard::start(&workers::Spec {
                    parent: std::process::id(),
                    until_unix_ns: self.window.end_unix_ns + GUARD_DELAY.as_nanos() as u64,
                    join: Vec::new(),
                    cpu: None,
                    load: workers::Load::Thaw {
                        freezers: self.freezers.clone(),
                    },
                });
                match guard {
                    Ok(guard) => self.guard = Some(guard),
                    Err(err) => {
                        for freezer in &self.freezers {
                            let _ = freezer.thaw();
                        }
                        return Err(err.into());
                    }
                }
                // Counted after the freeze, which is the edge that must be on time.
                self.counters.seen = self.pids()?.len() as u64;
                self.counters.matched = self.counters.seen;
                info!(processes = self.counters.seen, "frozen");
            }
            Plan::Restart { signal, main } => {
                let pid = self.main_pid(&main)?;
                let before = self.pids()?;
                self.counters.seen = before.len() as u64;
                self.counters.matched = 1;
                self.outcome.main_pid = pid;
                let killed_at = Instant::now();
                if kill::signal_one(pid, signal)? {
                    self.counters.affected = 1;
                    self.outcome.signalled = 1;
                }
                self.outcome.rounds = 1;
                info!(pid, signal = %signal, "main process signalled; watching for its restart");
                self.restart = Some((killed_at, before));
            }
        }
        Ok(())
    }

    /// A kill fault takes the cgroup into its next rounds; a pause or a restart is bound to
    /// the processes it froze or watches.
    fn add_cgroup(&mut self, dir: &std::path::Path) -> Result<(), Error> {
        if !matches!(self.plan, Plan::Kill { .. }) {
            return Err(Error::FailedPrecondition(format!(
                "{} acts on the processes present at its start; {} is not taken in",
                self.plan.kind(),
                dir.display()
            )));
        }
        if !self.dirs.iter().any(|d| d == dir) {
            self.dirs.push(dir.to_path_buf());
        }
        Ok(())
    }

    fn next_tick(&self) -> Option<u64> {
        match &self.plan {
            Plan::Kill { .. } => self.next_round,
            Plan::Restart { .. } if self.restart.is_some() && self.outcome.new_main_pid == 0 => {
                Some(clock::unix_now_ns() + RESTART_POLL.as_nanos() as u64)
            }
            _ => None,
        }
    }

    fn tick(&mut self) -> Result<(), Error> {
        match self.plan.clone() {
            Plan::Kill { interval, .. } => {
                self.kill_round()?;
                if let (Some(interval), Some(next)) = (interval, self.next_round) {
                    self.next_round = Some(next + interval.as_nanos() as u64);
                }
            }
            Plan::Restart { main, .. } => {
                let Some((killed_at, before)) = &self.restart else {
                    return Ok(());
                };
                let fresh = self
                    .pids()?
                    .into_iter()
                    .filter(|pid| !before.contains(pid))
                    .filter(|pid| {
                        main.command
                            .as_ref()
                            .is_none_or(|c| procs::comm(*pid).as_deref() == Some(c.as_str()))
                    });
                if let Some((_, pid)) = fresh
                    .filter_map(|pid| Some((procs::start_time(pid)?, pid)))
                    .min()
                {
                    let after = killed_at.elapsed();
                    self.outcome.new_main_pid = pid;
                    self.outcome.restart_after_ns = after.as_nanos() as u64;
                    info!(pid, after = ?after, "new main process");
                }
            }
            Plan::Pause => {}
        }
        Ok(())
    }

    fn close(&mut self) {
        if !self.freezers.is_empty() && self.froze_at != 0 {
            self.thawed_at = clock::unix_now_ns();
        }
        for freezer in &self.freezers {
            match freezer.thaw() {
                Ok(()) => info!(cgroup = %freezer.dir().display(), "thawed"),
                Err(err) => warn!(error = %err, "thawing"),
            }
        }
        self.freezers.clear();
        // After the thaw: killed before it, the guard could leave nothing to thaw the cgroup.
        self.guard = None;
    }

    fn report(&mut self, fault: &mut Fault) {
        if matches!(self.plan, Plan::Pause) && !self.freezers.is_empty() {
            let frozen = self.freezers.iter().all(|f| f.frozen().unwrap_or(false));
            if frozen && !self.frozen {
                self.counters.affected = self.pids().map_or(0, |p| p.len() as u64);
            }
            self.frozen = frozen;
        }
        if self.froze_at != 0 {
            fault.first_affected_unix_ns = self.froze_at;
            fault.last_affected_unix_ns = self.thawed_at;
        }
        self.outcome.frozen = self.frozen && !self.freezers.is_empty();
        fault.counters = Some(self.counters);
        fault.outcome = Some(self.outcome.clone());
    }

    fn reopen_after_restart(&self) -> bool {
        matches!(
            self.plan,
            Plan::Pause
                | Plan::Kill {
                    interval: Some(_),
                    ..
                }
        )
    }
}

#[cfg(test)]
mod tests {
    use chaos_proto::v1::{Kill, Restart};

    use super::*;

    fn field(result: Result<Plan, Error>) -> String {
        match result {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn kill(kill: Kill) -> ProcessFault {
        ProcessFault {
            action: Some(process_fault::Action::Kill(kill)),
        }
    }

    #[test]
    fn defaults_to_sigkill_once_for_every_process() {
        let plan = plan(&kill(Kill::default())).expect("valid");
        assert_eq!(
            plan,
            Plan::Kill {
                signal: Signal::SIGKILL,
                main: None,
                interval: None
            }
        );
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(field(plan(&ProcessFault::default())), "process.action");
        let bad_signal = kill(Kill {
            signal: "SIGWHAT".into(),
            ..Kill::default()
        });
        assert_eq!(field(plan(&bad_signal)), "process.kill.signal");
        let fast = kill(Kill {
            interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1_000,
            }),
            ..Kill::default()
        });
        assert_eq!(field(plan(&fast)), "process.kill.interval");
        let main_without_flag = kill(Kill {
            main: Some(MainProcess::default()),
            ..Kill::default()
        });
        assert_eq!(field(plan(&main_without_flag)), "process.kill.main");
        let restart = ProcessFault {
            action: Some(process_fault::Action::Restart(Restart {
                signal: "0x9".into(),
                main: None,
            })),
        };
        assert_eq!(field(plan(&restart)), "process.restart.signal");
    }
}
