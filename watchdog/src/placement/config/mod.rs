//! The `[planner]`, `[migration]` and `[storage]` sections of the
//! watchdog's configuration: how VM and LUN plans are made, carried out,
//! and how often the capacity and storage loops look. The value checks
//! serde cannot express are in `check`.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

mod check;

pub use check::{Invalid, check};

use crate::{
    lun_mover::{self, command::CommandMoverConfig, file::FileMoverConfig, lvm::LvmMoverConfig},
    migration::{self, command::CommandTemplates, libvirt::LibvirtSettings},
    planner::{Constraints, PlannerSettings},
    rebalancer::Thresholds,
};

/// `[planner]`: VM placement and the capacity loop.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlannerConfig {
    /// Which percentile of a usage window stands for the usage (0 < p <= 1);
    /// 0.9 over ten or more samples ignores any single spike.
    pub percentile: f64,
    /// Host utilization (busy cores / cores) above which a host is
    /// overloaded and rebalancing moves VMs off it (0 < x <= 1).
    pub cpu_threshold: f64,
    /// Rebalancing aims for a standard deviation of host utilization at or
    /// below this (0.05: hosts within about five points of each other).
    pub spread_target: f64,
    /// Most migrations in one rebalance plan (failover plans are never
    /// limited); 0: no limit.
    pub max_migrations: usize,
    /// Seconds between two runs of the capacity loop (a rebalance of the
    /// whole cluster, carried out only with [migration] execute_rebalance);
    /// 0 turns the loop off.
    pub interval_seconds: f64,
    /// The capacity loop plans only once every connected hypervisor has
    /// sent this many telemetry summaries: a percentile of fewer samples
    /// lets one spike decide.
    pub min_samples: u64,
    /// After the capacity loop carried a plan out, it waits this long
    /// before planning again, so that the usage windows it reads hold the
    /// hosts' load after the moves rather than before.
    pub settle_seconds: f64,
    /// Plans kept for the API and the status page (VM and LUN plans
    /// together); the oldest goes first.
    pub history: usize,
    /// Rules every plan honours: anti-affinity groups, pins, unmovable VMs,
    /// tenant reservations, headroom, vCPU allocation ratio. Rules naming
    /// VMs or hosts not in the cluster are left out of a plan (and noted).
    pub constraints: Constraints,
}

/// Default of `max_migrations`: a plan's work stays bounded (at 2 per
/// source and 8 in flight, 20 take a few rounds of a few minutes).
pub const DEFAULT_MAX_MIGRATIONS: usize = 20;
/// Default of `interval_seconds`: a minute, so a host overloaded for the
/// policies' five minutes has been seen by several capacity checks.
pub const DEFAULT_CAPACITY_INTERVAL_SECONDS: f64 = 60.0;
/// Default of `min_samples` (VM and LUN loops): the planner's 0.9
/// percentile ignores any single spike from ten samples on.
pub const DEFAULT_MIN_SAMPLES: u64 = 10;
/// Default of `settle_seconds` (VM and LUN loops): the usage window holds
/// 60 summaries, ten minutes at the agents' default 10 s telemetry.
pub const DEFAULT_SETTLE_SECONDS: f64 = 600.0;
/// Default of `history`: about a day of plans at one an hour, and a page
/// the status page shows quickly.
pub const DEFAULT_HISTORY: usize = 100;

impl Default for PlannerConfig {
    fn default() -> Self {
        let s = PlannerSettings::default();
        Self {
            percentile: s.percentile,
            cpu_threshold: s.cpu_threshold,
            spread_target: s.spread_target,
            max_migrations: DEFAULT_MAX_MIGRATIONS,
            interval_seconds: DEFAULT_CAPACITY_INTERVAL_SECONDS,
            min_samples: DEFAULT_MIN_SAMPLES,
            settle_seconds: DEFAULT_SETTLE_SECONDS,
            history: DEFAULT_HISTORY,
            constraints: Constraints::default(),
        }
    }
}

impl PlannerConfig {
    /// The pure planner's settings.
    pub fn settings(&self) -> PlannerSettings {
        PlannerSettings {
            percentile: self.percentile,
            cpu_threshold: self.cpu_threshold,
            spread_target: self.spread_target,
            max_migrations: (self.max_migrations > 0).then_some(self.max_migrations),
        }
    }
}

/// How VMs are moved between hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActuatorKind {
    /// Not at all: failover and rebalance steps are "not available".
    None,
    /// Through the hosts' agents (`vm-migrate-out`/`vm-migrate-in`).
    Agent,
    /// qemu's QMP sockets, per VM in [migration.qemu.vms].
    Qemu,
    /// `virsh`, per [migration.libvirt].
    Libvirt,
    /// Command templates in [migration.command].
    Command,
    /// In memory only (demo): nothing real moves.
    Simulated,
}

impl ActuatorKind {
    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Agent => "agent",
            Self::Qemu => "qemu",
            Self::Libvirt => "libvirt",
            Self::Command => "command",
            Self::Simulated => "simulated",
        }
    }
}

/// `[migration]`: the executor of VM plans and its actuator.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationConfig {
    /// How VMs move: "agent", "qemu", "libvirt", "command", "simulated",
    /// or "none".
    pub actuator: ActuatorKind,
    /// Carry rebalance plans out (the capacity loop's and steps that do not
    /// ask either way). Off: they are recorded as dry runs. Failover plans
    /// always run.
    pub execute_rebalance: bool,
    /// Most migrations in flight in the cluster at once.
    pub max_concurrent: usize,
    /// Most migrations in flight out of one host.
    pub max_per_source: usize,
    /// Most migrations in flight into one host.
    pub max_per_destination: usize,
    /// Bound on copying one VM, seconds.
    pub migration_timeout_seconds: u64,
    /// Bound on the destination reporting the VM running, seconds.
    pub confirm_timeout_seconds: u64,
    /// Bound on releasing the source copy or undoing a migration, seconds.
    pub cleanup_timeout_seconds: u64,
    /// Pause between two asks whether the destination runs the VM, ms.
    pub confirm_poll_ms: u64,
    /// The qemu actuator's sockets per VM.
    pub qemu: QemuConfig,
    /// The libvirt actuator's virsh and connection URI.
    pub libvirt: LibvirtSettings,
    /// The command actuator's templates; required with actuator "command".
    pub command: Option<CommandTemplates>,
    /// The simulated actuator's copy time.
    pub simulated: SimulatedActuatorConfig,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        let e = migration::ExecutorConfig::default();
        Self {
            actuator: ActuatorKind::Agent,
            execute_rebalance: e.execute_rebalance,
            max_concurrent: e.max_concurrent,
            max_per_source: e.max_per_source,
            max_per_destination: e.max_per_destination,
            migration_timeout_seconds: e.migration_timeout_secs,
            confirm_timeout_seconds: e.confirm_timeout_secs,
            cleanup_timeout_seconds: e.cleanup_timeout_secs,
            confirm_poll_ms: e.confirm_poll_ms,
            qemu: QemuConfig::default(),
            libvirt: LibvirtSettings::default(),
            command: None,
            simulated: SimulatedActuatorConfig::default(),
        }
    }
}

impl MigrationConfig {
    /// The executor's configuration, executing rebalances when `execute`.
    pub fn executor(&self, execute: bool) -> migration::ExecutorConfig {
        migration::ExecutorConfig {
            max_concurrent: self.max_concurrent,
            max_per_source: self.max_per_source,
            max_per_destination: self.max_per_destination,
            migration_timeout_secs: self.migration_timeout_seconds,
            confirm_timeout_secs: self.confirm_timeout_seconds,
            cleanup_timeout_secs: self.cleanup_timeout_seconds,
            confirm_poll_ms: self.confirm_poll_ms,
            execute_rebalance: execute,
        }
    }
}

/// `[migration.qemu]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuConfig {
    /// Per VM name: where its two qemu processes listen.
    #[serde(default)]
    pub vms: BTreeMap<String, QemuVm>,
}

/// `[migration.qemu.vms.NAME]`: one VM's sockets.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuVm {
    /// QMP socket of the running (source) qemu.
    pub source_qmp: PathBuf,
    /// QMP socket of the destination qemu, started with `-incoming`.
    pub destination_qmp: PathBuf,
    /// The destination's `-incoming` address (`tcp:HOST:PORT`, `unix:PATH`).
    pub migrate_uri: String,
}

/// `[migration.simulated]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedActuatorConfig {
    /// Seconds one simulated migration takes.
    pub transfer_seconds: f64,
}

impl Default for SimulatedActuatorConfig {
    fn default() -> Self {
        // A second: long enough to watch in the demo, short for tests.
        Self {
            transfer_seconds: 1.0,
        }
    }
}

/// How LUNs are moved between devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoverKind {
    /// Not at all: move-luns steps are "not available".
    None,
    /// Through the hosts' agents (`lun-migrate-out`/`lun-migrate-in`).
    Agent,
    /// Image files between directory pools, per [storage.file].
    File,
    /// `pvmove` between physical volumes, per [storage.lvm].
    Lvm,
    /// A command template, per [storage.command].
    Command,
    /// In memory only (demo): nothing real moves.
    Simulated,
}

impl MoverKind {
    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Agent => "agent",
            Self::File => "file",
            Self::Lvm => "lvm",
            Self::Command => "command",
            Self::Simulated => "simulated",
        }
    }
}

/// `[storage]`: LUN plans, their executor and mover, and the storage loop.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// How LUNs move: "agent", "file", "lvm", "command", "simulated", or
    /// "none".
    pub mover: MoverKind,
    /// Only record what LUN plans would do (the storage loop's and steps
    /// that do not ask either way). On by default: an operator turns moving
    /// data on.
    pub dry_run: bool,
    /// Directory of the journals of LUN moves in flight; it must survive
    /// restarts. Interrupted moves found there are settled at start.
    pub state_dir: PathBuf,
    /// Moves at once touching one device, as source or destination.
    pub per_device: usize,
    /// Moves at once in all.
    pub parallel: usize,
    /// Longest a LUN move may run before it is cancelled and rolled back,
    /// seconds.
    pub move_timeout_seconds: u64,
    /// Most LUN moves in one plan; 0: no limit.
    pub max_moves: usize,
    /// Seconds between two runs of the storage loop (a LUN plan for every
    /// device); 0 turns it off.
    pub interval_seconds: f64,
    /// The storage loop plans only once every connected host with storage
    /// devices has sent this many telemetry summaries.
    pub min_samples: u64,
    /// After the storage loop carried a plan out, it waits this long before
    /// planning again, so that the IOPS and latency windows it reads hold
    /// the devices' load after the moves.
    pub settle_seconds: f64,
    /// Percentile of the IOPS and latency windows (0 < p <= 1).
    pub percentile: f64,
    /// Thresholds of device groups not named in `groups`.
    pub thresholds: Thresholds,
    /// Thresholds per device group, by the name agents report.
    pub groups: BTreeMap<String, Thresholds>,
    /// The agent mover's settings.
    pub agent: AgentMoverConfig,
    /// The file mover's pools and links; required with mover "file". Pool
    /// names are as the plans name devices: `HOST/POOL`.
    pub file: Option<FileMoverConfig>,
    /// The LVM mover's settings.
    pub lvm: LvmMoverConfig,
    /// The command mover's templates; required with mover "command".
    pub command: Option<CommandMoverConfig>,
    /// The simulated mover's copy rate.
    pub simulated: SimulatedMoverConfig,
}

/// Default of `max_moves`: a plan's copying stays bounded.
pub const DEFAULT_MAX_MOVES: usize = 20;
/// Default of `interval_seconds`: device fill changes slowly; five
/// minutes is well inside the shipped storage policy's ten.
pub const DEFAULT_STORAGE_INTERVAL_SECONDS: f64 = 300.0;

impl Default for StorageConfig {
    fn default() -> Self {
        let e = lun_mover::ExecutorConfig::default();
        Self {
            mover: MoverKind::Agent,
            dry_run: e.dry_run,
            state_dir: e.state_dir,
            per_device: e.per_device,
            parallel: e.parallel,
            move_timeout_seconds: e.move_timeout_seconds,
            max_moves: DEFAULT_MAX_MOVES,
            interval_seconds: DEFAULT_STORAGE_INTERVAL_SECONDS,
            min_samples: DEFAULT_MIN_SAMPLES,
            settle_seconds: DEFAULT_SETTLE_SECONDS,
            percentile: PlannerSettings::default().percentile,
            thresholds: Thresholds::default(),
            groups: BTreeMap::new(),
            agent: AgentMoverConfig::default(),
            file: None,
            lvm: LvmMoverConfig::default(),
            command: None,
            simulated: SimulatedMoverConfig::default(),
        }
    }
}

impl StorageConfig {
    /// The LUN executor's configuration, moving data when `execute`.
    pub fn executor(&self, execute: bool) -> lun_mover::ExecutorConfig {
        lun_mover::ExecutorConfig {
            state_dir: self.state_dir.clone(),
            dry_run: !execute,
            per_device: self.per_device,
            parallel: self.parallel,
            move_timeout_seconds: self.move_timeout_seconds,
        }
    }
}

/// `[storage.agent]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentMoverConfig {
    /// Bound on the destination's inventory showing a copy served after it
    /// answered, seconds.
    pub confirm_timeout_seconds: f64,
}

impl Default for AgentMoverConfig {
    fn default() -> Self {
        Self {
            confirm_timeout_seconds: lun_mover::agent::DEFAULT_CONFIRM_TIMEOUT.as_secs_f64(),
        }
    }
}

/// `[storage.simulated]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedMoverConfig {
    /// Bytes a simulated copy moves per second.
    pub bytes_per_second: u64,
}

impl Default for SimulatedMoverConfig {
    fn default() -> Self {
        // 1 GiB/s: a 10 GbE link, roughly.
        Self {
            bytes_per_second: 1 << 30,
        }
    }
}
