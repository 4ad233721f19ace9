//! A real block device for storage tests: an ext4 file system on a loop device, mounted on
//! a temporary directory; unmounted and detached on drop.

use std::path::{Path, PathBuf};

use super::util::run_cmd;

/// An ext4 file system on `/dev/loopN`, mounted at [`LoopFs::mount`].
pub struct LoopFs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
    device: String,
}

impl LoopFs {
    /// Creates it, or says why this machine cannot (no loop driver, no `mkfs.ext4`).
    pub fn new(size_mib: u64) -> Result<LoopFs, String> {
        // Distribution kernels build the loop driver as a module (a VM boots without it).
        if !Path::new("/dev/loop-control").exists() {
            let _ = run_cmd("modprobe", &["loop"]);
        }
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let image = dir.path().join("disk.img");
        let file = std::fs::File::create(&image).map_err(|e| format!("create image: {e}"))?;
        file.set_len(size_mib << 20)
            .map_err(|e| format!("size image: {e}"))?;
        let image_arg = image.display().to_string();
        let device = run_cmd("losetup", &["--find", "--show", &image_arg])?
            .trim()
            .to_string();
        let mount = dir.path().join("mnt");
        let fs = LoopFs {
            _dir: dir,
            mount: mount.clone(),
            device: device.clone(),
        };
        run_cmd("mkfs.ext4", &["-q", "-F", &device])?;
        std::fs::create_dir(&mount).map_err(|e| format!("mkdir: {e}"))?;
        run_cmd("mount", &[&device, &mount.display().to_string()])?;
        Ok(fs)
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// `MAJ:MIN` of the loop device.
    pub fn dev(&self) -> String {
        let name = self.device.trim_start_matches("/dev/");
        std::fs::read_to_string(format!("/sys/class/block/{name}/dev"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = run_cmd("umount", &[&self.mount.display().to_string()]);
        if let Err(e) = run_cmd("losetup", &["--detach", &self.device]) {
            eprintln!("warning: losetup --detach {}: {e}", self.device);
        }
    }
}
