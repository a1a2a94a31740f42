//! Simulation mode (`hyperwatch-agent --simulate SCENARIO.toml`): instead
//! of measuring this machine, the agent models a hypervisor with VMs or a
//! storage host with devices and LUNs, driven by a seeded scenario with
//! timed phases. It speaks the real protocol with the usual [stream]
//! configuration (mutual TLS, endpoints), serves /metrics under the real
//! metric names, and carries out the migration and restart commands on
//! its model, so the watchdog moves VMs and LUNs between simulated hosts
//! through its real command path. Several run side by side as separate
//! processes, each with its own host id and certificate.
//!
//! Layout:
//! * [`scenario`]: the scenario file and its checks; [`units`]: its sizes
//!   and times.
//! * [`model`]: the simulated host and its step (pure, seeded);
//!   [`moves`]: VMs and LUNs leaving and arriving.
//! * [`collector`]: the model's /metrics.
//! * [`inventory`]: the model's inventory for the stream.
//! * [`commands`]: the watchdog's commands, carried out on the model.

pub mod collector;
pub mod commands;
pub mod inventory;
pub mod model;
pub mod moves;
pub mod scenario;
pub mod units;

use std::{
    future::Future,
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use hyperwatch_proto::v1;

use crate::{
    Agent,
    agent::{AgentError, serve},
    config::Config,
    stream::{session::Settings, unix_nanos},
};
use model::{Happening, SimHost};
use scenario::Scenario;

/// Exit status of an agent whose simulated host crashes as its scenario
/// says (kill -9 gives 137; this tells the two apart).
pub const CRASH_EXIT_CODE: i32 = 4;

/// A service's states on the wire: the words the real agent's service
/// checks send (forward.rs) and the shipped service-crashed policy watches.
pub const SERVICE_UP: &str = "running";
pub const SERVICE_DOWN: &str = "failed";

/// Prints what happens on the simulated host, with its time since the
/// start: the demo's timeline. Lines go to stdout (and the log).
#[derive(Clone, Debug)]
pub struct Timeline {
    host: String,
}

impl Timeline {
    pub fn say(&self, at: f64, text: &str) {
        let line = format!("sim {} +{at:.1}s: {text}", self.host);
        tracing::info!(host = %self.host, at, "{text}");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Runs the simulated host of `scenario` until `shutdown`. The host id is
/// [stream] host_id, or the scenario's host name when that is empty.
pub async fn run(
    mut config: Config,
    scenario: Scenario,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    if config.stream.host_id.is_empty() {
        config.stream.host_id = scenario.host.name.clone();
    }
    let host = Arc::new(Mutex::new(SimHost::new(&scenario)));
    let timeline = Timeline {
        host: config.stream.host_id.clone(),
    };
    let start = Instant::now();
    let agent = Arc::new(Agent::simulated(
        &config,
        Box::new(collector::SimCollector::new(host.clone(), start)),
    ));
    let handle = agent.stream_handle().cloned();
    let settings = match &handle {
        Some(handle) => {
            let initial = inventory::inventory(&host.lock().unwrap_or_else(|p| p.into_inner()));
            handle.inventory.publish(initial);
            let commands = commands::SimCommands {
                host: host.clone(),
                inventory: handle.inventory.clone(),
                events: Some(handle.events()),
                timeline: timeline.clone(),
            };
            Some(Settings::load(&config, handle, false)?.simulated(Arc::new(commands)))
        }
        None => None,
    };
    timeline.say(
        0.0,
        &format!(
            "simulated {} with {} cores, {} VMs, {} devices, {} LUNs, {} services",
            match scenario.host.kind {
                scenario::HostKind::Hypervisor => "hypervisor",
                scenario::HostKind::Storage => "storage host",
            },
            scenario.host.cores,
            scenario.vms.len(),
            scenario.devices.len(),
            scenario.luns.len(),
            scenario.services.len()
        ),
    );
    let tick = Duration::from_secs_f64(scenario.host.tick.0);
    let stepper = tokio::spawn(step_loop(host, handle, start, tick, timeline));
    serve(agent, &config, settings, vec![stepper], shutdown).await
}

/// Steps the model every `tick`, publishes its inventory, reports what
/// happened and sends service changes to the watchdog.
async fn step_loop(
    host: Arc<Mutex<SimHost>>,
    handle: Option<Arc<crate::stream::StreamHandle>>,
    start: Instant,
    tick: Duration,
    timeline: Timeline,
) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let now = start.elapsed().as_secs_f64();
        let (happened, inventory) = {
            let mut h = host.lock().unwrap_or_else(|p| p.into_inner());
            let happened = h.step(now);
            (happened, inventory::inventory(&h))
        };
        if let Some(handle) = &handle {
            handle.inventory.publish(inventory);
        }
        for happening in happened {
            match happening {
                Happening::Phase(text) => timeline.say(now, &text),
                Happening::Service { name, up } => {
                    if let Some(handle) = &handle {
                        let (old, new) = if up {
                            (SERVICE_DOWN, SERVICE_UP)
                        } else {
                            (SERVICE_UP, SERVICE_DOWN)
                        };
                        handle.events().send(v1::event::Kind::ServiceStateChange(
                            v1::ServiceStateChange {
                                service: name,
                                old_state: old.into(),
                                new_state: new.into(),
                                changed_unix_nanos: unix_nanos(SystemTime::now()),
                                detail: "simulated".into(),
                            },
                        ));
                    }
                }
                Happening::Crash => {
                    timeline.say(now, "exiting: simulated crash");
                    std::process::exit(CRASH_EXIT_CODE);
                }
            }
        }
    }
}
