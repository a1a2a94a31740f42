//! Loading the kernel programs (agent-ebpf) and reading their maps.
//!
//! The object is built by agent/build.rs and embedded in the binary. It is
//! loaded without parsing the kernel's BTF (tracepoint programs need none),
//! which keeps the agent's memory small. Field offsets come from tracefs
//! format files and are written into the programs' globals before loading.
//! Dropping [`Ebpf`] detaches the programs and frees the maps.

pub mod tracefs;

use std::{path::Path, sync::Mutex};

use agent_common::cpu::{CPU_BUSY_MAP, CpuBusy};
use aya::{
    EbpfLoader,
    maps::{MapData, PerCpuArray},
    programs::TracePoint,
};

/// The eBPF object built from agent-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hyperwatch.bpf.o"));

/// Why the programs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("eBPF is disabled in the configuration ([ebpf] enabled = false)")]
    Disabled,
    #[error("loading eBPF needs root (or CAP_BPF and CAP_PERFMON); running as uid {uid}")]
    NotPrivileged { uid: u32 },
    #[error(transparent)]
    Tracefs(#[from] tracefs::TracefsError),
    #[error("loading the eBPF object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("program {program}: {source}")]
    Program {
        program: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("map {map}: {message}")]
    Map { map: &'static str, message: String },
}

/// The loaded, attached programs and the maps the collectors read.
pub struct Ebpf {
    cpu_busy: Mutex<PerCpuArray<MapData, CpuBusy>>,
    // Holds the programs and their links; dropped last.
    _object: Mutex<aya::Ebpf>,
}

impl Ebpf {
    /// Loads and attaches every program.
    pub fn load(tracefs_root: &Path) -> Result<Self, EbpfError> {
        let uid = nix::unistd::geteuid().as_raw();
        if uid != 0 {
            return Err(EbpfError::NotPrivileged { uid });
        }
        tracefs::ensure_mounted(tracefs_root)?;
        let switch = tracefs::Format::read(tracefs_root, "sched", "sched_switch")?;
        let next_pid = switch.field("next_pid", 4)?.offset;

        raise_memlock_limit();
        let mut object = EbpfLoader::new()
            .btf(None)
            .override_global("SCHED_SWITCH_NEXT_PID_OFFSET", &next_pid, true)
            .load(OBJECT)?;
        attach_tracepoint(&mut object, "sched_switch", "sched", "sched_switch")?;

        let map = object.take_map(CPU_BUSY_MAP).ok_or(EbpfError::Map {
            map: "CPU_BUSY",
            message: "not in the object".into(),
        })?;
        let cpu_busy = PerCpuArray::try_from(map).map_err(|e| EbpfError::Map {
            map: "CPU_BUSY",
            message: e.to_string(),
        })?;
        Ok(Self {
            cpu_busy: Mutex::new(cpu_busy),
            _object: Mutex::new(object),
        })
    }

    /// Each possible CPU's busy-time record, indexed by CPU number.
    pub fn cpu_busy(&self) -> Result<Vec<CpuBusy>, String> {
        let map = self.cpu_busy.lock().unwrap_or_else(|p| p.into_inner());
        let values = map.get(&0, 0).map_err(|e| e.to_string())?;
        Ok(values.iter().copied().collect())
    }
}

fn attach_tracepoint(
    object: &mut aya::Ebpf,
    program: &'static str,
    category: &str,
    name: &str,
) -> Result<(), EbpfError> {
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
    prog.attach(category, name).map_err(wrap)?;
    Ok(())
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
