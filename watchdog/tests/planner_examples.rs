//! The planner on small hand-built clusters, one behaviour an operator
//! relies on per test: spikes, thresholds, maintenance, anti-affinity,
//! reservations, pins, failover priority, dependencies, explanations and
//! input errors.

use std::collections::BTreeMap;

use hyperwatch::planner::{
    AntiAffinityGroup, ClusterSnapshot, Headroom, Host, HostState, MoveKind, MoveReason,
    PlannerError, PlannerSettings, Reservation, UnplacedReason, Vm, failover, rebalance,
    verify::{Replay, verify},
};

const GIB: u64 = 1 << 30;

fn host(id: &str, cores: u32, memory_gib: u64) -> Host {
    Host {
        id: id.to_owned(),
        cores,
        memory_bytes: memory_gib * GIB,
        cpu_samples: Vec::new(),
        memory_samples: Vec::new(),
        state: HostState::Healthy,
        cpu_threshold: None,
        headroom: None,
    }
}

/// A VM busy at `cpu` cores in every one of ten samples.
fn vm(id: &str, on: &str, cpu: f64, memory_gib: u64) -> Vm {
    Vm {
        id: id.to_owned(),
        host: on.to_owned(),
        vcpus: 8,
        memory_bytes: memory_gib * GIB,
        cpu_samples: vec![cpu; 10],
        memory_samples: vec![memory_gib * GIB / 2; 10],
        tenant: "acme".to_owned(),
        labels: BTreeMap::new(),
        priority: 0,
    }
}

fn cluster(hosts: Vec<Host>, vms: Vec<Vm>) -> ClusterSnapshot {
    ClusterSnapshot {
        hosts,
        vms,
        ..ClusterSnapshot::default()
    }
}

fn settings() -> PlannerSettings {
    PlannerSettings::default()
}

/// Two 16-core hosts: `a` runs four VMs at 2 cores, `b` two; a fifth VM on
/// `a` idles at 1 core, with `spikes` samples of its window at 8 cores.
fn spiky(spikes: usize) -> ClusterSnapshot {
    let mut vms: Vec<Vm> = (0..4).map(|n| vm(&format!("a{n}"), "a", 2.0, 4)).collect();
    vms.extend((0..2).map(|n| vm(&format!("b{n}"), "b", 2.0, 4)));
    let mut noisy = vm("noisy", "a", 1.0, 4);
    for sample in noisy.cpu_samples.iter_mut().take(spikes) {
        *sample = 8.0;
    }
    vms.push(noisy);
    cluster(vec![host("a", 16, 64), host("b", 16, 64)], vms)
}

#[test]
fn one_spike_in_the_window_moves_nothing_a_sustained_load_does() {
    let calm = PlannerSettings {
        spread_target: 0.2,
        ..settings()
    };
    let plan = rebalance(&spiky(1), &calm).unwrap();
    assert!(
        plan.migrations.is_empty(),
        "a single spike moved VMs: {:?}",
        plan.migrations
    );
    let plan = rebalance(&spiky(3), &calm).unwrap();
    assert!(
        !plan.migrations.is_empty(),
        "three samples in ten at 8 cores is load, not a spike"
    );
    assert!(plan.after.spread < plan.before.spread);
    assert_eq!(verify(&spiky(3), &calm, &plan), Ok(()));
}

#[test]
fn an_overloaded_host_is_brought_under_its_threshold() {
    // `hot` at 14 of 16 cores (88 %), threshold 80 %; `cold` idle.
    let vms = (0..7)
        .map(|n| vm(&format!("v{n}"), "hot", 2.0, 4))
        .collect();
    let snapshot = cluster(vec![host("hot", 16, 64), host("cold", 16, 64)], vms);
    let plan = rebalance(&snapshot, &settings()).unwrap();
    assert_eq!(plan.before.hosts_over_threshold, 1);
    assert_eq!(plan.after.hosts_over_threshold, 0);
    assert!(plan.after.max_utilization <= 0.8);
    let first = &plan.migrations[0];
    assert_eq!(first.reason, MoveReason::OverThreshold { threshold: 0.8 });
    assert_eq!(first.kind, MoveKind::Live);
    let line = first.to_string();
    assert!(
        line.contains("from hot (88% -> 75%)") && line.contains("above its threshold 80%"),
        "{line}"
    );
    assert_eq!(verify(&snapshot, &settings(), &plan), Ok(()));
}

#[test]
fn maintenance_hosts_are_emptied_and_receive_nothing() {
    let mut hosts = vec![host("m", 16, 64), host("x", 16, 64), host("y", 16, 64)];
    hosts[0].state = HostState::Maintenance;
    let mut vms: Vec<Vm> = (0..4).map(|n| vm(&format!("m{n}"), "m", 1.0, 4)).collect();
    vms.extend((0..6).map(|n| vm(&format!("x{n}"), "x", 2.0, 4)));
    let snapshot = cluster(hosts, vms);
    let plan = rebalance(&snapshot, &settings()).unwrap();
    let evacuated: Vec<&str> = plan
        .migrations
        .iter()
        .filter(|m| m.reason == MoveReason::Maintenance)
        .map(|m| m.vm.as_str())
        .collect();
    assert_eq!(evacuated, ["m0", "m1", "m2", "m3"]);
    assert!(plan.migrations.iter().all(|m| m.destination != "m"));
    // Spread out, not piled on one host: y (idle) takes them first.
    assert!(
        plan.migrations
            .iter()
            .filter(|m| m.reason == MoveReason::Maintenance)
            .any(|m| m.destination == "y")
    );
    assert_eq!(verify(&snapshot, &settings(), &plan), Ok(()));
}

#[test]
fn replicas_of_an_anti_affinity_group_never_share_a_host() {
    // db0 on `a`, db1 on the failed host: `b` is fuller but is the only
    // host without a replica.
    let mut hosts = vec![host("a", 16, 64), host("b", 16, 64), host("dead", 16, 64)];
    hosts[2].state = HostState::Failed;
    let vms = vec![
        vm("db0", "a", 1.0, 4),
        vm("db1", "dead", 1.0, 4),
        vm("busy", "b", 6.0, 4),
    ];
    let mut snapshot = cluster(hosts, vms);
    snapshot.constraints.anti_affinity.push(AntiAffinityGroup {
        name: "db".into(),
        vms: vec!["db0".into(), "db1".into()],
    });
    let plan = failover(&snapshot, &settings()).unwrap();
    assert_eq!(plan.migrations.len(), 1);
    assert_eq!(
        (
            plan.migrations[0].destination.as_str(),
            plan.migrations[0].kind
        ),
        ("b", MoveKind::Restart)
    );
    // With `b` gone too, db1 has nowhere to go, and the plan says why.
    snapshot.hosts[1].state = HostState::Failed;
    let plan = failover(&snapshot, &settings()).unwrap();
    let db1 = plan
        .unplaced
        .iter()
        .find(|u| u.vm == "db1")
        .expect("db1 reported");
    assert!(
        db1.to_string().contains("anti-affinity partner there"),
        "{db1}"
    );
}

#[test]
fn reserved_capacity_is_kept_for_its_tenant() {
    // `r` (64 GiB, empty) holds 40 GiB for tenant `gold`: a 30 GiB VM of
    // another tenant would leave only 34 GiB, so it stays out; gold's own
    // 30 GiB VM uses its reservation.
    let mut hosts = vec![host("dead", 16, 64), host("r", 16, 64)];
    hosts[0].state = HostState::Failed;
    hosts[1].headroom = Some(Headroom {
        cpu_fraction: 0.0,
        memory_fraction: 0.0,
    });
    let mut snapshot = cluster(
        hosts,
        vec![
            vm("tenant-vm", "dead", 1.0, 30),
            vm("gold-vm", "dead", 1.0, 30),
        ],
    );
    snapshot.vms[1].tenant = "gold".into();
    snapshot.constraints.reservations.push(Reservation {
        tenant: "gold".into(),
        host: "r".into(),
        cpu_cores: 0.0,
        memory_bytes: 40 * GIB,
    });
    let plan = failover(&snapshot, &settings()).unwrap();
    let placed: Vec<&str> = plan.migrations.iter().map(|m| m.vm.as_str()).collect();
    assert_eq!(
        placed,
        ["gold-vm"],
        "only the reserving tenant gets the reserved room"
    );
    let refused = &plan.unplaced[0];
    assert_eq!(refused.vm, "tenant-vm");
    assert!(matches!(
        &refused.reason,
        UnplacedReason::NoFeasibleHost { .. }
    ));
    assert!(
        refused.to_string().contains("reserved for another tenant"),
        "{refused}"
    );
}

#[test]
fn failover_places_highest_priority_first_and_packs_what_greedy_would_not() {
    // Two healthy hosts of 20 GiB. Stranded: `vip` (priority 9, 10 GiB) and
    // VMs of 10, 7, 7 and 6 GiB. Largest-first on the emptiest host puts
    // the two 10s apart and leaves 6 GiB with nowhere to go; the search
    // finds 10 + 10 on one host and 7 + 7 + 6 on the other.
    let mut hosts = vec![host("dead", 64, 256), host("p", 16, 20), host("q", 16, 20)];
    hosts[0].state = HostState::Failed;
    for h in &mut hosts[1..] {
        h.headroom = Some(Headroom {
            cpu_fraction: 0.0,
            memory_fraction: 0.0,
        });
    }
    let mut vms = vec![vm("vip", "dead", 1.0, 10)];
    vms[0].priority = 9;
    for (id, gib) in [("ten", 10), ("seven-a", 7), ("seven-b", 7), ("six", 6)] {
        vms.push(vm(id, "dead", 1.0, gib));
    }
    let snapshot = cluster(hosts, vms);
    let plan = failover(&snapshot, &settings()).unwrap();
    assert_eq!(plan.migrations[0].vm, "vip");
    assert_eq!(
        plan.migrations.len(),
        5,
        "all fit: {:?}, unplaced {:?}",
        plan.migrations,
        plan.unplaced
    );
    assert!(plan.unplaced.is_empty());
    assert_eq!(verify(&snapshot, &settings(), &plan), Ok(()));
    // With a third 10 GiB VM, something must stay out: never the vip.
    let mut crowded = snapshot.clone();
    crowded.vms.push(vm("ten-b", "dead", 1.0, 10));
    let plan = failover(&crowded, &settings()).unwrap();
    assert!(plan.migrations.iter().any(|m| m.vm == "vip"));
    assert!(!plan.unplaced.is_empty() && plan.unplaced.iter().all(|u| u.priority == 0));
}

#[test]
fn a_move_that_needs_room_waits_for_the_move_that_makes_it() {
    // `p` is pinned to `far` but runs on `g`, which it fills; `m` must
    // leave maintenance, and once `p` has gone home only `g` has room.
    let mut hosts = vec![
        host("g", 16, 16),
        host("far", 16, 16),
        host("maint", 16, 64),
    ];
    hosts[2].state = HostState::Maintenance;
    for h in &mut hosts[..2] {
        h.headroom = Some(Headroom {
            cpu_fraction: 0.0,
            memory_fraction: 0.0,
        });
    }
    let vms = vec![
        vm("p", "g", 1.0, 12),
        vm("filler", "far", 1.0, 4),
        vm("m", "maint", 1.0, 12),
    ];
    let mut snapshot = cluster(hosts, vms);
    snapshot.constraints.pinned.insert("p".into(), "far".into());
    let plan = rebalance(&snapshot, &settings()).unwrap();
    let index = |vm: &str| {
        plan.migrations
            .iter()
            .position(|m| m.vm == vm)
            .expect("planned")
    };
    let (p, m) = (index("p"), index("m"));
    assert_eq!(plan.migrations[p].reason, MoveReason::ReturnToPin);
    assert_eq!(plan.migrations[m].destination, "g");
    assert_eq!(plan.migrations[m].depends_on, vec![p]);
    assert_eq!(verify(&snapshot, &settings(), &plan), Ok(()));
    // Started before `p` has left, `m` would overfill `g`: the replay
    // refuses to start it at all, and would catch it if forced.
    let mut replay = Replay::new(&snapshot, &settings(), &plan);
    assert_eq!(replay.ready(), vec![p]);
    replay.start(p).unwrap();
    assert!(
        replay.start(m).is_err(),
        "m started while p still occupies g"
    );
}

#[test]
fn unmovable_and_pinned_vms_stay_put_and_say_so() {
    let mut hosts = vec![host("dead", 16, 64), host("ok", 16, 64)];
    hosts[0].state = HostState::Failed;
    let mut snapshot = cluster(
        hosts,
        vec![
            vm("nic", "dead", 1.0, 4),
            vm("pinned", "dead", 1.0, 4),
            vm("free", "dead", 1.0, 4),
        ],
    );
    snapshot
        .constraints
        .unmovable
        .insert("nic".into(), "SR-IOV NIC passed through".into());
    snapshot
        .constraints
        .pinned
        .insert("pinned".into(), "dead".into());
    let plan = failover(&snapshot, &settings()).unwrap();
    assert_eq!(
        plan.migrations
            .iter()
            .map(|m| m.vm.as_str())
            .collect::<Vec<_>>(),
        ["free"]
    );
    let why: BTreeMap<&str, String> = plan
        .unplaced
        .iter()
        .map(|u| (u.vm.as_str(), u.to_string()))
        .collect();
    assert!(
        why["nic"].contains("cannot move (SR-IOV NIC passed through)"),
        "{}",
        why["nic"]
    );
    assert!(
        why["pinned"].contains("pinned to dead"),
        "{}",
        why["pinned"]
    );
}

#[test]
fn bad_input_names_the_offending_entry() {
    let mut snapshot = cluster(vec![host("a", 16, 64), host("a", 8, 32)], vec![]);
    assert_eq!(
        rebalance(&snapshot, &settings()).unwrap_err(),
        PlannerError::Duplicate {
            kind: "host",
            id: "a".into()
        }
    );
    snapshot.hosts[1].id = "b".into();
    snapshot.vms.push(vm("v", "nowhere", 1.0, 4));
    let err = rebalance(&snapshot, &settings()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "snapshot: vm `v`.host names host `nowhere`, which is not in the snapshot"
    );
    snapshot.vms[0].host = "a".into();
    snapshot.hosts[0].cpu_threshold = Some(1.5);
    let err = failover(&snapshot, &settings()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "host `a`.cpu_threshold is 1.5, expected 0 < value <= 1"
    );
    snapshot.hosts[0].cpu_threshold = None;
    snapshot.vms[0].cpu_samples[3] = f64::NAN;
    assert!(
        rebalance(&snapshot, &settings())
            .unwrap_err()
            .to_string()
            .starts_with("vm `v`.cpu_samples is NaN")
    );
}

#[test]
fn plans_survive_json_for_the_api_and_the_audit_log() {
    let vms = (0..7)
        .map(|n| vm(&format!("v{n}"), "hot", 2.0, 4))
        .collect();
    let mut snapshot = cluster(
        vec![
            host("hot", 16, 64),
            host("cold", 16, 64),
            host("dead", 16, 64),
        ],
        vms,
    );
    snapshot.hosts[2].state = HostState::Failed;
    snapshot.vms.push(vm("orphan", "dead", 1.0, 4));
    snapshot
        .constraints
        .pinned
        .insert("orphan".into(), "dead".into());
    for plan in [
        rebalance(&snapshot, &settings()).unwrap(),
        failover(&snapshot, &settings()).unwrap(),
    ] {
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(
            serde_json::from_str::<hyperwatch::planner::MigrationPlan>(&json).unwrap(),
            plan
        );
    }
    let json = serde_json::to_value(failover(&snapshot, &settings()).unwrap()).unwrap();
    assert_eq!(json["unplaced"][0]["reason"]["why"], "pinned_to");
    let snapshot_json = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(
        serde_json::from_str::<ClusterSnapshot>(&snapshot_json).unwrap(),
        snapshot
    );
}
