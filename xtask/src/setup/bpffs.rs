//! Mounts the BPF filesystem at /sys/fs/bpf when it is not mounted there yet.

use std::fs;
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use super::report;
use crate::{cmd, privilege};

const MOUNT_POINT: &str = "/sys/fs/bpf";

/// Mounts bpffs at [`MOUNT_POINT`] unless it already is.
pub fn ensure() -> Result<()> {
    let what = format!("bpffs at {MOUNT_POINT}");
    if is_mounted()? {
        report(&what, "ok (already mounted)");
        return Ok(());
    }
    privilege::require_root(&format!("mounting bpffs at {MOUNT_POINT}"))?;
    fs::create_dir_all(MOUNT_POINT).with_context(|| format!("creating {MOUNT_POINT}"))?;
    cmd::run(Command::new("mount").args(["-t", "bpf", "bpf", MOUNT_POINT]))?;
    if !is_mounted()? {
        bail!("mount reported success but {MOUNT_POINT} is still not a bpf mount");
    }
    report(&what, "ok (mounted)");
    Ok(())
}

/// Whether `/proc/self/mountinfo` has a `bpf` mount at [`MOUNT_POINT`]. Each line is
/// `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS`.
fn is_mounted() -> Result<bool> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(mountinfo.lines().any(|line| {
        let mount_point = line.split_whitespace().nth(4);
        let fs_type = line
            .split_once(" - ")
            .and_then(|(_, rest)| rest.split_whitespace().next());
        mount_point == Some(MOUNT_POINT) && fs_type == Some("bpf")
    }))
}
