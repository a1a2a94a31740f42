//! LVM backend: each physical volume of a configured volume group is a
//! device (its group is the VG, so LVs move only within it), each logical
//! volume a LUN. Read with `pvs` and `lvs --reportformat json` (stable,
//! machine-readable, and what LVM itself recommends over scraping /sys).

use std::process::Command;

use serde::Deserialize;

use super::{Backend, StorageDevice, StorageError, StorageInventory, StorageLun};
use crate::config::StorageConfig;

/// Reads the configured volume groups into `inv`.
pub fn read(config: &StorageConfig, inv: &mut StorageInventory) -> Result<(), StorageError> {
    let vgs = &config.lvm_volume_groups;
    let pvs = report(
        config,
        "pvs",
        &["-o", "pv_name,vg_name,pv_size,pv_used"],
        &[],
    )?;
    let lvs = report(
        config,
        "lvs",
        &[
            "-o",
            "vg_name,lv_name,lv_size,lv_kernel_minor,devices,data_percent",
        ],
        vgs,
    )?;
    let (devices, luns) = parse(&pvs, &lvs, vgs).map_err(|message| StorageError::Parse {
        what: "LVM JSON report".into(),
        message,
    })?;
    inv.devices.extend(devices);
    inv.luns.extend(luns);
    Ok(())
}

fn report(
    config: &StorageConfig,
    command: &str,
    fields: &[&str],
    vgs: &[String],
) -> Result<String, StorageError> {
    let mut cmd = Command::new(command);
    if let Some(c) = config.lvm_config.as_deref().filter(|c| !c.is_empty()) {
        cmd.args(["--config", c]);
    }
    cmd.args(["--reportformat", "json", "--units", "b", "--nosuffix"])
        .args(fields)
        .args(vgs);
    let shown = format!("{command} {}", fields.join(" "));
    let out = cmd.output().map_err(|e| StorageError::Command {
        command: shown.clone(),
        message: format!("{e} (is lvm2 installed?)"),
    })?;
    if !out.status.success() {
        return Err(StorageError::Command {
            command: shown,
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Deserialize)]
struct Report<T> {
    report: Vec<T>,
}
#[derive(Deserialize)]
struct PvList {
    pv: Vec<Pv>,
}
#[derive(Deserialize)]
struct Pv {
    pv_name: String,
    vg_name: String,
    pv_size: String,
    pv_used: String,
}
#[derive(Deserialize)]
struct LvList {
    lv: Vec<Lv>,
}
#[derive(Deserialize)]
struct Lv {
    vg_name: String,
    lv_name: String,
    lv_size: String,
    lv_kernel_minor: String,
    devices: String,
    #[serde(default)]
    data_percent: String,
}

fn bytes(field: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|e| format!("{field} {value:?}: {e}"))
}

/// Parses `pvs` and `lvs` JSON (in bytes, no suffix) for volume groups `vgs`.
pub fn parse(
    pvs: &str,
    lvs: &str,
    vgs: &[String],
) -> Result<(Vec<StorageDevice>, Vec<StorageLun>), String> {
    let pvs: Report<PvList> = serde_json::from_str(pvs).map_err(|e| format!("pvs: {e}"))?;
    let lvs: Report<LvList> = serde_json::from_str(lvs).map_err(|e| format!("lvs: {e}"))?;
    let mut devices = Vec::new();
    for pv in pvs.report.into_iter().flat_map(|r| r.pv) {
        if !vgs.contains(&pv.vg_name) {
            continue;
        }
        devices.push(StorageDevice {
            kernel_device: kernel_name(&pv.pv_name),
            capacity_bytes: bytes("pv_size", &pv.pv_size)?,
            used_bytes: bytes("pv_used", &pv.pv_used)?,
            id: pv.pv_name,
            backend: Backend::Lvm,
            group: pv.vg_name,
            io: None,
            rates: None,
        });
    }
    let mut luns = Vec::new();
    for lv in lvs.report.into_iter().flat_map(|r| r.lv) {
        let size = bytes("lv_size", &lv.lv_size)?;
        let device = lv
            .devices
            .split(',')
            .next()
            .and_then(|d| d.split('(').next())
            .unwrap_or_default()
            .to_owned();
        // Thin LVs report how full they are; thick ones own all their size.
        let allocated = match lv.data_percent.trim().parse::<f64>() {
            Ok(p) => Some((size as f64 * p / 100.0) as u64),
            Err(_) => Some(size),
        };
        luns.push(StorageLun {
            id: format!("{}/{}", lv.vg_name, lv.lv_name),
            backend: Backend::Lvm,
            device,
            size_bytes: size,
            allocated_bytes: allocated,
            // Inactive LVs report minor -1 and have no kernel device.
            kernel_device: lv
                .lv_kernel_minor
                .trim()
                .parse::<u32>()
                .ok()
                .map(|minor| format!("dm-{minor}")),
            io: None,
            rates: None,
        });
    }
    Ok((devices, luns))
}

/// The kernel's name for a device path (`/dev/loop0` -> `loop0`,
/// `/dev/mapper/x` -> `dm-3`).
fn kernel_name(path: &str) -> Option<String> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    real.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_reports_of_the_configured_groups_only() {
        // As `pvs`/`lvs --reportformat json --units b --nosuffix` print them.
        let pvs = r#"{"report":[{"pv":[
            {"pv_name":"/dev/loop0","vg_name":"vg0","pv_size":"62914560","pv_used":"16777216"},
            {"pv_name":"/dev/sda2","vg_name":"system","pv_size":"100","pv_used":"100"}]}]}"#;
        let lvs = r#"{"report":[{"lv":[
            {"vg_name":"vg0","lv_name":"data","lv_size":"16777216","lv_kernel_minor":"3","devices":"/dev/loop0(0)","data_percent":""},
            {"vg_name":"vg0","lv_name":"off","lv_size":"8388608","lv_kernel_minor":"-1","devices":"/dev/loop1(0),/dev/loop0(4)","data_percent":""}]}]}"#;
        let (devices, luns) = super::parse(pvs, lvs, &["vg0".into()]).unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].id, "/dev/loop0");
        assert_eq!(devices[0].group, "vg0");
        assert_eq!(devices[0].capacity_bytes, 62914560);
        assert_eq!(devices[0].used_bytes, 16777216);
        assert_eq!(luns[0].id, "vg0/data");
        assert_eq!(luns[0].kernel_device.as_deref(), Some("dm-3"));
        assert_eq!(luns[1].device, "/dev/loop1");
        assert_eq!(luns[1].kernel_device, None);
        assert!(super::parse("{", lvs, &[]).unwrap_err().starts_with("pvs:"));
    }
}
