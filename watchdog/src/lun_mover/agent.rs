//! The `agent` mover: moves a LUN through the agents of its source and
//! destination hosts with the `lun-migrate-out` and `lun-migrate-in`
//! actions (see the protocol's Command), between hosts or between devices
//! of one host. Orders name devices and LUNs as the rebalancer's snapshot
//! does, `HOST/NAME` (see [`crate::cluster_view`]).
//!
//! The safety rule holds at every step: the source serves the LUN until
//! the destination's inventory shows its copy active, and only then is the
//! source copy released. A move stopped before that is rolled back (the
//! destination discards its copy, the source serves on); one stopped after
//! is finished (the source is released). Recovery decides from the
//! journal's phase and the registry, and refuses to guess while the
//! destination is unreachable.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;

use super::{Cancel, Journal, LunMover, MoveError, MoveOrder, Phase, Recovered};
use crate::{cluster_view::split, commands::CommandRouter, registry::Registry};

/// How often the destination's inventory is looked at while waiting for it
/// to serve the copy: inventories arrive within moments of a change.
const CONFIRM_POLL: Duration = Duration::from_millis(100);

/// Default bound on the destination's inventory showing the copy active
/// after it answered: an update follows its answer at once, and 30 s also
/// covers its stream reconnecting once.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// The state a served LUN copy has in an inventory ("" from real backends).
fn serving(state: &str) -> bool {
    state.is_empty() || state == "active"
}

/// Moves LUNs through agents.
pub struct AgentMover {
    registry: Arc<Registry>,
    commands: Arc<CommandRouter>,
    runtime: tokio::runtime::Handle,
    confirm_timeout: Duration,
}

/// The ends of a move, unqualified.
struct Ends<'a> {
    lun: &'a str,
    from_host: &'a str,
    from_device: &'a str,
    to_host: &'a str,
    to_device: &'a str,
}

impl AgentMover {
    /// `runtime` runs the commands (the mover's methods block, on tokio's
    /// blocking pool).
    pub fn new(
        registry: Arc<Registry>,
        commands: Arc<CommandRouter>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            registry,
            commands,
            runtime,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
        }
    }

    /// Waits at most `timeout` for the destination to show its copy served.
    pub fn with_confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    fn ends<'a>(&self, o: &'a MoveOrder) -> Result<Ends<'a>, MoveError> {
        let bad = |what: &str, id: &str| MoveError::Refused {
            lun: o.lun.clone(),
            message: format!("{what} {id:?} is not HOST/NAME"),
        };
        let (lun_host, lun) = split(&o.lun).ok_or_else(|| bad("LUN", &o.lun))?;
        let (from_host, from_device) = split(&o.from).ok_or_else(|| bad("device", &o.from))?;
        let (to_host, to_device) = split(&o.to).ok_or_else(|| bad("device", &o.to))?;
        if lun_host != from_host {
            return Err(MoveError::Refused {
                lun: o.lun.clone(),
                message: format!("it is on host {lun_host}, not on {from_host}"),
            });
        }
        Ok(Ends {
            lun,
            from_host,
            from_device,
            to_host,
            to_device,
        })
    }

    /// The state of the copy of `lun` on `host`'s `device`, if listed.
    fn copy_state(&self, host: &str, device: &str, lun: &str) -> Option<String> {
        let entry = self.registry.entry(host)?;
        let r = entry.lock().expect("host lock");
        r.inventory
            .storage
            .iter()
            .find(|d| d.name == device)?
            .luns
            .iter()
            .find(|l| l.id == lun)
            .map(|l| l.state.clone())
    }

    /// The LUN as its source reports it, for the destination.
    fn spec(&self, e: &Ends) -> Option<String> {
        let entry = self.registry.entry(e.from_host)?;
        let r = entry.lock().expect("host lock");
        let l = r
            .inventory
            .storage
            .iter()
            .find(|d| d.name == e.from_device)?
            .luns
            .iter()
            .find(|l| l.id == e.lun && serving(&l.state))?;
        let usage = r.usage.luns.get(e.lun);
        let used = usage
            .and_then(|u| u.used_bytes.latest())
            .unwrap_or(if l.used_bytes > 0 {
                l.used_bytes
            } else {
                l.size_bytes
            });
        Some(
            json!({
                "size_bytes": l.size_bytes,
                "used_bytes": used,
                "iops": usage.and_then(|u| u.iops.latest()).unwrap_or(0.0),
                "consumer": l.consumer,
            })
            .to_string(),
        )
    }

    /// Sends `action` to `host` and insists on success.
    fn command(
        &self,
        lun: &str,
        host: &str,
        action: &str,
        args: &[(&str, &str)],
    ) -> Result<(), MoveError> {
        let args = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let shown = format!("{action} on {host} for {lun}");
        match self
            .runtime
            .block_on(self.commands.send_command(host, action, args))
        {
            Ok(o) if o.status == "succeeded" => Ok(()),
            Ok(o) => Err(MoveError::Command {
                command: shown,
                status: o.status.to_owned(),
                stderr: o.message,
            }),
            Err(e) => Err(MoveError::Command {
                command: shown,
                status: "not delivered".into(),
                stderr: e.to_string(),
            }),
        }
    }

    fn release(&self, e: &Ends) -> Result<(), MoveError> {
        let still_there = self
            .copy_state(e.from_host, e.from_device, e.lun)
            .is_some_and(|s| s != "incoming");
        if !still_there {
            return Ok(());
        }
        self.command(
            e.lun,
            e.from_host,
            "lun-migrate-out",
            &[
                ("lun", e.lun),
                ("destination", e.to_host),
                ("stage", "release"),
            ],
        )
    }

    fn abort(&self, e: &Ends) -> Result<(), MoveError> {
        self.command(
            e.lun,
            e.to_host,
            "lun-migrate-in",
            &[
                ("lun", e.lun),
                ("source", e.from_host),
                ("device", e.to_device),
                ("stage", "abort"),
            ],
        )?;
        self.command(
            e.lun,
            e.from_host,
            "lun-migrate-out",
            &[
                ("lun", e.lun),
                ("destination", e.to_host),
                ("stage", "abort"),
            ],
        )
    }

    /// Waits until the destination lists its copy as served.
    fn wait_serving(&self, e: &Ends, cancel: &Cancel) -> Result<(), MoveError> {
        let deadline = Instant::now() + self.confirm_timeout;
        loop {
            if self
                .copy_state(e.to_host, e.to_device, e.lun)
                .is_some_and(|s| serving(&s))
            {
                return Ok(());
            }
            if cancel.is_cancelled() {
                return Err(MoveError::Cancelled);
            }
            if Instant::now() > deadline {
                return Err(MoveError::Refused {
                    lun: e.lun.to_owned(),
                    message: format!(
                        "{} answered, but its inventory does not show the copy on {} served within {:?}",
                        e.to_host, e.to_device, self.confirm_timeout
                    ),
                });
            }
            std::thread::sleep(CONFIRM_POLL);
        }
    }
}

impl LunMover for AgentMover {
    fn name(&self) -> &'static str {
        "agent"
    }

    fn describe(&self, order: &MoveOrder) -> String {
        format!(
            "ask {to} to copy {lun} ({} bytes) from {from}, then release it at {from}",
            order.bytes,
            to = order.to,
            lun = order.lun,
            from = order.from,
        )
    }

    fn run(
        &self,
        order: &MoveOrder,
        journal: &mut Journal,
        cancel: &Cancel,
    ) -> Result<(), MoveError> {
        let e = self.ends(order)?;
        let spec = self.spec(&e).ok_or_else(|| MoveError::Refused {
            lun: order.lun.clone(),
            message: format!(
                "{} does not report it served from {}",
                e.from_host, e.from_device
            ),
        })?;
        journal.advance(Phase::Copying, &[])?;
        self.command(
            e.lun,
            e.from_host,
            "lun-migrate-out",
            &[
                ("lun", e.lun),
                ("destination", e.to_host),
                ("stage", "prepare"),
            ],
        )?;
        if cancel.is_cancelled() {
            return Err(MoveError::Cancelled);
        }
        self.command(
            e.lun,
            e.to_host,
            "lun-migrate-in",
            &[
                ("lun", e.lun),
                ("source", e.from_host),
                ("device", e.to_device),
                ("stage", "start"),
                ("spec", &spec),
            ],
        )?;
        journal.advance(Phase::Copied, &[])?;
        self.wait_serving(&e, cancel)?;
        journal.advance(Phase::Switched, &[])?;
        self.release(&e)
    }

    fn recover(&self, journal: &mut Journal) -> Result<Recovered, MoveError> {
        let order = journal.record().order.clone();
        let e = self.ends(&order)?;
        if journal.record().phase >= Phase::Switched {
            self.release(&e)?;
            return Ok(Recovered::Finished);
        }
        if self.registry.connection(e.to_host).is_none() {
            return Err(MoveError::Refused {
                lun: order.lun.clone(),
                message: format!(
                    "{} is unreachable: whether its copy serves cannot be told; the source keeps serving",
                    e.to_host
                ),
            });
        }
        if self
            .copy_state(e.to_host, e.to_device, e.lun)
            .is_some_and(|s| serving(&s))
        {
            journal.advance(Phase::Switched, &[])?;
            self.release(&e)?;
            return Ok(Recovered::Finished);
        }
        self.abort(&e)?;
        Ok(Recovered::RolledBack)
    }
}
