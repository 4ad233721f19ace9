//! Builds faultline's eBPF object (chaos-ebpf) for the BPF target with the nightly toolchain;
//! `src/kernel/loader.rs` embeds it with `include_bytes_aligned!`.
fn main() -> anyhow::Result<()> {
    let package = aya_build::Package {
        name: "chaos-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../chaos-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
