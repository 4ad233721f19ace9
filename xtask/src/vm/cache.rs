//! The cache directory of the VM test matrix (kernels, the virtme-ng venv, build logs).

use std::fs;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// The cache directory: `$FAULTLINE_CACHE` if set, else `$HOME/.cache/faultline`; created if
/// missing. It lives outside the work tree because a session's work tree is laid anew while
/// the machine (and so a 15-minute kernel build) may be kept.
pub fn dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("FAULTLINE_CACHE").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .context("neither FAULTLINE_CACHE nor HOME is set: no place for the VM cache")?;
            PathBuf::from(home).join(".cache").join("faultline")
        }
    };
    fs::create_dir_all(&dir)
        .with_context(|| format!("could not create the cache directory {}", dir.display()))?;
    Ok(dir)
}

/// The 64-bit FNV-1a hash of `bytes`: enough to key cached builds by their inputs (not
/// meant to resist anyone crafting collisions).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::fnv1a64;

    /// Reference values of FNV-1a 64 (from the algorithm's published test vectors).
    #[test]
    fn fnv1a64_matches_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
