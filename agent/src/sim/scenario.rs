//! The scenario file of a simulated host (`--simulate FILE`): the host, its
//! VMs or storage devices and LUNs, its services, and timed phases that
//! change them. TOML; sizes are bytes or strings such as "8 GiB"; times
//! are seconds or strings such as "1m30s". Errors name the file, line and
//! column, or the item and field.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

pub use super::units::{Bytes, Seconds, parse_bytes};

/// A scenario that cannot be read or does not check.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {place}: {message}")]
    Invalid {
        file: String,
        place: String,
        message: String,
    },
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The simulated machine.
    pub host: HostSpec,
    /// VMs running at the start (a hypervisor).
    #[serde(default)]
    pub vms: Vec<VmSpec>,
    /// Storage devices (a storage host).
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// LUNs on those devices.
    #[serde(default)]
    pub luns: Vec<LunSpec>,
    /// Services watched on the host, up at the start.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Changes at set times after the start, in any order.
    #[serde(default)]
    pub phases: Vec<PhaseSpec>,
}

/// What the host is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// Runs VMs: a placement target of the VM planner.
    Hypervisor,
    /// Serves LUNs from its devices.
    Storage,
}

/// The simulated machine.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host id used when the agent configuration's [stream] host_id is empty.
    pub name: String,
    /// "hypervisor" or "storage".
    pub kind: HostKind,
    /// Logical CPUs.
    pub cores: u32,
    /// Physical memory.
    pub memory: Bytes,
    /// Seed of the load noise: the same seed gives the same figures.
    #[serde(default)]
    pub seed: u64,
    /// Seconds between simulation steps.
    #[serde(default = "default_tick")]
    pub tick: Seconds,
    /// Cores the host itself keeps busy (the hypervisor, its daemons).
    #[serde(default)]
    pub base_cpu_cores: f64,
    /// Memory the host itself uses.
    #[serde(default)]
    pub base_memory: Bytes,
    /// Relative jitter of every load figure at each step (0.05: within 5 %).
    #[serde(default)]
    pub noise: f64,
    /// How fast VM memory and LUN data are copied in a migration, per second.
    #[serde(default = "default_copy_rate")]
    pub copy_per_second: Bytes,
    /// Bytes per IO, for throughput figures.
    #[serde(default = "default_io_size")]
    pub io_size: Bytes,
}

/// 0.5 s: telemetry at 1 s sees a fresh value each time.
fn default_tick() -> Seconds {
    Seconds(0.5)
}

/// 1 GiB/s: a 10 GbE migration link, roughly.
fn default_copy_rate() -> Bytes {
    Bytes(1 << 30)
}

/// 16 KiB: a typical mixed database/VM-image IO.
fn default_io_size() -> Bytes {
    Bytes(16 << 10)
}

/// A VM at the start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    /// Name, unique in the cluster.
    pub name: String,
    pub vcpus: u32,
    /// Memory the VM was given.
    pub memory: Bytes,
    /// Resident memory (what a migration copies); default: all of `memory`.
    #[serde(default)]
    pub resident: Option<Bytes>,
    /// Busy cores at the start.
    #[serde(default)]
    pub cpu_cores: f64,
    /// Amplitude of a sine on top of `cpu_cores`, in cores (a daily curve,
    /// sped up).
    #[serde(default)]
    pub cpu_amplitude: f64,
    /// Period of that sine.
    #[serde(default = "default_period")]
    pub cpu_period: Seconds,
    /// Owning tenant.
    #[serde(default)]
    pub tenant: String,
    /// Failover order: higher first.
    #[serde(default)]
    pub priority: i32,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Why it cannot move (a passed-through device); empty: it can.
    #[serde(default)]
    pub unmovable: String,
}

/// Ten minutes: a "day" that shows its curve within a demo.
fn default_period() -> Seconds {
    Seconds(600.0)
}

/// A storage device.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Name, unique on the host.
    pub id: String,
    /// The group its LUNs move within.
    pub group: String,
    /// Whether the group spans hosts (LUNs may move to another host's
    /// devices of the same group).
    #[serde(default)]
    pub shared: bool,
    pub capacity: Bytes,
    /// Bytes used by data other than the LUNs.
    #[serde(default)]
    pub used: Bytes,
    /// Growth of that data, per second.
    #[serde(default)]
    pub fill_per_second: Bytes,
    /// IOs per second besides the LUNs'.
    #[serde(default)]
    pub iops: f64,
    /// Mean IO latency, milliseconds.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: f64,
}

/// 1 ms: a healthy SSD-backed device.
fn default_latency_ms() -> f64 {
    1.0
}

/// A LUN.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunSpec {
    /// Name, unique in the cluster.
    pub id: String,
    /// The device holding it.
    pub device: String,
    /// Provisioned size.
    pub size: Bytes,
    /// Allocated bytes; default: all of `size`.
    #[serde(default)]
    pub used: Option<Bytes>,
    /// Growth of the allocation, per second (up to `size`).
    #[serde(default)]
    pub fill_per_second: Bytes,
    #[serde(default)]
    pub iops: f64,
    /// Must not move.
    #[serde(default)]
    pub pinned: bool,
    /// Who uses it (a VM name).
    #[serde(default)]
    pub consumer: String,
}

/// A watched service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
}

/// A service state a phase sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    Up,
    Down,
}

/// Something a phase does to the host as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostEvent {
    /// The host dies: the agent process exits at once, its stream breaks
    /// and its heartbeats stop.
    Crash,
}

/// One change at one time: a target (exactly one of `vm`, `device`, `lun`,
/// `service`, `host`) and what changes about it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Time after the start.
    pub at: Seconds,
    /// A VM: takes `cpu_cores`, `resident`.
    pub vm: Option<String>,
    /// A device: takes `fill_per_second`, `iops`, `latency_ms`.
    pub device: Option<String>,
    /// A LUN: takes `fill_per_second`, `iops`.
    pub lun: Option<String>,
    /// A service: takes `state`.
    pub service: Option<String>,
    /// The host: "crash".
    pub host: Option<HostEvent>,
    /// New busy cores of the VM.
    pub cpu_cores: Option<f64>,
    /// New resident memory of the VM.
    pub resident: Option<Bytes>,
    /// New growth per second of the device's other data or the LUN.
    pub fill_per_second: Option<Bytes>,
    /// New IOPS of the device (besides its LUNs) or of the LUN.
    pub iops: Option<f64>,
    /// New mean IO latency of the device, milliseconds.
    pub latency_ms: Option<f64>,
    /// New state of the service.
    pub state: Option<ServiceState>,
    /// Words printed on the timeline with the change.
    #[serde(default)]
    pub say: String,
}

impl Scenario {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks scenario text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = crate::config::line_column(text, offset);
            ScenarioError::Syntax {
                file: file.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        scenario
            .check()
            .map_err(|(place, message)| ScenarioError::Invalid {
                file: file.to_owned(),
                place,
                message,
            })?;
        Ok(scenario)
    }

    /// Names, references and ranges; the error names the item.
    fn check(&self) -> Result<(), (String, String)> {
        let h = &self.host;
        if !hyperwatch_proto::spiffe::valid_name(&h.name) {
            return Err((
                "host.name".into(),
                format!("{:?} is not a valid host id", h.name),
            ));
        }
        if h.cores == 0 || h.memory.0 == 0 {
            return Err(("host".into(), "cores and memory must be above 0".into()));
        }
        if h.tick.0 <= 0.0 {
            return Err(("host.tick".into(), "must be above 0".into()));
        }
        if !(0.0..1.0).contains(&h.noise) {
            return Err(("host.noise".into(), "must be in [0, 1)".into()));
        }
        if h.copy_per_second.0 == 0 || h.io_size.0 == 0 {
            return Err((
                "host".into(),
                "copy_per_second and io_size must be above 0".into(),
            ));
        }
        unique("vms", self.vms.iter().map(|v| v.name.as_str()))?;
        unique("devices", self.devices.iter().map(|d| d.id.as_str()))?;
        unique("luns", self.luns.iter().map(|l| l.id.as_str()))?;
        unique("services", self.services.iter().map(|s| s.name.as_str()))?;
        for v in &self.vms {
            let place = || format!("vms.{}", v.name);
            if v.vcpus == 0 || v.memory.0 == 0 {
                return Err((place(), "vcpus and memory must be above 0".into()));
            }
            if !(v.cpu_cores >= 0.0 && v.cpu_cores <= f64::from(v.vcpus)) {
                return Err((place(), format!("cpu_cores must be in [0, {}]", v.vcpus)));
            }
            if v.cpu_period.0 <= 0.0 {
                return Err((place(), "cpu_period must be above 0".into()));
            }
        }
        for d in &self.devices {
            if d.capacity.0 == 0 || d.used > d.capacity {
                return Err((
                    format!("devices.{}", d.id),
                    "needs 0 < used <= capacity".into(),
                ));
            }
        }
        for l in &self.luns {
            if !self.devices.iter().any(|d| d.id == l.device) {
                return Err((
                    format!("luns.{}", l.id),
                    format!("device {:?} is not defined", l.device),
                ));
            }
            if l.used.is_some_and(|u| u > l.size) {
                return Err((format!("luns.{}", l.id), "used exceeds size".into()));
            }
        }
        for (i, p) in self.phases.iter().enumerate() {
            self.check_phase(p)
                .map_err(|m| (format!("phases[{i}] (at {}s)", p.at.0), m))?;
        }
        Ok(())
    }

    fn check_phase(&self, p: &PhaseSpec) -> Result<(), String> {
        let targets = [
            p.vm.is_some(),
            p.device.is_some(),
            p.lun.is_some(),
            p.service.is_some(),
            p.host.is_some(),
        ];
        if targets.iter().filter(|t| **t).count() != 1 {
            return Err("needs exactly one of vm, device, lun, service, host".into());
        }
        let effects: [(&str, bool); 6] = [
            ("cpu_cores", p.cpu_cores.is_some()),
            ("resident", p.resident.is_some()),
            ("fill_per_second", p.fill_per_second.is_some()),
            ("iops", p.iops.is_some()),
            ("latency_ms", p.latency_ms.is_some()),
            ("state", p.state.is_some()),
        ];
        let (target, allowed): (&str, &[&str]) = if p.vm.is_some() {
            ("vm", &["cpu_cores", "resident"])
        } else if p.device.is_some() {
            ("device", &["fill_per_second", "iops", "latency_ms"])
        } else if p.lun.is_some() {
            ("lun", &["fill_per_second", "iops"])
        } else if p.service.is_some() {
            ("service", &["state"])
        } else {
            ("host", &[])
        };
        if let Some((name, _)) = effects.iter().find(|(n, set)| *set && !allowed.contains(n)) {
            return Err(format!("{name} does not apply to a {target}"));
        }
        if target != "host" && !effects.iter().any(|(_, set)| *set) {
            return Err(format!("changes nothing; a {target} takes {allowed:?}"));
        }
        for v in [p.cpu_cores, p.iops, p.latency_ms].into_iter().flatten() {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{v} is not a finite number >= 0"));
            }
        }
        // VMs and LUNs may arrive later by migration, so only services and
        // devices (which never move) must exist from the start.
        if let Some(s) = &p.service
            && !self.services.iter().any(|x| &x.name == s)
        {
            return Err(format!("service {s:?} is not defined"));
        }
        if let Some(d) = &p.device
            && !self.devices.iter().any(|x| &x.id == d)
        {
            return Err(format!("device {d:?} is not defined"));
        }
        Ok(())
    }
}

fn unique<'a>(kind: &str, names: impl Iterator<Item = &'a str>) -> Result<(), (String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err((kind.to_owned(), format!("{n:?} appears more than once")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HV: &str = r#"
[host]
name = "hv-1"
kind = "hypervisor"
cores = 8
memory = "32 GiB"

[[vms]]
name = "web-1"
vcpus = 2
memory = "4 GiB"
cpu_cores = 0.5

[[services]]
name = "nginx"

[[phases]]
at = "20s"
vm = "web-1"
cpu_cores = 1.8

[[phases]]
at = 30
service = "nginx"
state = "down"
"#;

    #[test]
    fn sizes_and_times_in_words_or_numbers() {
        assert_eq!(parse_bytes("8 GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("1.5TB"), Ok(1_500_000_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(
            parse_bytes("3 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        let s = Scenario::parse(HV, "hv.toml").unwrap();
        assert_eq!(s.host.memory, Bytes(32 << 30));
        assert_eq!(s.host.tick, Seconds(0.5), "default");
        assert_eq!(s.phases[0].at, Seconds(20.0));
        assert_eq!(s.phases[1].at, Seconds(30.0));
        assert_eq!(s.vms[0].resident, None);
    }

    #[test]
    fn the_shipped_scenarios_check() {
        for (name, text) in [
            ("hypervisor.toml", include_str!("../../sim/hypervisor.toml")),
            (
                "hypervisor-spare.toml",
                include_str!("../../sim/hypervisor-spare.toml"),
            ),
            ("storage.toml", include_str!("../../sim/storage.toml")),
            (
                "storage-spare.toml",
                include_str!("../../sim/storage-spare.toml"),
            ),
        ] {
            let s = Scenario::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.vms.is_empty() || !s.devices.is_empty(), "{name}");
        }
    }

    #[test]
    fn errors_name_the_place() {
        let e = Scenario::parse(&HV.replace("cores = 8", "cores = 8\ncolour = 1"), "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:6:1: unknown field `colour`"), "{e}");
        let e = Scenario::parse(&HV.replace("state = \"down\"", "iops = 3.0"), "b.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "b.toml: phases[1] (at 30s): iops does not apply to a service"
        );
        let e = Scenario::parse(
            &HV.replace("service = \"nginx\"", "service = \"db\""),
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("service \"db\" is not defined"), "{e}");
        let e = Scenario::parse(&HV.replace("\"4 GiB\"", "\"4 GiBs\""), "d.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown unit"), "{e}");
    }
}
