//! Step deduplication: a command carrying a policy step's run id that this
//! agent has already run, or is running, is answered with that run's result
//! instead of running the action again. The watchdog sends again the steps
//! it was waiting for after a restart (a kill -9 included); without this an
//! action sent just before the crash would run twice. The record is in
//! memory, bounded by count and age.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hyperwatch_proto::v1::{self, CommandStatus};
use tokio::sync::watch;

use super::actions::{CommandHandler, ResultFuture};

/// Finished runs remembered, at most: a host sees a handful of recovery
/// steps an hour; a thousand covers any storm with room to spare.
const RECENT_RUNS: usize = 1_000;
/// How long a finished run is remembered: far longer than a watchdog takes
/// to restart and send its awaited steps again (seconds), and longer than
/// any step waits for its result (the planner's default, 30 minutes).
const RECENT_FOR: Duration = Duration::from_secs(3_600);

/// Where one run id stands.
enum Run {
    /// Running: the first run's result will be sent here.
    Running(watch::Receiver<Option<v1::CommandResult>>),
    /// Done, with its result.
    Finished(v1::CommandResult),
}

#[derive(Default)]
struct Record {
    runs: HashMap<String, Run>,
    /// Finished run ids, oldest first, with when they finished.
    finished: VecDeque<(Instant, String)>,
}

impl Record {
    fn evict(&mut self, now: Instant) {
        while let Some((at, id)) = self.finished.front() {
            if self.finished.len() <= RECENT_RUNS && now.duration_since(*at) < RECENT_FOR {
                break;
            }
            self.runs.remove(id);
            self.finished.pop_front();
        }
    }
}

/// What to do with a command, decided under the lock.
enum Next {
    Run(watch::Sender<Option<v1::CommandResult>>),
    Wait(watch::Receiver<Option<v1::CommandResult>>),
    Answer(v1::CommandResult),
}

/// A [`CommandHandler`] that runs each run id once.
pub struct OncePerRun {
    inner: Arc<dyn CommandHandler>,
    record: Mutex<Record>,
}

impl OncePerRun {
    /// Deduplicates `inner`'s commands by run id (commands without one,
    /// such as the planner's, always run).
    pub fn new(inner: Arc<dyn CommandHandler>) -> Self {
        Self {
            inner,
            record: Mutex::default(),
        }
    }

    fn next(&self, run_id: &str) -> Next {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        record.evict(Instant::now());
        match record.runs.get(run_id) {
            Some(Run::Finished(result)) => Next::Answer(result.clone()),
            Some(Run::Running(done)) => Next::Wait(done.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                record.runs.insert(run_id.to_owned(), Run::Running(rx));
                Next::Run(tx)
            }
        }
    }

    async fn handle_once(&self, command: v1::Command) -> v1::CommandResult {
        let (id, run_id) = (command.id, command.run_id.clone());
        let repeat = |mut first: v1::CommandResult| {
            tracing::info!(run = %run_id, action = %command.action, "repeated step: answered with its first run's result");
            first.id = id;
            first.repeated = true;
            first
        };
        match self.next(&run_id) {
            Next::Answer(first) => repeat(first),
            Next::Wait(mut done) => match done.wait_for(Option::is_some).await {
                Ok(first) => repeat(first.clone().expect("waited for Some")),
                // The first run's task ended without a result (a panic).
                Err(_) => v1::CommandResult {
                    id,
                    status: CommandStatus::Failed as i32,
                    message: format!("the first run of step {run_id} ended without a result"),
                    ..Default::default()
                },
            },
            Next::Run(done) => {
                let result = self.inner.handle(command).await;
                done.send_replace(Some(result.clone()));
                let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
                record
                    .runs
                    .insert(run_id.clone(), Run::Finished(result.clone()));
                record.finished.push_back((Instant::now(), run_id));
                record.evict(Instant::now());
                result
            }
        }
    }
}

impl CommandHandler for OncePerRun {
    fn handle(&self, command: v1::Command) -> ResultFuture<'_> {
        if command.run_id.is_empty() {
            return self.inner.handle(command);
        }
        Box::pin(self.handle_once(command))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Counts its runs; each takes `delay` and reports its run number.
    struct Counting {
        runs: AtomicU32,
        delay: Duration,
    }

    impl CommandHandler for Counting {
        fn handle(&self, command: v1::Command) -> ResultFuture<'_> {
            Box::pin(async move {
                let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(self.delay).await;
                v1::CommandResult {
                    id: command.id,
                    status: CommandStatus::Succeeded as i32,
                    stdout: format!("run {n}"),
                    ..Default::default()
                }
            })
        }
    }

    fn handler(delay: Duration) -> (Arc<Counting>, OncePerRun) {
        let inner = Arc::new(Counting {
            runs: AtomicU32::new(0),
            delay,
        });
        (inner.clone(), OncePerRun::new(inner))
    }

    fn command(id: u64, run_id: &str) -> v1::Command {
        v1::Command {
            id,
            action: "restart-service".into(),
            run_id: run_id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_finished_run_id_is_answered_from_the_record() {
        let (inner, once) = handler(Duration::ZERO);
        let first = once
            .handle(command(1, "inc-1/service:hv1/web/run1/step1/try1"))
            .await;
        let again = once
            .handle(command(7, "inc-1/service:hv1/web/run1/step1/try1"))
            .await;
        assert_eq!(inner.runs.load(Ordering::SeqCst), 1);
        assert_eq!((first.stdout.as_str(), first.repeated), ("run 1", false));
        assert_eq!(
            (again.id, again.stdout.as_str(), again.repeated),
            (7, "run 1", true)
        );
        // Another attempt is another run id; commands without one always run.
        once.handle(command(8, "inc-1/service:hv1/web/run1/step1/try2"))
            .await;
        once.handle(command(9, "")).await;
        once.handle(command(10, "")).await;
        assert_eq!(inner.runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_repeat_while_the_first_runs_waits_for_its_result() {
        let (inner, once) = handler(Duration::from_secs(2));
        let once = Arc::new(once);
        let first = tokio::spawn({
            let once = once.clone();
            async move { once.handle(command(1, "r")).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = once.handle(command(2, "r")).await;
        assert_eq!(
            (again.id, again.stdout.as_str(), again.repeated),
            (2, "run 1", true)
        );
        assert_eq!(first.await.unwrap().stdout, "run 1");
        assert_eq!(inner.runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_record_is_bounded_by_count() {
        let (inner, once) = handler(Duration::ZERO);
        for i in 0..=RECENT_RUNS {
            once.handle(command(i as u64, &format!("run{i}"))).await;
        }
        assert_eq!(once.record.lock().unwrap().finished.len(), RECENT_RUNS);
        // The oldest was forgotten: it runs again; the newest does not.
        once.handle(command(1, "run0")).await;
        once.handle(command(2, &format!("run{RECENT_RUNS}"))).await;
        assert_eq!(inner.runs.load(Ordering::SeqCst), RECENT_RUNS as u32 + 2);
    }
}
