//! `fmod_ret` programs, which aya 0.14 cannot load: the object's `mr_*` programs (compiled as
//! `fexit`, whose code is the same) are relocated against the maps aya already created and
//! loaded with `expected_attach_type = BPF_MODIFY_RETURN`.
//!
//! `fmod_ret` may attach to `security_*` functions and to functions on the error-injection
//! list, and its non-zero return replaces the function's
//! (<https://elixir.bootlin.com/linux/v6.1/source/kernel/bpf/verifier.c#L14960>).
use std::{
    collections::HashSet,
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
};

use aya::{maps::Map, Ebpf};

use super::{btf::KernelBtf, loader, sys};

/// Why an `fmod_ret` program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded object could not be parsed or relocated again.
    #[error("fmod_ret program {name}: relocating the object: {reason}")]
    Relocate { name: String, reason: String },
    /// The program or its map is missing from the object.
    #[error("fmod_ret program {name}: {what} not in the object")]
    Missing { name: String, what: String },
    /// The kernel has no such function to attach to.
    #[error("fmod_ret program {name}: no function {function} in the kernel's BTF")]
    NoFunction { name: String, function: String },
    /// `bpf(BPF_PROG_LOAD)` refused the program.
    #[error("fmod_ret program {name} on {function}: bpf(BPF_PROG_LOAD): {source}")]
    Load {
        name: String,
        function: String,
        source: std::io::Error,
    },
}

/// The object's programs relocated against `ebpf`'s maps, ready to load by name.
pub struct Relocated {
    obj: aya_obj::Object,
}

impl Relocated {
    /// Parses the embedded object again and points its map references at the maps `ebpf`
    /// created (and which the `fmod_ret` programs then share with the others).
    pub fn new(ebpf: &Ebpf) -> Result<Self, Error> {
        let relocate = |reason: String| Error::Relocate {
            name: "*".into(),
            reason,
        };
        let mut obj =
            aya_obj::Object::parse(loader::OBJECT).map_err(|err| relocate(err.to_string()))?;
        let mut fds = Vec::new();
        for name in obj.maps.keys() {
            let fd = ebpf
                .map(name)
                .and_then(map_fd)
                .ok_or_else(|| Error::Missing {
                    name: "*".into(),
                    what: format!("map {name}"),
                })?;
            fds.push((name.clone(), fd));
        }
        let text_sections: HashSet<usize> = obj.functions.keys().map(|(index, _)| *index).collect();
        let maps = obj.maps.clone();
        obj.relocate_maps(
            fds.iter()
                .filter_map(|(name, fd)| maps.get(name).map(|map| (name.as_str(), *fd, map))),
            &text_sections,
        )
        .map_err(|err| relocate(err.to_string()))?;
        obj.relocate_calls(&text_sections)
            .map_err(|err| relocate(err.to_string()))?;
        Ok(Self { obj })
    }

    /// Loads program `name` as `fmod_ret` on kernel function `function`.
    pub fn load(&self, name: &str, function: &str, btf: &KernelBtf) -> Result<OwnedFd, Error> {
        let program = self.obj.programs.get(name).ok_or_else(|| Error::Missing {
            name: name.into(),
            what: "program".into(),
        })?;
        let code = self
            .obj
            .functions
            .get(&program.function_key())
            .ok_or_else(|| Error::Missing {
                name: name.into(),
                what: "program code".into(),
            })?;
        let btf_id = btf.function_id(function).ok_or_else(|| Error::NoFunction {
            name: name.into(),
            function: function.into(),
        })?;
        let insns = &code.instructions;
        // SAFETY: `bpf_insn` is a plain 8-byte C struct; the slice is viewed as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                insns.as_ptr().cast::<u8>(),
                std::mem::size_of_val(&insns[..]),
            )
        };
        sys::load_modify_return(name, bytes, insns.len(), btf_id).map_err(|source| Error::Load {
            name: name.into(),
            function: function.into(),
            source,
        })
    }
}

/// The raw fd of a map aya created (every map kind the object declares).
fn map_fd(map: &Map) -> Option<std::os::fd::RawFd> {
    let data = match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LpmTrie(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuHashMap(d)
        | Map::CgroupStorage(d)
        | Map::LruHashMap(d) => d,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}
