//! A throwaway LVM volume group on loop devices for tests, removed with
//! its loop devices and backing files when dropped, even after a failure.
//!
//! What works in a container (measured here): LVM's devices file and udev
//! must be off (`devices{use_devicesfile=0} activation{udev_sync=0
//! udev_rules=0}`), and backups/archives off so tests leave nothing in
//! /etc/lvm. On a kernel without device-mapper (no /dev/mapper/control
//! driver, as in Firecracker VMs) LVs cannot be activated: the group can
//! still be made metadata-only with `global{activation=0}`, which lets the
//! inventory be tested but not pvmove.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// `--config` for every LVM command the tests run.
pub const TEST_LVM_CONFIG: &str = "devices{use_devicesfile=0} activation{udev_sync=0 udev_rules=0} backup{backup=0 archive=0} global{use_lvmpolld=0}";
/// The same, metadata-only, for kernels without device-mapper.
pub const METADATA_ONLY_LVM_CONFIG: &str = "devices{use_devicesfile=0} activation{udev_sync=0 udev_rules=0} backup{backup=0 archive=0} global{use_lvmpolld=0 activation=0}";

/// Whether this kernel has device-mapper (LVs can be activated, pvmove
/// works).
pub fn device_mapper() -> bool {
    std::fs::read_to_string("/proc/misc").is_ok_and(|m| m.contains("device-mapper"))
        || std::fs::read_to_string("/proc/devices").is_ok_and(|d| d.contains("device-mapper"))
}

/// A volume group on loop devices.
pub struct TestVolumeGroup {
    pub name: String,
    /// The loop devices, one per PV, in order.
    pub pvs: Vec<String>,
    /// The `--config` its commands use.
    pub config: &'static str,
    dir: tempfile::TempDir,
}

impl TestVolumeGroup {
    /// Makes `pv_mib.len()` loop devices of those sizes and a VG on them.
    pub fn new(tag: &str, pv_mib: &[u64], config: &'static str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("tempdir for loop files")?;
        let mut vg = Self {
            name: format!("hwtest_{tag}_{}", std::process::id()),
            pvs: Vec::new(),
            config,
            dir,
        };
        for (i, mib) in pv_mib.iter().enumerate() {
            let file = vg.dir.path().join(format!("pv{i}.img"));
            std::fs::File::create(&file)?.set_len(mib << 20)?;
            let out = run("losetup", &["-f", "--show", path(&file)?])?;
            vg.pvs.push(out.trim().to_owned());
        }
        let pvs: Vec<&str> = vg.pvs.iter().map(String::as_str).collect();
        vg.lvm("pvcreate", &pvs)?;
        let mut args = vec![vg.name.as_str()];
        args.extend(&pvs);
        vg.lvm("vgcreate", &args)?;
        Ok(vg)
    }

    /// Runs an LVM command with this group's config; returns stdout.
    pub fn lvm(&self, command: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["--config", self.config];
        all.extend(args);
        run(command, &all)
    }

    /// Creates LV `name` of `mib` MiB on PV `pv` (an index into `pvs`).
    pub fn create_lv(&self, name: &str, mib: u64, pv: usize) -> anyhow::Result<()> {
        let size = format!("{mib}M");
        let mut args = vec!["-y", "-n", name, "-L", &size, &self.name, &self.pvs[pv]];
        if self.config == METADATA_ONLY_LVM_CONFIG {
            args.extend(["-an", "-Zn"]);
        }
        self.lvm("lvcreate", &args).map(drop)
    }

    /// The block device of an active LV.
    pub fn lv_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!(
            "/dev/mapper/{}-{}",
            self.name.replace('-', "--"),
            name
        ))
    }
}

impl Drop for TestVolumeGroup {
    fn drop(&mut self) {
        let _ = self.lvm("pvmove", &["--abort", &self.name]);
        let _ = self.lvm("vgchange", &["-an", &self.name]);
        let _ = self.lvm("vgremove", &["-ff", "-y", &self.name]);
        for pv in &self.pvs {
            let _ = self.lvm("pvremove", &["-ff", "-y", pv]);
            let _ = run("losetup", &["-d", pv]);
        }
    }
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("non-UTF-8 temp path")
}

fn run(command: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(command)
        .args(args)
        .output()
        .with_context(|| format!("running {command} (is lvm2 installed? cargo xtask setup)"))?;
    if !out.status.success() {
        bail!(
            "{command} {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
