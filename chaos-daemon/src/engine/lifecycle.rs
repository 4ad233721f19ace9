//! The task that carries a fault through its window: open, ticks, end.
use std::{sync::Weak, time::Duration};

use chaos_proto::v1::FaultState;
use tokio::sync::{oneshot, Mutex};

use super::Engine;
use crate::{clock, faults::window::Window};

/// Margin after `end` before a network fault is disarmed, so the kernel has closed the
/// window for certain.
const END_MARGIN: Duration = Duration::from_millis(1);
/// How early before an edge the task takes the engine, to then wait out the rest with a
/// precise absolute sleep rather than the runtime's millisecond timer.
const EDGE_LEAD: Duration = Duration::from_millis(2);

fn instant_at(unix_ns: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_nanos(unix_ns.saturating_sub(clock::unix_now_ns()))
}

/// Waits for the window to open and close, acting at its edges (`edges`: the daemon acts,
/// as for process and stress faults), then disarms; ends early when `stopped` fires.
pub(super) async fn run(
    engine: Weak<Mutex<Engine>>,
    id: String,
    window: Window,
    edges: bool,
    mut stopped: oneshot::Receiver<()>,
) {
    let lead = if edges { EDGE_LEAD } else { Duration::ZERO };
    if clock::unix_now_ns() < window.start_unix_ns {
        let wake = instant_at(window.start_unix_ns).checked_sub(lead);
        let wake = wake.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            _ = &mut stopped => return,
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let mut engine = engine.lock().await;
        if edges {
            tokio::task::block_in_place(|| {
                clock::at_unix(window.start_unix_ns, || engine.opened(&id));
            });
        } else {
            engine.opened(&id);
        }
    }
    let end = window.end_unix_ns;
    loop {
        let next = match engine.upgrade() {
            Some(engine) => engine.lock().await.next_tick(&id).filter(|t| *t < end),
            None => return,
        };
        let Some(next) = next else { break };
        tokio::select! {
            () = tokio::time::sleep_until(instant_at(next)) => {}
            _ = &mut stopped => return,
        }
        match engine.upgrade() {
            Some(engine) => engine.lock().await.tick(&id),
            None => return,
        }
    }
    let wake = if edges {
        instant_at(end).checked_sub(lead)
    } else {
        Some(instant_at(end) + END_MARGIN)
    };
    tokio::select! {
        () = tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)) => {}
        _ = &mut stopped => return,
    }
    if let Some(engine) = engine.upgrade() {
        let mut engine = engine.lock().await;
        if edges {
            tokio::task::block_in_place(|| {
                clock::at_unix(end, || engine.finish(&id, FaultState::Completed, ""));
            });
        } else {
            engine.finish(&id, FaultState::Completed, "");
        }
    }
}
