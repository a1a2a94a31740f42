//! What the cluster's events mean to the policy engine: a pure mapping
//! from [`ClusterEvent`]s to engine inputs (targets from the hello's
//! inventory and labels, host states, telemetry samples of hosts and
//! storage devices, service states, events), with the memory it needs to
//! notice targets that disappeared and to turn device usage into fill
//! ratios (each device's capacity).

use std::collections::{BTreeMap, BTreeSet};

use hyperwatch_policies::{
    InputKind,
    input::Sample,
    target::{TargetInfo, TargetKind, TargetRef},
};
use hyperwatch_proto::v1;

use crate::events::ClusterEvent;

/// The service state name the shipped policies watch (`running`,
/// `exited`, `failed`).
pub const SERVICE_STATE: &str = "service";
/// The host state saying whether the agent runs its eBPF programs:
/// `available`; `disabled` (by design: its configuration turns eBPF off, or
/// it simulates a host); `unavailable` (wanted, and it failed).
pub const EBPF_STATE: &str = "ebpf";
/// Host CPU busy fraction, 0..1.
pub const CPU_BUSY_RATIO: &str = "cpu_busy_ratio";
/// Host memory used fraction, 0..1.
pub const MEMORY_USED_RATIO: &str = "memory_used_ratio";
/// Storage device fill, 0..1: used bytes (the latest telemetry, else the
/// inventory) over the inventory's capacity.
pub const STORAGE_USED_RATIO: &str = "storage_used_ratio";
/// Storage device IO latency, seconds: the mean time per IO over the
/// telemetry interval, as the agent measures it from /proc/diskstats
/// (`DeviceUsage.io_latency_seconds`), not a percentile.
pub const IO_LATENCY_MEAN_SECONDS: &str = "io_latency_mean_seconds";
/// The capability an agent with loaded eBPF programs announces.
const EBPF_CAPABILITY: &str = "ebpf";
/// The capability of an agent without eBPF by design.
const EBPF_DISABLED_CAPABILITY: &str = "ebpf.disabled";

/// Maps cluster events to engine inputs; remembers which host announced
/// which target and every target's inventory facts.
#[derive(Debug, Default)]
pub struct InputMapper {
    /// Target to the host whose hello announced it last.
    owner: BTreeMap<TargetRef, String>,
    /// What the inventory says about each target (labels for summaries,
    /// silences and step parameters).
    known: BTreeMap<TargetRef, TargetInfo>,
    /// Each storage device's capacity in bytes, from the inventory.
    capacity: BTreeMap<TargetRef, u64>,
}

impl InputMapper {
    /// The inputs one event means (often none).
    pub fn map(&mut self, event: &ClusterEvent) -> Vec<InputKind> {
        match event {
            ClusterEvent::HostState { host, to, .. } => vec![InputKind::HostState {
                host: host.clone(),
                state: *to,
            }],
            ClusterEvent::Connected { host, hello, .. } => self.hello(host, hello),
            // The detector decides what a silent host means.
            ClusterEvent::Disconnected { .. } => Vec::new(),
            ClusterEvent::Telemetry { host, telemetry } => {
                self.telemetry(host, telemetry).into_iter().collect()
            }
            ClusterEvent::AgentEvent { host, event } => agent_event(host, event),
            ClusterEvent::Inventory { host, inventory } => self.inventory(host, inventory),
        }
    }

    /// What the inventory says about a target, if it said anything.
    pub fn info(&self, target: &TargetRef) -> Option<&TargetInfo> {
        self.known.get(target)
    }

    /// A target's labels as policies, silences and step parameters see
    /// them: its host's labels, its own, and `kind`, `id`, `target`,
    /// `name`, `host` (the engine's rule, for targets it has no word on).
    pub fn labels(&self, target: &TargetRef) -> BTreeMap<String, String> {
        let info = self
            .known
            .get(target)
            .cloned()
            .unwrap_or_else(|| TargetInfo::bare(target.clone()));
        let mut labels = BTreeMap::new();
        if let Some(host) = &info.host
            && let Some(h) = self.known.get(&TargetRef::host(host))
        {
            labels.extend(h.labels.clone());
        }
        labels.extend(info.labels.clone());
        labels.insert("kind".into(), target.kind.to_string());
        labels.insert("id".into(), target.id.clone());
        labels.insert("target".into(), target.to_string());
        labels.insert("name".into(), info.name.clone());
        if let Some(h) = info.host {
            labels.insert("host".into(), h);
        }
        labels
    }

    /// A hello: the host becomes a target with its `[labels]`, its eBPF
    /// state is reported, and its inventory is taken (as [`Self::inventory`]).
    pub fn hello(&mut self, host: &str, hello: &v1::Hello) -> Vec<InputKind> {
        let info = TargetInfo {
            target: TargetRef::host(host),
            name: host.to_owned(),
            host: Some(host.to_owned()),
            labels: hello
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        self.known.insert(info.target.clone(), info);
        let mut out = match &hello.inventory {
            Some(inv) => self.inventory(host, inv),
            None => self.inventory(host, &v1::Inventory::default()),
        };
        let has = |cap: &str| hello.capabilities.iter().any(|c| c == cap);
        let ebpf = if has(EBPF_CAPABILITY) {
            "available"
        } else if has(EBPF_DISABLED_CAPABILITY) {
            "disabled"
        } else {
            // Agents from before the capability say nothing either.
            "unavailable"
        };
        out.push(InputKind::State {
            target: TargetRef::host(host),
            name: EBPF_STATE.into(),
            value: ebpf.into(),
        });
        out
    }

    /// An inventory (in a hello, or updated): the host and everything it
    /// lists (services, VMs, storage devices, LUNs) become targets, those it
    /// no longer lists are removed, and storage fill is reported.
    pub fn inventory(&mut self, host: &str, inv: &v1::Inventory) -> Vec<InputKind> {
        let mut out = Vec::new();
        let host_info = self
            .known
            .get(&TargetRef::host(host))
            .cloned()
            .unwrap_or_else(|| TargetInfo::bare(TargetRef::host(host)));
        let mut announced = vec![host_info];
        let mut samples = Vec::new();
        let on_host = |kind, id: String, name: &str| TargetInfo {
            target: TargetRef::new(kind, &id),
            name: name.to_owned(),
            host: Some(host.to_owned()),
            labels: BTreeMap::new(),
        };
        for s in &inv.services {
            announced.push(on_host(TargetKind::Service, format!("{host}/{s}"), s));
        }
        for vm in &inv.vms {
            let mut info = on_host(TargetKind::Vm, vm.name.clone(), &vm.name);
            info.labels = vm
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !vm.tenant.is_empty() {
                info.labels.insert("tenant".into(), vm.tenant.clone());
            }
            announced.push(info);
        }
        for dev in &inv.storage {
            let id = format!("{host}/{}", dev.name);
            announced.push(on_host(TargetKind::StorageDevice, id.clone(), &dev.name));
            self.capacity.insert(
                TargetRef::new(TargetKind::StorageDevice, &id),
                dev.capacity_bytes,
            );
            if dev.capacity_bytes > 0 {
                samples.push(Sample {
                    target: TargetRef::new(TargetKind::StorageDevice, &id),
                    metric: STORAGE_USED_RATIO.into(),
                    value: dev.used_bytes as f64 / dev.capacity_bytes as f64,
                });
            }
            for lun in &dev.luns {
                announced.push(on_host(
                    TargetKind::Lun,
                    format!("{id}/{}", lun.id),
                    &lun.id,
                ));
            }
        }
        let now: BTreeSet<TargetRef> = announced.iter().map(|i| i.target.clone()).collect();
        let gone: Vec<TargetRef> = self
            .owner
            .iter()
            .filter(|(t, h)| h.as_str() == host && !now.contains(*t))
            .map(|(t, _)| t.clone())
            .collect();
        for t in gone {
            self.owner.remove(&t);
            self.known.remove(&t);
            self.capacity.remove(&t);
            out.push(InputKind::TargetRemoved(t));
        }
        for info in announced {
            self.owner.insert(info.target.clone(), host.to_owned());
            self.known.insert(info.target.clone(), info.clone());
            out.push(InputKind::Target(info));
        }
        if !samples.is_empty() {
            out.push(InputKind::Samples(samples));
        }
        out
    }

    /// The samples of a telemetry summary: the host's CPU and memory
    /// ratios, and for each storage device of its inventory the fill ratio
    /// and the IO latency.
    pub fn telemetry(&self, host: &str, t: &v1::Telemetry) -> Option<InputKind> {
        let mut samples = host_samples(host, t);
        for d in &t.device_usage {
            let target = TargetRef::new(TargetKind::StorageDevice, &format!("{host}/{}", d.device));
            // Devices the inventory does not list are no targets (yet).
            let Some(&capacity) = self.capacity.get(&target) else {
                continue;
            };
            if capacity > 0 {
                samples.push(Sample {
                    target: target.clone(),
                    metric: STORAGE_USED_RATIO.into(),
                    value: d.used_bytes as f64 / capacity as f64,
                });
            }
            if let Some(latency) = d.io_latency_seconds.filter(|l| l.is_finite() && *l >= 0.0) {
                samples.push(Sample {
                    target,
                    metric: IO_LATENCY_MEAN_SECONDS.into(),
                    value: latency,
                });
            }
        }
        (!samples.is_empty()).then_some(InputKind::Samples(samples))
    }
}

/// Host CPU and memory ratios from a telemetry summary.
fn host_samples(host: &str, t: &v1::Telemetry) -> Vec<Sample> {
    let target = TargetRef::host(host);
    let mut samples = Vec::new();
    if let Some(cpu) = t.cpu_utilisation.filter(|v| v.is_finite()) {
        samples.push(Sample {
            target: target.clone(),
            metric: CPU_BUSY_RATIO.into(),
            value: cpu.clamp(0.0, 1.0),
        });
    }
    if let (Some(used), Some(total)) = (t.memory_used_bytes, t.memory_total_bytes)
        && total > 0
    {
        samples.push(Sample {
            target,
            metric: MEMORY_USED_RATIO.into(),
            value: used as f64 / total as f64,
        });
    }
    samples
}

/// An agent event: service state changes become the `service` state of
/// the service; exits, OOM kills, stuck CPUs and generic events become
/// point events (`process-exit` on the service or the host, `oom-kill`,
/// `stuck-cpu`, the generic event's name); eBPF trouble becomes the host's
/// `ebpf` state.
pub fn agent_event(host: &str, e: &v1::Event) -> Vec<InputKind> {
    use v1::event::Kind;
    let service = |name: &str| TargetRef::new(TargetKind::Service, &format!("{host}/{name}"));
    let on_host = |name: &str| InputKind::Event {
        target: TargetRef::host(host),
        name: name.into(),
    };
    match &e.kind {
        Some(Kind::ServiceStateChange(c)) => vec![InputKind::State {
            target: service(&c.service),
            name: SERVICE_STATE.into(),
            value: c.new_state.clone(),
        }],
        Some(Kind::ProcessExit(p)) if !p.service.is_empty() => vec![InputKind::Event {
            target: service(&p.service),
            name: "process-exit".into(),
        }],
        Some(Kind::ProcessExit(_)) => vec![on_host("process-exit")],
        Some(Kind::OomKill(_)) => vec![on_host("oom-kill")],
        Some(Kind::StuckCpu(_)) => vec![on_host("stuck-cpu")],
        Some(Kind::EbpfUnavailable(_)) => vec![InputKind::State {
            target: TargetRef::host(host),
            name: EBPF_STATE.into(),
            value: "unavailable".into(),
        }],
        Some(Kind::Generic(g)) => vec![on_host(&g.name)],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperwatch_policies::target::HostState;

    fn hello(services: &[&str], caps: &[&str]) -> v1::Hello {
        v1::Hello {
            host_id: "hv1".into(),
            capabilities: caps.iter().map(|c| (*c).into()).collect(),
            labels: [("rack".to_owned(), "r1".to_owned())].into(),
            inventory: Some(v1::Inventory {
                services: services.iter().map(|s| (*s).into()).collect(),
                storage: vec![v1::StorageDevice {
                    name: "nvme0".into(),
                    capacity_bytes: 100,
                    used_bytes: 90,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn targets(inputs: &[InputKind]) -> Vec<String> {
        inputs
            .iter()
            .filter_map(|i| match i {
                InputKind::Target(t) => Some(t.target.to_string()),
                InputKind::TargetRemoved(t) => Some(format!("-{t}")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_hello_announces_host_services_and_storage_and_drops_what_is_gone() {
        let mut m = InputMapper::default();
        let first = m.hello("hv1", &hello(&["nginx", "db"], &["ebpf"]));
        assert_eq!(
            targets(&first),
            [
                "host:hv1",
                "service:hv1/nginx",
                "service:hv1/db",
                "storage-device:hv1/nvme0"
            ]
        );
        assert!(first.contains(&InputKind::State {
            target: TargetRef::host("hv1"),
            name: "ebpf".into(),
            value: "available".into()
        }));
        assert!(first.iter().any(|i| matches!(i, InputKind::Samples(s)
            if s[0].metric == STORAGE_USED_RATIO && (s[0].value - 0.9).abs() < 1e-9)));
        let service = TargetRef::new(TargetKind::Service, "hv1/nginx");
        let labels = m.labels(&service);
        assert_eq!(labels["rack"], "r1", "inherited from the host");
        assert_eq!(labels["name"], "nginx");
        assert_eq!(labels["host"], "hv1");

        let again = m.hello("hv1", &hello(&["nginx"], &[]));
        assert_eq!(targets(&again)[0], "-service:hv1/db");
        assert!(again.contains(&InputKind::State {
            target: TargetRef::host("hv1"),
            name: "ebpf".into(),
            value: "unavailable".into()
        }));
        let by_design = m.hello("hv1", &hello(&["nginx"], &["ebpf.disabled"]));
        assert!(by_design.contains(&InputKind::State {
            target: TargetRef::host("hv1"),
            name: "ebpf".into(),
            value: "disabled".into()
        }));
    }

    #[test]
    fn telemetry_gives_host_ratios_and_each_inventoried_devices_fill_and_latency() {
        let mut m = InputMapper::default();
        m.hello("hv1", &hello(&[], &[]));
        let device = |name: &str, used, latency| v1::DeviceUsage {
            device: name.into(),
            used_bytes: used,
            io_latency_seconds: latency,
            ..Default::default()
        };
        let t = v1::Telemetry {
            cpu_utilisation: Some(0.25),
            memory_used_bytes: Some(3),
            memory_total_bytes: Some(4),
            device_usage: vec![
                device("nvme0", 95, Some(0.012)),
                // Not in the inventory: no target to speak of.
                device("sdz", 1, Some(1.0)),
            ],
            ..Default::default()
        };
        let Some(InputKind::Samples(s)) = m.telemetry("hv1", &t) else {
            panic!("no samples")
        };
        let got: Vec<(String, &str, f64)> = s
            .iter()
            .map(|s| (s.target.to_string(), s.metric.as_str(), s.value))
            .collect();
        let nvme0 = "storage-device:hv1/nvme0".to_owned();
        assert_eq!(
            got,
            [
                ("host:hv1".to_owned(), CPU_BUSY_RATIO, 0.25),
                ("host:hv1".to_owned(), MEMORY_USED_RATIO, 0.75),
                (nvme0.clone(), STORAGE_USED_RATIO, 0.95),
                (nvme0, IO_LATENCY_MEAN_SECONDS, 0.012),
            ]
        );
        // No IO in the interval: no latency; the fill still counts.
        let quiet = v1::Telemetry {
            device_usage: vec![device("nvme0", 50, None)],
            ..Default::default()
        };
        let Some(InputKind::Samples(s)) = m.telemetry("hv1", &quiet) else {
            panic!("no samples")
        };
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].metric.as_str(), s[0].value),
            (STORAGE_USED_RATIO, 0.5)
        );
        assert!(m.telemetry("hv1", &v1::Telemetry::default()).is_none());
    }

    #[test]
    fn a_goodbye_is_the_host_state_stopped() {
        let goodbye = ClusterEvent::HostState {
            host: "hv1".into(),
            from: Some(HostState::Healthy),
            to: HostState::Stopped,
            at: std::time::SystemTime::UNIX_EPOCH,
            reason: "agent said goodbye: agent stopping".into(),
        };
        assert_eq!(
            InputMapper::default().map(&goodbye),
            [InputKind::HostState {
                host: "hv1".into(),
                state: HostState::Stopped
            }]
        );
        assert_eq!(HostState::Stopped.as_str(), "stopped");
    }

    #[test]
    fn service_changes_are_states_and_exits_are_events_of_the_service() {
        let change = v1::Event {
            kind: Some(v1::event::Kind::ServiceStateChange(
                v1::ServiceStateChange {
                    service: "nginx".into(),
                    old_state: "running".into(),
                    new_state: "failed".into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        assert_eq!(
            agent_event("hv1", &change),
            [InputKind::State {
                target: "service:hv1/nginx".parse().unwrap(),
                name: "service".into(),
                value: "failed".into()
            }]
        );
        let exit = v1::Event {
            kind: Some(v1::event::Kind::ProcessExit(v1::ProcessExit {
                service: "nginx".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            agent_event("hv1", &exit),
            [InputKind::Event {
                target: "service:hv1/nginx".parse().unwrap(),
                name: "process-exit".into()
            }]
        );
    }
}
