//! hyperwatch's kernel programs, linked into one eBPF object by bpf-linker.
//!
//! Layout:
//! * [`sched_switch`]: per-CPU busy time and run-queue latency (sched_switch).
//! * [`sched_wakeup`]: run-queue wait start (sched_wakeup, sched_wakeup_new).
//! * [`block_rq`]: disk IO latency (block_rq_issue, block_rq_complete).
//! * [`process_exit`]: process exits with status and OOM kills, through a
//!   ring buffer (sched_process_exit/exec, signal_generate/deliver,
//!   sys_enter_exit_group, oom mark_victim).
//!
//! Rust eBPF has no CO-RE, so programs read tracepoint fields only, at offsets
//! the agent takes from tracefs `format` files and writes into globals before
//! loading (see the `*_OFFSET` statics).
#![no_std]
#![no_main]

mod block_rq;
mod process_exit;
mod sched_switch;
mod sched_wakeup;

/// Reads an offset global the loader initialised. The volatile read keeps
/// the compiler from folding the value the object was built with.
#[inline(always)]
fn offset(global: &u32) -> usize {
    // SAFETY: a plain read of a global.
    (unsafe { core::ptr::read_volatile(global) }) as usize
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic, so this is never linked in.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
