//! `cargo xtask`: faultline's developer and CI tasks (setup, build, run, test, bench, vm-test).

mod bench;
mod build;
mod cmd;
mod privilege;
mod run;
mod setup;
mod test;
mod vm;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// faultline's developer and CI tasks. Each task first makes the machine ready (`setup`), so a
/// fresh Debian machine needs nothing but `cargo xtask TASK`. Run as root.
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Make this machine ready to build and test faultline (idempotent; quick when done).
    ///
    /// Installs the Debian packages (protoc, iproute2, ping, bpftool, python3-venv,
    /// PostgreSQL), the rustup components (nightly `rust-src` and `clippy`, the active
    /// toolchain's `clippy` and `rustfmt`), `bpf-linker` (built against the LLVM inside the
    /// nightly toolchain) and mounts bpffs at /sys/fs/bpf. Every step checks
    /// first and does nothing if it is already done. Needs root only when something is
    /// missing.
    Setup,
    /// Set up, then build every host crate of the workspace (the daemon's build script
    /// builds the eBPF object with the nightly toolchain).
    Build(build::Args),
    /// Set up, build the daemon in release mode and run it (as root) with DAEMON-ARGS.
    ///
    /// Example: `cargo xtask run -- --help`; as a normal user,
    /// `sudo -E env PATH="$PATH" cargo xtask run -- ...`.
    Run(run::Args),
    /// Set up, then check formatting, run clippy (host crates and the eBPF crate) and run
    /// the tests (as root); exits non-zero if any stage fails. This is what CI runs.
    ///
    /// Extra arguments after `--` go to `cargo test`, e.g.
    /// `cargo xtask test -- -p chaos-daemon -- --nocapture`.
    Test(test::Args),
    /// Set up, run the benchmarks (as root) and write BENCHMARKS.md: cost of the eBPF
    /// programs against an empty one, per-packet cost on real traffic with up to 10,000
    /// faults armed, activation latency and start/stop error of fault windows.
    Bench(bench::Args),
    /// Set up, then run every test on the host and inside VMs on a matrix of kernels (as
    /// root), and report per kernel what passed, failed and was skipped and why.
    ///
    /// Kernels: host (the running one), debian-6.1 (Debian's generic kernel, BPF LSM
    /// active), debian-6.1-nolsm (the same booted without bpf in lsm=), faultline-6.1 (built
    /// from Debian's source with bpf_override_return, fq and netem built in). Each VM boots
    /// once under QEMU (TCG) with virtme-ng. The report goes to the terminal and to
    /// target/vm-test/report.md and report.json; the exit status is non-zero if any kernel
    /// failed or did not run. Example: `cargo xtask vm-test --kernel debian-6.1 -- network`.
    VmTest(vm::Args),
    /// Check that vm-test reports failures: a test failing on purpose fails the host row, and
    /// a debian-6.1 boot that panics (mem=40M: out of memory in an initcall) fails the run with the kernel named.
    VmSelfTest,
    /// Inside a VM started by vm-test: run the test binaries, print one line per result.
    #[command(hide = true)]
    VmGuest(vm::GuestArgs),
}

/// Runs the task; on failure prints the error chain on one line (no backtrace) and exits 1.
fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Build(args) => build::run(&args),
        Task::Run(args) => run::run(&args),
        Task::Test(args) => test::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::VmTest(args) => vm::run(&args),
        Task::VmGuest(args) => vm::guest(&args),
        Task::VmSelfTest => vm::selftest::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
