//! Kernel struct field offsets and function ids read from the running kernel's BTF: stands in
//! for the CO-RE relocations aya cannot do for the eBPF programs' `bpf_probe_read_kernel`.
use std::{collections::HashMap, ops::Range};

/// Where the running kernel exposes its own BTF.
const SYS_FS_PATH: &str = "/sys/kernel/btf/vmlinux";
/// Names the bytes given to `KernelBtf::parse` in errors.
const IN_MEMORY: &str = "(in memory)";

const MAGIC: u16 = 0xeb9f;
const VERSION: u8 = 1;
/// `struct btf_header` up to `str_len`; later kernels may append fields, which `hdr_len` skips.
const HEADER_LEN: usize = 24;
/// `struct btf_type`: name_off, info, size_or_type.
const TYPE_LEN: usize = 12;
/// `struct btf_member`: name_off, type, offset.
const MEMBER_LEN: usize = 12;

const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// A corrupt file could chain qualifiers or nest anonymous members in a cycle; real kernels
/// stay far below this depth.
const MAX_DEPTH: usize = 64;
/// BTF does not record pointer sizes; faultline runs on 64-bit kernels only.
const POINTER_SIZE: u32 = 8;

/// Why BTF could not be read, or a field path not resolved in it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the BTF file failed.
    #[error("BTF {path}: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    /// The bytes are not little-endian BTF version 1, or are truncated or corrupt.
    #[error("BTF {origin}: {reason}")]
    Format {
        origin: &'static str,
        reason: String,
    },
    /// A field path is not `struct.member[.member...]`.
    #[error("field path {path:?} is not struct.member[.member...]")]
    Path { path: String },
    /// No struct with members has that name.
    #[error("no struct {name} in BTF (in {path})")]
    NoStruct { name: String, path: String },
    /// The struct or union has no member of that name, also not inside anonymous members.
    #[error("{container} has no member {member} (in {path})")]
    NoMember {
        container: String,
        member: String,
        path: String,
    },
    /// The field is a bitfield, which has no byte offset to read at.
    #[error("{field} is a bitfield (in {path})")]
    Bitfield { field: String, path: String },
    /// A field that is not a struct or union is followed by another component.
    #[error("{field} is {found}, not a struct or union (in {path})")]
    NotComposite {
        field: String,
        found: String,
        path: String,
    },
    /// The field's type has no size (a function, void or a forward declaration).
    #[error("{field} is {found}, which has no size (in {path})")]
    NoSize {
        field: String,
        found: String,
        path: String,
    },
}

/// One entry of the type section; kind-specific data is read from the buffer when needed.
#[derive(Clone, Copy)]
struct Type {
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    name_off: u32,
    size_or_type: u32,
    /// Position in the buffer of the data following `struct btf_type`.
    data: usize,
}

impl Type {
    /// Type id 0, which BTF reserves for `void`.
    const VOID: Type = Type {
        kind: 0,
        kind_flag: false,
        vlen: 0,
        name_off: 0,
        size_or_type: 0,
        data: 0,
    };

    fn is_composite(&self) -> bool {
        matches!(self.kind, KIND_STRUCT | KIND_UNION)
    }

    fn is_qualifier(&self) -> bool {
        matches!(
            self.kind,
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
        )
    }
}

/// A member found in a struct or union, with its offset from the start of that struct.
struct Found {
    bits: u64,
    type_id: u32,
    /// Bitfield size in bits, 0 when the container has no kind_flag or the member is whole.
    bitfield_size: u32,
}

/// The field a path leads to.
struct Field {
    bits: u64,
    type_id: u32,
}

/// The running kernel's BTF, parsed once.
pub struct KernelBtf {
    origin: &'static str,
    bytes: Vec<u8>,
    strings: Range<usize>,
    /// Indexed by type id.
    types: Vec<Type>,
    structs: HashMap<Box<[u8]>, u32>,
    functions: HashMap<Box<[u8]>, u32>,
}

impl KernelBtf {
    /// Reads and parses `/sys/kernel/btf/vmlinux`.
    pub fn from_sys_fs() -> Result<Self, Error> {
        let bytes = std::fs::read(SYS_FS_PATH).map_err(|source| Error::Read {
            path: SYS_FS_PATH,
            source,
        })?;
        Self::parse_from(bytes, SYS_FS_PATH)
    }

    /// Parses BTF already in memory.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, Error> {
        Self::parse_from(bytes, IN_MEMORY)
    }

    fn parse_from(bytes: Vec<u8>, origin: &'static str) -> Result<Self, Error> {
        let (type_section, strings) = sections(&bytes, origin)?;
        let mut btf = Self {
            origin,
            bytes,
            strings,
            types: Vec::new(),
            structs: HashMap::new(),
            functions: HashMap::new(),
        };
        btf.types = btf.read_types(type_section)?;
        btf.index_names()?;
        Ok(btf)
    }

    /// Byte offset of a field reached through nested struct members, e.g. `file.f_path.dentry`
    /// = offset of `f_path` in `struct file` + offset of `dentry` in `struct path`.
    ///
    /// The first component is a struct name; each next one a member, looked up through
    /// anonymous struct and union members too, with typedefs and qualifiers resolved.
    pub fn offset_of(&self, path: &str) -> Result<u32, Error> {
        let field = self.field(path)?;
        u32::try_from(field.bits / 8).map_err(|_| self.corrupt(format!("offset of {path}")))
    }

    /// Size in bytes of the resolved type of the field at `path` (see `offset_of`).
    pub fn size_of_field(&self, path: &str) -> Result<u32, Error> {
        let field = self.field(path)?;
        let resolved = self.resolve(field.type_id)?;
        self.size_of_type(resolved, 0)?
            .ok_or_else(|| Error::NoSize {
                field: path.to_owned(),
                found: self.describe(resolved),
                path: path.to_owned(),
            })
    }

    /// The BTF type id of the function `name` (kind FUNC), as `attach_btf_id` wants it.
    pub fn function_id(&self, name: &str) -> Option<u32> {
        self.functions.get(name.as_bytes()).copied()
    }

    fn read_types(&self, section: Range<usize>) -> Result<Vec<Type>, Error> {
        // A rough guess from vmlinux's average entry size, to avoid regrowing the vector.
        let mut types = Vec::with_capacity(section.len() / 32);
        types.push(Type::VOID);
        let mut pos = section.start;
        while pos < section.end {
            let ty = self.read_type(pos, types.len())?;
            let end = ty.data.checked_add(self.data_len(&ty, types.len())?);
            pos = end
                .filter(|&end| end <= section.end)
                .ok_or_else(|| self.corrupt(format!("type id {} is truncated", types.len())))?;
            types.push(ty);
        }
        Ok(types)
    }

    fn read_type(&self, pos: usize, id: usize) -> Result<Type, Error> {
        let truncated = || self.corrupt(format!("type id {id} is truncated"));
        let name_off = self.u32_at(pos).ok_or_else(truncated)?;
        let info = self.u32_at(pos + 4).ok_or_else(truncated)?;
        let size_or_type = self.u32_at(pos + 8).ok_or_else(truncated)?;
        Ok(Type {
            kind: ((info >> 24) & 0x1f) as u8,
            kind_flag: info >> 31 == 1,
            vlen: (info & 0xffff) as u16,
            name_off,
            size_or_type,
            data: pos + TYPE_LEN,
        })
    }

    /// Length of the data following `struct btf_type`, which must be known to find the next.
    fn data_len(&self, ty: &Type, id: usize) -> Result<usize, Error> {
        let vlen = usize::from(ty.vlen);
        Ok(match ty.kind {
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
            | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
            KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION => MEMBER_LEN * vlen,
            KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
            KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
            kind => return Err(self.corrupt(format!("type id {id} has unknown kind {kind}"))),
        })
    }

    fn index_names(&mut self) -> Result<(), Error> {
        let mut structs = HashMap::new();
        let mut functions = HashMap::new();
        for (id, ty) in self.types.iter().enumerate() {
            // Several structs may share a name; an empty one is likely a placeholder.
            let index = match ty.kind {
                KIND_STRUCT if ty.vlen > 0 => &mut structs,
                KIND_FUNC => &mut functions,
                _ => continue,
            };
            if ty.name_off == 0 {
                continue;
            }
            let name = self.name(ty.name_off)?;
            let id = u32::try_from(id).map_err(|_| self.corrupt("too many types".into()))?;
            index.entry(Box::from(name)).or_insert(id);
        }
        self.structs = structs;
        self.functions = functions;
        Ok(())
    }

    fn field(&self, path: &str) -> Result<Field, Error> {
        let mut parts = path.split('.');
        let root = parts.next().unwrap_or_default();
        let members: Vec<&str> = parts.collect();
        if root.is_empty() || members.is_empty() || members.iter().any(|m| m.is_empty()) {
            return Err(Error::Path {
                path: path.to_owned(),
            });
        }
        let mut type_id = *self
            .structs
            .get(root.as_bytes())
            .ok_or_else(|| Error::NoStruct {
                name: root.to_owned(),
                path: path.to_owned(),
            })?;
        let mut bits = 0u64;
        let mut reached = root.len();
        for member in members {
            let found = self.step(path, &path[..reached], type_id, member)?;
            bits += found.bits;
            type_id = found.type_id;
            reached += 1 + member.len();
        }
        Ok(Field { bits, type_id })
    }

    /// Goes from the field `field` (of type `type_id`) to its member `member`.
    fn step(&self, path: &str, field: &str, type_id: u32, member: &str) -> Result<Found, Error> {
        let container = self.resolve(type_id)?;
        if !self.type_at(container)?.is_composite() {
            return Err(Error::NotComposite {
                field: field.to_owned(),
                found: self.describe(container),
                path: path.to_owned(),
            });
        }
        let found = self
            .find_member(container, member.as_bytes(), 0)?
            .ok_or_else(|| Error::NoMember {
                container: self.describe(container),
                member: member.to_owned(),
                path: path.to_owned(),
            })?;
        if found.bitfield_size != 0 || found.bits % 8 != 0 || self.is_partial_int(found.type_id)? {
            return Err(Error::Bitfield {
                field: format!("{field}.{member}"),
                path: path.to_owned(),
            });
        }
        Ok(found)
    }

    /// Finds `name` among the members of struct or union `id`, or inside its anonymous ones.
    fn find_member(&self, id: u32, name: &[u8], depth: usize) -> Result<Option<Found>, Error> {
        if depth > MAX_DEPTH {
            return Err(self.corrupt(format!("anonymous members of type id {id} nest too deep")));
        }
        let ty = self.type_at(id)?;
        for index in 0..usize::from(ty.vlen) {
            let (name_off, type_id, offset) = self.member_at(&ty, index)?;
            let (bits, bitfield_size) = if ty.kind_flag {
                (offset & 0x00ff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            if name_off != 0 {
                if self.name(name_off)? == name {
                    return Ok(Some(Found {
                        bits: bits.into(),
                        type_id,
                        bitfield_size,
                    }));
                }
                continue;
            }
            let inner = self.resolve(type_id)?;
            if !self.type_at(inner)?.is_composite() {
                continue;
            }
            if let Some(found) = self.find_member(inner, name, depth + 1)? {
                return Ok(Some(Found {
                    bits: found.bits + u64::from(bits),
                    ..found
                }));
            }
        }
        Ok(None)
    }

    /// Member `index` of a struct or union: name_off, type, offset.
    fn member_at(&self, ty: &Type, index: usize) -> Result<(u32, u32, u32), Error> {
        let pos = ty.data + index * MEMBER_LEN;
        let read = |at: usize| {
            self.u32_at(at)
                .ok_or_else(|| self.corrupt(format!("member at byte {pos} is truncated")))
        };
        Ok((read(pos)?, read(pos + 4)?, read(pos + 8)?))
    }

    /// An int member narrower than its type is a bitfield even without the kind_flag encoding.
    fn is_partial_int(&self, type_id: u32) -> Result<bool, Error> {
        let ty = self.type_at(self.resolve(type_id)?)?;
        if ty.kind != KIND_INT {
            return Ok(false);
        }
        let encoding = self
            .u32_at(ty.data)
            .ok_or_else(|| self.corrupt(format!("int type id {type_id} is truncated")))?;
        let bits = encoding & 0xff;
        let offset = (encoding >> 16) & 0xff;
        Ok(offset != 0 || u64::from(bits) != u64::from(ty.size_or_type) * 8)
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn resolve(&self, mut id: u32) -> Result<u32, Error> {
        for _ in 0..MAX_DEPTH {
            let ty = self.type_at(id)?;
            if !ty.is_qualifier() {
                return Ok(id);
            }
            id = ty.size_or_type;
        }
        Err(self.corrupt(format!("typedefs from type id {id} chain too long")))
    }

    /// Size in bytes of resolved type `id`, `None` for types without one.
    fn size_of_type(&self, id: u32, depth: usize) -> Result<Option<u32>, Error> {
        if depth > MAX_DEPTH {
            return Err(self.corrupt(format!("arrays of type id {id} nest too deep")));
        }
        let ty = self.type_at(id)?;
        match ty.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT
            | KIND_DATASEC => Ok(Some(ty.size_or_type)),
            KIND_PTR => Ok(Some(POINTER_SIZE)),
            KIND_ARRAY => self.size_of_array(&ty, depth),
            _ => Ok(None),
        }
    }

    fn size_of_array(&self, ty: &Type, depth: usize) -> Result<Option<u32>, Error> {
        let truncated = || self.corrupt(format!("array at byte {} is truncated", ty.data));
        let elem = self.u32_at(ty.data).ok_or_else(truncated)?;
        let count = self.u32_at(ty.data + 8).ok_or_else(truncated)?;
        let Some(elem_size) = self.size_of_type(self.resolve(elem)?, depth + 1)? else {
            return Ok(None);
        };
        elem_size
            .checked_mul(count)
            .map(Some)
            .ok_or_else(|| self.corrupt(format!("array at byte {} is too large", ty.data)))
    }

    fn type_at(&self, id: u32) -> Result<Type, Error> {
        usize::try_from(id)
            .ok()
            .and_then(|index| self.types.get(index))
            .copied()
            .ok_or_else(|| self.corrupt(format!("type id {id} does not exist")))
    }

    /// The NUL-terminated string at `offset` in the string section.
    fn name(&self, offset: u32) -> Result<&[u8], Error> {
        let start = usize::try_from(offset)
            .ok()
            .and_then(|offset| self.strings.start.checked_add(offset))
            .filter(|&start| start < self.strings.end)
            .ok_or_else(|| self.corrupt(format!("string offset {offset} is out of range")))?;
        let rest = &self.bytes[start..self.strings.end];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.corrupt(format!("string at offset {offset} is unterminated")))?;
        Ok(&rest[..len])
    }

    /// How errors name a type: `struct path`, `anonymous union`, `int unsigned int`, `pointer`.
    fn describe(&self, id: u32) -> String {
        let Ok(ty) = self.type_at(id) else {
            return format!("type id {id}");
        };
        let kind = match ty.kind {
            0 => "void",
            KIND_INT => "int",
            KIND_PTR => "pointer",
            KIND_ARRAY => "array",
            KIND_STRUCT => "struct",
            KIND_UNION => "union",
            KIND_ENUM | KIND_ENUM64 => "enum",
            KIND_FWD => "forward declaration",
            KIND_FUNC => "function",
            KIND_FUNC_PROTO => "function prototype",
            KIND_FLOAT => "float",
            _ => "type",
        };
        match self.name(ty.name_off) {
            Ok(name) if !name.is_empty() => format!("{kind} {}", String::from_utf8_lossy(name)),
            _ if ty.is_composite() => format!("anonymous {kind}"),
            _ => kind.to_owned(),
        }
    }

    fn u32_at(&self, pos: usize) -> Option<u32> {
        u32_at(&self.bytes, pos)
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Format {
            origin: self.origin,
            reason,
        }
    }
}

/// Checks the header and returns where the type and string sections lie in `bytes`.
fn sections(bytes: &[u8], origin: &'static str) -> Result<(Range<usize>, Range<usize>), Error> {
    let corrupt = |reason: String| Error::Format { origin, reason };
    let magic = bytes
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| corrupt("shorter than the magic".into()))?;
    if magic == MAGIC.swap_bytes() {
        return Err(corrupt("big-endian BTF is not supported".into()));
    }
    if magic != MAGIC {
        return Err(corrupt(format!(
            "bad magic {magic:#06x}, expected {MAGIC:#06x}"
        )));
    }
    let version = *bytes
        .get(2)
        .ok_or_else(|| corrupt("header is truncated".into()))?;
    if version != VERSION {
        return Err(corrupt(format!("unsupported version {version}")));
    }
    let field = |pos: usize| {
        u32_at(bytes, pos)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| corrupt("header is truncated".into()))
    };
    let hdr_len = field(4)?;
    if hdr_len < HEADER_LEN {
        return Err(corrupt(format!("header length {hdr_len} is too short")));
    }
    let section = |name: &str, off: usize, len: usize| {
        hdr_len
            .checked_add(off)
            .and_then(|start| Some(start..start.checked_add(len)?))
            .filter(|range| range.end <= bytes.len())
            .ok_or_else(|| corrupt(format!("{name} section runs past the end of the file")))
    };
    let types = section("type", field(8)?, field(12)?)?;
    let strings = section("string", field(16)?, field(20)?)?;
    Ok((types, strings))
}

fn u32_at(bytes: &[u8], pos: usize) -> Option<u32> {
    let end = pos.checked_add(4)?;
    let raw = bytes.get(pos..end)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's BTF, or `None` (with a note) where the kernel exposes none.
    fn host() -> Option<KernelBtf> {
        if !std::path::Path::new(SYS_FS_PATH).exists() {
            eprintln!("{SYS_FS_PATH} is absent; skipping");
            return None;
        }
        let started = std::time::Instant::now();
        let btf = KernelBtf::from_sys_fs().expect("parse host BTF");
        eprintln!("parsed {SYS_FS_PATH} in {:?}", started.elapsed());
        Some(btf)
    }

    #[test]
    fn offsets_that_hold_on_any_x86_64_kernel() {
        let Some(btf) = host() else { return };
        assert_eq!(btf.offset_of("path.mnt").expect("path.mnt"), 0);
        assert_eq!(btf.offset_of("path.dentry").expect("path.dentry"), 8);
        assert_eq!(btf.size_of_field("path.dentry").expect("size"), 8);
        assert_eq!(btf.size_of_field("inode.i_ino").expect("inode.i_ino"), 8);
        let f_path = btf.offset_of("file.f_path").expect("file.f_path");
        let dentry = btf.offset_of("file.f_path.dentry").expect("f_path.dentry");
        assert_eq!(dentry, f_path + 8);
    }

    #[test]
    fn fields_the_programs_read_are_found() {
        let Some(btf) = host() else { return };
        for path in [
            "file.f_path",
            "file.f_path.dentry",
            "dentry.d_parent",
            "dentry.d_inode",
            "dentry.d_sb",
            "inode.i_sb",
            "inode.i_mode",
            "inode.i_ino",
            "super_block.s_dev",
            "task_struct.files",
            "files_struct.fdt",
            "fdtable.fd",
            "fdtable.max_fds",
        ] {
            let offset = btf.offset_of(path).expect(path);
            let size = btf.size_of_field(path).expect(path);
            eprintln!("{path}: offset {offset}, size {size}");
        }
        assert!(btf.function_id("security_file_open").is_some());
        assert!(btf.function_id("no_such_function_in_any_kernel").is_none());
    }

    #[test]
    fn missing_structs_and_members_are_named() {
        let Some(btf) = host() else { return };
        let err = btf.offset_of("file.f_pathx.dentry").expect_err("member");
        assert_eq!(
            err.to_string(),
            "struct file has no member f_pathx (in file.f_pathx.dentry)"
        );
        let err = btf.offset_of("no_such_struct.x").expect_err("struct");
        assert_eq!(
            err.to_string(),
            "no struct no_such_struct in BTF (in no_such_struct.x)"
        );
        let err = btf.offset_of("path.dentry.d_inode").expect_err("pointer");
        assert!(matches!(err, Error::NotComposite { .. }), "{err}");
        for malformed in ["", "path", "path.", ".dentry", "path..dentry"] {
            assert!(matches!(btf.offset_of(malformed), Err(Error::Path { .. })));
        }
    }

    #[test]
    fn bitfields_are_refused() {
        let Some(btf) = host() else { return };
        // One-bit fields of task_struct since Linux 2.6; the first starts on a byte boundary,
        // so only the bitfield size tells it apart.
        for path in ["task_struct.sched_reset_on_fork", "task_struct.in_execve"] {
            let err = btf.offset_of(path).expect_err(path);
            assert!(matches!(err, Error::Bitfield { .. }), "{err}");
        }
    }

    #[test]
    fn truncated_or_corrupt_bytes_are_errors() {
        let Ok(bytes) = std::fs::read(SYS_FS_PATH) else {
            eprintln!("{SYS_FS_PATH} is absent; skipping");
            return;
        };
        for len in [0, 1, 3, 23, 100, bytes.len() / 2, bytes.len() - 1] {
            let result = KernelBtf::parse(bytes[..len].to_vec());
            assert!(result.is_err(), "{len} bytes parsed");
        }
        let mut swapped = bytes.clone();
        swapped.swap(0, 1);
        let err = KernelBtf::parse(swapped).err().expect("big-endian magic");
        assert!(err.to_string().contains("big-endian"), "{err}");

        // Member type ids pointing nowhere must fail lookups, not panic.
        let mut bad_types = bytes.clone();
        let btf = KernelBtf::parse(bytes).expect("parse");
        let path = btf.type_at(btf.structs[&b"path"[..]]).expect("path");
        bad_types[path.data + 4..path.data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let bad = KernelBtf::parse(bad_types).expect("parse");
        assert!(bad.offset_of("path.dentry").is_ok());
        assert!(matches!(
            bad.size_of_field("path.mnt"),
            Err(Error::Format { .. })
        ));
    }

    /// Offset `pahole -C struct` prints for `member`, if pahole is installed.
    fn pahole_offset(strukt: &str, member: &str) -> Option<u32> {
        let out = std::process::Command::new("pahole")
            .args(["-C", strukt])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains(&format!(" {member};")))?;
        let comment = line.split("/*").nth(1)?;
        comment.split_whitespace().next()?.parse().ok()
    }

    #[test]
    fn offsets_match_pahole() {
        let Some(btf) = host() else { return };
        for (strukt, member) in [
            ("path", "dentry"),
            ("file", "f_path"),
            ("dentry", "d_inode"),
            ("dentry", "d_sb"),
            ("inode", "i_sb"),
            ("task_struct", "files"),
        ] {
            let Some(expected) = pahole_offset(strukt, member) else {
                eprintln!("pahole gave no offset for {strukt}.{member}; skipping");
                continue;
            };
            let path = format!("{strukt}.{member}");
            assert_eq!(btf.offset_of(&path).expect(&path), expected, "{path}");
        }
    }
}
