//! Makes cargo rebuild the object when bpf-linker changes (it links every eBPF binary).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
