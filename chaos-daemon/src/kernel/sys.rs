//! The raw `bpf(2)` calls aya has no wrapper for: updating a cgroup storage element, and
//! loading, attaching and pinning `fmod_ret` programs.
use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
};

/// `BPF_MAP_UPDATE_ELEM` from include/uapi/linux/bpf.h.
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;

/// The map-element part of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}
const _: () = assert!(std::mem::size_of::<ElemAttr>() == 32);

/// `bpf(BPF_MAP_UPDATE_ELEM)` with `BPF_ANY`; `K` and `V` must match the map's layout.
pub fn map_update<K, V>(map: BorrowedFd<'_>, key: &K, value: &V) -> io::Result<()> {
    let attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_ref(value) as u64,
        flags: 0,
    };
    call(BPF_MAP_UPDATE_ELEM, &attr).map(drop)
}

/// `bpf(2)` commands from include/uapi/linux/bpf.h.
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
/// `BPF_PROG_TYPE_TRACING` and its `BPF_MODIFY_RETURN` attach type.
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_MODIFY_RETURN: u32 = 26;

/// The `BPF_PROG_LOAD` part of `union bpf_attr` up to `attach_btf_obj_fd`; the kernel reads
/// what it knows and requires the rest to be zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    _pad: u32,
}
const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 120);

fn call<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised `union bpf_attr` prefix of the size passed;
    // every pointer inside it points at memory that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_ref(attr),
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A `bpf(2)` command that returns a new file descriptor.
fn call_fd<T>(cmd: libc::c_long, attr: &T) -> io::Result<OwnedFd> {
    let fd = call(cmd, attr)?;
    // SAFETY: these commands return a new file descriptor owned by the caller.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Loads `insns` as an `fmod_ret` program on the kernel function with BTF id
/// `attach_btf_id`. On a verifier refusal the error carries the log's last lines.
pub fn load_modify_return(
    name: &str,
    insns: &[u8],
    insn_count: usize,
    attach_btf_id: u32,
) -> io::Result<OwnedFd> {
    const LICENSE: &[u8] = b"GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut prog_name = [0u8; 16];
    for (dst, src) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: insn_count as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name,
        expected_attach_type: BPF_MODIFY_RETURN,
        attach_btf_id,
        ..ProgLoadAttr::default()
    };
    match call_fd(BPF_PROG_LOAD, &attr) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Again with the verifier's log, which says why.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let err = call_fd(BPF_PROG_LOAD, &attr).err().unwrap_or(first);
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0');
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(io::Error::new(
                err.kind(),
                format!("{err}; verifier: {}", tail.join(" / ")),
            ))
        }
    }
}

/// Attaches a loaded tracing program (`fmod_ret`) to its kernel function; the returned
/// link detaches it when its last reference (fd or pin) goes.
pub fn raw_tracepoint_open(prog: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        name: u64,
        prog_fd: u32,
        _pad: u32,
    }
    call_fd(
        BPF_RAW_TRACEPOINT_OPEN,
        &Attr {
            name: 0,
            prog_fd: prog.as_raw_fd() as u32,
            _pad: 0,
        },
    )
}

/// Pins a BPF object (here a link) at `path` on a bpf file system.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    call(
        BPF_OBJ_PIN,
        &Attr {
            pathname: path.as_ptr() as u64,
            bpf_fd: fd.as_raw_fd() as u32,
            file_flags: 0,
        },
    )
    .map(drop)
}
