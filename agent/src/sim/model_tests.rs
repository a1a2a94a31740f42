//! The simulated host's model: phases at their time, loads and counters,
//! determinism by seed, and the migration steps.

use super::*;
use crate::sim::scenario::Scenario;

const HV: &str = r#"
[host]
name = "hv-1"
kind = "hypervisor"
cores = 4
memory = "16 GiB"
seed = 3
noise = 0.1
base_cpu_cores = 0.5
base_memory = "1 GiB"
copy_per_second = "2 GiB"

[[vms]]
name = "web-1"
vcpus = 4
memory = "4 GiB"
resident = "2 GiB"
cpu_cores = 1.0

[[vms]]
name = "db-1"
vcpus = 2
memory = "4 GiB"
cpu_cores = 0.5
unmovable = "gpu passthrough"

[[services]]
name = "nginx"

[[phases]]
at = "10s"
vm = "web-1"
cpu_cores = 3.5
say = "traffic spike"

[[phases]]
at = "12s"
service = "nginx"
state = "down"

[[phases]]
at = "14s"
vm = "gone-1"
cpu_cores = 1.0
"#;

const ST: &str = r#"
[host]
name = "st-1"
kind = "storage"
cores = 2
memory = "4 GiB"
copy_per_second = "1 GiB"

[[devices]]
id = "d1"
group = "tier1"
shared = true
capacity = "100 GiB"
used = "10 GiB"
iops = 50.0
latency_ms = 2.0

[[devices]]
id = "d2"
group = "tier1"
capacity = "100 GiB"

[[luns]]
id = "vol-1"
device = "d1"
size = "40 GiB"
used = "20 GiB"
iops = 100.0

[[luns]]
id = "vol-2"
device = "d1"
size = "10 GiB"
pinned = true

[[phases]]
at = "5s"
device = "d1"
fill_per_second = "1 GiB"
"#;

fn host(text: &str) -> SimHost {
    SimHost::new(&Scenario::parse(text, "t.toml").unwrap())
}

#[test]
fn phases_apply_at_their_time_and_skip_absent_vms() {
    let mut h = host(HV);
    assert!(h.step(9.0).is_empty());
    assert_eq!(h.vms["web-1"].profile.cpu_cores, 1.0);
    let happened = h.step(12.5);
    assert_eq!(
        happened,
        vec![
            Happening::Phase("vm web-1 load goes to 3.5 cores (traffic spike)".into()),
            Happening::Phase("service nginx crashes".into()),
            Happening::Service {
                name: "nginx".into(),
                up: false
            },
        ]
    );
    assert!(!h.services["nginx"]);
    let happened = h.step(20.0);
    assert_eq!(
        happened,
        vec![Happening::Phase(
            "vm gone-1 is not on this host; phase skipped".into()
        )]
    );
}

#[test]
fn loads_counters_and_memory_follow_the_model() {
    let mut h = host(HV);
    for t in 1..=10 {
        h.step(f64::from(t));
    }
    // 0.5 host + 1.0 + 0.5 VMs, within 10 % noise each.
    assert!((1.8..=2.2).contains(&h.busy_cores), "{}", h.busy_cores);
    let busy: f64 = h.cpu_seconds.iter().map(|(b, _)| b).sum();
    let idle: f64 = h.cpu_seconds.iter().map(|(_, i)| i).sum();
    assert!((busy + idle - 40.0).abs() < 1e-6, "4 CPUs for 10 s");
    assert!((17.0..=23.0).contains(&busy), "{busy}");
    let web = h.vms["web-1"].cpu_seconds;
    assert!((9.0..=11.0).contains(&web), "{web}");
    assert_eq!(h.memory_used(), (1 << 30) + (2 << 30) + (4 << 30));
    assert!(h.load[0] > 0.0 && h.load[0] < h.busy_cores);
}

#[test]
fn the_same_seed_gives_the_same_figures() {
    let run = |text: &str| {
        let mut h = host(text);
        (1..=20).for_each(|t| {
            h.step(f64::from(t) * 0.5);
        });
        h.vms["web-1"].cpu_seconds
    };
    assert_eq!(run(HV), run(HV));
    assert_ne!(run(HV), run(&HV.replace("seed = 3", "seed = 4")));
}

#[test]
fn a_vm_migrates_in_steps_and_aborts_cleanly() {
    let mut src = host(HV);
    let mut dst = host(&HV.replace("hv-1", "hv-2").replace("web-1", "web-9"));
    assert!(
        src.vm_prepare_out("db-1")
            .unwrap_err()
            .contains("gpu passthrough")
    );
    src.vm_prepare_out("web-1").unwrap();
    assert_eq!(src.vms["web-1"].state, VmState::Migrating);
    let profile = VmProfile {
        resident_bytes: 2 << 30,
        ..src.vms["web-1"].profile.clone()
    };
    let seconds = dst.vm_begin_in("web-1", profile.clone()).unwrap();
    assert_eq!(seconds, 1.0, "2 GiB at 2 GiB/s");
    assert_eq!(dst.vms["web-1"].state, VmState::Incoming);
    assert!(
        dst.vm_begin_in("web-9", profile.clone()).is_err(),
        "runs there"
    );
    dst.vm_finish_in("web-1").unwrap();
    src.vm_release("web-1").unwrap();
    assert!(!src.vms.contains_key("web-1"));
    assert_eq!(dst.vms["web-1"].state, VmState::Running);

    // Abort: the destination drops its copy, the source runs on.
    dst.vm_prepare_out("web-9").unwrap();
    src.vm_begin_in("web-9", profile).unwrap();
    src.vm_abort_in("web-9");
    dst.vm_abort_out("web-9");
    assert!(!src.vms.contains_key("web-9"));
    assert_eq!(dst.vms["web-9"].state, VmState::Running);
    assert!(
        src.vm_finish_in("web-9").is_err(),
        "an aborted copy never runs"
    );
}

#[test]
fn a_vm_that_does_not_fit_is_refused() {
    let mut h = host(HV);
    let big = VmProfile {
        vcpus: 2,
        memory_bytes: 64 << 30,
        ..VmProfile::default()
    };
    assert!(h.vm_begin_in("huge", big).unwrap_err().contains("free"));
}

#[test]
fn storage_fills_counts_io_and_moves_luns() {
    let mut h = host(ST);
    h.step(5.0);
    assert_eq!(h.device_used("d1"), (10 + 20 + 10) << 30);
    let io = h.devices["d1"].io;
    // 50 IOPS of its own and 100 of vol-1 for 5 s.
    assert!(((io.reads + io.writes) - 750.0).abs() < 1e-6, "{io:?}");
    assert!((io.io_seconds - 750.0 * 0.002).abs() < 1e-9);
    h.step(10.0);
    assert_eq!(h.device_used("d1"), (15 + 20 + 10) << 30, "fills from 5 s");

    assert!(h.lun_prepare_out("vol-2").unwrap_err().contains("pinned"));
    h.lun_prepare_out("vol-1").unwrap();
    let profile = LunProfile {
        size_bytes: 40 << 30,
        used_bytes: 20 << 30,
        iops: 100.0,
        consumer: String::new(),
    };
    assert_eq!(h.lun_begin_in("vol-1", "d2", profile).unwrap(), 20.0);
    assert_eq!(h.device_used("d2"), 20 << 30, "the copy takes room at once");
    h.lun_finish_in("vol-1", "d2").unwrap();
    h.lun_release("vol-1").unwrap();
    let copies: Vec<_> = h.luns.keys().filter(|(l, _)| l == "vol-1").collect();
    assert_eq!(copies, vec![&("vol-1".to_owned(), "d2".to_owned())]);
    assert_eq!(
        h.luns[&("vol-1".into(), "d2".into())].state,
        LunState::Active
    );
}

#[test]
fn a_lun_that_does_not_fit_is_refused() {
    let mut h = host(ST);
    let profile = LunProfile {
        size_bytes: 200 << 30,
        used_bytes: 150 << 30,
        ..LunProfile::default()
    };
    let e = h.lun_begin_in("big", "d2", profile).unwrap_err();
    assert!(e.contains("free"), "{e}");
}
