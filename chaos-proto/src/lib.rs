//! faultline's gRPC API, package `faultline.v1`: message types, client and server stubs.

/// Generated from `proto/faultline/v1/faultline.proto`.
pub mod v1 {
    tonic::include_proto!("faultline.v1");

    /// Encoded `FileDescriptorSet` of the API, for the gRPC reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("faultline_descriptor");
}
