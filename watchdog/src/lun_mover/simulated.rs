//! The `simulated` mover: LUN locations in memory and a copy that takes
//! the time its bytes would at a given rate. For the demo, scale tests and
//! the executor's own tests; it records how many moves touched each device
//! at once, so limits can be checked.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use super::{Cancel, Journal, LunMover, MoveError, MoveOrder, Phase, Recovered};

/// Sleep slice of a simulated copy: how quickly it notices a cancel.
const SLICE: Duration = Duration::from_millis(5);

/// Moves that exist only in memory.
pub struct SimulatedMover {
    bytes_per_second: f64,
    failing: BTreeSet<String>,
    state: Mutex<Sim>,
}

#[derive(Default)]
struct Sim {
    location: BTreeMap<String, String>,
    active: BTreeMap<String, usize>,
    peak: BTreeMap<String, usize>,
}

impl SimulatedMover {
    /// LUNs at their devices, copied at `bytes_per_second`.
    pub fn new(
        locations: impl IntoIterator<Item = (String, String)>,
        bytes_per_second: f64,
    ) -> Self {
        Self {
            bytes_per_second,
            failing: BTreeSet::new(),
            state: Mutex::new(Sim {
                location: locations.into_iter().collect(),
                ..Sim::default()
            }),
        }
    }

    /// Makes every move of `lun` fail half way.
    pub fn failing(mut self, lun: &str) -> Self {
        self.failing.insert(lun.to_owned());
        self
    }

    /// Where `lun` is now.
    pub fn location(&self, lun: &str) -> Option<String> {
        self.lock().location.get(lun).cloned()
    }

    /// The most moves that ran at once on each device.
    pub fn peak_per_device(&self) -> BTreeMap<String, usize> {
        self.lock().peak.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sim> {
        self.state.lock().expect("no panics while holding it")
    }

    fn busy(&self, order: &MoveOrder, delta: isize) {
        let mut s = self.lock();
        for dev in [&order.from, &order.to] {
            let n = s.active.entry(dev.clone()).or_default();
            *n = n.saturating_add_signed(delta);
            let n = *n;
            let peak = s.peak.entry(dev.clone()).or_default();
            *peak = (*peak).max(n);
        }
    }

    fn copy(&self, order: &MoveOrder, cancel: &Cancel) -> Result<(), MoveError> {
        let total = Duration::from_secs_f64(order.bytes as f64 / self.bytes_per_second);
        let started = Instant::now();
        while started.elapsed() < total {
            if cancel.is_cancelled() {
                return Err(MoveError::Cancelled);
            }
            if self.failing.contains(&order.lun) && started.elapsed() >= total / 2 {
                return Err(MoveError::Refused {
                    lun: order.lun.clone(),
                    message: "simulated copy failure".into(),
                });
            }
            thread::sleep(SLICE.min(total.saturating_sub(started.elapsed())));
        }
        // A sleep that overshoots on a loaded machine must not let a failing
        // LUN through.
        if self.failing.contains(&order.lun) {
            return Err(MoveError::Refused {
                lun: order.lun.clone(),
                message: "simulated copy failure".into(),
            });
        }
        Ok(())
    }
}

impl LunMover for SimulatedMover {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn describe(&self, order: &MoveOrder) -> String {
        format!(
            "simulate copying {} bytes of {} from {} to {}",
            order.bytes, order.lun, order.from, order.to
        )
    }

    fn run(
        &self,
        order: &MoveOrder,
        journal: &mut Journal,
        cancel: &Cancel,
    ) -> Result<(), MoveError> {
        if self.location(&order.lun).as_deref() != Some(order.from.as_str()) {
            return Err(MoveError::Refused {
                lun: order.lun.clone(),
                message: format!("it is not on {}", order.from),
            });
        }
        journal.advance(Phase::Copying, &[])?;
        self.busy(order, 1);
        let copied = self.copy(order, cancel);
        self.busy(order, -1);
        copied?;
        self.lock()
            .location
            .insert(order.lun.clone(), order.to.clone());
        journal.advance(Phase::Switched, &[])
    }

    fn recover(&self, journal: &mut Journal) -> Result<Recovered, MoveError> {
        let order = &journal.record().order;
        Ok(
            if self.location(&order.lun).as_deref() == Some(order.to.as_str()) {
                Recovered::Finished
            } else {
                Recovered::RolledBack
            },
        )
    }
}
