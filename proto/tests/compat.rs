//! Protocol version 1 stays compatible across the inventory additions and
//! the goodbye: an older peer (modelled here by messages with only the fields it knew)
//! reads what a newer one sends, and the other way round.

use hyperwatch_proto::v1;
use prost::Message;

/// AgentMessage as watchdogs before InventoryUpdate knew it.
#[derive(Clone, PartialEq, prost::Message)]
struct OldAgentMessage {
    #[prost(oneof = "OldBody", tags = "1, 2, 3")]
    body: Option<OldBody>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum OldBody {
    #[prost(message, tag = "1")]
    Hello(OldHello),
    #[prost(message, tag = "2")]
    Heartbeat(v1::Heartbeat),
    #[prost(message, tag = "3")]
    Telemetry(OldTelemetry),
}

#[derive(Clone, PartialEq, prost::Message)]
struct OldHello {
    #[prost(string, tag = "2")]
    host_id: String,
    #[prost(message, optional, tag = "7")]
    inventory: Option<OldInventory>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OldInventory {
    #[prost(uint32, tag = "1")]
    cpu_cores: u32,
    #[prost(message, repeated, tag = "3")]
    vms: Vec<OldVm>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OldVm {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "3")]
    vcpus: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OldTelemetry {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(double, optional, tag = "4")]
    cpu_utilisation: Option<f64>,
}

fn new_inventory() -> v1::Inventory {
    v1::Inventory {
        cpu_cores: 16,
        roles: vec!["hypervisor".into()],
        revision: 3,
        vms: vec![v1::VirtualMachine {
            name: "web-1".into(),
            vcpus: 4,
            state: "migrating".into(),
            tenant: "shop".into(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            priority: 10,
            unmovable_reason: String::new(),
            ..Default::default()
        }],
        storage: vec![v1::StorageDevice {
            name: "d1".into(),
            group: "fast".into(),
            shared_group: true,
            luns: vec![v1::Lun {
                id: "vol-1".into(),
                used_bytes: 5,
                pinned: true,
                state: "leaving".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn an_older_watchdog_reads_a_newer_agent() {
    let hello = v1::AgentMessage {
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            host_id: "hv-1".into(),
            inventory: Some(new_inventory()),
            ..Default::default()
        })),
    };
    let old = OldAgentMessage::decode(hello.encode_to_vec().as_slice()).unwrap();
    let Some(OldBody::Hello(h)) = old.body else {
        panic!("{old:?}")
    };
    let inv = h.inventory.unwrap();
    assert_eq!(
        (inv.cpu_cores, inv.vms[0].name.as_str(), inv.vms[0].vcpus),
        (16, "web-1", 4)
    );

    let telemetry = v1::AgentMessage {
        body: Some(v1::agent_message::Body::Telemetry(v1::Telemetry {
            seq: 9,
            cpu_utilisation: Some(0.5),
            vm_usage: vec![v1::VmUsage {
                name: "web-1".into(),
                cpu_cores: Some(1.5),
                memory_resident_bytes: 1,
            }],
            ..Default::default()
        })),
    };
    let old = OldAgentMessage::decode(telemetry.encode_to_vec().as_slice()).unwrap();
    assert_eq!(
        old.body,
        Some(OldBody::Telemetry(OldTelemetry {
            seq: 9,
            cpu_utilisation: Some(0.5)
        }))
    );

    // An InventoryUpdate is a message it does not know: an empty body,
    // which it counts and ignores, not a broken stream.
    let update = v1::AgentMessage {
        body: Some(v1::agent_message::Body::InventoryUpdate(
            v1::InventoryUpdate {
                inventory: Some(new_inventory()),
                ..Default::default()
            },
        )),
    };
    let old = OldAgentMessage::decode(update.encode_to_vec().as_slice()).unwrap();
    assert_eq!(old.body, None);
}

#[test]
fn an_older_watchdog_ignores_a_goodbye() {
    let goodbye = v1::AgentMessage {
        body: Some(v1::agent_message::Body::Goodbye(v1::Goodbye {
            reason: "agent stopping".into(),
        })),
    };
    let bytes = goodbye.encode_to_vec();
    // An unknown oneof member: an empty body, counted and ignored (the old
    // watchdog then sees the stream close and, as before, the detector
    // decides).
    let old = OldAgentMessage::decode(bytes.as_slice()).unwrap();
    assert_eq!(old.body, None);
    let back = v1::AgentMessage::decode(bytes.as_slice()).unwrap();
    assert_eq!(back, goodbye);
}

#[test]
fn a_newer_watchdog_reads_an_older_agent() {
    let old = OldAgentMessage {
        body: Some(OldBody::Telemetry(OldTelemetry {
            seq: 4,
            cpu_utilisation: Some(0.25),
        })),
    };
    let new = v1::AgentMessage::decode(old.encode_to_vec().as_slice()).unwrap();
    let Some(v1::agent_message::Body::Telemetry(t)) = new.body else {
        panic!("{new:?}")
    };
    assert_eq!((t.seq, t.cpu_utilisation), (4, Some(0.25)));
    assert!(t.vm_usage.is_empty() && t.device_usage.is_empty() && t.lun_usage.is_empty());

    let old = OldAgentMessage {
        body: Some(OldBody::Hello(OldHello {
            host_id: "hv-9".into(),
            inventory: Some(OldInventory {
                cpu_cores: 8,
                vms: vec![OldVm {
                    name: "a".into(),
                    vcpus: 2,
                }],
            }),
        })),
    };
    let new = v1::AgentMessage::decode(old.encode_to_vec().as_slice()).unwrap();
    let Some(v1::agent_message::Body::Hello(h)) = new.body else {
        panic!("{new:?}")
    };
    let inv = h.inventory.unwrap();
    assert_eq!(
        (inv.revision, inv.roles.len()),
        (0, 0),
        "no roles: a hypervisor"
    );
    assert_eq!(inv.vms[0].state, "", "no state: running");
}

#[test]
fn an_inventory_update_round_trips() {
    let update = v1::InventoryUpdate {
        inventory: Some(new_inventory()),
        monotonic_nanos: 5,
        unix_nanos: 6,
    };
    let back = v1::InventoryUpdate::decode(update.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back, update);
}
