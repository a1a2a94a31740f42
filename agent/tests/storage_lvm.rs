//! The LVM backend against a real volume group on loop devices: the
//! inventory sees the PVs and the LVs the test made, with their sizes and
//! placement. Root-only; as root (CI) it must run. On a kernel without
//! device-mapper the group is made metadata-only, which LVM reports the
//! same way.

use hyperwatch_agent::{config::StorageConfig, storage};
use hyperwatch_tests::lvm::{
    METADATA_ONLY_LVM_CONFIG, TEST_LVM_CONFIG, TestVolumeGroup, device_mapper,
};

const MIB: u64 = 1 << 20;

#[test]
fn the_lvm_backend_sees_the_test_volume_group() {
    if !hyperwatch_tests::root::available(
        "the_lvm_backend_sees_the_test_volume_group",
        "loop devices and LVM",
    ) {
        return;
    }
    let config = if device_mapper() {
        TEST_LVM_CONFIG
    } else {
        METADATA_ONLY_LVM_CONFIG
    };
    let vg = TestVolumeGroup::new("inv", &[64, 64], config).unwrap();
    vg.create_lv("alpha", 16, 0).unwrap();
    vg.create_lv("beta", 8, 1).unwrap();

    let cfg = StorageConfig {
        lvm_volume_groups: vec![vg.name.clone()],
        lvm_config: Some(config.to_owned()),
        ..StorageConfig::default()
    };
    let inv = storage::inventory(&cfg, "/proc".as_ref(), "/sys".as_ref()).unwrap();

    assert_eq!(inv.devices.len(), 2, "{inv:#?}");
    for (i, used) in [(0, 16 * MIB), (1, 8 * MIB)] {
        let d = inv.devices.iter().find(|d| d.id == vg.pvs[i]).unwrap();
        assert_eq!(d.group, vg.name);
        assert_eq!(d.used_bytes, used);
        // 64 MiB loop files less LVM's metadata area.
        assert!(
            d.capacity_bytes > 56 * MIB && d.capacity_bytes <= 64 * MIB,
            "{d:?}"
        );
        assert!(d.io.is_some(), "loop devices are in /proc/diskstats");
    }
    let lun = |name: &str| {
        inv.luns
            .iter()
            .find(|l| l.id == format!("{}/{name}", vg.name))
            .unwrap_or_else(|| panic!("{name} missing from {inv:#?}"))
    };
    assert_eq!(lun("alpha").size_bytes, 16 * MIB);
    assert_eq!(lun("alpha").device, vg.pvs[0]);
    assert_eq!(lun("beta").size_bytes, 8 * MIB);
    assert_eq!(lun("beta").device, vg.pvs[1]);
}
