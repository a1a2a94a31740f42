//! `process_exits`: hyperwatch_process_exits_total{how,signal} and
//! hyperwatch_oom_kills_total, counted from the kernel's exit events.

use std::sync::Arc;

use super::{CollectError, Collector};
use crate::{
    exits::ExitFeed,
    metrics::{Families, Kind},
};

pub struct ProcessExitsCollector {
    feed: Arc<ExitFeed>,
}

impl ProcessExitsCollector {
    pub fn new(feed: Arc<ExitFeed>) -> Self {
        Self { feed }
    }
}

impl Collector for ProcessExitsCollector {
    fn name(&self) -> &'static str {
        "process_exits"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let family = out.add(
            "hyperwatch_process_exits",
            "Processes that ended since the agent started, by how (exit_success, exit_failure, signal, unknown) and fatal signal.",
            Kind::Counter,
        );
        for ((how, signal), n) in self.feed.exit_counts() {
            family.push(vec![("how", how.to_owned()), ("signal", signal)], n as f64);
        }
        out.counter(
            "hyperwatch_oom_kills",
            "Processes the kernel's OOM killer chose as victims since the agent started.",
            self.feed.oom_kills() as f64,
        );
        Ok(())
    }
}
