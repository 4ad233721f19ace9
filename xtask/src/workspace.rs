//! Where the workspace is and how to invoke cargo on its host crates.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Selects every host crate: the whole workspace except the eBPF crate, which only builds
/// for `bpfel-unknown-none` (through chaos-daemon's build script); on the host it fails
/// with "unwinding panics are not supported without std".
pub const HOST_CRATES: [&str; 3] = ["--workspace", "--exclude", "chaos-ebpf"];

/// The workspace root (the parent of this crate's directory).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// The cargo target directory: `CARGO_TARGET_DIR` (or `CARGO_BUILD_TARGET_DIR`) if set,
/// else `<root>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_BUILD_TARGET_DIR"))
        .map(|dir| root().join(dir))
        .unwrap_or_else(|| root().join("target"))
}

/// `cargo ARGS...` run from the workspace root with the active (stable) toolchain.
pub fn cargo<const N: usize>(args: [&str; N]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root()).args(args);
    cmd
}

/// `cargo +nightly ARGS...` run from the workspace root. `RUSTC` and `RUSTDOC` are removed
/// so that an outer cargo's stable compiler is not forced onto the nightly build.
pub fn cargo_nightly<const N: usize>(args: [&str; N]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .arg("+nightly")
        .args(args)
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    cmd
}
