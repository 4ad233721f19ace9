//! Installs the Debian packages the VM matrix needs (QEMU, kernels, kernel build tools) on demand.

use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::{cmd, privilege};

/// A package to install, optionally pinned to one version.
#[derive(Clone, Copy)]
pub struct Package<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
}

impl<'a> Package<'a> {
    /// The package at whatever version apt's candidate is.
    pub fn any(name: &'a str) -> Self {
        Self {
            name,
            version: None,
        }
    }

    /// `name=version` as apt-get takes it, or just the name.
    fn spec(&self) -> String {
        match self.version {
            Some(version) => format!("{}={version}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// Whether dpkg has the package installed (at `version` if one is given).
pub fn is_installed(package: &Package) -> bool {
    // `${Status}` is "WANT ERROR STATE", e.g. "install ok installed"; dpkg-query fails for
    // a package it has never heard of, which `probe` turns into `None`.
    let Some(out) = cmd::probe(Command::new("dpkg-query").args([
        "-W",
        "-f=${Status}\\t${Version}",
        package.name,
    ])) else {
        return false;
    };
    let mut fields = out.trim().split('\t');
    let installed = fields
        .next()
        .is_some_and(|status| status.ends_with(" installed"));
    let version = fields.next().unwrap_or_default();
    installed && package.version.is_none_or(|wanted| wanted == version)
}

/// Installs whichever of `packages` are missing, with `--no-install-recommends`. Runs
/// `apt-get update` first only if apt does not know one of them (at its pinned version):
/// a fresh machine may have no or stale package lists, and updating costs time otherwise.
pub fn ensure(packages: &[Package]) -> Result<()> {
    let missing: Vec<&Package> = packages.iter().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let specs: Vec<String> = missing.iter().map(|p| p.spec()).collect();
    privilege::require_root(&format!("installing {}", specs.join(" ")))?;
    eprintln!("vm: installing {}", specs.join(" "));
    if missing.iter().any(|p| !apt_knows(p)) {
        cmd::run(&mut apt_get(["update"]))?;
    }
    cmd::run(apt_get(["install", "-y", "--no-install-recommends"]).args(&specs))?;
    let still: Vec<String> = missing
        .iter()
        .filter(|p| !is_installed(p))
        .map(|p| p.spec())
        .collect();
    if !still.is_empty() {
        bail!(
            "{} still not installed after apt-get install",
            still.join(" ")
        );
    }
    Ok(())
}

/// Whether apt's package lists hold the package (at its pinned version, if any).
fn apt_knows(package: &Package) -> bool {
    // `apt-cache show NAME=VERSION` exits non-zero when that version is unknown.
    cmd::probe(Command::new("apt-cache").args(["show", "--no-all-versions", &package.spec()]))
        .is_some_and(|out| !out.trim().is_empty())
}

/// `apt-get ARGS`, non-interactive and without stdin (as in CI).
fn apt_get<const N: usize>(args: [&str; N]) -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .args(args);
    cmd
}
