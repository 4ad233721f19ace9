//! The kernels of the VM test matrix, each described in one place, and how to get each one ready.

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use super::cache;
use super::debian::{self, Package};
use crate::{cmd, workspace};

/// One kernel of the matrix.
pub struct KernelSpec {
    /// The name used on the command line and in reports.
    pub name: &'static str,
    /// What this kernel lets faultline do, in one line.
    pub summary: &'static str,
    /// The only test binaries this kernel runs, when it adds to another kernel of the matrix
    /// just what these exercise; `None`: every binary that depends on the kernel.
    pub only: Option<&'static [&'static str]>,
    kind: Kind,
}

/// Where a kernel comes from.
enum Kind {
    /// The running kernel: tests run on the host, no VM.
    Host,
    /// A Debian kernel package, booted from its image under /boot.
    DebianPackage {
        package: &'static str,
        version: &'static str,
        /// The image the package installs.
        image: &'static str,
        /// Extra kernel command-line arguments.
        append: &'static [&'static str],
    },
    /// Built from a Debian kernel source package with a config fragment.
    BuiltFromSource {
        source_package: &'static str,
        /// The config fragment, a path under `xtask/kernels`.
        fragment: &'static str,
    },
}

/// The generic (not `-cloud-`) Debian 6.1 kernel: it has the 9p modules virtme-ng needs to
/// mount the host's root. Pinned so that every machine boots the same kernel.
const DEBIAN_6_1_PACKAGE: &str = "linux-image-6.1.0-50-amd64-unsigned";
const DEBIAN_6_1_VERSION: &str = "6.1.176-1";
const DEBIAN_6_1_IMAGE: &str = "/boot/vmlinuz-6.1.0-50-amd64";

/// Every kernel of the matrix.
pub const ALL: &[KernelSpec] = &[
    KernelSpec {
        name: "host",
        summary: "the running kernel, no VM (no fentry/fmod_ret/lsm/kprobe override here)",
        only: None,
        kind: Kind::Host,
    },
    KernelSpec {
        name: "debian-6.1",
        summary: "Debian 6.1 generic: BPF LSM active, fmod_ret on security_*, fq/netem \
                  modules, no bpf_override_return, no TCX",
        only: None,
        kind: Kind::DebianPackage {
            package: DEBIAN_6_1_PACKAGE,
            version: DEBIAN_6_1_VERSION,
            image: DEBIAN_6_1_IMAGE,
            append: &[],
        },
    },
    KernelSpec {
        name: "debian-6.1-nolsm",
        summary: "Debian 6.1 booted without `bpf` in lsm=: BPF LSM compiled in but not \
                  active, as on many distribution kernels",
        // debian-6.1's image: the LSM list changes only which storage route each operation
        // takes (fmod_ret instead of LSM) and what the probes find; the rest of the suite
        // would repeat debian-6.1's run.
        only: Some(&["chaos_daemon", "errno", "kernel_matrix"]),
        kind: Kind::DebianPackage {
            package: DEBIAN_6_1_PACKAGE,
            version: DEBIAN_6_1_VERSION,
            image: DEBIAN_6_1_IMAGE,
            append: &["lsm=landlock,lockdown,yama,apparmor"],
        },
    },
    KernelSpec {
        name: "faultline-6.1",
        summary: "Debian's 6.1 source with faultline's fragment: kprobe + \
                  bpf_override_return, fmod_ret, BPF LSM, fq/netem built in",
        // Built for what Debian's 6.1 lacks: the sync calls' kprobe route, and fq built in
        // rather than a module; the rest of the suite would repeat debian-6.1's run.
        only: Some(&["chaos_daemon", "errno", "impair", "kernel_matrix"]),
        kind: Kind::BuiltFromSource {
            source_package: "linux-source-6.1",
            fragment: "faultline-6.1.config",
        },
    },
];

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: &'static str,
    /// The kernel image to boot; `None` for the host kernel (tests run without a VM).
    pub image: Option<PathBuf>,
    /// Extra kernel command-line arguments.
    pub append: Vec<String>,
}

/// The kernel called `name`; the error lists the valid names.
pub fn find(name: &str) -> Result<&'static KernelSpec> {
    ALL.iter().find(|spec| spec.name == name).with_context(|| {
        let names: Vec<&str> = ALL.iter().map(|spec| spec.name).collect();
        format!(
            "no kernel called `{name}`; valid kernels: {}",
            names.join(", ")
        )
    })
}

/// Makes the kernel ready to boot: installs its package or builds it, unless already done
/// (then this is quick).
pub fn prepare(spec: &'static KernelSpec) -> Result<Prepared> {
    let (image, append) = match &spec.kind {
        Kind::Host => (None, &[][..]),
        Kind::DebianPackage {
            package,
            version,
            image,
            append,
        } => {
            let image = Path::new(image);
            // Checking the file rather than dpkg keeps this instant and also accepts an
            // image put there by other means.
            if !image.is_file() {
                debian::ensure(&[Package {
                    name: package,
                    version: Some(version),
                }])?;
                if !image.is_file() {
                    bail!(
                        "{package}={version} is installed but {} is missing",
                        image.display()
                    );
                }
            }
            (Some(image.to_owned()), *append)
        }
        Kind::BuiltFromSource {
            source_package,
            fragment,
        } => (Some(build(spec.name, source_package, fragment)?), &[][..]),
    };
    Ok(Prepared {
        name: spec.name,
        image,
        append: append.iter().map(|arg| (*arg).to_owned()).collect(),
    })
}

/// Debian packages the kernel build needs besides the source: compiler and make, the
/// tools Kbuild calls (bc, bison, flex), headers for objtool (libelf) and for signing
/// tools (libssl), and pahole (dwarves) to generate BTF.
const BUILD_PACKAGES: [&str; 6] = [
    "build-essential",
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
];
const PAHOLE_PACKAGE: &str = "dwarves";

/// The image of `name` built from `source_package` with `fragment`, building it if it is not
/// in the cache. Keyed by the source's Debian version and the fragment's hash, so a new
/// source or an edited fragment builds anew while an unchanged one is reused.
fn build(name: &str, source_package: &str, fragment: &str) -> Result<PathBuf> {
    let fragment_path = workspace::root().join("xtask/kernels").join(fragment);
    let fragment_bytes = fs::read(&fragment_path)
        .with_context(|| format!("could not read {}", fragment_path.display()))?;
    let fragment_text = String::from_utf8_lossy(&fragment_bytes);

    let mut packages: Vec<Package> = BUILD_PACKAGES.iter().map(|p| Package::any(p)).collect();
    packages.push(Package::any(PAHOLE_PACKAGE));
    packages.push(Package::any(source_package));
    debian::ensure(&packages)?;
    let version =
        cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Version}", source_package]))?;
    let version = version.trim();

    let kernels = cache::dir()?.join("kernels");
    let key = format!("{name}-{version}-{:016x}", cache::fnv1a64(&fragment_bytes));
    let image = kernels.join(&key).join("bzImage");
    if image.is_file() {
        return Ok(image);
    }

    let started = Instant::now();
    eprintln!("vm: building {name} (about 15 minutes on 2 cores)...");
    let build_root = kernels.join(format!("build-{version}"));
    let tree = extract_source(source_package, &build_root)?;
    let log_path = kernels.join(format!("{key}.log"));
    let log = Log::create(&log_path)?;
    eprintln!("vm: {name}: make output goes to {}", log_path.display());

    // x86_64_defconfig + kvm_guest.config boots under QEMU; the fragment adds what
    // faultline needs. olddefconfig settles every dependency the fragment left open.
    log.run(make(&tree).arg("x86_64_defconfig"))?;
    log.run(
        Command::new("scripts/kconfig/merge_config.sh")
            .current_dir(&tree)
            .args(["-m", ".config", "kernel/configs/kvm_guest.config"])
            .arg(&fragment_path),
    )?;
    log.run(make(&tree).arg("olddefconfig"))?;
    check_config(&tree.join(".config"), &fragment_text, &fragment_path)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("vm: {name}: make -j{jobs} bzImage");
    log.run(make(&tree).arg(format!("-j{jobs}")).arg("bzImage"))?;

    // Copied under a temporary name and renamed, so an interrupted copy is never taken for
    // a finished image.
    let out_dir = image.parent().unwrap_or(&kernels);
    fs::create_dir_all(out_dir)
        .with_context(|| format!("could not create {}", out_dir.display()))?;
    let built = tree.join("arch/x86/boot/bzImage");
    let partial = out_dir.join("bzImage.partial");
    fs::copy(&built, &partial).with_context(|| {
        format!(
            "could not copy {} to {}",
            built.display(),
            partial.display()
        )
    })?;
    fs::rename(&partial, &image).with_context(|| {
        format!(
            "could not rename {} to {}",
            partial.display(),
            image.display()
        )
    })?;
    // The build tree takes gigabytes; only the image is needed from now on.
    fs::remove_dir_all(&build_root)
        .with_context(|| format!("could not remove {}", build_root.display()))?;
    eprintln!(
        "vm: built {name} in {} s: {}",
        started.elapsed().as_secs(),
        image.display()
    );
    Ok(image)
}

/// Extracts `/usr/src/<source_package>.tar.xz` under `build_root` (unless a previous,
/// interrupted build already did) and returns the source tree. Extracting into a temporary
/// directory renamed at the end means a half-extracted tree is never reused, while a
/// build that failed in `make` resumes where it stopped.
fn extract_source(source_package: &str, build_root: &Path) -> Result<PathBuf> {
    let tree = build_root.join(source_package);
    if tree.join("Makefile").is_file() {
        return Ok(tree);
    }
    let tarball = PathBuf::from(format!("/usr/src/{source_package}.tar.xz"));
    let mut partial = build_root.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    for dir in [&partial, build_root] {
        if dir.exists() {
            fs::remove_dir_all(dir)
                .with_context(|| format!("could not remove {}", dir.display()))?;
        }
    }
    fs::create_dir_all(&partial)
        .with_context(|| format!("could not create {}", partial.display()))?;
    eprintln!("vm: extracting {}", tarball.display());
    cmd::run(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&partial),
    )?;
    fs::rename(&partial, build_root).with_context(|| {
        format!(
            "could not rename {} to {}",
            partial.display(),
            build_root.display()
        )
    })?;
    if !tree.join("Makefile").is_file() {
        bail!(
            "{} did not contain {source_package}/Makefile",
            tarball.display()
        );
    }
    Ok(tree)
}

/// `make` in the source tree.
fn make(tree: &Path) -> Command {
    let mut cmd = Command::new("make");
    cmd.current_dir(tree);
    cmd
}

/// Fails naming every `CONFIG_...=...` line of the fragment that is not in `.config` as
/// written: Kconfig silently drops an option whose dependencies are not met, and a kernel
/// without, say, `BPF_KPROBE_OVERRIDE` would make the tests fail much later and obscurely.
fn check_config(config: &Path, fragment: &str, fragment_path: &Path) -> Result<()> {
    let built = fs::read_to_string(config)
        .with_context(|| format!("could not read {}", config.display()))?;
    let built: Vec<&str> = built.lines().map(str::trim).collect();
    let missing: Vec<&str> = fragment
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("CONFIG_"))
        .filter(|line| !built.contains(line))
        .collect();
    if !missing.is_empty() {
        bail!(
            "after merging {} and `make olddefconfig`, {} lacks: {}",
            fragment_path.display(),
            config.display(),
            missing.join(" ")
        );
    }
    Ok(())
}

/// The build log: commands run with their output appended to it, and its tail printed
/// when one fails.
struct Log {
    path: PathBuf,
    file: File,
}

impl Log {
    fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("could not create {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// Runs the command with stdout and stderr going to the log.
    fn run(&self, cmd: &mut Command) -> Result<()> {
        let line = cmd::display(cmd);
        let clone = || {
            self.file
                .try_clone()
                .with_context(|| format!("could not reopen {}", self.path.display()))
        };
        use std::io::Write as _;
        writeln!(clone()?, "$ {line}")
            .with_context(|| format!("could not write {}", self.path.display()))?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(clone()?)
            .stderr(clone()?)
            .status()
            .with_context(|| format!("could not start `{line}`"))?;
        if !status.success() {
            eprintln!("vm: last lines of {}:", self.path.display());
            for line in self.tail(40) {
                eprintln!("  {line}");
            }
            bail!(
                "`{line}` failed ({status}); full output in {}",
                self.path.display()
            );
        }
        Ok(())
    }

    /// The last `n` lines of the log (none if it cannot be read: the error at hand matters
    /// more).
    fn tail(&self, n: usize) -> Vec<String> {
        let Ok(file) = File::open(&self.path) else {
            return Vec::new();
        };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}
