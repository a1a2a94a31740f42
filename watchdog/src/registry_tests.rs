//! The registry's inventory and usage bookkeeping: the hello's inventory,
//! updates replacing it, windows filled by telemetry, capacity snapshots;
//! the goodbye's stopped state against the detector.

use std::sync::Arc;

use hyperwatch_proto::v1;

use super::*;

fn registry() -> Registry {
    Registry::new(
        "lab",
        &DetectorConfig::default(),
        ClusterEvents::default(),
        Arc::new(Metrics::default()),
    )
}

fn connection(id: u64) -> Connection {
    Connection {
        id,
        peer: "127.0.0.1:1".parse().unwrap(),
        since: SystemTime::now(),
        outbound: mpsc::channel(4).0,
        replaced: Arc::new(tokio::sync::Notify::new()),
    }
}

fn inventory(revision: u64, vms: &[&str]) -> v1::Inventory {
    v1::Inventory {
        cpu_cores: 4,
        memory_bytes: 16 << 30,
        revision,
        roles: vec!["hypervisor".into()],
        vms: vms
            .iter()
            .map(|n| v1::VirtualMachine {
                name: (*n).into(),
                vcpus: 1,
                memory_bytes: 1 << 30,
                state: "running".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn hello(inv: v1::Inventory) -> v1::Hello {
    v1::Hello {
        protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
        host_id: "hv-1".into(),
        boot_id: "b".into(),
        agent_instance: 7,
        heartbeat_interval_ms: 1000,
        inventory: Some(inv),
        ..Default::default()
    }
}

fn telemetry(seq: u64, cpu: f64, vms: &[(&str, f64)]) -> v1::Telemetry {
    v1::Telemetry {
        seq,
        cpu_utilisation: Some(cpu),
        memory_used_bytes: Some(seq << 20),
        vm_usage: vms
            .iter()
            .map(|(n, c)| v1::VmUsage {
                name: (*n).into(),
                cpu_cores: Some(*c),
                memory_resident_bytes: 1 << 29,
            })
            .collect(),
        ..Default::default()
    }
}

fn update(inv: v1::Inventory) -> v1::InventoryUpdate {
    v1::InventoryUpdate {
        inventory: Some(inv),
        ..Default::default()
    }
}

#[test]
fn the_hello_inventory_then_updates_in_revision_order() {
    let reg = registry();
    let mut events = reg.events.subscribe();
    let (entry, _) = reg.attach(hello(inventory(1, &["a"])), connection(1));
    assert_eq!(reg.host("hv-1").unwrap().inventory.vms.len(), 1);
    reg.inventory_update(&entry, update(inventory(3, &["a", "b"])));
    reg.inventory_update(&entry, update(inventory(2, &["stale"])));
    let snap = reg.host("hv-1").unwrap();
    assert_eq!(snap.inventory.revision, 3, "the older revision is ignored");
    let names: Vec<_> = snap.inventory.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let revisions: Vec<u64> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            ClusterEvent::Inventory { inventory, .. } => Some(inventory.revision),
            _ => None,
        })
        .collect();
    assert_eq!(revisions, [1, 3], "every accepted inventory is published");

    // A reconnect's hello carries the inventory as of then.
    reg.attach(hello(inventory(4, &["b"])), connection(2));
    assert_eq!(reg.capacity()[0].inventory.revision, 4);
}

#[test]
fn telemetry_fills_bounded_windows_and_departed_vms_leave_them() {
    let reg = registry();
    let (entry, _) = reg.attach(hello(inventory(1, &["a", "b"])), connection(1));
    for seq in 1..=3 {
        reg.telemetry(&entry, telemetry(seq, 0.5, &[("a", 1.5), ("b", 0.25)]));
    }
    reg.telemetry(&entry, telemetry(2, 0.9, &[]));
    let cap = reg.capacity();
    let usage = &cap[0].usage;
    assert_eq!(
        usage.summaries, 3,
        "a repeated summary is not sampled twice"
    );
    assert_eq!(usage.cpu_cores.to_vec(), vec![2.0; 3], "0.5 of 4 cores");
    assert_eq!(usage.vms["a"].cpu_cores.to_vec(), vec![1.5; 3]);
    assert_eq!(usage.memory_used_bytes.latest(), Some(3 << 20));

    // b migrates away: its window goes; the snapshot taken before keeps its
    // own copy of the windows (copy on write).
    reg.inventory_update(&entry, update(inventory(2, &["a"])));
    reg.telemetry(&entry, telemetry(4, 0.75, &[("a", 2.0)]));
    let after = reg.capacity();
    assert!(!after[0].usage.vms.contains_key("b"));
    assert_eq!(after[0].usage.cpu_cores.latest(), Some(3.0));
    assert!(usage.vms.contains_key("b"));
    assert_eq!(usage.cpu_cores.len(), 3);
    let view = reg.host("hv-1").unwrap().usage.unwrap();
    assert_eq!(view.vms["a"].cpu_cores.as_ref().unwrap().latest, 2.0);
    assert_eq!(view.window, crate::usage_window::USAGE_WINDOW);
}

#[test]
fn maintenance_is_a_flag_on_the_host() {
    let reg = registry();
    reg.attach(hello(inventory(1, &[])), connection(1));
    assert!(!reg.set_maintenance("nobody", true));
    assert!(reg.set_maintenance("hv-1", true));
    assert!(reg.capacity()[0].maintenance);
    assert!(reg.host("hv-1").unwrap().maintenance);
    assert!(reg.snapshot()[0].usage.is_none(), "the list stays light");
}

fn state(reg: &Registry, host: &str) -> HostState {
    reg.host(host).unwrap().state
}

#[test]
fn a_goodbye_stops_the_host_and_the_detector_leaves_it_until_the_next_hello() {
    let reg = registry();
    let mut events = reg.events.subscribe();
    let (a, _) = reg.attach(hello(inventory(1, &[])), connection(1));
    let mut other = hello(inventory(1, &[]));
    other.host_id = "hv-2".into();
    let (b, _) = reg.attach(other, connection(2));
    let beat = v1::Heartbeat {
        seq: 1,
        sent_monotonic_nanos: 1,
        sent_unix_nanos: 0,
    };
    reg.heartbeat(&a, &beat);
    reg.heartbeat(&b, &beat);

    reg.goodbye(&a, 1, "agent stopping");
    reg.detach(&a, 1, "agent said goodbye".into());
    assert_eq!(state(&reg, "hv-1"), HostState::Stopped);
    // An hour of silence: far past the hard timeout.
    reg.check_at(reg.now() + Duration::from_secs(3600));
    assert_eq!(state(&reg, "hv-1"), HostState::Stopped, "planned silence");
    assert_eq!(
        state(&reg, "hv-2"),
        HostState::Failed,
        "silence without goodbye"
    );
    let counts = reg.count_by_state();
    assert!(counts.contains(&(HostState::Stopped, 1)), "{counts:?}");
    assert!(counts.contains(&(HostState::Failed, 1)), "{counts:?}");

    let changes = |events: &mut tokio::sync::broadcast::Receiver<ClusterEvent>| -> Vec<(String, Option<HostState>, HostState, String)> {
        std::iter::from_fn(|| events.try_recv().ok())
            .filter_map(|e| match e {
                ClusterEvent::HostState { host, from, to, reason, .. } => Some((host, from, to, reason)),
                _ => None,
            })
            .filter(|(_, from, ..)| from.is_some())
            .collect()
    };
    let seen = changes(&mut events);
    assert_eq!(
        seen[0],
        (
            "hv-1".to_owned(),
            Some(HostState::Healthy),
            HostState::Stopped,
            "agent said goodbye: agent stopping".to_owned()
        )
    );
    assert!(seen[1..].iter().all(|(h, ..)| h == "hv-2"), "{seen:?}");

    // The next hello: healthy at once, and the detector starts afresh
    // (no deadlines until a heartbeat, so no instant failure).
    let (a, _) = reg.attach(hello(inventory(2, &[])), connection(3));
    assert_eq!(state(&reg, "hv-1"), HostState::Healthy);
    reg.check_at(reg.now() + Duration::from_secs(3600));
    assert_eq!(state(&reg, "hv-1"), HostState::Healthy);
    let seen = changes(&mut events);
    assert_eq!(
        (seen[0].1, seen[0].2),
        (Some(HostState::Stopped), HostState::Healthy)
    );

    // A goodbye left over from the replaced stream does not stop the
    // running agent's host.
    reg.goodbye(&a, 1, "late");
    assert_eq!(state(&reg, "hv-1"), HostState::Healthy);
    reg.goodbye(&a, 3, "agent stopping");
    assert_eq!(state(&reg, "hv-1"), HostState::Stopped);
}
