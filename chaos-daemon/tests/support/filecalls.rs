//! File system calls made by a probe process, counted by result: what a storage errno fault
//! does to a real program's `open`, `read`, `write`, `fsync`, ... calls.
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use serde_json::{json, Value};

use super::probe::errno_name;

/// Makes `count` calls of `op` on `path` and returns `{"ok": n, "errors": {"EIO": n, ...},
/// "elapsed_ns": n}` (the time the calls took, set-up excluded).
/// File-descriptor operations (read, write, fsync, fdatasync, sync_file_range) open the
/// file once first; a failure there is `{"setup_error": ...}`.
pub fn run(op: &str, path: &Path, count: u64) -> Value {
    let fd_ops = ["read", "write", "fsync", "fdatasync", "sync_file_range"];
    let fd = if fd_ops.contains(&op) {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(file) => Some(file),
            Err(err) => return json!({ "setup_error": err.to_string() }),
        }
    } else {
        None
    };
    let raw = fd
        .as_ref()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .unwrap_or(-1);
    let mut ok = 0u64;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let begin = std::time::Instant::now();
    for i in 0..count {
        let result = call(op, path, raw, i);
        match result {
            Ok(()) => ok += 1,
            Err(err) => *errors.entry(errno_name(&err)).or_default() += 1,
        }
    }
    let elapsed_ns = begin.elapsed().as_nanos() as u64;
    json!({ "ok": ok, "errors": errors, "elapsed_ns": elapsed_ns })
}

/// Calls `op` on `path` back to back for up to `max` and returns when the calls started
/// failing and when they succeeded again (`first_fail_unix_ns`, `first_ok_after_unix_ns`,
/// null if not seen), with the number of calls made: how a fault's window looks from inside
/// the target.
pub fn edges(op: &str, path: &Path, max: std::time::Duration) -> Value {
    let begin = std::time::Instant::now();
    let end = begin + max;
    let (mut first_fail, mut first_ok_after) = (None, None);
    let mut calls = 0u64;
    while std::time::Instant::now() < end && first_ok_after.is_none() {
        let failed = call(op, path, -1, calls).is_err();
        let now = chaos_daemon::clock::unix_now_ns();
        calls += 1;
        match (failed, first_fail) {
            (true, None) => first_fail = Some(now),
            (false, Some(_)) => first_ok_after = Some(now),
            _ => {}
        }
    }
    json!({
        "first_fail_unix_ns": first_fail,
        "first_ok_after_unix_ns": first_ok_after,
        "calls": calls,
        "elapsed_ns": begin.elapsed().as_nanos() as u64,
    })
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

fn check(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One call of `op`; names it makes for create/mkdir are unique per `i` and removed again
/// (by calls the fault does not cover).
fn call(op: &str, path: &Path, fd: i32, i: u64) -> io::Result<()> {
    let p = c_path(path);
    let numbered = c_path(&path.with_extension(format!("n{i}")));
    // SAFETY: plain syscalls on valid NUL-terminated paths and an open fd.
    unsafe {
        match op {
            "open" => {
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY);
                check(fd.into())?;
                libc::close(fd);
                Ok(())
            }
            "read" => {
                let mut byte = [0u8; 1];
                check(libc::pread(fd, byte.as_mut_ptr().cast(), 1, 0) as libc::c_long)
            }
            "write" => check(libc::pwrite(fd, b"x".as_ptr().cast(), 1, 0) as libc::c_long),
            "fsync" => check(libc::fsync(fd).into()),
            "fdatasync" => check(libc::fdatasync(fd).into()),
            "sync_file_range" => {
                check(libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE).into())
            }
            "create" => {
                let fd = libc::open(
                    numbered.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                    0o600,
                );
                check(fd.into())?;
                libc::close(fd);
                libc::unlink(numbered.as_ptr());
                Ok(())
            }
            "mkdir" => {
                check(libc::mkdir(numbered.as_ptr(), 0o700).into())?;
                libc::rmdir(numbered.as_ptr());
                Ok(())
            }
            "unlink" => {
                let fd = libc::open(numbered.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600);
                check(fd.into())?;
                libc::close(fd);
                check(libc::unlink(numbered.as_ptr()).into())
            }
            "rename" => {
                check(libc::rename(p.as_ptr(), numbered.as_ptr()).into())?;
                libc::rename(numbered.as_ptr(), p.as_ptr());
                Ok(())
            }
            "truncate" => check(libc::truncate(p.as_ptr(), 1).into()),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown op {other}"),
            )),
        }
    }
}
