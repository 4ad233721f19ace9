//! Limits and usage of a target: memory limit and usage, OOM kills, CPU time, allowed CPUs.
//!
//! On v2 the files are the target's own; on hybrid hosts the memory controller is v1, read
//! from the v1 memory cgroup the target's processes are in.
use std::path::{Path, PathBuf};

use super::{keyed, read, v1, Error};

/// v1 reports "no limit" as a huge page-rounded number.
const V1_UNLIMITED: u64 = 1 << 62;

/// Where a target's memory is accounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Memory {
    /// The v2 memory controller is enabled for the target.
    V2(PathBuf),
    /// The v1 memory cgroup of the target's processes.
    V1(PathBuf),
    /// No memory controller sees the target.
    None,
}

impl Memory {
    pub fn of(dir: &Path) -> Result<Self, Error> {
        if dir.join("memory.current").exists() {
            return Ok(Self::V2(dir.to_path_buf()));
        }
        Ok(match v1::companion(dir, "memory")? {
            Some(v1_dir) => Self::V1(v1_dir),
            None => Self::None,
        })
    }

    /// The effective limit in bytes (the tightest of the cgroup and its ancestors); `None`
    /// when unlimited.
    pub fn limit(&self) -> Result<Option<u64>, Error> {
        match self {
            Self::V2(dir) => {
                let mut limit: Option<u64> = None;
                let mut at = Some(dir.as_path());
                while let Some(dir) = at {
                    let file = dir.join("memory.max");
                    if !file.exists() {
                        break;
                    }
                    if let Ok(value) = read(&file)?.trim().parse::<u64>() {
                        limit = Some(limit.map_or(value, |l| l.min(value)));
                    }
                    at = dir.parent();
                }
                Ok(limit)
            }
            Self::V1(dir) => {
                let stat = read(&dir.join("memory.stat"))?;
                Ok(keyed(&stat, "hierarchical_memory_limit").filter(|l| *l < V1_UNLIMITED))
            }
            Self::None => Ok(None),
        }
    }

    /// Bytes charged now.
    pub fn current(&self) -> Result<Option<u64>, Error> {
        let file = match self {
            Self::V2(dir) => dir.join("memory.current"),
            Self::V1(dir) => dir.join("memory.usage_in_bytes"),
            Self::None => return Ok(None),
        };
        Ok(read(&file)?.trim().parse().ok())
    }

    /// OOM kills so far in the cgroup (and below, on v2).
    pub fn oom_kills(&self) -> Result<Option<u64>, Error> {
        match self {
            Self::V2(dir) => Ok(keyed(&read(&dir.join("memory.events"))?, "oom_kill")),
            Self::V1(dir) => Ok(keyed(&read(&dir.join("memory.oom_control"))?, "oom_kill")),
            Self::None => Ok(None),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::V2(dir) => format!("v2 memory controller at {}", dir.display()),
            Self::V1(dir) => format!("v1 memory cgroup {}", dir.display()),
            Self::None => "no memory controller".to_string(),
        }
    }
}

/// CPU time used by the cgroup and below, in µs (`usage_usec` of v2 `cpu.stat`, which the
/// kernel keeps for every cgroup even without the cpu controller).
pub fn cpu_usage_usec(dir: &Path) -> Result<u64, Error> {
    let file = dir.join("cpu.stat");
    keyed(&read(&file)?, "usage_usec").ok_or_else(|| Error::Io {
        op: "parse",
        path: file,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no usage_usec"),
    })
}

/// The CPUs the target may run on: v2 `cpuset.cpus.effective`, else the v1 cpuset of its
/// processes, else every CPU this daemon may use.
pub fn cpus_allowed(dir: &Path) -> Result<Vec<u32>, Error> {
    let v2 = dir.join("cpuset.cpus.effective");
    if v2.exists() {
        return Ok(parse_cpu_list(&read(&v2)?));
    }
    if let Some(v1_dir) = v1::companion(dir, "cpuset")? {
        let file = v1_dir.join("cpuset.effective_cpus");
        if file.exists() {
            return Ok(parse_cpu_list(&read(&file)?));
        }
    }
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_err(|errno| {
        Error::Io {
            op: "sched_getaffinity",
            path: "/proc/self".into(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        }
    })?;
    Ok((0..nix::sched::CpuSet::count() as u32)
        .filter(|cpu| set.is_set(*cpu as usize).unwrap_or(false))
        .collect())
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(text: &str) -> Vec<u32> {
    text.trim()
        .split(',')
        .filter(|part| !part.is_empty())
        .flat_map(|part| {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            match (first.trim().parse::<u32>(), last.trim().parse::<u32>()) {
                (Ok(a), Ok(b)) if a <= b => (a..=b).collect(),
                _ => Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("\n"), Vec::<u32>::new());
    }
}
