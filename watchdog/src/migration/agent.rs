//! The `agent` actuator: moves a VM through the agents of its source and
//! destination hosts, with the `vm-migrate-out` and `vm-migrate-in`
//! actions (see the protocol's Command) sent by
//! [`CommandRouter::send_command`]. Any hypervisor whose agents allowlist
//! those actions works; simulated hosts carry them out themselves.
//!
//! * transfer: the source prepares (live moves only), then the destination
//!   receives the VM, described by the source's inventory and usage, and
//!   answers once it runs it;
//! * confirm: the destination's inventory (in the registry) lists the VM
//!   running;
//! * release: the source lets go of its copy;
//! * abort: the destination discards its copy, the source runs on.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::json;

use super::{Actuator, ActuatorError, ActuatorFuture, MigrationRequest};
use crate::{
    commands::{CommandError, CommandRouter},
    planner::MoveKind,
    registry::Registry,
};

/// What the destination's inventory says of a VM it runs.
const RUNNING: &str = "running";

/// Moves VMs through agents.
pub struct AgentActuator {
    registry: Arc<Registry>,
    commands: Arc<CommandRouter>,
}

impl AgentActuator {
    pub fn new(registry: Arc<Registry>, commands: Arc<CommandRouter>) -> Self {
        Self { registry, commands }
    }

    /// The VM as its source host last reported it, for the destination:
    /// size, tenant, labels, priority, and its latest usage (a simulator
    /// carries the load on; a real hypervisor's hook may ignore it).
    fn spec(&self, r: &MigrationRequest) -> Result<String, ActuatorError> {
        let unknown = || ActuatorError::UnknownVm {
            actuator: "agent",
            vm: r.vm.clone(),
        };
        let entry = self.registry.entry(&r.source).ok_or_else(unknown)?;
        let host = entry.lock().expect("host lock");
        let vm = host
            .inventory
            .vms
            .iter()
            .find(|v| v.name == r.vm)
            .ok_or_else(unknown)?;
        let usage = host.usage.vms.get(&r.vm);
        let labels: BTreeMap<&String, &String> = vm.labels.iter().collect();
        Ok(json!({
            "vcpus": vm.vcpus,
            "memory_bytes": vm.memory_bytes,
            "resident_bytes": usage.and_then(|u| u.memory_resident_bytes.latest()).unwrap_or(vm.memory_bytes),
            "cpu_cores": usage.and_then(|u| u.cpu_cores.latest()).unwrap_or(0.0),
            "tenant": vm.tenant,
            "labels": labels,
            "priority": vm.priority,
            "unmovable_reason": vm.unmovable_reason,
        })
        .to_string())
    }

    /// Sends `action` to `host` and insists on success.
    async fn command(
        &self,
        host: &str,
        action: &str,
        args: &[(&str, &str)],
    ) -> Result<(), ActuatorError> {
        let args = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let shown = format!("{action} on {host}");
        match self.commands.send_command(host, action, args).await {
            Ok(o) if o.status == "succeeded" => Ok(()),
            Ok(o) => Err(ActuatorError::Command {
                command: shown,
                status: o.status.to_owned(),
                stderr: o.message,
            }),
            Err(e) => Err(command_error(shown, &e)),
        }
    }
}

fn command_error(command: String, e: &CommandError) -> ActuatorError {
    ActuatorError::Command {
        command,
        status: "not delivered".into(),
        stderr: e.to_string(),
    }
}

impl Actuator for AgentActuator {
    fn name(&self) -> &'static str {
        "agent"
    }

    fn transfer<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let spec = self.spec(r)?;
            if r.kind == MoveKind::Live {
                self.command(
                    &r.source,
                    "vm-migrate-out",
                    &[
                        ("vm", &r.vm),
                        ("destination", &r.destination),
                        ("stage", "prepare"),
                    ],
                )
                .await?;
            }
            self.command(
                &r.destination,
                "vm-migrate-in",
                &[
                    ("vm", &r.vm),
                    ("source", &r.source),
                    ("stage", "start"),
                    ("spec", &spec),
                ],
            )
            .await
        })
    }

    fn confirm_running<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, bool> {
        Box::pin(async move {
            let Some(entry) = self.registry.entry(&r.destination) else {
                return Ok(false);
            };
            let host = entry.lock().expect("host lock");
            Ok(host
                .inventory
                .vms
                .iter()
                .any(|v| v.name == r.vm && v.state == RUNNING))
        })
    }

    fn release_source<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            // A restart's source is dead; should it come back, its agent is
            // told to let go of its stale copy, else there is nothing to do.
            if r.kind == MoveKind::Restart && self.registry.connection(&r.source).is_none() {
                tracing::info!(vm = %r.vm, source = %r.source, "source host is down; nothing to release");
                return Ok(());
            }
            self.command(
                &r.source,
                "vm-migrate-out",
                &[
                    ("vm", &r.vm),
                    ("destination", &r.destination),
                    ("stage", "release"),
                ],
            )
            .await
        })
    }

    fn abort<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let discarded = self
                .command(
                    &r.destination,
                    "vm-migrate-in",
                    &[("vm", &r.vm), ("source", &r.source), ("stage", "abort")],
                )
                .await;
            let kept = if r.kind == MoveKind::Live {
                self.command(
                    &r.source,
                    "vm-migrate-out",
                    &[
                        ("vm", &r.vm),
                        ("destination", &r.destination),
                        ("stage", "abort"),
                    ],
                )
                .await
            } else {
                Ok(())
            };
            // The source running the VM is what matters; report that first.
            kept.and(discarded)
        })
    }
}
