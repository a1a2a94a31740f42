//! An in-memory cluster that migrates instantly or after a set time, with
//! failures on demand: for the demo, for tests of the executor, and for
//! planner-loop tests at scale. It keeps what a real cluster would show:
//! where each VM runs and paused copies, and the peak number of migrations
//! in flight per source, per destination and overall.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
    time::Duration,
};

use super::{Actuator, ActuatorError, ActuatorFuture, MigrationRequest};

/// A failure to play for one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulatedFailure {
    /// The copy fails half way.
    Transfer,
    /// The copy never ends (the executor's timeout has to stop it).
    Hang,
    /// The copy ends but the destination never runs the VM.
    NeverRuns,
}

/// Copies of one VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copies {
    pub running: BTreeSet<String>,
    pub paused: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct State {
    vms: BTreeMap<String, Copies>,
    failures: BTreeMap<String, SimulatedFailure>,
    in_flight: Flight,
    peak: Peak,
}

#[derive(Debug, Default)]
struct Flight {
    total: usize,
    from: BTreeMap<String, usize>,
    to: BTreeMap<String, usize>,
}

/// The most migrations that were in flight at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peak {
    pub total: usize,
    pub per_source: usize,
    pub per_destination: usize,
}

/// The simulated cluster.
#[derive(Debug, Default)]
pub struct SimulatedActuator {
    state: Mutex<State>,
    transfer_time: Duration,
}

impl SimulatedActuator {
    /// VMs running where `placement` says; each copy takes `transfer_time`.
    pub fn new<'a>(
        placement: impl IntoIterator<Item = (&'a str, &'a str)>,
        transfer_time: Duration,
    ) -> Self {
        let vms = placement
            .into_iter()
            .map(|(vm, host)| {
                (
                    vm.to_owned(),
                    Copies {
                        running: BTreeSet::from([host.to_owned()]),
                        paused: BTreeSet::new(),
                    },
                )
            })
            .collect();
        SimulatedActuator {
            state: Mutex::new(State {
                vms,
                ..State::default()
            }),
            transfer_time,
        }
    }

    /// Makes every migration of `vm` fail this way.
    pub fn fail(&self, vm: &str, failure: SimulatedFailure) {
        self.lock().failures.insert(vm.to_owned(), failure);
    }

    /// Where `vm` runs and where it sits paused.
    pub fn copies(&self, vm: &str) -> Copies {
        self.lock().vms.get(vm).cloned().unwrap_or_default()
    }

    pub fn peak(&self) -> Peak {
        self.lock().peak
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self, vm: &str) -> Option<SimulatedFailure> {
        self.lock().failures.get(vm).copied()
    }

    fn begin(&self, r: &MigrationRequest) {
        let mut s = self.lock();
        let f = &mut s.in_flight;
        f.total += 1;
        let from = *f
            .from
            .entry(r.source.clone())
            .and_modify(|n| *n += 1)
            .or_insert(1);
        let to = *f
            .to
            .entry(r.destination.clone())
            .and_modify(|n| *n += 1)
            .or_insert(1);
        let total = f.total;
        let p = &mut s.peak;
        p.total = p.total.max(total);
        p.per_source = p.per_source.max(from);
        p.per_destination = p.per_destination.max(to);
    }

    fn end(&self, r: &MigrationRequest) {
        let f = &mut self.lock().in_flight;
        f.total -= 1;
        *f.from.entry(r.source.clone()).or_default() -= 1;
        *f.to.entry(r.destination.clone()).or_default() -= 1;
    }
}

/// Counts a transfer as in flight for as long as it lives, also when the
/// executor drops it at its timeout.
struct InFlight<'a>(&'a SimulatedActuator, &'a MigrationRequest);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.end(self.1);
    }
}

impl Actuator for SimulatedActuator {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn transfer<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            self.begin(r);
            let _flight = InFlight(self, r);
            let failure = self.failure(&r.vm);
            match failure {
                Some(SimulatedFailure::Hang) => std::future::pending::<()>().await,
                Some(SimulatedFailure::Transfer) => {
                    tokio::time::sleep(self.transfer_time / 2).await;
                    return Err(ActuatorError::Simulated {
                        vm: r.vm.clone(),
                        stage: "transfer",
                    });
                }
                _ => tokio::time::sleep(self.transfer_time).await,
            }
            let mut s = self.lock();
            let copies = s.vms.entry(r.vm.clone()).or_default();
            // A completed live copy pauses the source; the destination runs
            // unless told to fail. A restart has no source copy left.
            if copies.running.remove(&r.source) {
                copies.paused.insert(r.source.clone());
            }
            if failure == Some(SimulatedFailure::NeverRuns) {
                copies.paused.insert(r.destination.clone());
            } else {
                copies.running.insert(r.destination.clone());
            }
            Ok(())
        })
    }

    fn confirm_running<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, bool> {
        Box::pin(async move { Ok(self.copies(&r.vm).running.contains(&r.destination)) })
    }

    fn release_source<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let mut s = self.lock();
            let copies = s.vms.entry(r.vm.clone()).or_default();
            copies.paused.remove(&r.source);
            copies.running.remove(&r.source);
            Ok(())
        })
    }

    fn abort<'a>(&'a self, r: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let mut s = self.lock();
            let copies = s.vms.entry(r.vm.clone()).or_default();
            copies.running.remove(&r.destination);
            copies.paused.remove(&r.destination);
            if copies.paused.remove(&r.source) {
                copies.running.insert(r.source.clone());
            }
            Ok(())
        })
    }
}
