//! Service checks: the `[[services]]` of the agent configuration, each run
//! as its own task; the state of each is a metric, and every change (with
//! its time) an event on the bus.
//!
//! Layout:
//! * [`config`]: the `[[services]]` entries and their validation.
//! * [`process`]: process checks, driven by the kernel's exit events.
//! * [`tcp`], [`http`], [`systemd`]: the polled checks.

pub mod config;
pub mod http;
pub mod process;
pub mod systemd;
pub mod tcp;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use tokio::task::JoinHandle;

use self::config::{Check, ServiceConfig};
use crate::{
    events::{AgentEvent, EventBus, ServiceChange, ServiceKind},
    exits::ExitFeed,
};

/// The latest state of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceState {
    pub kind: ServiceKind,
    pub up: bool,
    /// When it entered this state.
    pub since: SystemTime,
    pub reason: String,
}

/// Every service's latest state, by name; read by /metrics.
#[derive(Debug, Default)]
pub struct ServiceStates(Mutex<BTreeMap<String, ServiceState>>);

impl ServiceStates {
    pub fn snapshot(&self) -> Vec<(String, ServiceState)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Stores `state`; true when up/down changed (or it is the first).
    fn set(&self, name: &str, state: ServiceState) -> bool {
        let mut map = self.lock();
        let changed = map.get(name).is_none_or(|old| old.up != state.up);
        if changed {
            map.insert(name.to_owned(), state);
        }
        changed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ServiceState>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reports one service's states: stores them, logs and publishes changes.
pub struct Reporter {
    pub name: String,
    kind: ServiceKind,
    states: Arc<ServiceStates>,
    bus: EventBus,
}

impl Reporter {
    /// Records the state seen at `at`; a change (or the first state) is
    /// logged and published.
    pub fn report(&self, up: bool, at: SystemTime, reason: String) {
        let state = ServiceState {
            kind: self.kind,
            up,
            since: at,
            reason: reason.clone(),
        };
        if !self.states.set(&self.name, state) {
            return;
        }
        if up {
            tracing::info!(service = %self.name, kind = self.kind.as_str(), %reason, "service up");
        } else {
            tracing::warn!(service = %self.name, kind = self.kind.as_str(), %reason, "service down");
        }
        self.bus.publish(AgentEvent::ServiceChanged(ServiceChange {
            service: self.name.clone(),
            kind: self.kind,
            up,
            at,
            reason,
        }));
    }

    pub fn publish(&self, event: AgentEvent) {
        self.bus.publish(event);
    }
}

/// Starts one task per service on the current runtime.
pub fn spawn(
    services: &[ServiceConfig],
    states: &Arc<ServiceStates>,
    bus: &EventBus,
    exits: Option<Arc<ExitFeed>>,
    procfs: PathBuf,
) -> Vec<JoinHandle<()>> {
    services
        .iter()
        .map(|service| {
            let reporter = Reporter {
                name: service.name.clone(),
                kind: service.check.kind(),
                states: states.clone(),
                bus: bus.clone(),
            };
            let service = service.clone();
            match service.check {
                Check::Process(matcher) => tokio::spawn(process::watch(
                    reporter,
                    matcher,
                    service.interval,
                    exits.clone(),
                    procfs.clone(),
                )),
                _ => tokio::spawn(poll(reporter, service)),
            }
        })
        .collect()
}

/// Runs a polled check (tcp, http, systemd) every interval.
async fn poll(reporter: Reporter, service: ServiceConfig) {
    let mut ticks = tokio::time::interval(service.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let at = SystemTime::now();
        let probe = async {
            match &service.check {
                Check::Tcp { address } => tcp::probe(address)
                    .await
                    .map(|()| format!("connected to {address}")),
                Check::Http { url, expect_status } => {
                    http::probe(url, *expect_status).await.map(|()| {
                        format!(
                            "GET http://{}:{}{} answered {expect_status}",
                            url.host, url.port, url.path
                        )
                    })
                }
                Check::Systemd { unit } => systemd::probe(unit)
                    .await
                    .map(|()| format!("unit {unit} is active")),
                Check::Process(_) => unreachable!("process checks are watched, not polled"),
            }
        };
        let result = match tokio::time::timeout(service.timeout, probe).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", service.timeout)),
        };
        match result {
            Ok(reason) => reporter.report(true, at, reason),
            Err(reason) => reporter.report(false, at, reason),
        }
    }
}
