//! Probes the running kernel's BPF features by loading (and for kprobes, briefly attaching)
//! tiny programs from the object: the verifier and the attach path say what works, not the
//! version number. `Capabilities` reports the results; the tests skip or assert on them.
use aya::{
    programs::{FEntry, KProbe, Lsm, SchedClassifier, TcAttachType},
    Btf, Ebpf,
};

use crate::error::chain;

/// One probed feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probed {
    pub name: &'static str,
    pub available: bool,
    pub detail: String,
}

/// Syscall entry the override probe attaches to: on the error-injection list wherever
/// `CONFIG_FUNCTION_ERROR_INJECTION` is set, and the route storage faults use for fsync.
const OVERRIDE_TARGET: &str = "__x64_sys_fsync";

/// Probes every feature with the programs of `ebpf` (which are loaded here, not attached);
/// `btf` is the kernel's BTF as aya parsed it, or why it could not.
pub fn probe(ebpf: &mut Ebpf, btf: Result<&Btf, &String>) -> Vec<Probed> {
    let mut found = Vec::new();
    let mut add = |name, result: Result<String, String>| {
        let (available, detail) = match result {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        found.push(Probed {
            name,
            available,
            detail,
        });
    };
    add(
        "btf",
        btf.map(|_| "/sys/kernel/btf/vmlinux".to_string())
            .map_err(|err| format!("no kernel BTF: {err}")),
    );
    let btf = btf.ok();
    add(
        "bpf_lsm_programs",
        load_with_btf(ebpf, btf, "probe_lsm", |program: &mut Lsm, btf| {
            program.load("file_open", btf)
        })
        .map(|()| "an lsm/file_open program loaded".to_string()),
    );
    add("bpf_lsm_active", lsm_active());
    add(
        "bpf_trampoline",
        load_with_btf(ebpf, btf, "probe_fentry", |program: &mut FEntry, btf| {
            program.load("security_file_open", btf)
        })
        .map(|()| "an fentry program loaded (fentry, fexit, fmod_ret)".to_string()),
    );
    add("bpf_override_return", override_return(ebpf));
    add("tcx", tcx());
    found
}

fn load_with_btf<P>(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    name: &str,
    load: impl FnOnce(&mut P, &Btf) -> Result<(), aya::programs::ProgramError>,
) -> Result<(), String>
where
    for<'a> &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let btf = btf.ok_or("needs kernel BTF")?;
    let program: &mut P = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|err| chain(&err))?;
    load(program, btf).map_err(|err| refusal(&err))
}

/// A verifier or syscall refusal on one line: the syscall's error and the verifier's last
/// word, which names what it objected to.
pub(super) fn refusal(err: &aya::programs::ProgramError) -> String {
    let text = chain(err);
    let (call, log) = text.split_once("Verifier output:").unwrap_or((&text, ""));
    let call = call.trim().trim_end_matches('.');
    let last = log.lines().rev().map(str::trim).find(|l| {
        !l.is_empty()
            && !["processed ", "verification time", "stack depth"]
                .iter()
                .any(|p| l.starts_with(p))
    });
    match last {
        Some(last) => format!("refused: {call}; verifier: {last}"),
        None => format!("refused: {call}"),
    }
}

/// Whether `bpf` is in the active LSM list (`/sys/kernel/security/lsm`): BPF LSM programs
/// load on kernels where it is compiled in but not active, and then never run.
fn lsm_active() -> Result<String, String> {
    const SECURITYFS: &str = "/sys/kernel/security";
    if !std::path::Path::new(SECURITYFS).join("lsm").exists() {
        // Distributions mount securityfs at boot; minimal systems and VMs may not.
        nix::mount::mount(
            Some("securityfs"),
            SECURITYFS,
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|errno| format!("securityfs is not mounted and mounting it failed: {errno}"))?;
    }
    let list = std::fs::read_to_string("/sys/kernel/security/lsm").map_err(|err| {
        format!("cannot read /sys/kernel/security/lsm ({err}); is securityfs mounted?")
    })?;
    let list = list.trim().to_string();
    if list.split(',').any(|lsm| lsm == "bpf") {
        Ok(format!("active LSMs: {list}"))
    } else {
        Err(format!(
            "bpf is not an active LSM (active: {list}); boot with lsm=...,bpf"
        ))
    }
}

/// Loads the override probe and attaches it to `OVERRIDE_TARGET` for as long as it takes to
/// detach it again.
fn override_return(ebpf: &mut Ebpf) -> Result<String, String> {
    let program: &mut KProbe = ebpf
        .program_mut("probe_override")
        .ok_or("program probe_override missing from the object")?
        .try_into()
        .map_err(|err| chain(&err))?;
    program
        .load()
        .map_err(|err| format!("bpf_override_return {}", refusal(&err)))?;
    let link = program
        .attach(OVERRIDE_TARGET, 0)
        .map_err(|err| format!("kprobe on {OVERRIDE_TARGET} {}", refusal(&err)))?;
    program.detach(link).map_err(|err| chain(&err))?;
    Ok(format!(
        "kprobe with bpf_override_return attached to {OVERRIDE_TARGET}"
    ))
}

/// TCX (Linux 6.6): a query of `lo`'s TCX ingress hook changes nothing and fails where the
/// attach type does not exist.
fn tcx() -> Result<String, String> {
    SchedClassifier::query_tcx("lo", TcAttachType::Ingress)
        .map(|_| "TCX hooks present (queried on lo)".to_string())
        .map_err(|err| format!("no TCX: {}; TC programs use clsact", chain(&err)))
}
