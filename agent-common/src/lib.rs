//! Types shared by the kernel programs (`agent-ebpf`) and the agent.
//!
//! Everything here is `#[repr(C)]` plain data with a layout both sides agree
//! on, plus the small pure functions both sides must compute alike (bucket
//! and operation mapping); the crate is `no_std` so the kernel side can use it.
//!
//! Layout:
//! * [`cpu`]: the per-CPU busy-time accounting of the `sched_switch` program.
//! * [`ctx`]: placeholders for direct tracepoint-field loads, patched at load.
//! * [`hist`]: log2 latency histograms (1 µs .. 67 s) and their bucket function.
//! * [`runq`]: run-queue latency: per-thread state and histogram maps.
//! * [`disk`]: disk IO latency: request and histogram keys, `rwbs` operations.
//! * [`exit`]: process exit and OOM kill events from the ring buffer.
#![no_std]

pub mod cpu;
pub mod ctx;
pub mod disk;
pub mod exit;
pub mod hist;
pub mod runq;
