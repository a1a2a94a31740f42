//! The configured machinery: the VM actuator and the LUN mover built from
//! `[migration] actuator` and `[storage] mover`, and what each cannot do
//! (so that a step is "not available" up front rather than failing half
//! way).

use std::{sync::Arc, time::Duration};

use super::{
    config::{ActuatorKind, MigrationConfig, MoverKind, StorageConfig},
    history::Kind,
};
use crate::{
    commands::CommandRouter,
    lun_mover::{
        LunMover, agent::AgentMover, command::CommandMover, file::FileMover, lvm::LvmMover,
        simulated::SimulatedMover,
    },
    migration::{
        Actuator,
        agent::AgentActuator,
        command::CommandActuator,
        libvirt::LibvirtActuator,
        qemu::{QemuActuator, QemuEndpoints},
        simulated::SimulatedActuator,
    },
    registry::Registry,
};

/// The VM actuator of `config`, or none for "none".
pub fn actuator(
    config: &MigrationConfig,
    registry: &Arc<Registry>,
    commands: &Arc<CommandRouter>,
) -> Option<Arc<dyn Actuator>> {
    Some(match config.actuator {
        ActuatorKind::None => return None,
        ActuatorKind::Agent => Arc::new(AgentActuator::new(registry.clone(), commands.clone())),
        ActuatorKind::Qemu => {
            let qemu = QemuActuator::new();
            for (vm, e) in &config.qemu.vms {
                qemu.register(
                    vm,
                    QemuEndpoints {
                        source_qmp: e.source_qmp.clone(),
                        destination_qmp: e.destination_qmp.clone(),
                        migrate_uri: e.migrate_uri.clone(),
                    },
                );
            }
            Arc::new(qemu)
        }
        ActuatorKind::Libvirt => Arc::new(LibvirtActuator::new(config.libvirt.clone())),
        ActuatorKind::Command => {
            Arc::new(CommandActuator::new(config.command.clone().expect(
                "checked with the configuration: actuator command has its templates",
            )))
        }
        ActuatorKind::Simulated => Arc::new(SimulatedActuator::new(
            [],
            Duration::from_secs_f64(config.simulated.transfer_seconds),
        )),
    })
}

/// Where a plan's LUN mover comes from.
#[derive(Clone)]
pub enum Movers {
    /// "none".
    None,
    /// One mover for every plan.
    Fixed(Arc<dyn LunMover>),
    /// A simulated mover per plan, knowing where the plan found each LUN.
    Simulated { bytes_per_second: f64 },
}

impl Movers {
    /// The mover of `config`. `runtime` runs the agent mover's commands.
    pub fn new(
        config: &StorageConfig,
        registry: &Arc<Registry>,
        commands: &Arc<CommandRouter>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        match config.mover {
            MoverKind::None => Movers::None,
            MoverKind::Agent => Movers::Fixed(Arc::new(
                AgentMover::new(registry.clone(), commands.clone(), runtime).with_confirm_timeout(
                    Duration::from_secs_f64(config.agent.confirm_timeout_seconds),
                ),
            )),
            MoverKind::File => Movers::Fixed(Arc::new(FileMover::new(
                config
                    .file
                    .clone()
                    .expect("checked with the configuration: mover file has its pools"),
            ))),
            MoverKind::Lvm => Movers::Fixed(Arc::new(LvmMover::new(config.lvm.clone()))),
            MoverKind::Command => {
                Movers::Fixed(Arc::new(CommandMover::new(config.command.clone().expect(
                    "checked with the configuration: mover command has its template",
                ))))
            }
            MoverKind::Simulated => Movers::Simulated {
                bytes_per_second: config.simulated.bytes_per_second as f64,
            },
        }
    }

    /// The mover for a plan whose LUNs were at `locations` (LUN, device).
    pub fn for_plan(&self, locations: &[(String, String)]) -> Option<Arc<dyn LunMover>> {
        match self {
            Movers::None => None,
            Movers::Fixed(m) => Some(m.clone()),
            Movers::Simulated { bytes_per_second } => Some(Arc::new(SimulatedMover::new(
                locations.iter().cloned(),
                *bytes_per_second,
            ))),
        }
    }
}

/// Why the configured machinery cannot carry out `kind`, if it cannot.
pub fn unavailable(
    kind: Kind,
    migration: &MigrationConfig,
    storage: &StorageConfig,
) -> Option<String> {
    match (kind, migration.actuator, storage.mover) {
        (Kind::MoveLuns, _, MoverKind::None) => {
            Some("no LUN mover is configured ([storage] mover = \"none\")".into())
        }
        (Kind::MoveLuns, _, _) => None,
        (_, ActuatorKind::None, _) => Some(format!(
            "no VM actuator is configured ([migration] actuator = \"none\"), so nothing can {}",
            if kind == Kind::Failover {
                "restart a failed host's VMs"
            } else {
                "migrate VMs"
            }
        )),
        (Kind::Failover, ActuatorKind::Qemu, _) => Some(
            "the qemu actuator cannot restart the VMs of a failed host (QMP does not carry their command lines); use the agent, libvirt or command actuator".into(),
        ),
        (Kind::Failover, ActuatorKind::Command, _)
            if migration.command.as_ref().is_none_or(|c| c.restart.is_empty()) =>
        {
            Some("[migration.command] has no restart template, so a failed host's VMs cannot be restarted elsewhere".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_actuator_cannot_do_is_said_up_front() {
        let mut m = MigrationConfig::default();
        let s = StorageConfig::default();
        for kind in Kind::ALL {
            assert_eq!(unavailable(kind, &m, &s), None, "the agent does it all");
        }
        m.actuator = ActuatorKind::Qemu;
        assert!(
            unavailable(Kind::Failover, &m, &s)
                .unwrap()
                .contains("qemu")
        );
        assert_eq!(unavailable(Kind::Rebalance, &m, &s), None);
        m.actuator = ActuatorKind::None;
        assert!(
            unavailable(Kind::Rebalance, &m, &s)
                .unwrap()
                .contains("migrate VMs")
        );
        assert_eq!(unavailable(Kind::MoveLuns, &m, &s), None);
        let none = StorageConfig {
            mover: MoverKind::None,
            ..StorageConfig::default()
        };
        assert!(
            unavailable(Kind::MoveLuns, &m, &none)
                .unwrap()
                .contains("mover")
        );
    }

    #[test]
    fn a_simulated_mover_knows_where_each_plan_found_its_luns() {
        let movers = Movers::Simulated {
            bytes_per_second: 1e9,
        };
        let locations = [("st-a/vol-1".to_owned(), "st-a/d1".to_owned())];
        let mover = movers.for_plan(&locations).unwrap();
        assert_eq!(mover.name(), "simulated");
        assert!(Movers::None.for_plan(&locations).is_none());
    }
}
