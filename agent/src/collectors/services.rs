//! `services`: hyperwatch_service_up{service,kind} and the time of each
//! service's last change, from the service checks.

use std::{sync::Arc, time::UNIX_EPOCH};

use super::{CollectError, Collector};
use crate::{
    metrics::{Families, Kind},
    services::ServiceStates,
};

pub struct ServicesCollector {
    states: Arc<ServiceStates>,
}

impl ServicesCollector {
    pub fn new(states: Arc<ServiceStates>) -> Self {
        Self { states }
    }
}

impl Collector for ServicesCollector {
    fn name(&self) -> &'static str {
        "services"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let states = self.states.snapshot();
        let up = out.add(
            "hyperwatch_service_up",
            "Whether each configured service check passes (1) or not (0).",
            Kind::Gauge,
        );
        for (name, s) in &states {
            up.push(
                vec![
                    ("service", name.clone()),
                    ("kind", s.kind.as_str().to_owned()),
                ],
                if s.up { 1.0 } else { 0.0 },
            );
        }
        let since = out.add(
            "hyperwatch_service_state_since_timestamp_seconds",
            "When each service entered its current state (Unix time).",
            Kind::Gauge,
        );
        for (name, s) in &states {
            since.push(
                vec![
                    ("service", name.clone()),
                    ("kind", s.kind.as_str().to_owned()),
                ],
                s.since
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            );
        }
        Ok(())
    }
}
