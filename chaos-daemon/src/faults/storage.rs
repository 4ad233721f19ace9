//! Storage faults: which action a `StorageFault` asks for, and the actor that carries it out.
use std::path::PathBuf;

use chaos_proto::v1::{storage_fault, StorageFault};

use super::{actor::Actor, fill, iolimit};
use crate::{error::Error, journal::Undo};

/// A validated storage fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    IoLimit(iolimit::Plan),
    Fill(fill::Plan),
}

/// Validates a `StorageFault`; errors name the field.
pub fn plan(spec: &StorageFault) -> Result<Plan, Error> {
    match &spec.action {
        None => Err(Error::invalid(
            "storage.action",
            "set io_limit or disk_fill",
        )),
        Some(storage_fault::Action::IoLimit(limit)) => Ok(Plan::IoLimit(iolimit::plan(limit)?)),
        Some(storage_fault::Action::DiskFill(f)) => Ok(Plan::Fill(fill::plan(f)?)),
    }
}

/// The actor for a new fault on the cgroups `dirs`.
pub fn actor(plan: Plan, dirs: Vec<PathBuf>, fault_id: &str) -> Result<Box<dyn Actor>, Error> {
    Ok(match plan {
        Plan::IoLimit(limit) => Box::new(iolimit::Run::new(&limit, &dirs)?),
        Plan::Fill(f) => Box::new(fill::Run::new(f, dirs, fault_id)?),
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
        _ => Err(Error::Internal(
            "the storage request does not match its undo record".into(),
        )),
    }
}
