//! Tiny programs the daemon loads (and never attaches, but for the kprobe) to learn what the
//! running kernel allows: only the verifier and the attach path can say, not the version.
use aya_ebpf::{
    helpers::generated::{bpf_get_current_pid_tgid, bpf_override_return},
    macros::{fentry, kprobe, lsm},
    programs::{FEntryContext, LsmContext, ProbeContext},
};

/// Loads where BPF LSM programs are allowed (`CONFIG_BPF_LSM`, trampolines).
#[lsm(hook = "file_open")]
pub fn probe_lsm(_ctx: LsmContext) -> i32 {
    0
}

/// Loads where BPF trampolines (fentry/fexit/fmod_ret) work.
#[fentry(function = "security_file_open")]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}

/// Loads where the kernel has `bpf_override_return` (`CONFIG_BPF_KPROBE_OVERRIDE`); attaches
/// where kprobes exist and the target is on the error-injection list.
#[kprobe]
pub fn probe_override(ctx: ProbeContext) -> u32 {
    // The idle task never enters a syscall: this never overrides anything, but the verifier
    // must see the call to refuse it where the helper does not exist.
    // SAFETY: helpers called with the context's registers.
    if unsafe { bpf_get_current_pid_tgid() } == 0 {
        unsafe { bpf_override_return(ctx.regs, 0) };
    }
    0
}
