//! The policy runtime: runs the recovery policies against the live
//! cluster. It opens the store, restores the engine (or starts it),
//! subscribes to the cluster's events, ticks the engine with real time,
//! commits every batch of decisions with the engine state and the decided
//! notifications in one transaction, then carries them out: agent actions,
//! batch files, planner work, and the outbox's deliveries.
//!
//! Layout:
//! * [`inputs`]: cluster events to engine inputs (pure).
//! * [`notify`]: engine notifications to the channels' notifications.
//! * [`source`]: the policies' source (a directory or built in) and the
//!   reload watcher (SIGHUP, file changes).
//! * [`planner`]: [`planner::PlanExecutor`], where the VM planner and the
//!   LUN rebalancer plug in.
//! * [`steps`]: carrying out recovery steps.
//! * [`driver`]: the task that owns the engine.
//! * [`record`]: incident rows and audit lines from the decisions.
//! * [`view`]: what the API shows of incidents and silences.
//! * [`api`]: the HTTP routes (incidents, acks, silences, maintenance,
//!   policies, Alertmanager).
//! * [`alertmanager`]: Alertmanager's webhook to engine inputs (pure).
//! * [`metrics`]: the runtime's metrics.

pub mod alertmanager;
pub mod api;
pub mod driver;
pub mod inputs;
pub mod metrics;
pub mod notify;
pub mod planner;
pub mod record;
pub mod source;
pub mod steps;
pub mod view;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use hyperwatch_policies::{Engine, EngineState, Report, decision::StepRun, time::Timestamp};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use self::{
    driver::Driver,
    metrics::RuntimeMetrics,
    planner::{EnginePlanner, PlanExecutor},
    record::note,
    source::PolicySource,
    steps::StepRunner,
};
use crate::{
    channels::{BuildError, ChannelSet},
    config::{Config, secs},
    outbox::{DeliveryLoop, DeliveryMetrics, Durability, Notifier, Outbox},
    service::Watchdog,
    store::{Store, StoreError},
};

/// Requests from the API queued for the engine's task.
const REQUEST_QUEUE: usize = 256;
/// Step results queued for the engine's task.
const REPORT_QUEUE: usize = 1024;
/// Open incidents read back from the store at start, at most.
const OPEN_INCIDENTS_LIMIT: usize = 100_000;
/// How long the engine's task may take to save its state at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why the policy runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store's directory cannot be made.
    #[error("store {path}: cannot create its directory: {source}")]
    StoreDir {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store cannot be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store (outbox) cannot be opened.
    #[error(transparent)]
    Outbox(#[from] crate::outbox::OutboxError),
    /// A channel cannot be built from its configuration.
    #[error("[channels]: {0}")]
    Channels(#[from] BuildError),
    /// The policies do not check.
    #[error("the policies ({from}) do not check:\n{report}")]
    Policies {
        /// Where they come from.
        from: String,
        /// Every error, with file, line and column.
        report: Report,
    },
    /// The saved engine state cannot be used.
    #[error(
        "store {path}: the saved policy engine state cannot be restored ({message}); it was written by another version of hyperwatch. Move the store aside to start with no incidents (pending notifications in it are then not sent)"
    )]
    Restore {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The running policy runtime.
pub struct PolicyRuntime {
    /// The store (engine state, incidents, audit log, outbox), for readers
    /// such as a status page.
    pub store: Store,
    routes: Option<axum::Router>,
    stop: watch::Sender<bool>,
    driver: JoinHandle<()>,
    watcher: JoinHandle<()>,
    delivery: DeliveryLoop,
}

/// Checks the policies against the configured channels and actions, as
/// `hyperwatch serve --check-config` does: the channels must build and the
/// policies must check.
pub fn check(config: &Config) -> Result<Report, RuntimeError> {
    let channels = ChannelSet::build(&config.channels)?;
    let source = PolicySource::of(&config.policies);
    let report = source.check(&source::check_options(&channels.names(), &config.policies));
    if report.is_ok() {
        Ok(report)
    } else {
        Err(RuntimeError::Policies {
            from: source.describe(),
            report,
        })
    }
}

impl PolicyRuntime {
    /// Starts the runtime beside a bound watchdog: opens the store, builds
    /// the channels and starts their delivery, loads the policies, restores
    /// the engine, resumes the steps it was waiting for, and subscribes to
    /// the cluster's events. `planner` carries out failover, rebalance and
    /// LUN moves (`NoPlanner`: "not available").
    pub async fn start(
        config: &Config,
        watchdog: &Watchdog,
        planner: Arc<dyn PlanExecutor>,
    ) -> Result<Self, RuntimeError> {
        // Subscribed first: nothing published from here on is missed.
        let events = watchdog.events.subscribe();
        let path = &config.store.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RuntimeError::StoreDir {
                path: path.clone(),
                source,
            })?;
        }
        let outbox = Outbox::open(path, Durability::Full)?;
        let store = Store::open(outbox.clone()).await?;
        let channels = ChannelSet::build(&config.channels)?;
        let delivery_metrics = DeliveryMetrics::default();
        let metrics = RuntimeMetrics::default();
        watchdog.registry.metrics.register_part(|r| {
            delivery_metrics.register(r);
            metrics.register(r);
        });
        let notifier = Notifier::new(outbox, channels, delivery_metrics);
        let opts = source::check_options(&notifier.channel_names(), &config.policies);
        let source = PolicySource::of(&config.policies);
        let set = source
            .load(&opts)
            .map_err(|report| RuntimeError::Policies {
                from: source.describe(),
                report,
            })?;
        metrics.reload_initial(set.len());
        let engine_planner = EnginePlanner(planner.clone());
        let (engine, restored) = match store.state().await? {
            Some((json, saved_ms)) => {
                let restore_err = |message: String| RuntimeError::Restore {
                    path: path.clone(),
                    message,
                };
                let state: EngineState =
                    serde_json::from_str(&json).map_err(|e| restore_err(e.to_string()))?;
                let (engine, decisions) = Engine::restore_with_planner(set, state, engine_planner)
                    .map_err(|e| restore_err(e.to_string()))?;
                tracing::info!(
                    saved_ms,
                    incidents = engine.incidents().count(),
                    "policy engine restored"
                );
                (engine, decisions)
            }
            None => (Engine::new(set).with_planner(engine_planner), Vec::new()),
        };
        let book = store
            .incidents(false, OPEN_INCIDENTS_LIMIT)
            .await?
            .into_iter()
            .filter_map(|row| row.id.parse().ok().map(|id| (id, row)))
            .collect();
        let next_silence = store.meta("next_silence").await?;
        let resume = awaited(&engine, &store).await?;

        let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
        let (reports_tx, reports) = mpsc::channel(REPORT_QUEUE);
        let (reloads_tx, reloads) = mpsc::channel(1);
        let (stop, stopped) = watch::channel(false);
        // The status page reads the latest list; never blocks the engine.
        let (summaries_tx, summaries) = watch::channel(Arc::new(view::summaries(&engine)));
        watchdog
            .status
            .provide_incidents(move || summaries.borrow().as_ref().clone());
        let runner = StepRunner::new(
            watchdog.commands.clone(),
            watchdog.registry.clone(),
            planner,
            reports_tx,
        );
        let notes = resume
            .iter()
            .map(|(run, _)| {
                note(
                    Some(run.run.incident),
                    format!("{}: sent again after a restart (awaited)", run.run),
                    None,
                )
            })
            .collect();
        let mut driver = Driver {
            engine,
            store: store.clone(),
            notifier: notifier.clone(),
            runner,
            mapper: Default::default(),
            registry: watchdog.registry.clone(),
            metrics,
            source: source.clone(),
            book,
            unsaved: restored,
            notes,
            results: Vec::new(),
            resume,
            dirty: false,
            next_silence,
            meta_dirty: false,
            replies: Vec::new(),
            last_reload: None,
            snapshot_interval: secs(config.store.snapshot_interval_seconds),
            last_saved: Instant::now(),
            summaries: summaries_tx,
        };
        // What restoring decided, and the resumed steps, before anything new.
        driver.finish(false).await;
        let delivery = notifier.start();
        let driver = tokio::spawn(driver.run(events, requests, reports, reloads, stopped));
        let watcher = tokio::spawn(source::watch(
            source,
            opts,
            secs(config.policies.poll_seconds),
            reloads_tx,
        ));
        let routes = api::router(api::RuntimeApi {
            requests: requests_tx,
            store: store.clone(),
            registry: watchdog.registry.clone(),
        });
        Ok(Self {
            store,
            routes: Some(routes),
            stop,
            driver,
            watcher,
            delivery,
        })
    }

    /// The HTTP routes, to merge into the watchdog's API (taken once).
    pub fn routes(&mut self) -> axum::Router {
        self.routes.take().unwrap_or_default()
    }

    /// Stops reloading, lets the engine's task save its state (bounded),
    /// and stops the delivery workers after their current round.
    pub async fn stop(self) {
        self.watcher.abort();
        let _ = self.stop.send(true);
        let mut driver = self.driver;
        if tokio::time::timeout(STOP_GRACE, &mut driver).await.is_err() {
            tracing::warn!(
                "the policy engine did not stop within {STOP_GRACE:?}; nothing it decided since its last commit was carried out"
            );
            driver.abort();
        }
        if tokio::time::timeout(STOP_GRACE, self.delivery.stop())
            .await
            .is_err()
        {
            tracing::warn!(
                "notifications still being sent {STOP_GRACE:?} after shutdown began; they stay in the outbox and are sent after the restart"
            );
        }
    }
}

/// The steps the restored engine waits for, with when they were decided,
/// to send again (the store holds each decided step).
async fn awaited(
    engine: &Engine,
    store: &Store,
) -> Result<Vec<(StepRun, Timestamp)>, RuntimeError> {
    let mut out = Vec::new();
    for run in engine.awaited_steps() {
        let id = run.to_string();
        match store.step(&id).await? {
            Some((json, decided_ms)) => match serde_json::from_str::<StepRun>(&json) {
                Ok(step) => out.push((step, Timestamp(decided_ms.max(0) as u64))),
                Err(e) => {
                    tracing::error!(run = %id, error = %e, "stored step unreadable; it will time out")
                }
            },
            None => tracing::error!(run = %id, "awaited step not in the store; it will time out"),
        }
    }
    Ok(out)
}
