//! Installs the Debian packages faultline's build and tests need, when any is missing.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};

use super::report;
use crate::{cmd, privilege};

/// Each package with what it provides to the project.
const PACKAGES: [(&str, &str); 9] = [
    (
        "protobuf-compiler",
        "protoc, for chaos-proto's build script",
    ),
    (
        "libprotobuf-dev",
        "the well-known types protoc imports (google/protobuf/duration.proto)",
    ),
    ("iproute2", "ip and tc, for network faults and tests"),
    ("iputils-ping", "ping, for network fault tests"),
    (
        "bpftool",
        "inspects loaded eBPF programs and probes kernel features",
    ),
    ("python3-venv", "for the VM test harness"),
    ("postgresql", "a real application for the tests"),
    (
        "stress-ng",
        "the peer that stress faults are benchmarked against",
    ),
    (
        "bindfs",
        "a FUSE passthrough, the kind of layer storage faults are benchmarked against",
    ),
];

/// Installs whichever of [`PACKAGES`] are missing (running `apt-get update` first only then).
pub fn ensure() -> Result<()> {
    let installed = installed_packages()?;
    let missing: Vec<&str> = PACKAGES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !installed.contains(*name))
        .collect();
    if !missing.is_empty() {
        privilege::require_root(&format!("installing {}", missing.join(" ")))?;
        report("apt", &format!("installing {}", missing.join(" ")));
        cmd::run(apt_get().arg("update"))?;
        cmd::run(
            apt_get()
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing),
        )?;
    }
    let installed = installed_packages()?;
    for (name, purpose) in PACKAGES {
        let what = format!("{name} ({purpose})");
        if !installed.contains(name) {
            bail!("{name} is still not installed after apt-get install");
        }
        if missing.contains(&name) {
            report(&what, "ok (installed)");
        } else {
            report(&what, "ok (already installed)");
        }
    }
    Ok(())
}

/// `apt-get`, non-interactive and without stdin (as in CI).
fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    cmd
}

/// Which of [`PACKAGES`] dpkg reports as installed. `dpkg-query` exits non-zero when it
/// does not know a package at all, but still prints the ones it knows, so its exit status
/// is not used.
fn installed_packages() -> Result<BTreeSet<String>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(PACKAGES.iter().map(|(name, _)| name))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("could not start dpkg-query (is this a Debian machine?)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            // `${Status}` is "WANT ERROR STATE", e.g. "install ok installed".
            (words.nth(2)? == "installed").then(|| name.to_owned())
        })
        .collect())
}
