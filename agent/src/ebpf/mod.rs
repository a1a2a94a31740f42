//! Loading the kernel programs (agent-ebpf), reading their maps, and
//! measuring and limiting their cost.
//!
//! The object is built by agent/build.rs and embedded in the binary. It is
//! loaded without parsing the kernel's BTF (tracepoint programs need none),
//! which keeps the agent's memory small. Field offsets come from tracefs
//! format files and are written into the programs' globals before loading.
//! A program whose tracepoint this kernel lacks is left out; only
//! `sched_switch` is required. Dropping [`Ebpf`] detaches the programs and
//! frees the maps.
//!
//! Layout:
//! * [`programs`]: the table of programs, tracepoints and fields.
//! * [`offsets`]: reading every program's offsets from tracefs.
//! * [`patch`]: writing offsets into the hot programs' load instructions.
//! * [`tracefs`]: mounting tracefs and parsing format files.
//! * [`budget`]: per-program cost accounting and the over-budget decision.

pub mod budget;
pub mod offsets;
pub mod patch;
pub mod programs;
pub mod tracefs;

use std::{os::fd::OwnedFd, path::Path, sync::Mutex};

use agent_common::{
    cpu::{CPU_BUSY_MAP, CpuBusy},
    disk::{DISK_HIST_MAP, DiskHistKey},
    exit::EVENTS_MAP,
    hist::Log2Hist,
    runq::{NO_VM, RUNQ_HIST_MAP, TASK_SLOT_MASK, VM_TASKS_MAP, VmTask},
};
use aya::{
    EbpfLoader,
    maps::{Array, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{TracePoint, trace_point::TracePointLinkId},
    util::nr_cpus,
};

use self::{offsets::Offsets, programs::PROGRAMS};

/// The eBPF object built from agent-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hyperwatch.bpf.o"));

/// Why the programs could not be loaded, or a map could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("eBPF is disabled in the configuration ([ebpf] enabled = false)")]
    Disabled,
    #[error("loading eBPF needs root (or CAP_BPF and CAP_PERFMON); running as uid {uid}")]
    NotPrivileged { uid: u32 },
    #[error(transparent)]
    Tracefs(#[from] tracefs::TracefsError),
    #[error("required program {program} cannot run on this kernel: {reason}")]
    Required {
        program: &'static str,
        reason: String,
    },
    #[error("loading the eBPF object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("relocating tracepoint fields in the eBPF object: {0}")]
    Patch(#[from] patch::PatchError),
    #[error("program {program}: {source}")]
    Program {
        program: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("program {program} is not attached")]
    NotAttached { program: String },
    #[error("map {map}: {message}")]
    Map { map: &'static str, message: String },
}

/// Where a program stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramStatus {
    /// Loaded and attached to its tracepoint.
    Attached,
    /// This kernel lacks its tracepoint or fields; never loaded.
    Unavailable(String),
    /// The kernel refused it (verifier, attach); the rest run.
    Failed(String),
    /// Detached by the agent (over its budget); the reason.
    Detached(String),
}

/// A program's kernel statistics (BPF_ENABLE_STATS) and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    pub name: &'static str,
    pub status: ProgramStatus,
    /// Times the program ran (0 while stats are off).
    pub run_count: u64,
    /// Nanoseconds it ran in total (0 while stats are off).
    pub run_time_ns: u64,
}

struct ProgramSlot {
    name: &'static str,
    status: ProgramStatus,
    link: Option<TracePointLinkId>,
}

/// The loaded, attached programs and the maps the collectors read.
pub struct Ebpf {
    cpu_busy: Mutex<PerCpuArray<MapData, CpuBusy>>,
    runq_hist: Mutex<PerCpuArray<MapData, Log2Hist>>,
    vm_tasks: Mutex<Array<MapData, VmTask>>,
    disk_hist: Mutex<PerCpuHashMap<MapData, DiskHistKey, Log2Hist>>,
    events: Mutex<Option<RingBuf<MapData>>>,
    programs: Mutex<Vec<ProgramSlot>>,
    /// Keeps the kernel's run-time statistics on while the agent runs.
    stats: Option<OwnedFd>,
    // Holds the programs and their links; dropped last.
    object: Mutex<aya::Ebpf>,
}

impl Ebpf {
    /// Loads and attaches every program this kernel supports.
    pub fn load(tracefs_root: &Path) -> Result<Self, EbpfError> {
        Self::load_with(tracefs_root, false)
    }

    /// [`Ebpf::load`], attaching the no-op baseline program too when
    /// `noop_baseline` (benchmarks).
    pub fn load_with(tracefs_root: &Path, noop_baseline: bool) -> Result<Self, EbpfError> {
        let uid = nix::unistd::geteuid().as_raw();
        if uid != 0 {
            return Err(EbpfError::NotPrivileged { uid });
        }
        tracefs::ensure_mounted(tracefs_root)?;
        let offsets = Offsets::read(tracefs_root);
        for spec in PROGRAMS.iter().filter(|p| p.required) {
            if let Some(e) = offsets.unavailable(spec.name) {
                return Err(EbpfError::Required {
                    program: spec.name,
                    reason: e.to_string(),
                });
            }
        }

        raise_memlock_limit();
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        for (global, value) in &offsets.globals {
            loader.override_global(global, value, true);
        }
        let patched = patch::apply(OBJECT, &offsets.patches)?;
        let mut object = loader.load(patched.bytes())?;

        let mut slots = Vec::with_capacity(PROGRAMS.len());
        for spec in PROGRAMS.iter().filter(|p| noop_baseline || !p.baseline) {
            let (status, link) = match offsets.unavailable(spec.name) {
                Some(e) => (ProgramStatus::Unavailable(e.to_string()), None),
                None => {
                    match attach_tracepoint(&mut object, spec.name, spec.category, spec.tracepoint)
                    {
                        Ok(link) => (ProgramStatus::Attached, Some(link)),
                        Err(e) if spec.required => return Err(e),
                        Err(e) => (ProgramStatus::Failed(e.to_string()), None),
                    }
                }
            };
            if let ProgramStatus::Unavailable(why) | ProgramStatus::Failed(why) = &status {
                tracing::warn!(program = spec.name, reason = %why, "eBPF program not running; the others are");
            }
            slots.push(ProgramSlot {
                name: spec.name,
                status,
                link,
            });
        }

        let stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(error = %e, "cannot enable the kernel's BPF run-time statistics; eBPF cost is not measured");
                None
            }
        };
        Ok(Self {
            cpu_busy: Mutex::new(take_map(&mut object, CPU_BUSY_MAP)?),
            runq_hist: Mutex::new(take_map(&mut object, RUNQ_HIST_MAP)?),
            vm_tasks: Mutex::new(take_map(&mut object, VM_TASKS_MAP)?),
            disk_hist: Mutex::new(take_map(&mut object, DISK_HIST_MAP)?),
            events: Mutex::new(Some(take_map(&mut object, EVENTS_MAP)?)),
            programs: Mutex::new(slots),
            stats,
            object: Mutex::new(object),
        })
    }

    /// Each possible CPU's busy-time record, indexed by CPU number.
    pub fn cpu_busy(&self) -> Result<Vec<CpuBusy>, String> {
        let map = lock(&self.cpu_busy);
        let values = map.get(&0, 0).map_err(|e| e.to_string())?;
        Ok(values.iter().copied().collect())
    }

    /// The run-queue histogram at `index` (see agent_common::runq), summed
    /// over CPUs.
    pub fn runq_hist(&self, index: u32) -> Result<Log2Hist, EbpfError> {
        let map = lock(&self.runq_hist);
        let values = map
            .get(&index, 0)
            .map_err(|e| map_error(RUNQ_HIST_MAP, e))?;
        Ok(sum(values.iter()))
    }

    /// Zeroes the run-queue histogram at `index` (a VM slot being reused).
    pub fn reset_runq_hist(&self, index: u32) -> Result<(), EbpfError> {
        let cpus = nr_cpus().map_err(|(_, e)| EbpfError::Map {
            map: "RUNQ_HIST",
            message: format!("counting possible CPUs: {e}"),
        })?;
        let zero = PerCpuValues::try_from(vec![Log2Hist::default(); cpus]).map_err(|e| {
            EbpfError::Map {
                map: "RUNQ_HIST",
                message: e.to_string(),
            }
        })?;
        lock(&self.runq_hist)
            .set(index, zero, 0)
            .map_err(|e| map_error(RUNQ_HIST_MAP, e))
    }

    /// Every (device, operation) disk-latency histogram, summed over CPUs.
    pub fn disk_hists(&self) -> Result<Vec<(DiskHistKey, Log2Hist)>, EbpfError> {
        let map = lock(&self.disk_hist);
        let mut out = Vec::new();
        for entry in map.iter() {
            let (key, values) = entry.map_err(|e| map_error(DISK_HIST_MAP, e))?;
            out.push((key, sum(values.iter())));
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// Tags thread `tid` with a VM slot, or clears its tag ([`NO_VM`]).
    /// Returns whether the map changed.
    pub fn set_task_vm(&self, tid: u32, vm_slot: u32) -> Result<bool, EbpfError> {
        let mut map = lock(&self.vm_tasks);
        let index = tid & TASK_SLOT_MASK;
        let current = map.get(&index, 0).map_err(|e| map_error(VM_TASKS_MAP, e))?;
        let wanted = if vm_slot == NO_VM {
            if current.tid != tid {
                return Ok(false);
            }
            VmTask {
                tid: 0,
                vm_slot: NO_VM,
            }
        } else {
            VmTask { tid, vm_slot }
        };
        if current == wanted {
            return Ok(false);
        }
        map.set(index, wanted, 0)
            .map_err(|e| map_error(VM_TASKS_MAP, e))?;
        Ok(true)
    }

    /// The ring buffer of process events; the first caller gets it.
    pub fn take_events(&self) -> Option<RingBuf<MapData>> {
        lock(&self.events).take()
    }

    /// Whether the kernel's run-time statistics are on.
    pub fn stats_enabled(&self) -> bool {
        self.stats.is_some()
    }

    /// Every program's status and kernel statistics.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let slots = lock(&self.programs);
        let object = lock(&self.object);
        slots
            .iter()
            .map(|slot| {
                let info = object.program(slot.name).and_then(|p| p.info().ok());
                ProgramStats {
                    name: slot.name,
                    status: slot.status.clone(),
                    run_count: info.as_ref().map_or(0, |i| i.run_count()),
                    run_time_ns: info.map_or(0, |i| i.run_time().as_nanos() as u64),
                }
            })
            .collect()
    }

    /// Detaches `program` from its tracepoint (it stays loaded, so its
    /// statistics stay readable) and records why.
    pub fn detach(&self, program: &str, reason: String) -> Result<(), EbpfError> {
        let mut slots = lock(&self.programs);
        let slot = slots
            .iter_mut()
            .find(|s| s.name == program)
            .ok_or_else(|| EbpfError::NotAttached {
                program: program.to_owned(),
            })?;
        let link = slot.link.take().ok_or_else(|| EbpfError::NotAttached {
            program: program.to_owned(),
        })?;
        let name = slot.name;
        let mut object = lock(&self.object);
        let prog: &mut TracePoint = object
            .program_mut(name)
            .ok_or_else(|| EbpfError::NotAttached {
                program: program.to_owned(),
            })?
            .try_into()
            .map_err(|source| EbpfError::Program {
                program: name,
                source,
            })?;
        prog.detach(link).map_err(|source| EbpfError::Program {
            program: name,
            source,
        })?;
        slot.status = ProgramStatus::Detached(reason);
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sum<'a>(values: impl Iterator<Item = &'a Log2Hist>) -> Log2Hist {
    let mut total = Log2Hist::default();
    for v in values {
        total.merge(v);
    }
    total
}

fn map_error(map: &'static str, e: aya::maps::MapError) -> EbpfError {
    EbpfError::Map {
        map,
        message: e.to_string(),
    }
}

fn take_map<T>(object: &mut aya::Ebpf, name: &'static str) -> Result<T, EbpfError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = object.take_map(name).ok_or(EbpfError::Map {
        map: name,
        message: "not in the object".into(),
    })?;
    T::try_from(map).map_err(|e| map_error(name, e))
}

fn attach_tracepoint(
    object: &mut aya::Ebpf,
    program: &'static str,
    category: &str,
    name: &str,
) -> Result<TracePointLinkId, EbpfError> {
    let wrap = |source| EbpfError::Program { program, source };
    let prog: &mut TracePoint = object
        .program_mut(program)
        .ok_or(EbpfError::Map {
            map: "programs",
            message: format!("program {program} is not in the object"),
        })?
        .try_into()
        .map_err(wrap)?;
    prog.load().map_err(wrap)?;
    prog.attach(category, name).map_err(wrap)
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; lift it so maps
/// load there too. Newer kernels account through the memory cgroup instead.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if rc != 0 {
        tracing::debug!("could not lift RLIMIT_MEMLOCK; fine on kernels 5.11 and later");
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_embedded_object_relocates_for_both_kernel_layouts() {
        for kernel in ["6.18", "5.15"] {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tracefs")
                .join(kernel);
            let offsets = Offsets::read(&root);
            assert!(
                offsets.patches.len() >= 10,
                "{kernel}: {:?}",
                offsets.patches
            );
            patch::apply(OBJECT, &offsets.patches).unwrap_or_else(|e| panic!("{kernel}: {e}"));
        }
    }
}
