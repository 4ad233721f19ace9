//! Fault kinds: each turns its part of an `InjectRequest` into what the kernel applies.

pub mod actor;
pub mod errno;
pub mod fill;
pub mod iolimit;
pub mod jitter;
pub mod network;
pub mod process;
pub mod shape;
pub mod signal;
pub mod storage;
pub mod stress;
pub mod window;
