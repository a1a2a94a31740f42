//! The watchdog's commands to a simulated host, carried out on the model
//! (no process runs): `restart-service`, `vm-migrate-in`/`vm-migrate-out`
//! and `lun-migrate-in`/`lun-migrate-out` with the arguments the protocol
//! documents (proto: Command). Every change is published as a new
//! inventory at once, so the watchdog sees a VM or LUN arrive and leave.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use hyperwatch_proto::v1::{self, CommandStatus};

use super::{
    Timeline,
    model::{LunProfile, SimHost, VmProfile},
};
use crate::stream::{
    EventSender,
    actions::{CommandHandler, ResultFuture},
    inventory::InventoryPublisher,
    unix_nanos,
};

/// Answers commands on the simulated host.
pub struct SimCommands {
    pub host: Arc<Mutex<SimHost>>,
    pub inventory: Arc<InventoryPublisher>,
    pub events: Option<EventSender>,
    pub timeline: Timeline,
}

/// What a command came to.
type Outcome = Result<String, (CommandStatus, String)>;

fn refuse(message: impl Into<String>) -> (CommandStatus, String) {
    (CommandStatus::Refused, message.into())
}

fn fail(message: impl Into<String>) -> (CommandStatus, String) {
    (CommandStatus::Failed, message.into())
}

/// The command's argument `name`, which it must have.
fn arg<'a>(
    args: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a str, (CommandStatus, String)> {
    args.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refuse(format!("argument {name:?} is missing")))
}

impl CommandHandler for SimCommands {
    fn handle(&self, command: v1::Command) -> ResultFuture<'_> {
        Box::pin(async move {
            let started = Instant::now();
            let outcome = match command.action.as_str() {
                "restart-service" => self.restart_service(&command.args),
                "vm-migrate-out" => self.vm_out(&command.args),
                "vm-migrate-in" => self.vm_in(&command.args).await,
                "lun-migrate-out" => self.lun_out(&command.args),
                "lun-migrate-in" => self.lun_in(&command.args).await,
                other => Err(refuse(format!(
                    "action {other:?} is not one a simulated host knows (restart-service, vm-migrate-in, vm-migrate-out, lun-migrate-in, lun-migrate-out)"
                ))),
            };
            let (status, message) = match outcome {
                Ok(m) => (CommandStatus::Succeeded, m),
                Err((status, m)) => {
                    tracing::warn!(action = %command.action, reason = %m, "simulated action not done");
                    (status, m)
                }
            };
            v1::CommandResult {
                id: command.id,
                status: status as i32,
                exit_code: (status == CommandStatus::Succeeded).then_some(0),
                message,
                duration_ms: started.elapsed().as_millis() as u64,
                ..Default::default()
            }
        })
    }
}

impl SimCommands {
    /// Runs `f` on the model, then publishes the inventory and tells the
    /// timeline what happened (`f`'s Ok text).
    fn change<T>(
        &self,
        f: impl FnOnce(&mut SimHost) -> Result<(T, String), String>,
    ) -> Result<T, String> {
        let (value, said, inventory, now) = {
            let mut h = self.host.lock().unwrap_or_else(|p| p.into_inner());
            let (value, said) = f(&mut h)?;
            (value, said, super::inventory::inventory(&h), h.now)
        };
        self.inventory.publish(inventory);
        self.timeline.say(now, &said);
        Ok(value)
    }

    fn restart_service(&self, args: &HashMap<String, String>) -> Outcome {
        let service = arg(args, "service")?.to_owned();
        let was_down = self
            .change(|h| match h.services.get_mut(&service) {
                None => Err(format!("no service {service:?} on this host")),
                Some(up) => {
                    let was_down = !*up;
                    *up = true;
                    Ok((was_down, format!("service {service} restarted on request")))
                }
            })
            .map_err(fail)?;
        if was_down && let Some(events) = &self.events {
            events.send(v1::event::Kind::ServiceStateChange(
                v1::ServiceStateChange {
                    service: service.clone(),
                    old_state: super::SERVICE_DOWN.into(),
                    new_state: super::SERVICE_UP.into(),
                    changed_unix_nanos: unix_nanos(SystemTime::now()),
                    detail: "restarted by the watchdog (simulated)".into(),
                },
            ));
        }
        Ok(format!("service {service} is up"))
    }

    fn vm_out(&self, args: &HashMap<String, String>) -> Outcome {
        let vm = arg(args, "vm")?.to_owned();
        let destination = arg(args, "destination")?.to_owned();
        match arg(args, "stage")? {
            "prepare" => self
                .change(|h| {
                    h.vm_prepare_out(&vm)?;
                    Ok(((), format!("vm {vm} prepares to leave for {destination}")))
                })
                .map_err(fail)
                .map(|()| format!("vm {vm} ready to leave")),
            "release" => self
                .change(|h| {
                    h.vm_release(&vm)?;
                    Ok(((), format!("vm {vm} released; it runs on {destination}")))
                })
                .map_err(fail)
                .map(|()| format!("vm {vm} released")),
            "abort" => self
                .change(|h| {
                    h.vm_abort_out(&vm);
                    Ok(((), format!("vm {vm} stays (move to {destination} aborted)")))
                })
                .map_err(fail)
                .map(|()| format!("vm {vm} stays")),
            other => Err(refuse(format!(
                "stage {other:?} of vm-migrate-out is not prepare, release or abort"
            ))),
        }
    }

    async fn vm_in(&self, args: &HashMap<String, String>) -> Outcome {
        let vm = arg(args, "vm")?.to_owned();
        let source = arg(args, "source")?.to_owned();
        match arg(args, "stage")? {
            "start" => {
                let profile: VmProfile = serde_json::from_str(arg(args, "spec")?)
                    .map_err(|e| refuse(format!("spec: {e}")))?;
                let seconds = self
                    .change(|h| {
                        let s = h.vm_begin_in(&vm, profile)?;
                        Ok((s, format!("vm {vm} arriving from {source} ({s:.1} s copy)")))
                    })
                    .map_err(fail)?;
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                self.change(|h| {
                    h.vm_finish_in(&vm)?;
                    Ok(((), format!("vm {vm} runs here (from {source})")))
                })
                .map_err(fail)?;
                Ok(format!("vm {vm} runs here"))
            }
            "abort" => self
                .change(|h| {
                    h.vm_abort_in(&vm);
                    Ok((
                        (),
                        format!("vm {vm} discarded (move from {source} aborted)"),
                    ))
                })
                .map_err(fail)
                .map(|()| format!("vm {vm} discarded")),
            other => Err(refuse(format!(
                "stage {other:?} of vm-migrate-in is not start or abort"
            ))),
        }
    }

    fn lun_out(&self, args: &HashMap<String, String>) -> Outcome {
        let lun = arg(args, "lun")?.to_owned();
        let destination = arg(args, "destination")?.to_owned();
        match arg(args, "stage")? {
            "prepare" => self
                .change(|h| {
                    h.lun_prepare_out(&lun)?;
                    Ok(((), format!("lun {lun} prepares to leave for {destination}")))
                })
                .map_err(fail)
                .map(|()| format!("lun {lun} ready to leave")),
            "release" => self
                .change(|h| {
                    h.lun_release(&lun)?;
                    Ok(((), format!("lun {lun} released; {destination} serves it")))
                })
                .map_err(fail)
                .map(|()| format!("lun {lun} released")),
            "abort" => self
                .change(|h| {
                    h.lun_abort_out(&lun);
                    Ok((
                        (),
                        format!("lun {lun} stays (move to {destination} aborted)"),
                    ))
                })
                .map_err(fail)
                .map(|()| format!("lun {lun} stays")),
            other => Err(refuse(format!(
                "stage {other:?} of lun-migrate-out is not prepare, release or abort"
            ))),
        }
    }

    async fn lun_in(&self, args: &HashMap<String, String>) -> Outcome {
        let lun = arg(args, "lun")?.to_owned();
        let source = arg(args, "source")?.to_owned();
        let device = arg(args, "device")?.to_owned();
        match arg(args, "stage")? {
            "start" => {
                let profile: LunProfile = serde_json::from_str(arg(args, "spec")?)
                    .map_err(|e| refuse(format!("spec: {e}")))?;
                let seconds = self
                    .change(|h| {
                        let s = h.lun_begin_in(&lun, &device, profile)?;
                        Ok((
                            s,
                            format!("lun {lun} copying from {source} onto {device} ({s:.1} s)"),
                        ))
                    })
                    .map_err(fail)?;
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                self.change(|h| {
                    h.lun_finish_in(&lun, &device)?;
                    Ok(((), format!("lun {lun} served from {device}")))
                })
                .map_err(fail)?;
                Ok(format!("lun {lun} served from {device}"))
            }
            "abort" => self
                .change(|h| {
                    h.lun_abort_in(&lun, &device);
                    Ok((
                        (),
                        format!("lun {lun} copy on {device} discarded (move aborted)"),
                    ))
                })
                .map_err(fail)
                .map(|()| format!("lun {lun} copy on {device} discarded")),
            other => Err(refuse(format!(
                "stage {other:?} of lun-migrate-in is not start or abort"
            ))),
        }
    }
}
