//! The kernel programs the agent loads: which tracepoint each attaches to
//! and which fields it reads, as a table the loader, the offset reader and
//! the cost accounting share.

use agent_common::ctx;

/// Where a field's offset goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Into the program's global (`#[no_mangle] static`) of this name; the
    /// program reads the field with bpf_probe_read_kernel.
    Global(&'static str),
    /// Into the program's load instructions at this placeholder offset
    /// (agent_common::ctx); the program loads the field directly.
    Load(i16),
}

/// One tracepoint field a program reads.
#[derive(Debug)]
pub struct FieldSpec {
    /// Where its offset goes.
    pub target: Target,
    /// The field in the tracepoint's format file.
    pub field: &'static str,
    /// Widths the program can read (the first is the one it expects).
    pub sizes: &'static [u32],
    /// Older kernels lack the field; the global is then FIELD_ABSENT and the
    /// program falls back (see agent_common::exit).
    pub optional: bool,
}

/// One program and its tracepoint.
#[derive(Debug)]
pub struct ProgramSpec {
    /// The program's name in the object, and the `program` metric label.
    pub name: &'static str,
    /// Tracepoint category (`events/CATEGORY/NAME`).
    pub category: &'static str,
    /// Tracepoint name.
    pub tracepoint: &'static str,
    /// Fields it reads.
    pub fields: &'static [FieldSpec],
    /// Without it the agent has no eBPF at all (busy time needs it).
    pub required: bool,
    /// Attached only when asked for (`[ebpf] attach_noop_baseline`).
    pub baseline: bool,
}

const fn f(global: &'static str, field: &'static str, sizes: &'static [u32]) -> FieldSpec {
    FieldSpec {
        target: Target::Global(global),
        field,
        sizes,
        optional: false,
    }
}

const fn optional(global: &'static str, field: &'static str, sizes: &'static [u32]) -> FieldSpec {
    FieldSpec {
        target: Target::Global(global),
        field,
        sizes,
        optional: true,
    }
}

const fn load(placeholder: i16, field: &'static str, sizes: &'static [u32]) -> FieldSpec {
    FieldSpec {
        target: Target::Load(placeholder),
        field,
        sizes,
        optional: false,
    }
}

/// Every program in the object, in attach order: consumers of a map attach
/// after its producers (wakeups before switches, issue before complete,
/// the status tracepoints before exits).
pub const PROGRAMS: &[ProgramSpec] = &[
    ProgramSpec {
        name: "sched_wakeup",
        category: "sched",
        tracepoint: "sched_wakeup",
        fields: &[load(ctx::SCHED_WAKEUP_PID, "pid", &[4])],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "sched_wakeup_new",
        category: "sched",
        tracepoint: "sched_wakeup_new",
        fields: &[load(ctx::SCHED_WAKEUP_NEW_PID, "pid", &[4])],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "sched_switch",
        category: "sched",
        tracepoint: "sched_switch",
        fields: &[
            load(ctx::SCHED_SWITCH_PREV_PID, "prev_pid", &[4]),
            load(ctx::SCHED_SWITCH_PREV_STATE, "prev_state", &[8]),
            load(ctx::SCHED_SWITCH_NEXT_PID, "next_pid", &[4]),
        ],
        required: true,
        baseline: false,
    },
    ProgramSpec {
        name: "block_rq_issue",
        category: "block",
        tracepoint: "block_rq_issue",
        fields: &[
            load(ctx::BLOCK_RQ_ISSUE_DEV, "dev", &[4]),
            load(ctx::BLOCK_RQ_ISSUE_SECTOR, "sector", &[8]),
        ],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "block_rq_complete",
        category: "block",
        tracepoint: "block_rq_complete",
        fields: &[
            load(ctx::BLOCK_RQ_COMPLETE_DEV, "dev", &[4]),
            load(ctx::BLOCK_RQ_COMPLETE_SECTOR, "sector", &[8]),
            // RWBS_LEN: 8 up to 6.7, 10 since; the program reads 2 bytes.
            load(ctx::BLOCK_RQ_COMPLETE_RWBS, "rwbs", &[8, 10]),
        ],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "sys_enter_exit_group",
        category: "syscalls",
        tracepoint: "sys_enter_exit_group",
        fields: &[f("EXIT_GROUP_ERROR_CODE_OFFSET", "error_code", &[8])],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "signal_generate",
        category: "signal",
        tracepoint: "signal_generate",
        fields: &[
            f("SIGNAL_GENERATE_SIG_OFFSET", "sig", &[4]),
            f("SIGNAL_GENERATE_PID_OFFSET", "pid", &[4]),
            f("SIGNAL_GENERATE_GROUP_OFFSET", "group", &[4]),
            f("SIGNAL_GENERATE_RESULT_OFFSET", "result", &[4]),
        ],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "signal_deliver",
        category: "signal",
        tracepoint: "signal_deliver",
        fields: &[
            f("SIGNAL_DELIVER_SIG_OFFSET", "sig", &[4]),
            f("SIGNAL_DELIVER_SA_HANDLER_OFFSET", "sa_handler", &[8]),
        ],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "sched_process_exec",
        category: "sched",
        tracepoint: "sched_process_exec",
        fields: &[],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "sched_process_exit",
        category: "sched",
        tracepoint: "sched_process_exit",
        fields: &[
            f("SCHED_PROCESS_EXIT_COMM_OFFSET", "comm", &[16]),
            f("SCHED_PROCESS_EXIT_PID_OFFSET", "pid", &[4]),
            optional("SCHED_PROCESS_EXIT_GROUP_DEAD_OFFSET", "group_dead", &[1]),
        ],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "mark_victim",
        category: "oom",
        tracepoint: "mark_victim",
        fields: &[
            f("MARK_VICTIM_PID_OFFSET", "pid", &[4]),
            // A __data_loc string (offset and length in 4 bytes), 6.x only.
            optional("MARK_VICTIM_COMM_OFFSET", "comm", &[4]),
        ],
        required: false,
        baseline: false,
    },
    ProgramSpec {
        name: "sched_switch_noop",
        category: "sched",
        tracepoint: "sched_switch",
        fields: &[],
        required: false,
        baseline: true,
    },
];

/// The spec of the program called `name`.
pub fn spec(name: &str) -> Option<&'static ProgramSpec> {
    PROGRAMS.iter().find(|p| p.name == name)
}
