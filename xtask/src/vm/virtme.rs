//! virtme-ng (`vng`) and QEMU: installed on demand, and the command that boots a kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use super::cache;
use super::debian::{self, Package};
use super::kernels::Prepared;
use crate::cmd;

/// The virtme-ng release used: 1.42 is the one verified to boot Debian's 6.1 and the test
/// kernel with the host's root here. Part of the venv's name, so a new pin gets a new venv.
const VIRTME_NG_VERSION: &str = "1.42";

/// Installs virtme-ng in a venv under the cache, and QEMU and busybox through apt, each only
/// if missing;
/// returns the path of `vng`.
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
    for arg in &kernel.append {
        cmd.args(["--append", arg]);
    }
    cmd.args(["--exec", exec]).stdin(Stdio::null());
    cmd
}
