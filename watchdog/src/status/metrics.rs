//! The status sources as Prometheus families, computed at scrape time:
//! which sources run, open incidents by policy, state and ladder level, and
//! the moves of recent plans by outcome. Dashboards and recording rules
//! read these (deploy/grafana, deploy/prometheus).

use std::{collections::BTreeMap, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{family::Family, gauge::Gauge},
};

use super::StatusSources;

type Labels = Vec<(&'static str, String)>;

/// Names of the families, for dashboards and tests.
pub const SOURCE_AVAILABLE: &str = "hyperwatch_status_source_available";
pub const INCIDENTS_OPEN: &str = "hyperwatch_incidents_open";
pub const PLANS_RECENT: &str = "hyperwatch_plans_recent";
pub const PLAN_MOVES_RECENT: &str = "hyperwatch_plan_moves_recent";

/// Encodes the sources' families on every scrape.
#[derive(Debug)]
pub struct StatusCollector(pub Arc<StatusSources>);

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = &self.0;
        let available = Family::<Labels, Gauge>::default();
        let incidents = Family::<Labels, Gauge>::default();
        let plans = Family::<Labels, Gauge>::default();
        let moves = Family::<Labels, Gauge>::default();

        let answered = |name: &'static str, ok: bool| {
            available
                .get_or_create(&vec![("source", name.to_owned())])
                .set(i64::from(ok));
        };
        let open = sources.incidents();
        answered("incidents", matches!(open, Some(Ok(_))));
        if let Some(Ok(open)) = open {
            // Counted first, so every combination present is one sample.
            let mut counts: BTreeMap<(String, String, u32), i64> = BTreeMap::new();
            for i in open {
                *counts.entry((i.policy, i.state, i.level)).or_default() += 1;
            }
            for ((policy, state, level), n) in counts {
                incidents
                    .get_or_create(&vec![
                        ("policy", policy),
                        ("state", state),
                        ("level", level.to_string()),
                    ])
                    .set(n);
            }
        }
        let recent = sources.plans();
        answered("plans", matches!(recent, Some(Ok(_))));
        if let Some(Ok(recent)) = recent {
            for p in recent {
                plans.get_or_create(&vec![("mode", p.mode.clone())]).inc();
                // A dry run's moves are not pending: they never will run.
                let (pending, would_run) = match p.dry_run {
                    false => (p.moves.saturating_sub(p.done + p.failed), None),
                    true => (0, Some(("would_run", p.moves))),
                };
                let outcomes = [("done", p.done), ("failed", p.failed), ("pending", pending)];
                for (outcome, n) in outcomes.into_iter().chain(would_run) {
                    moves
                        .get_or_create(&vec![
                            ("mode", p.mode.clone()),
                            ("outcome", outcome.to_owned()),
                        ])
                        .inc_by(i64::from(n));
                }
            }
        }
        answered("storage", matches!(sources.storage(), Some(Ok(_))));

        for (name, help, family) in [
            (
                SOURCE_AVAILABLE,
                "Whether a part registered its status source and it answered (incidents: the policy runtime; plans: the planner; storage: the LUN rebalancer)",
                &available,
            ),
            (
                INCIDENTS_OPEN,
                "Open incidents by policy, state and escalation ladder level (no samples while the policy runtime is not running)",
                &incidents,
            ),
            (
                PLANS_RECENT,
                "Plans the planner keeps as recent, by mode",
                &plans,
            ),
            (
                PLAN_MOVES_RECENT,
                "Moves of the recent plans by mode and outcome (done, failed, pending; would_run for dry runs)",
                &moves,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(metric)?;
        }
        Ok(())
    }
}
