//! hyperwatch's kernel programs, linked into one eBPF object by bpf-linker.
//!
//! Layout:
//! * [`sched_switch`]: per-CPU busy time from the `sched/sched_switch` tracepoint.
//!
//! Rust eBPF has no CO-RE, so programs read tracepoint fields only, at offsets
//! the agent takes from tracefs `format` files and writes into globals before
//! loading (see the `*_OFFSET` statics).
#![no_std]
#![no_main]

mod sched_switch;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic, so this is never linked in.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
