//! virtme-ng (`vng`) and QEMU: installed on demand, and the command that boots a kernel.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use super::cache;
use super::debian::{self, Package};
use super::kernels::Prepared;
use crate::{cmd, workspace};

/// The virtme-ng release used: 1.42 is the one verified to boot Debian's 6.1 and the test
/// kernel with the host's root here. Part of the venv's name, so a new pin gets a new venv.
const VIRTME_NG_VERSION: &str = "1.42";

/// Installs virtme-ng in a venv under the cache, and QEMU and busybox through apt, each only
/// if missing; returns the path of `vng`.
pub fn ensure_virtme() -> Result<PathBuf> {
    ensure_host_tools()?;
    let venv = cache::dir()?.join(format!("vng-{VIRTME_NG_VERSION}"));
    let vng = venv.join("bin/vng");
    if works(&vng) {
        return Ok(vng);
    }
    eprintln!(
        "vm: installing virtme-ng {VIRTME_NG_VERSION} in {}",
        venv.display()
    );
    // `--clear` because a venv left half-made by an interrupted run may be there.
    cmd::run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .stdin(Stdio::null()),
    )?;
    cmd::run(
        Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
            ])
            .arg(format!("virtme-ng=={VIRTME_NG_VERSION}"))
            .stdin(Stdio::null()),
    )?;
    if !works(&vng) {
        bail!(
            "`{} --version` still fails after installing virtme-ng",
            vng.display()
        );
    }
    Ok(vng)
}

/// Whether `vng --version` runs.
fn works(vng: &Path) -> bool {
    vng.is_file() && cmd::probe(Command::new(vng).arg("--version")).is_some()
}

/// Installs what vng runs on the host: QEMU (`qemu-system-x86`, unless
/// `qemu-system-x86_64` is already on PATH) and a static busybox, which vng puts in the
/// initramfs it builds to load the 9p and virtio modules of a modular kernel such as
/// Debian's (a dynamically linked busybox fails there: the initramfs has no libc).
fn ensure_host_tools() -> Result<()> {
    let has_qemu = || cmd::probe(Command::new("qemu-system-x86_64").arg("--version")).is_some();
    let mut packages = vec![Package::any("busybox-static")];
    if !has_qemu() {
        packages.push(Package::any("qemu-system-x86"));
    }
    debian::ensure(&packages)?;
    if !has_qemu() {
        bail!("`qemu-system-x86_64 --version` still fails after installing qemu-system-x86");
    }
    Ok(())
}

/// The command that boots `kernel` and runs the shell command `exec` in it; its exit status
/// is that of `exec`. For the host kernel (no image) it is `sh -c EXEC` on the host itself.
///
/// Capture the guest's output through pipes, not files: QEMU reopens the command's stdout
/// and stderr by their `/proc/self/fd` paths with `O_TRUNC`, so a regular file is truncated
/// at boot, and stdout and stderr sent to one file overwrite each other.
pub fn command(vng: &Path, kernel: &Prepared, exec: &str) -> Command {
    let Some(image) = &kernel.image else {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", exec]).stdin(Stdio::null());
        return cmd;
    };
    let mut cmd = Command::new(vng);
    // vng starts its helpers (`virtme-run`, ...) by name, so the venv's bin must be on PATH.
    if let Some(bin) = vng.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(bin.to_owned()).chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            cmd.env("PATH", joined);
        }
    }
    cmd.arg("-r").arg(image).args([
        // KVM exists here but guests hang in it; TCG is slow but works.
        "--disable-kvm",
        "--memory",
        "2G",
        "--cpus",
        "2",
    ]);
    // The host's root is read-only in the guest, with writable overlays (kept in guest
    // memory, never written back) on /etc, /home, /opt, /srv, /tmp, /usr and /var; /run is a
    // tmpfs and /sys/fs/cgroup a writable cgroup2. Overlays on the workspace and on HOME too
    // let tests write beside their binaries (target/, CARGO_TARGET_TMPDIR) and under HOME
    // without touching the host's copies.
    for dir in writable_overlays() {
        cmd.arg(format!("--overlay-rwdir={}", dir.display()));
    }
    for arg in &kernel.append {
        cmd.args(["--append", arg]);
    }
    cmd.args(["--exec", exec]).stdin(Stdio::null());
    cmd
}

/// The directories to overlay besides vng's defaults: the workspace root and HOME, unless
/// missing, the root itself, under a directory vng overlays already, or under the other one.
fn writable_overlays() -> Vec<PathBuf> {
    const OVERLAID_BY_VNG: [&str; 7] = ["/etc", "/home", "/opt", "/srv", "/tmp", "/usr", "/var"];
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates: Vec<PathBuf> = std::iter::once(workspace::root().to_owned())
        .chain(home)
        .filter_map(|dir| fs::canonicalize(dir).ok())
        .filter(|dir| dir != Path::new("/"))
        .filter(|dir| !OVERLAID_BY_VNG.iter().any(|top| dir.starts_with(top)))
        .collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in &candidates {
        let under_another = candidates
            .iter()
            .any(|other| other != dir && dir.starts_with(other));
        if !under_another && !dirs.contains(dir) {
            dirs.push(dir.clone());
        }
    }
    dirs
}
