//! One long-lived thread forks every worker.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process
//! (prctl(2)); forking from a runtime thread that may be retired would kill workers early.
use std::{
    process::{Child, Command},
    sync::{mpsc, Mutex, OnceLock},
};

type Job = (Command, mpsc::Sender<std::io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();

/// Spawns `command` from the spawner thread.
pub fn spawn(command: Command) -> std::io::Result<Child> {
    let sender = SPAWNER.get_or_init(|| {
        let (sender, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("faultline-spawner".into())
            .spawn(move || {
                for (mut command, reply) in jobs {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|err| tracing::error!(error = %err, "starting the spawner thread"));
        Mutex::new(sender)
    });
    let (reply, result) = mpsc::channel();
    let gone = || std::io::Error::other("the worker spawner thread is gone");
    sender
        .lock()
        .map_err(|_| gone())?
        .send((command, reply))
        .map_err(|_| gone())?;
    result.recv().map_err(|_| gone())?
}
