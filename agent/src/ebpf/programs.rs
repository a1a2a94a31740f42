//! The kernel programs the agent loads: which tracepoint each attaches to
//! and which fields (offset globals) it reads, as a table the loader, the
//! offset reader and the cost accounting share.

/// One tracepoint field a program reads through an offset global.
#[derive(Debug)]
pub struct FieldSpec {
    /// The program's global (`#[no_mangle] static`) that holds the offset.
    pub global: &'static str,
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
}

const fn f(global: &'static str, field: &'static str, sizes: &'static [u32]) -> FieldSpec {
    FieldSpec {
        global,
        field,
        sizes,
        optional: false,
    }
}

const fn optional(global: &'static str, field: &'static str, sizes: &'static [u32]) -> FieldSpec {
    FieldSpec {
        global,
        field,
        sizes,
        optional: true,
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
        fields: &[f("SCHED_WAKEUP_PID_OFFSET", "pid", &[4])],
        required: false,
    },
    ProgramSpec {
        name: "sched_wakeup_new",
        category: "sched",
        tracepoint: "sched_wakeup_new",
        fields: &[f("SCHED_WAKEUP_NEW_PID_OFFSET", "pid", &[4])],
        required: false,
    },
    ProgramSpec {
        name: "sched_switch",
        category: "sched",
        tracepoint: "sched_switch",
        fields: &[
            f("SCHED_SWITCH_PREV_PID_OFFSET", "prev_pid", &[4]),
            f("SCHED_SWITCH_PREV_STATE_OFFSET", "prev_state", &[8]),
            f("SCHED_SWITCH_NEXT_PID_OFFSET", "next_pid", &[4]),
        ],
        required: true,
    },
    ProgramSpec {
        name: "block_rq_issue",
        category: "block",
        tracepoint: "block_rq_issue",
        fields: &[
            f("BLOCK_RQ_ISSUE_DEV_OFFSET", "dev", &[4]),
            f("BLOCK_RQ_ISSUE_SECTOR_OFFSET", "sector", &[8]),
        ],
        required: false,
    },
    ProgramSpec {
        name: "block_rq_complete",
        category: "block",
        tracepoint: "block_rq_complete",
        fields: &[
            f("BLOCK_RQ_COMPLETE_DEV_OFFSET", "dev", &[4]),
            f("BLOCK_RQ_COMPLETE_SECTOR_OFFSET", "sector", &[8]),
            // RWBS_LEN: 8 up to 6.7, 10 since; the program reads 8.
            f("BLOCK_RQ_COMPLETE_RWBS_OFFSET", "rwbs", &[8, 10]),
        ],
        required: false,
    },
    ProgramSpec {
        name: "sys_enter_exit_group",
        category: "syscalls",
        tracepoint: "sys_enter_exit_group",
        fields: &[f("EXIT_GROUP_ERROR_CODE_OFFSET", "error_code", &[8])],
        required: false,
    },
    ProgramSpec {
        name: "signal_generate",
        category: "signal",
        tracepoint: "signal_generate",
        fields: &[
            f("SIGNAL_GENERATE_SIG_OFFSET", "sig", &[4]),
            f("SIGNAL_GENERATE_PID_OFFSET", "pid", &[4]),
            f("SIGNAL_GENERATE_RESULT_OFFSET", "result", &[4]),
        ],
        required: false,
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
    },
    ProgramSpec {
        name: "sched_process_exec",
        category: "sched",
        tracepoint: "sched_process_exec",
        fields: &[],
        required: false,
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
    },
];

/// The spec of the program called `name`.
pub fn spec(name: &str) -> Option<&'static ProgramSpec> {
    PROGRAMS.iter().find(|p| p.name == name)
}
