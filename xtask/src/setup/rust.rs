//! Adds the rustup components the build and lints need, when missing.

use std::process::Command;

use anyhow::Result;

use super::report;
use crate::cmd;

/// `None` is the active toolchain (stable, for the host crates); `nightly` builds and lints
/// the eBPF crate with `-Z build-std=core`, which needs `rust-src`.
const COMPONENTS: [(Option<&str>, &[&str]); 2] = [
    (None, &["clippy", "rustfmt"]),
    (Some("nightly"), &["rust-src", "clippy"]),
];

/// Adds each missing component of [`COMPONENTS`] with `rustup component add`.
pub fn ensure() -> Result<()> {
    for (toolchain, components) in COMPONENTS {
        let installed = cmd::output(toolchain_arg(
            Command::new("rustup").args(["component", "list", "--installed"]),
            toolchain,
        ))?;
        for component in components {
            let what = format!("{component} ({})", toolchain.unwrap_or("active toolchain"));
            if installed.lines().any(|line| is_component(line, component)) {
                report(&what, "ok (already installed)");
                continue;
            }
            report(&what, "adding");
            cmd::run(toolchain_arg(
                Command::new("rustup").args(["component", "add", component]),
                toolchain,
            ))?;
            report(&what, "ok (installed)");
        }
    }
    Ok(())
}

/// Adds `--toolchain NAME` when a toolchain is named.
fn toolchain_arg<'a>(cmd: &'a mut Command, toolchain: Option<&str>) -> &'a mut Command {
    if let Some(toolchain) = toolchain {
        cmd.args(["--toolchain", toolchain]);
    }
    cmd
}

/// Whether a line of `rustup component list` names `component`: either the bare name
/// (`rust-src`) or the name followed by the host triple (`clippy-x86_64-unknown-linux-gnu`),
/// but not a longer component (`rustc-dev-x86_64-...` is not `rustc`).
fn is_component(line: &str, component: &str) -> bool {
    let line = line.trim();
    line == component
        || line
            .strip_prefix(component)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|triple| triple.starts_with(std::env::consts::ARCH))
}
