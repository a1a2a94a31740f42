//! Value checks of the placement sections that serde cannot express:
//! ranges, templates an actuator or mover needs, and the planner's and
//! rebalancer's own checks of settings and thresholds; each failure names
//! its section and field.

use super::{ActuatorKind, MigrationConfig, MoverKind, PlannerConfig, StorageConfig};
use crate::{
    planner::{self, ClusterSnapshot, Constraints},
    rebalancer::{self, DeviceGroup, Snapshot},
};

/// A value that does not check: the section, the field, and why.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub section: &'static str,
    pub field: &'static str,
    pub message: String,
}

fn invalid<T>(section: &'static str, field: &'static str, message: String) -> Result<T, Invalid> {
    Err(Invalid {
        section,
        field,
        message,
    })
}

fn seconds(section: &'static str, field: &'static str, value: f64) -> Result<(), Invalid> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        invalid(
            section,
            field,
            format!("must be a number of seconds >= 0 (0 turns it off), not {value}"),
        )
    }
}

fn at_least_one(section: &'static str, fields: &[(&'static str, u64)]) -> Result<(), Invalid> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((field, _)) => invalid(section, field, "must be at least 1".into()),
        None => Ok(()),
    }
}

/// Checks the three sections.
pub fn check(
    planner: &PlannerConfig,
    migration: &MigrationConfig,
    storage: &StorageConfig,
) -> Result<(), Invalid> {
    check_planner(planner)?;
    check_migration(migration)?;
    check_storage(storage)
}

fn check_planner(p: &PlannerConfig) -> Result<(), Invalid> {
    seconds("planner", "interval_seconds", p.interval_seconds)?;
    seconds("planner", "settle_seconds", p.settle_seconds)?;
    at_least_one("planner", &[("history", p.history as u64)])?;
    // The planner's own checks, on an empty cluster with the constraints
    // that name nothing (those that do are checked per plan).
    let probe = ClusterSnapshot {
        constraints: Constraints {
            headroom: p.constraints.headroom,
            cpu_allocation_ratio: p.constraints.cpu_allocation_ratio,
            ..Constraints::default()
        },
        ..ClusterSnapshot::default()
    };
    if let Err(e) = planner::rebalance(&probe, &p.settings()) {
        let field = match e.to_string() {
            m if m.contains("percentile") => "percentile",
            m if m.contains("cpu_threshold") => "cpu_threshold",
            m if m.contains("spread_target") => "spread_target",
            _ => "constraints",
        };
        return invalid("planner", field, e.to_string());
    }
    for r in &p.constraints.reservations {
        if !(r.cpu_cores.is_finite() && r.cpu_cores >= 0.0) {
            return invalid(
                "planner",
                "constraints",
                format!(
                    "reservation of tenant {} on {}: cpu_cores must be a number >= 0, not {}",
                    r.tenant, r.host, r.cpu_cores
                ),
            );
        }
    }
    Ok(())
}

fn check_migration(m: &MigrationConfig) -> Result<(), Invalid> {
    at_least_one(
        "migration",
        &[
            ("max_concurrent", m.max_concurrent as u64),
            ("max_per_source", m.max_per_source as u64),
            ("max_per_destination", m.max_per_destination as u64),
            ("migration_timeout_seconds", m.migration_timeout_seconds),
            ("confirm_timeout_seconds", m.confirm_timeout_seconds),
            ("cleanup_timeout_seconds", m.cleanup_timeout_seconds),
            ("confirm_poll_ms", m.confirm_poll_ms),
        ],
    )?;
    if m.actuator == ActuatorKind::Command && m.command.is_none() {
        return invalid(
            "migration",
            "command",
            "actuator = \"command\" needs a [migration.command] table with migrate, confirm and abort templates".into(),
        );
    }
    if m.actuator == ActuatorKind::Qemu && m.qemu.vms.is_empty() {
        return invalid(
            "migration",
            "qemu",
            "actuator = \"qemu\" needs [migration.qemu.vms.NAME] with each VM's sockets".into(),
        );
    }
    let t = m.simulated.transfer_seconds;
    if !(t.is_finite() && t >= 0.0) {
        return invalid(
            "migration",
            "simulated",
            format!("transfer_seconds must be a number >= 0, not {t}"),
        );
    }
    Ok(())
}

fn check_storage(s: &StorageConfig) -> Result<(), Invalid> {
    seconds("storage", "interval_seconds", s.interval_seconds)?;
    seconds("storage", "settle_seconds", s.settle_seconds)?;
    at_least_one(
        "storage",
        &[
            ("per_device", s.per_device as u64),
            ("parallel", s.parallel as u64),
            ("move_timeout_seconds", s.move_timeout_seconds),
        ],
    )?;
    if !(s.percentile > 0.0 && s.percentile <= 1.0) {
        return invalid(
            "storage",
            "percentile",
            format!("must be in (0, 1], not {}", s.percentile),
        );
    }
    if s.state_dir.as_os_str().is_empty() {
        return invalid("storage", "state_dir", "names no directory".into());
    }
    // The rebalancer's own checks of each group's thresholds.
    let groups = std::iter::once(("thresholds", "(default)", &s.thresholds))
        .chain(s.groups.iter().map(|(n, t)| ("groups", n.as_str(), t)));
    for (field, name, thresholds) in groups {
        let probe = Snapshot {
            groups: vec![DeviceGroup {
                name: name.to_owned(),
                thresholds: thresholds.clone(),
            }],
            ..Snapshot::default()
        };
        if let Err(e) = rebalancer::plan(&probe) {
            return invalid("storage", field, e.to_string());
        }
    }
    let c = s.agent.confirm_timeout_seconds;
    if !(c.is_finite() && c > 0.0) {
        return invalid(
            "storage",
            "agent",
            format!("confirm_timeout_seconds must be above 0, not {c}"),
        );
    }
    if s.simulated.bytes_per_second == 0 {
        return invalid(
            "storage",
            "simulated",
            "bytes_per_second must be at least 1".into(),
        );
    }
    match (s.mover, &s.file, &s.command) {
        (MoverKind::File, None, _) => invalid(
            "storage",
            "file",
            "mover = \"file\" needs a [storage.file] table with pools and links".into(),
        ),
        (MoverKind::Command, _, None) => invalid(
            "storage",
            "command",
            "mover = \"command\" needs a [storage.command] table with a run template".into(),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::config::DEFAULT_MAX_MIGRATIONS;

    fn planner(text: &str) -> PlannerConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_check_and_match_the_libraries() {
        let (p, m, s) = (
            PlannerConfig::default(),
            MigrationConfig::default(),
            StorageConfig::default(),
        );
        check(&p, &m, &s).unwrap();
        assert_eq!(p.settings().max_migrations, Some(DEFAULT_MAX_MIGRATIONS));
        assert!(!m.execute_rebalance, "rebalancing is a dry run by default");
        assert!(s.dry_run, "LUN moves are a dry run by default");
        assert_eq!(m.executor(true).max_per_source, 2);
        assert!(m.executor(true).execute_rebalance);
        assert!(s.executor(false).dry_run);
        assert!(!s.executor(true).dry_run);
    }

    #[test]
    fn bad_values_name_their_field() {
        let p = planner("percentile = 1.5\n");
        let e = check_planner(&p).unwrap_err();
        assert_eq!((e.section, e.field), ("planner", "percentile"), "{e:?}");
        let p = planner("[constraints.headroom]\ncpu_fraction = 1.2\nmemory_fraction = 0.0\n");
        let e = check_planner(&p).unwrap_err();
        assert_eq!(e.field, "constraints", "{e:?}");
        assert!(e.message.contains("cpu_fraction"), "{e:?}");
        let s: StorageConfig = toml::from_str("[groups.fast]\nmax_capacity_used = 0.0\n").unwrap();
        let e = check_storage(&s).unwrap_err();
        assert_eq!(e.field, "groups");
        assert!(
            e.message.contains("fast") && e.message.contains("max_capacity_used"),
            "{e:?}"
        );
        let s: StorageConfig = toml::from_str("mover = \"file\"\n").unwrap();
        assert_eq!(check_storage(&s).unwrap_err().field, "file");
        let m: MigrationConfig = toml::from_str("actuator = \"command\"\n").unwrap();
        assert_eq!(check_migration(&m).unwrap_err().field, "command");
        let m: MigrationConfig = toml::from_str("max_per_source = 0\n").unwrap();
        assert_eq!(check_migration(&m).unwrap_err().field, "max_per_source");
    }

    #[test]
    fn constraints_and_actuator_settings_parse() {
        let p = planner(
            r#"
cpu_threshold = 0.7
[constraints]
pinned = { "db-1" = "hv-1" }
unmovable = { "gpu-1" = "GPU passed through" }
[[constraints.anti_affinity]]
name = "web"
vms = ["web-1", "web-2"]
[[constraints.reservations]]
tenant = "shop"
host = "hv-2"
cpu_cores = 4.0
memory_bytes = 8589934592
"#,
        );
        check_planner(&p).unwrap();
        assert_eq!(p.settings().cpu_threshold, 0.7);
        assert_eq!(p.constraints.anti_affinity[0].vms.len(), 2);
        let m: MigrationConfig = toml::from_str(
            r#"
actuator = "qemu"
[qemu.vms.web-1]
source_qmp = "/run/qemu/web-1.qmp"
destination_qmp = "/run/qemu/web-1-in.qmp"
migrate_uri = "tcp:10.0.0.2:4444"
"#,
        )
        .unwrap();
        check_migration(&m).unwrap();
        assert!(
            toml::from_str::<MigrationConfig>("actuator = \"ssh\"\n")
                .unwrap_err()
                .to_string()
                .contains("unknown variant `ssh`")
        );
    }
}
