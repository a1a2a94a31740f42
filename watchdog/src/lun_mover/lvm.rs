//! The `lvm` mover: `pvmove --atomic -n LV SRC_PV DST_PV` moves a logical
//! volume's extents to another physical volume of its volume group, online,
//! through a device-mapper mirror: the LV stays readable and writable all
//! along, and an interrupted move leaves it whole where it was (`--atomic`:
//! all of it moves or none). Recovery aborts a pvmove left in the volume
//! group and then reads where the LV's extents are.
//!
//! LUNs are named `vg/lv`; devices are PV paths, as the agent's inventory
//! names them.

use std::{process::Command, time::Duration};

use serde::Deserialize;

use super::{Cancel, Journal, LunMover, MoveError, MoveOrder, Phase, Recovered, command};

/// Bound on a reporting or abort command (`lvs`, `pvmove --abort`): they
/// only read or rewrite metadata.
const LVM_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Seconds between pvmove's progress reports (its `-i`).
const PVMOVE_INTERVAL_SECONDS: &str = "5";

/// The LVM mover's configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmMoverConfig {
    /// Passed to every LVM command as `--config`; e.g. in a container
    /// without udev: `devices{use_devicesfile=0} activation{udev_sync=0 udev_rules=0}`.
    #[serde(default)]
    pub lvm_config: Option<String>,
}

/// Moves logical volumes between physical volumes.
pub struct LvmMover {
    config: LvmMoverConfig,
}

impl LvmMover {
    pub fn new(config: LvmMoverConfig) -> Self {
        Self { config }
    }

    fn argv(&self, command: &str, args: &[&str]) -> Vec<String> {
        let mut argv = vec![command.to_owned()];
        if let Some(c) = &self.config.lvm_config {
            argv.push("--config".into());
            argv.push(c.clone());
        }
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    fn run_lvm(
        &self,
        argv: &[String],
        cancel: &Cancel,
        timeout: Option<Duration>,
    ) -> Result<(), MoveError> {
        match command::run_bounded(argv, cancel, timeout)? {
            (true, _) => Ok(()),
            (false, detail) => {
                let (status, stderr) = detail.split_once('\n').unwrap_or((&detail, ""));
                Err(MoveError::Command {
                    command: argv.join(" "),
                    status: status.to_owned(),
                    stderr: stderr.to_owned(),
                })
            }
        }
    }

    /// The PVs holding each LV of `vg` (hidden pvmove LVs included).
    fn placement(&self, vg: &str) -> Result<Vec<LvPlacement>, MoveError> {
        let argv = self.argv(
            "lvs",
            &[
                "-a",
                "--reportformat",
                "json",
                "-o",
                "lv_name,lv_attr,devices",
                vg,
            ],
        );
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .map_err(MoveError::io("running", "lvs"))?;
        if !out.status.success() {
            return Err(MoveError::Command {
                command: argv.join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        parse_placement(&String::from_utf8_lossy(&out.stdout)).map_err(|message| {
            MoveError::Command {
                command: argv.join(" "),
                status: "unreadable output".into(),
                stderr: message,
            }
        })
    }
}

/// Splits `vg/lv`.
fn split_lun(order: &MoveOrder) -> Result<(&str, &str), MoveError> {
    order
        .lun
        .split_once('/')
        .filter(|(vg, lv)| !vg.is_empty() && !lv.is_empty() && !lv.contains('/'))
        .ok_or_else(|| MoveError::Refused {
            lun: order.lun.clone(),
            message: "an LVM LUN is named vg/lv".into(),
        })
}

/// One LV and the PVs its extents are on.
#[derive(Debug, PartialEq)]
pub struct LvPlacement {
    pub name: String,
    pub attr: String,
    pub pvs: Vec<String>,
}

#[derive(Deserialize)]
struct Report {
    report: Vec<ReportLvs>,
}
#[derive(Deserialize)]
struct ReportLvs {
    lv: Vec<ReportLv>,
}
#[derive(Deserialize)]
struct ReportLv {
    lv_name: String,
    lv_attr: String,
    devices: String,
}

/// Reads `lvs --reportformat json -o lv_name,lv_attr,devices`: an LV with
/// several segments appears once per segment; devices read like
/// `/dev/loop0(0),/dev/loop1(2)`.
pub fn parse_placement(json: &str) -> Result<Vec<LvPlacement>, String> {
    let report: Report = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out: Vec<LvPlacement> = Vec::new();
    for lv in report.report.into_iter().flat_map(|r| r.lv) {
        let name = lv.lv_name.trim_matches(['[', ']']).to_owned();
        let pvs = lv
            .devices
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| d.split_once('(').map_or(d, |(p, _)| p).to_owned());
        match out.iter_mut().find(|p| p.name == name) {
            Some(p) => p.pvs.extend(pvs),
            None => out.push(LvPlacement {
                name,
                attr: lv.lv_attr,
                pvs: pvs.collect(),
            }),
        }
    }
    for p in &mut out {
        p.pvs.sort();
        p.pvs.dedup();
    }
    Ok(out)
}

impl LunMover for LvmMover {
    fn name(&self) -> &'static str {
        "lvm"
    }

    fn describe(&self, order: &MoveOrder) -> String {
        match split_lun(order) {
            Ok((_, lv)) => format!(
                "run `{}`",
                self.argv("pvmove", &["--atomic", "-n", lv, &order.from, &order.to])
                    .join(" ")
            ),
            Err(e) => format!("cannot move: {e}"),
        }
    }

    fn run(
        &self,
        order: &MoveOrder,
        journal: &mut Journal,
        cancel: &Cancel,
    ) -> Result<(), MoveError> {
        let (vg, lv) = split_lun(order)?;
        let placed = self.placement(vg)?;
        let here = placed
            .iter()
            .find(|p| p.name == lv)
            .ok_or_else(|| MoveError::Refused {
                lun: order.lun.clone(),
                message: format!("volume group {vg} has no logical volume {lv}"),
            })?;
        if !here.pvs.contains(&order.from) {
            return Err(MoveError::Refused {
                lun: order.lun.clone(),
                message: format!("its extents are on {:?}, not {}", here.pvs, order.from),
            });
        }
        journal.advance(Phase::Copying, &[])?;
        let argv = self.argv(
            "pvmove",
            &[
                "--atomic",
                "-i",
                PVMOVE_INTERVAL_SECONDS,
                "-n",
                lv,
                &order.from,
                &order.to,
            ],
        );
        self.run_lvm(&argv, cancel, None)?;
        journal.advance(Phase::Switched, &[])
    }

    fn recover(&self, journal: &mut Journal) -> Result<Recovered, MoveError> {
        let order = journal.record().order.clone();
        let (vg, lv) = split_lun(&order)?;
        let never = Cancel::default();
        // A pvmove LV ('p' in the attributes) left in the VG is our move
        // (one at a time per LUN): abort it; --atomic puts it all back.
        if self.placement(vg)?.iter().any(|p| p.attr.starts_with('p')) {
            let abort = self.argv("pvmove", &["--abort", vg]);
            self.run_lvm(&abort, &never, Some(LVM_COMMAND_TIMEOUT))?;
        }
        let placed = self.placement(vg)?;
        let here = placed
            .iter()
            .find(|p| p.name == lv)
            .ok_or_else(|| MoveError::Refused {
                lun: order.lun.clone(),
                message: format!("volume group {vg} has no logical volume {lv} any more"),
            })?;
        if here.pvs == [order.to.clone()] {
            Ok(Recovered::Finished)
        } else if here.pvs.contains(&order.from)
            && !here.pvs.iter().any(|p| p.starts_with("pvmove"))
        {
            Ok(Recovered::RolledBack)
        } else {
            Err(MoveError::Refused {
                lun: order.lun.clone(),
                message: format!(
                    "after recovery its extents are on {:?}; left for the operator",
                    here.pvs
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lvs_placement_with_pvmove_in_flight() {
        // Captured from `lvs -a` with a pvmove interrupted.
        let json = r#"{"report": [{"lv": [
            {"lv_name":"lv1", "lv_attr":"-wI-ao----", "devices":"pvmove0(0)"},
            {"lv_name":"lv2", "lv_attr":"-wi-ao----", "devices":"/dev/loop1(0)"},
            {"lv_name":"lv2", "lv_attr":"-wi-ao----", "devices":"/dev/loop0(4)"},
            {"lv_name":"[pvmove0]", "lv_attr":"p-C-aom---", "devices":"/dev/loop0(0),/dev/loop1(2)"}
        ]}]}"#;
        let p = parse_placement(json).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].pvs, ["pvmove0"]);
        assert_eq!(p[1].pvs, ["/dev/loop0", "/dev/loop1"]);
        assert_eq!(p[2].name, "pvmove0");
        assert!(p[2].attr.starts_with('p'));
    }

    #[test]
    fn lun_names_are_vg_slash_lv() {
        let mut order = MoveOrder {
            lun: "vg0/data".into(),
            from: "/dev/sdb".into(),
            to: "/dev/sdc".into(),
            bytes: 1,
        };
        let m = LvmMover::new(LvmMoverConfig {
            lvm_config: Some("devices{use_devicesfile=0}".into()),
        });
        assert_eq!(
            m.describe(&order),
            "run `pvmove --config devices{use_devicesfile=0} --atomic -n data /dev/sdb /dev/sdc`"
        );
        order.lun = "data".into();
        assert!(m.describe(&order).starts_with("cannot move"));
    }
}
