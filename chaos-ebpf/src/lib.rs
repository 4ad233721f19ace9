//! Library target so chaos-daemon can depend on this crate and be rebuilt when it changes.
#![no_std]
