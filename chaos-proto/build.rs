//! Compiles `proto/faultline/v1/faultline.proto` (needs `protoc`; `cargo xtask setup` installs it)
//! and writes the descriptor set used by gRPC reflection.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("faultline_descriptor.bin"))
        .compile_protos(&["proto/faultline/v1/faultline.proto"], &["proto"])?;
    Ok(())
}
