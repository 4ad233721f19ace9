//! Builds and installs `bpf-linker` against the LLVM inside the nightly toolchain, if absent.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};

use super::report;
use crate::{cmd, workspace};

/// The bpf-linker release that builds with this machine's nightly (LLVM 22).
const VERSION: &str = "0.13.0";
/// The LLVM majors bpf-linker 0.13.0 has a feature for (`llvm-21` .. `llvm-23`).
const LLVM_MAJORS: std::ops::RangeInclusive<u32> = 21..=23;

/// Installs bpf-linker unless `bpf-linker --version` already works.
pub fn ensure() -> Result<()> {
    if let Some(version) = installed_version() {
        report("bpf-linker", &format!("ok (already installed: {version})"));
        return Ok(());
    }
    report(
        "bpf-linker",
        &format!("building {VERSION} against nightly's LLVM (1-2 minutes)"),
    );
    let lib_dir = PathBuf::from(
        cmd::output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?.trim(),
    )
    .join("lib");
    let (lib, major) = llvm_lib(&lib_dir)?;
    if !LLVM_MAJORS.contains(&major) {
        bail!("nightly ships LLVM {major}; bpf-linker {VERSION} supports only {LLVM_MAJORS:?}");
    }
    // Link the LLVM dylib of the nightly sysroot (no system LLVM 22 here) and find it at run
    // time through an rpath; bpf-linker's default feature wants a system LLVM 23.
    let lib_dir = lib_dir.display();
    let rustflags = format!("-L {lib_dir} -l dylib={lib} -C link-arg=-Wl,-rpath,{lib_dir}");
    let features = format!("llvm-{major},no-llvm-linking");
    cmd::run(
        workspace::cargo_nightly(["install", "bpf-linker", "--version", VERSION, "--locked"])
            .args(["--no-default-features", "--features", &features])
            .env("RUSTFLAGS", rustflags)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stdin(Stdio::null()),
    )?;
    match installed_version() {
        Some(version) => report("bpf-linker", &format!("ok (installed: {version})")),
        None => bail!(
            "bpf-linker was installed but `bpf-linker --version` fails: \
             is cargo's bin directory (~/.cargo/bin) on PATH?"
        ),
    }
    Ok(())
}

/// `bpf-linker --version`'s output, if it runs.
fn installed_version() -> Option<String> {
    cmd::probe(Command::new("bpf-linker").arg("--version")).map(|out| out.trim().to_owned())
}

/// The LLVM dylib in `lib_dir` (`libLLVM-22-rust-1.97.0-nightly.so`) as the name to pass to
/// `-l dylib=` (`LLVM-22-rust-1.97.0-nightly`) and its LLVM major version (22).
fn llvm_lib(lib_dir: &Path) -> Result<(String, u32)> {
    let entries =
        fs::read_dir(lib_dir).with_context(|| format!("listing {}", lib_dir.display()))?;
    for entry in entries {
        let file_name = entry
            .with_context(|| format!("listing {}", lib_dir.display()))?
            .file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|name| name.strip_prefix("lib"))
            .and_then(|name| name.strip_suffix(".so"))
            .filter(|name| name.starts_with("LLVM-"))
        else {
            continue;
        };
        let major = name["LLVM-".len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|digits| digits.parse().ok())
            .with_context(|| {
                format!("no LLVM version in {}", lib_dir.join(&file_name).display())
            })?;
        return Ok((name.to_owned(), major));
    }
    bail!(
        "no libLLVM-*.so in {} (is the nightly toolchain complete?)",
        lib_dir.display()
    )
}
