//! Types shared by the kernel programs (`agent-ebpf`) and the agent.
//!
//! Everything here is `#[repr(C)]` plain data with a layout both sides agree
//! on; the crate is `no_std` so the kernel side can use it.
//!
//! Layout:
//! * [`cpu`]: the per-CPU busy-time accounting of the `sched_switch` program.
#![no_std]

pub mod cpu;
