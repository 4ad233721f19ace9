//! Fault kinds: each turns its part of an `InjectRequest` into what the kernel applies.

pub mod network;
pub mod window;
