//! The VM planner's input from the registry: every hypervisor with its
//! cores, memory, usage windows and state (failed from the detector,
//! stopped from the agent's goodbye, maintenance from the operator's flag), and every VM with its size,
//! usage windows, tenant, labels and priority. The operator's constraints
//! come in from the configuration; those naming VMs or hosts not in the
//! cluster now are left out (and noted) rather than failing the plan.

use std::collections::BTreeMap;

use super::{Built, HostCapacity};
use crate::{
    health,
    planner::{self, ClusterSnapshot, Constraints},
};

/// How much a copy of a VM counts: any copy on a live host beats the
/// last-known copy on a failed one (a VM failed over runs where it was
/// restarted), then running beats migrating (the source copy of a move)
/// beats paused. Other states (shut off, arriving) occupy nothing the
/// planner should count.
fn rank(state: &str, host_failed: bool) -> Option<u8> {
    let by_state = match state {
        "running" | "" => 3,
        "migrating" => 2,
        "paused" => 1,
        _ => return None,
    };
    Some(if host_failed { by_state } else { by_state + 10 })
}

/// The planner's snapshot of `hosts` under `constraints`.
pub fn planner_snapshot(
    hosts: &[HostCapacity],
    constraints: Constraints,
) -> Built<ClusterSnapshot> {
    let mut notes = Vec::new();
    let mut snapshot = ClusterSnapshot::default();
    // VM name -> (rank, VM) of the copy that counts.
    let mut vms: BTreeMap<String, (u8, planner::Vm)> = BTreeMap::new();
    let mut unmovable = BTreeMap::new();
    for h in hosts.iter().filter(|h| h.is_hypervisor()) {
        let state = match h.state {
            health::HostState::Failed => planner::HostState::Failed,
            // Planned: its VMs run on and stay; nothing arrives.
            health::HostState::Stopped => planner::HostState::Stopped,
            _ if h.maintenance => planner::HostState::Maintenance,
            _ => planner::HostState::Healthy,
        };
        snapshot.hosts.push(planner::Host {
            id: h.id.clone(),
            cores: h.inventory.cpu_cores,
            memory_bytes: h.inventory.memory_bytes,
            cpu_samples: h.usage.cpu_cores.to_vec(),
            memory_samples: h.usage.memory_used_bytes.to_vec(),
            state,
            cpu_threshold: None,
            headroom: None,
        });
        for v in &h.inventory.vms {
            let Some(r) = rank(&v.state, state == planner::HostState::Failed) else {
                continue;
            };
            let window = h.usage.vms.get(&v.name);
            let vm = planner::Vm {
                id: v.name.clone(),
                host: h.id.clone(),
                vcpus: v.vcpus,
                memory_bytes: v.memory_bytes,
                cpu_samples: window.map(|w| w.cpu_cores.to_vec()).unwrap_or_default(),
                memory_samples: window
                    .map(|w| w.memory_resident_bytes.to_vec())
                    .unwrap_or_default(),
                tenant: v.tenant.clone(),
                labels: v
                    .labels
                    .iter()
                    .map(|(k, x)| (k.clone(), x.clone()))
                    .collect(),
                priority: v.priority,
            };
            if !v.unmovable_reason.is_empty() {
                unmovable.insert(v.name.clone(), v.unmovable_reason.clone());
            }
            match vms.get(&v.name) {
                Some((held, other)) if *held >= r => notes.push(format!(
                    "vm {} is listed by {} ({}) and {} ({}); {} counts",
                    v.name, other.host, held, h.id, v.state, other.host
                )),
                Some((_, other)) => {
                    notes.push(format!(
                        "vm {} is listed by {} and {} ({}); {} counts",
                        v.name, other.host, h.id, v.state, h.id
                    ));
                    vms.insert(v.name.clone(), (r, vm));
                }
                None => {
                    vms.insert(v.name.clone(), (r, vm));
                }
            }
        }
    }
    snapshot.vms = vms.into_values().map(|(_, vm)| vm).collect();
    snapshot.constraints = known_only(constraints, &snapshot, &mut notes);
    for (vm, why) in unmovable {
        snapshot.constraints.unmovable.entry(vm).or_insert(why);
    }
    Built { snapshot, notes }
}

/// `c` without what names a VM or host the snapshot lacks.
fn known_only(mut c: Constraints, s: &ClusterSnapshot, notes: &mut Vec<String>) -> Constraints {
    let vm = |id: &str| s.vms.iter().any(|v| v.id == id);
    let host = |id: &str| s.hosts.iter().any(|h| h.id == id);
    c.pinned.retain(|v, h| {
        let keep = vm(v) && host(h);
        if !keep {
            notes.push(format!(
                "pin of vm {v} to host {h} left out: not in the cluster now"
            ));
        }
        keep
    });
    c.unmovable.retain(|v, _| {
        let keep = vm(v);
        if !keep {
            notes.push(format!("unmovable vm {v} left out: not in the cluster now"));
        }
        keep
    });
    for g in &mut c.anti_affinity {
        let before = g.vms.len();
        g.vms.retain(|v| vm(v));
        if g.vms.len() < before {
            notes.push(format!(
                "anti-affinity group {}: {} vm(s) not in the cluster now left out",
                g.name,
                before - g.vms.len()
            ));
        }
    }
    c.reservations.retain(|r| {
        let keep = host(&r.host);
        if !keep {
            notes.push(format!(
                "reservation of tenant {} on host {} left out: no such hypervisor now",
                r.tenant, r.host
            ));
        }
        keep
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_view::test_hosts::{host, telemetry, vm};

    #[test]
    fn hypervisors_and_vms_with_their_windows_and_states() {
        let mut a = host("hv-a", &[vm("web-1", "running"), vm("db-1", "running")]);
        let b = host("hv-b", &[]);
        let mut c = host("hv-c", &[vm("old-1", "running")]);
        let mut st = host("st-1", &[]);
        for (cpu, web) in [(0.5, 1.0), (0.25, 2.0)] {
            a.record(&telemetry(cpu, &[("web-1", web)]));
        }
        c.state = health::HostState::Failed;
        st.roles(&["storage"]);
        let mut m = b.clone();
        m.capacity.maintenance = true;
        let hosts = [a.capacity, m.capacity, c.capacity, st.capacity];
        let built = planner_snapshot(&hosts, Constraints::default());
        let s = &built.snapshot;
        assert!(built.notes.is_empty(), "{:?}", built.notes);
        let ids: Vec<_> = s.hosts.iter().map(|h| (h.id.as_str(), h.state)).collect();
        assert_eq!(
            ids,
            [
                ("hv-a", planner::HostState::Healthy),
                ("hv-b", planner::HostState::Maintenance),
                ("hv-c", planner::HostState::Failed),
            ],
            "storage hosts are no placement targets"
        );
        assert_eq!(
            s.hosts[0].cpu_samples,
            vec![4.0, 2.0],
            "utilisation x 8 cores"
        );
        assert_eq!(s.hosts[0].cores, 8);
        let web = s.vms.iter().find(|v| v.id == "web-1").unwrap();
        assert_eq!((web.host.as_str(), web.vcpus), ("hv-a", 2));
        assert_eq!(web.cpu_samples, vec![1.0, 2.0]);
        assert_eq!(web.memory_samples, vec![1 << 30, 1 << 30]);
        assert_eq!(web.tenant, "acme");
        assert_eq!(web.labels["app"], "web-1");
        let old = s.vms.iter().find(|v| v.id == "old-1").unwrap();
        assert_eq!(
            old.host, "hv-c",
            "a failed host's VMs are there to fail over"
        );
        assert!(old.cpu_samples.is_empty());
        planner::failover(s, &planner::PlannerSettings::default()).expect("a valid snapshot");
    }

    #[test]
    fn a_stopped_hosts_vms_stay_and_it_receives_none() {
        let mut s = host("hv-s", &[vm("web-1", "running")]);
        s.state = health::HostState::Stopped;
        // Even under maintenance: without its agent nothing can move them.
        s.capacity.maintenance = true;
        let mut f = host("hv-f", &[vm("db-1", "running")]);
        f.state = health::HostState::Failed;
        // Busier than hv-s: were hv-s a destination, it would be the better one.
        let a = host("hv-a", &[vm("busy-1", "running"), vm("busy-2", "running")]);
        let built = planner_snapshot(
            &[s.capacity, f.capacity, a.capacity],
            Constraints::default(),
        );
        assert_eq!(built.snapshot.hosts[0].state, planner::HostState::Stopped);
        let settings = planner::PlannerSettings::default();
        let plan = planner::failover(&built.snapshot, &settings).unwrap();
        let moves: Vec<_> = plan
            .migrations
            .iter()
            .map(|m| (m.vm.as_str(), m.source.as_str(), m.destination.as_str()))
            .collect();
        assert_eq!(
            moves,
            [("db-1", "hv-f", "hv-a")],
            "only the failed host's VM, never onto the stopped host"
        );
        let plan = planner::rebalance(&built.snapshot, &settings).unwrap();
        assert!(
            plan.migrations.iter().all(|m| m.vm != "web-1"),
            "a stopped host is not drained: {plan:?}"
        );
    }

    #[test]
    fn the_running_copy_of_a_migrating_vm_counts() {
        let a = host("hv-a", &[vm("web-1", "migrating"), vm("db-1", "running")]);
        let b = host("hv-b", &[vm("web-1", "running"), vm("db-1", "incoming")]);
        let built = planner_snapshot(&[a.capacity, b.capacity], Constraints::default());
        let at: Vec<_> = built
            .snapshot
            .vms
            .iter()
            .map(|v| (v.id.as_str(), v.host.as_str()))
            .collect();
        assert_eq!(at, [("db-1", "hv-a"), ("web-1", "hv-b")]);
        assert_eq!(built.notes.len(), 1, "{:?}", built.notes);
        assert!(built.notes[0].contains("hv-b counts"), "{:?}", built.notes);
    }

    #[test]
    fn a_vm_failed_over_counts_where_it_was_restarted() {
        let mut a = host("hv-a", &[vm("web-1", "running")]);
        a.state = health::HostState::Failed;
        let b = host("hv-b", &[vm("web-1", "running")]);
        let built = planner_snapshot(&[a.capacity, b.capacity], Constraints::default());
        assert_eq!(built.snapshot.vms.len(), 1);
        assert_eq!(built.snapshot.vms[0].host, "hv-b");
        let plan =
            planner::failover(&built.snapshot, &planner::PlannerSettings::default()).unwrap();
        assert!(
            plan.migrations.is_empty(),
            "nothing left to fail over: {plan:?}"
        );
    }

    #[test]
    fn constraints_on_absent_vms_are_left_out_and_unmovable_vms_kept() {
        let mut v = vm("gpu-1", "running");
        v.unmovable_reason = "gpu passthrough".into();
        let a = host("hv-a", &[v, vm("web-1", "running")]);
        let mut c = Constraints::default();
        c.pinned.insert("gone".into(), "hv-a".into());
        c.pinned.insert("web-1".into(), "hv-a".into());
        c.anti_affinity.push(planner::AntiAffinityGroup {
            name: "web".into(),
            vms: vec!["web-1".into(), "web-2".into()],
        });
        let built = planner_snapshot(&[a.capacity], c);
        let c = &built.snapshot.constraints;
        assert_eq!(c.pinned.len(), 1);
        assert_eq!(c.anti_affinity[0].vms, vec!["web-1".to_owned()]);
        assert_eq!(c.unmovable["gpu-1"], "gpu passthrough");
        assert_eq!(built.notes.len(), 2, "{:?}", built.notes);
        planner::rebalance(&built.snapshot, &planner::PlannerSettings::default())
            .expect("a valid snapshot");
    }
}
