//! The LVM mover on a real volume group: loop devices, a VG of three PVs,
//! an LV filled with known data; the executor moves it with pvmove and the
//! data reads back identical (sha256) from its new PV.
//!
//! Needs root and a kernel with device-mapper (pvmove copies through a dm
//! mirror). This project's machines and CI run a kernel without
//! device-mapper, so the test is `#[ignore]`d, shown as ignored rather than
//! counted as passed; run it with `cargo test -p hyperwatch --test lvm_move
//! -- --ignored` on a host with device-mapper. Run that way it fails, never
//! skips, when device-mapper is missing.

use std::{io::Write, sync::Arc};

use hyperwatch::{
    lun_mover::{
        Executor, ExecutorConfig, MoveOutcome,
        copy::sha256_file,
        lvm::{LvmMover, LvmMoverConfig},
    },
    rebalancer::{Move, Plan, Reason},
};
use hyperwatch_tests::lvm::{TEST_LVM_CONFIG, TestVolumeGroup, device_mapper};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a kernel with device-mapper, which this project's machines lack"]
async fn pvmove_moves_an_lv_and_its_data_reads_back_identical() {
    let name = "pvmove_moves_an_lv_and_its_data_reads_back_identical";
    if !hyperwatch_tests::root::available(name, "loop devices and LVM") {
        return;
    }
    assert!(
        device_mapper(),
        "{name}: this kernel has no device-mapper, so pvmove cannot run"
    );
    let vg = TestVolumeGroup::new("move", &[64, 64, 64], TEST_LVM_CONFIG).unwrap();
    vg.create_lv("data", 16, 0).unwrap();
    let dev = vg.lv_path("data");
    let mut f = std::fs::OpenOptions::new().write(true).open(&dev).unwrap();
    let mut x: u32 = 12345;
    let block: Vec<u8> = (0..16 << 20)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    f.write_all(&block).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let before = sha256_file(&dev).unwrap();

    let state = tempfile::tempdir().unwrap();
    let mover = LvmMover::new(LvmMoverConfig {
        lvm_config: Some(TEST_LVM_CONFIG.into()),
    });
    let ex = Executor::new(
        ExecutorConfig {
            state_dir: state.path().to_owned(),
            dry_run: false,
            ..ExecutorConfig::default()
        },
        Arc::new(mover),
    );
    let plan = Plan {
        moves: vec![Move {
            lun: format!("{}/data", vg.name),
            from: vg.pvs[0].clone(),
            to: vg.pvs[2].clone(),
            bytes: 16 << 20,
            iops: 0.0,
            after: vec![],
            reason: Reason::Draining,
            to_used_fraction: 0.0,
            to_iops: 0.0,
        }],
        ..Plan::default()
    };
    assert_eq!(ex.execute(&plan).await.unwrap(), [MoveOutcome::Done]);
    let lvs = vg
        .lvm(
            "lvs",
            &[
                "--noheadings",
                "-o",
                "devices",
                &format!("{}/data", vg.name),
            ],
        )
        .unwrap();
    assert!(lvs.trim().starts_with(&format!("{}(", vg.pvs[2])), "{lvs}");
    assert_eq!(sha256_file(&dev).unwrap(), before);
}
