//! Tells whether this process runs as root, and fails clearly when a task needs it.

use std::fs;

use anyhow::{bail, Context as _, Result};

/// The effective user id, read from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Result<u32> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .context("no effective uid in /proc/self/status")
}

/// Whether the effective user is root.
pub fn is_root() -> Result<bool> {
    Ok(effective_uid()? == 0)
}

/// Fails with a message naming `what` unless the effective user is root.
pub fn require_root(what: &str) -> Result<()> {
    if !is_root()? {
        bail!(
            "{what} needs root: run it as root, \
             or with `sudo -E env PATH=\"$PATH\" cargo xtask ...`"
        );
    }
    Ok(())
}
