//! Reads every program's field offsets from the tracefs format files of the
//! running kernel, once at start, so the programs never depend on a layout
//! compiled into them.

use std::path::Path;

use agent_common::exit::FIELD_ABSENT;

use super::{
    patch::FieldPatch,
    programs::{PROGRAMS, ProgramSpec, Target},
    tracefs::{Format, TracefsError},
};

/// The offsets for every program that can run on this kernel.
#[derive(Debug)]
pub struct Offsets {
    /// Value of each offset global; globals of unavailable programs are 0
    /// (those programs are never loaded).
    pub globals: Vec<(&'static str, u32)>,
    /// Load instructions to relocate, for the programs that can run.
    pub patches: Vec<FieldPatch>,
    /// Programs whose tracepoint or fields this kernel lacks, and why.
    pub unavailable: Vec<(&'static str, TracefsError)>,
}

impl Offsets {
    /// Reads the format files under `tracefs_root` for every program.
    pub fn read(tracefs_root: &Path) -> Self {
        let mut offsets = Offsets {
            globals: Vec::new(),
            patches: Vec::new(),
            unavailable: Vec::new(),
        };
        for spec in PROGRAMS {
            match program_offsets(tracefs_root, spec) {
                Ok(values) => {
                    for (target, field, offset, size) in values {
                        match target {
                            Target::Global(g) => offsets.globals.push((g, offset)),
                            Target::Load(placeholder) => offsets.patches.push(FieldPatch {
                                placeholder,
                                offset,
                                size,
                                field,
                                program: spec.name,
                            }),
                        }
                    }
                }
                Err(e) => {
                    for f in spec.fields {
                        if let Target::Global(g) = f.target {
                            offsets.globals.push((g, 0));
                        }
                    }
                    offsets.unavailable.push((spec.name, e));
                }
            }
        }
        offsets
    }

    /// The offset patched in for `placeholder`.
    pub fn load(&self, placeholder: i16) -> Option<u32> {
        self.patches
            .iter()
            .find(|p| p.placeholder == placeholder)
            .map(|p| p.offset)
    }

    /// The value of `global`.
    pub fn get(&self, global: &str) -> Option<u32> {
        self.globals
            .iter()
            .find(|(g, _)| *g == global)
            .map(|(_, v)| *v)
    }

    /// Why `program` cannot run here, if it cannot.
    pub fn unavailable(&self, program: &str) -> Option<&TracefsError> {
        self.unavailable
            .iter()
            .find(|(p, _)| *p == program)
            .map(|(_, e)| e)
    }
}

/// (target, field name, offset, size) of each field of `spec`.
type Resolved = (Target, &'static str, u32, u32);

fn program_offsets(root: &Path, spec: &ProgramSpec) -> Result<Vec<Resolved>, TracefsError> {
    let format = Format::read(root, spec.category, spec.tracepoint)?;
    spec.fields
        .iter()
        .map(|field| {
            let (offset, size) = match format.field_in(field.field, field.sizes) {
                Ok(f) => (f.offset, f.size),
                Err(_) if field.optional => (FIELD_ABSENT, 0),
                Err(e) => return Err(e),
            };
            Ok((field.target, field.field, offset, size))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use agent_common::ctx;

    use super::*;

    fn fixture(kernel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tracefs")
            .join(kernel)
    }

    #[test]
    fn every_program_has_its_offsets_on_6_18() {
        let o = Offsets::read(&fixture("6.18"));
        assert!(o.unavailable.is_empty(), "{:?}", o.unavailable);
        assert_eq!(o.load(ctx::SCHED_SWITCH_PREV_PID), Some(24));
        assert_eq!(o.load(ctx::SCHED_SWITCH_PREV_STATE), Some(32));
        assert_eq!(o.load(ctx::SCHED_SWITCH_NEXT_PID), Some(56));
        assert_eq!(o.load(ctx::SCHED_WAKEUP_PID), Some(24));
        assert_eq!(o.load(ctx::BLOCK_RQ_ISSUE_SECTOR), Some(16));
        // ioprio (2 bytes at 32) moved rwbs to 34 and widened it to 10.
        assert_eq!(o.load(ctx::BLOCK_RQ_COMPLETE_RWBS), Some(34));
        let rwbs = o.patches.iter().find(|p| p.field == "rwbs").unwrap();
        assert_eq!((rwbs.size, rwbs.program), (10, "block_rq_complete"));
        assert_eq!(o.get("SCHED_PROCESS_EXIT_GROUP_DEAD_OFFSET"), Some(32));
        assert_eq!(o.get("EXIT_GROUP_ERROR_CODE_OFFSET"), Some(16));
        assert_eq!(o.get("SIGNAL_GENERATE_RESULT_OFFSET"), Some(44));
        assert_eq!(o.get("SIGNAL_DELIVER_SA_HANDLER_OFFSET"), Some(24));
        assert_eq!(o.get("MARK_VICTIM_COMM_OFFSET"), Some(12));
    }

    #[test]
    fn older_layouts_of_5_15_move_fields_and_lack_some() {
        let o = Offsets::read(&fixture("5.15"));
        assert!(o.unavailable.is_empty(), "{:?}", o.unavailable);
        // Same sched_switch layout as 6.18.
        assert_eq!(o.load(ctx::SCHED_SWITCH_NEXT_PID), Some(56));
        // No ioprio before 6.x: rwbs follows `error`/`bytes` directly, 8 wide.
        assert_eq!(o.load(ctx::BLOCK_RQ_COMPLETE_RWBS), Some(32));
        assert_eq!(o.load(ctx::BLOCK_RQ_ISSUE_SECTOR), Some(16));
        // No group_dead, no mark_victim comm: the programs fall back.
        assert_eq!(
            o.get("SCHED_PROCESS_EXIT_GROUP_DEAD_OFFSET"),
            Some(FIELD_ABSENT)
        );
        assert_eq!(o.get("MARK_VICTIM_COMM_OFFSET"), Some(FIELD_ABSENT));
        assert_eq!(o.get("MARK_VICTIM_PID_OFFSET"), Some(8));
    }

    #[test]
    fn a_missing_tracepoint_disables_only_its_program() {
        let dir = tempfile::tempdir().unwrap();
        let sched = dir.path().join("events/sched/sched_switch");
        std::fs::create_dir_all(&sched).unwrap();
        std::fs::copy(
            fixture("6.18").join("events/sched/sched_switch/format"),
            sched.join("format"),
        )
        .unwrap();
        let o = Offsets::read(dir.path());
        assert!(o.unavailable("sched_switch").is_none());
        assert_eq!(o.load(ctx::SCHED_SWITCH_NEXT_PID), Some(56));
        let err = o.unavailable("block_rq_issue").unwrap().to_string();
        assert!(err.contains("events/block/block_rq_issue/format"), "{err}");
        // Unavailable programs' loads stay unpatched (they are not loaded),
        // their globals exist with 0 (the object needs them).
        assert_eq!(o.load(ctx::BLOCK_RQ_ISSUE_DEV), None);
        assert_eq!(o.get("MARK_VICTIM_PID_OFFSET"), Some(0));
    }

    #[test]
    fn a_field_of_the_wrong_width_disables_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let tp = dir.path().join("events/sched/sched_wakeup");
        std::fs::create_dir_all(&tp).unwrap();
        std::fs::write(
            tp.join("format"),
            "name: sched_wakeup\nformat:\n\tfield:u64 pid;\toffset:24;\tsize:8;\tsigned:1;\n",
        )
        .unwrap();
        let o = Offsets::read(dir.path());
        let err = o.unavailable("sched_wakeup").unwrap().to_string();
        assert!(err.contains("`pid` is 8 bytes, expected 4"), "{err}");
    }
}
