//! Faults the daemon carries out itself at the window's edges (process and stress), as
//! opposed to network faults, whose window the kernel enforces.
use chaos_proto::v1::Fault;

use crate::{error::Error, journal::Undo};

/// What the engine drives for a process or stress fault.
pub trait Actor: Send {
    /// `process.kill`, `stress.cpu`, …
    fn kind(&self) -> &'static str;
    /// The journal's undo record, written before [`Actor::open`] changes anything.
    fn undo(&self) -> Undo;
    /// Acts at the window's start (kill, freeze, start workers). On error nothing stays.
    fn open(&mut self) -> Result<(), Error>;
    /// When (Unix ns) [`Actor::tick`] is next due, if ever.
    fn next_tick(&self) -> Option<u64> {
        None
    }
    /// Repeats or watches inside the window (kill rounds, watching for a restarted process).
    fn tick(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// Ends the fault's effect (thaw, stop workers); safe to call twice.
    fn close(&mut self);
    /// Copies counters and outcome into the API view.
    fn report(&mut self, fault: &mut Fault);
    /// Takes in one more cgroup while the fault is armed (a pod that replaced a targeted
    /// one). Actors bound to what they resolved at inject refuse, saying so.
    fn add_cgroup(&mut self, dir: &std::path::Path) -> Result<(), Error> {
        Err(Error::FailedPrecondition(format!(
            "{} acts on the cgroups it was armed with; {} is not taken in",
            self.kind(),
            dir.display()
        )))
    }
    /// Whether a restarted daemon should act again for the rest of an open window (true for
    /// what lasts — a freeze, workers, kill rounds; false for what happens once).
    fn reopen_after_restart(&self) -> bool;
}
