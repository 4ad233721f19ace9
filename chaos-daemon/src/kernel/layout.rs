//! The kernel struct offsets the storage programs read, from the running kernel's BTF.
use chaos_common::storage::KernelLayout;

use super::btf::KernelBtf;

/// Every offset the storage programs need, or the first one this kernel's BTF lacks.
pub fn read(btf: &KernelBtf) -> Result<KernelLayout, String> {
    let at = |path: &str| btf.offset_of(path).map_err(|err| err.to_string());
    // The programs read these as 8-byte (inode number) and 4-byte (device) integers.
    for (field, size) in [
        ("inode.i_ino", 8),
        ("super_block.s_dev", 4),
        ("inode.i_mode", 2),
    ] {
        let found = btf.size_of_field(field).map_err(|err| err.to_string())?;
        if found != size {
            return Err(format!("{field} is {found} bytes, not {size}"));
        }
    }
    Ok(KernelLayout {
        file_dentry: at("file.f_path.dentry")?,
        path_dentry: at("path.dentry")?,
        dentry_parent: at("dentry.d_parent")?,
        dentry_inode: at("dentry.d_inode")?,
        dentry_sb: at("dentry.d_sb")?,
        inode_ino: at("inode.i_ino")?,
        inode_mode: at("inode.i_mode")?,
        sb_dev: at("super_block.s_dev")?,
        task_files: at("task_struct.files")?,
        files_fdt: at("files_struct.fdt")?,
        fdtable_fd: at("fdtable.fd")?,
        fdtable_max_fds: at("fdtable.max_fds")?,
    })
}
