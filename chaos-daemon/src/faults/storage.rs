//! Storage faults: which action a `StorageFault` asks for, and the actor that carries it out.
use std::path::PathBuf;

use chaos_proto::v1::{storage_fault, StorageFault};

use super::{actor::Actor, errno, fill, iolimit};
use crate::{error::Error, journal::Undo};

/// A validated storage fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Failed calls, armed in the kernel by the engine (not an actor).
    Errno(errno::Plan),
    IoLimit(iolimit::Plan),
    Fill(fill::Plan),
}

/// Validates a `StorageFault`; errors name the field.
pub fn plan(spec: &StorageFault) -> Result<Plan, Error> {
    match &spec.action {
        None => Err(Error::invalid(
            "storage.action",
            "set errno, io_limit or disk_fill",
        )),
        Some(storage_fault::Action::Errno(e)) => Ok(Plan::Errno(errno::plan(e)?)),
        Some(storage_fault::Action::IoLimit(limit)) => Ok(Plan::IoLimit(iolimit::plan(limit)?)),
        Some(storage_fault::Action::DiskFill(f)) => Ok(Plan::Fill(fill::plan(f)?)),
    }
}

/// The actor for a new fault on the cgroups `dirs`.
pub fn actor(plan: Plan, dirs: Vec<PathBuf>, fault_id: &str) -> Result<Box<dyn Actor>, Error> {
    Ok(match plan {
        Plan::IoLimit(limit) => Box::new(iolimit::Run::new(&limit, &dirs)?),
        Plan::Fill(f) => Box::new(fill::Run::new(f, dirs, fault_id)?),
        Plan::Errno(_) => return Err(not_an_actor()),
    })
}

/// The actor for a fault a previous daemon journaled, after undoing what it left where that
/// cannot be adopted (a fill file is made again).
pub fn adopt(
    plan: Plan,
    dirs: Vec<PathBuf>,
    fault_id: &str,
    undo: &Undo,
) -> Result<Box<dyn Actor>, Error> {
    match (plan, undo) {
        (Plan::IoLimit(limit), Undo::Writes { restore }) => Ok(Box::new(
            iolimit::Run::with_restore(&limit, &dirs, restore.clone())?,
        )),
        (Plan::Fill(f), Undo::FillFile { file }) => {
            fill::remove_orphan(&dirs, file);
            Ok(Box::new(fill::Run::new(f, dirs, fault_id)?))
        }
        (Plan::Errno(_), _) => Err(not_an_actor()),
        _ => Err(Error::Internal(
            "the storage request does not match its undo record".into(),
        )),
    }
}

fn not_an_actor() -> Error {
    Error::Internal("a storage errno fault is armed in the kernel, not by an actor".into())
}
