//! Leases: a fault that asked for one ends early unless its client keeps holding it (by
//! `Renew`, or by an open `Watch` of the fault), so it never outlives the orchestrator that
//! started it by more than one lease period.
use std::{sync::Weak, time::Duration};

use chaos_proto::v1::{Fault, FaultState};
use tokio::sync::Mutex;
use tracing::info;

use super::Engine;
use crate::{clock, error::Error};

/// Shortest lease accepted: a renewal must be able to cross a busy network in time.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// A fault's lease.
#[derive(Clone, Copy, Debug)]
pub(super) struct Lease {
    /// How long a renewal holds it.
    pub period_ns: u64,
    /// When it runs out, Unix ns, unless renewed or held by a watcher before.
    pub expires_unix_ns: u64,
    /// Open `Watch` streams of this fault: while any is open, the lease is held.
    pub watchers: u32,
}

impl Lease {
    pub fn new(period: Duration, now: u64) -> Self {
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        Self {
            period_ns,
            expires_unix_ns: now.saturating_add(period_ns),
            watchers: 0,
        }
    }

    /// Pushes the end one period past `now`.
    fn hold(&mut self, now: u64) {
        self.expires_unix_ns = now.saturating_add(self.period_ns);
    }
}

/// The lease a request asks for: `None` without one; INVALID_ARGUMENT when too short.
pub fn requested(lease: Option<&prost_types::Duration>) -> Result<Option<Duration>, Error> {
    let Some(lease) = lease else {
        return Ok(None);
    };
    let period = Duration::try_from(*lease)
        .map_err(|_| Error::invalid("lease", "must be a positive duration"))?;
    if period < MIN_LEASE {
        return Err(Error::invalid(
            "lease",
            format!(
                "must be at least {}, got {}",
                humantime::format_duration(MIN_LEASE),
                humantime::format_duration(period)
            ),
        ));
    }
    Ok(Some(period))
}

/// What a look at a lease found.
enum Check {
    /// Not expired: look again at this Unix ns.
    Until(u64),
    /// Ran out: the fault was ended.
    Expired,
    /// The fault ended by other means.
    Gone,
}

impl Engine {
    /// Renew: one more period from now. FAILED_PRECONDITION for a fault without a lease
    /// or one already ended.
    pub fn renew(&mut self, id: &str) -> Result<Fault, Error> {
        let entry = self
            .faults
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("fault {id} does not exist")))?;
        if entry.armed.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "fault {id} has ended; there is nothing to renew"
            )));
        }
        let lease = entry.lease.as_mut().ok_or_else(|| {
            Error::FailedPrecondition(format!("fault {id} was injected without a lease"))
        })?;
        lease.hold(clock::unix_now_ns());
        entry.fault.lease_expires_unix_ns = lease.expires_unix_ns;
        self.get(id)
    }

    /// A `Watch` of fault `id` opened (`true`) or closed: while one is open, the lease holds;
    /// when the last one closes, one more period starts.
    pub fn watching(&mut self, id: &str, open: bool) {
        let Some(entry) = self.faults.get_mut(id) else {
            return;
        };
        let Some(lease) = entry.lease.as_mut() else {
            return;
        };
        if open {
            lease.watchers += 1;
        } else {
            lease.watchers = lease.watchers.saturating_sub(1);
        }
        lease.hold(clock::unix_now_ns());
        entry.fault.lease_expires_unix_ns = lease.expires_unix_ns;
    }

    /// Ends the fault if its lease ran out; otherwise says when to look again.
    fn check_lease(&mut self, id: &str) -> Check {
        let now = clock::unix_now_ns();
        let Some(entry) = self.faults.get_mut(id) else {
            return Check::Gone;
        };
        let (Some(lease), Some(_)) = (entry.lease.as_mut(), entry.armed.as_ref()) else {
            return Check::Gone;
        };
        if lease.watchers > 0 {
            lease.hold(now);
        }
        entry.fault.lease_expires_unix_ns = lease.expires_unix_ns;
        if now < lease.expires_unix_ns {
            return Check::Until(lease.expires_unix_ns);
        }
        let period = Duration::from_nanos(lease.period_ns);
        info!(fault.id = %id, "lease not renewed in time; ending the fault");
        self.finish(
            id,
            FaultState::Cancelled,
            &format!(
                "lease expired: not renewed within {}",
                humantime::format_duration(period)
            ),
        );
        Check::Expired
    }
}

/// Ends fault `id` when its lease runs out; returns when the fault ends by any means.
pub(super) async fn run(engine: Weak<Mutex<Engine>>, id: String) {
    loop {
        let Some(shared) = engine.upgrade() else {
            return;
        };
        let check = shared.lock().await.check_lease(&id);
        drop(shared);
        match check {
            Check::Until(at) => {
                let wait = Duration::from_nanos(at.saturating_sub(clock::unix_now_ns()));
                tokio::time::sleep(wait).await;
            }
            Check::Expired | Check::Gone => return,
        }
    }
}
