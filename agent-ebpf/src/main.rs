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
//! the agent takes from tracefs `format` files: the hot programs (scheduler,
//! block) load fields directly at placeholder offsets the agent patches in
//! the instructions (agent_common::ctx); the others read them with
//! bpf_probe_read_kernel at offsets the agent writes into globals before
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

/// Loads a field of the tracepoint record at a placeholder offset, which
/// the agent rewrites in this load instruction with the field's real offset
/// (see agent_common::ctx). The volatile load keeps it one instruction with
/// the offset in it.
#[inline(always)]
fn field<T: Copy>(ctx: &aya_ebpf::programs::TracePointContext, placeholder: i16) -> T {
    use aya_ebpf::EbpfContext;
    // SAFETY: the verifier checks the patched load against the record's
    // bounds; an unpatched placeholder is rejected at load.
    unsafe {
        core::ptr::read_volatile(
            ctx.as_ptr()
                .cast::<u8>()
                .add(placeholder as usize)
                .cast::<T>(),
        )
    }
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
