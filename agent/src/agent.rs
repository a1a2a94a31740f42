//! The running agent: collectors, eBPF state and the HTTP server, from start
//! to a clean shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    collectors::{Collector, ProcessExitsCollector, Registry, ServicesCollector, VmCollector},
    config::Config,
    ebpf::{Ebpf, EbpfError},
    events::EventBus,
    exits::{self, ExitFeed},
    forward,
    metrics::{Family, Kind},
    monitor, server,
    services::{self, ServiceStates},
    stream::{
        self, EventSender, StreamHandle,
        inventory::{self, RealSources},
        session::Settings,
    },
    vm::{self, VmInventory, tracker::VmTracker},
};

/// How long a stopping agent waits for its stream task: the goodbye's own
/// bound plus a margin for the task to notice the stop.
const STREAM_STOP_WAIT: std::time::Duration =
    stream::goodbye::RECEIPT_TIMEOUT.saturating_add(std::time::Duration::from_millis(500));

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("stream to the watchdog: {0}")]
    Stream(#[from] stream::session::StreamError),
}

/// Everything a scrape needs, and the state the background tasks share.
pub struct Agent {
    registry: Registry,
    ebpf: Option<Arc<Ebpf>>,
    config: Config,
    bus: EventBus,
    exits: Option<Arc<ExitFeed>>,
    vms: Arc<VmTracker>,
    services: Arc<ServiceStates>,
    /// The stream to the watchdog, when endpoints are configured.
    stream: Option<Arc<StreamHandle>>,
}

/// The agent's background tasks (exit events, stuck CPUs, eBPF budget, VM
/// inventory, service checks); aborted when dropped.
pub struct BackgroundTasks(Vec<JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Agent {
    /// Loads eBPF when configured and possible, and builds the collectors.
    /// eBPF trouble is logged once and the agent goes on with procfs alone.
    pub fn new(config: &Config) -> Self {
        let ebpf = match load_ebpf(config) {
            Ok(ebpf) => {
                tracing::info!("eBPF programs loaded and attached");
                Some(Arc::new(ebpf))
            }
            Err(EbpfError::Disabled) => {
                tracing::info!("eBPF disabled in the configuration; running on procfs alone");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "eBPF unavailable; running on procfs alone");
                None
            }
        };
        let mut registry = Registry::new(config, ebpf.clone());
        let c = &config.collectors;
        let exits = ebpf.as_ref().map(|_| ExitFeed::new());
        if let (true, Some(feed)) = (c.process_exits.enabled, &exits) {
            registry.push(Box::new(ProcessExitsCollector::new(feed.clone())));
        }
        let vms = Arc::new(VmTracker::new(ebpf.clone()));
        if c.vm.enabled {
            registry.push(Box::new(VmCollector::new(
                vms.clone(),
                ebpf.clone(),
                config.paths.procfs.clone(),
                config.paths.sysfs.clone(),
            )));
        }
        let services = Arc::new(ServiceStates::default());
        if !config.services.0.is_empty() {
            registry.push(Box::new(ServicesCollector::new(services.clone())));
        }
        tracing::info!(
            collectors = registry.names().collect::<Vec<_>>().join(","),
            "collectors enabled"
        );
        let stream = (!config.stream.endpoints.is_empty())
            .then(|| Arc::new(StreamHandle::new(config.stream.buffer_records)));
        Self {
            registry,
            ebpf,
            stream,
            config: config.clone(),
            bus: EventBus::new(),
            exits,
            vms,
            services,
        }
    }

    /// The event bus: service changes, OOM kills, stuck CPUs, detached
    /// programs. Subscribe before [`Agent::start`] to see every event.
    pub fn events(&self) -> &EventBus {
        &self.bus
    }

    /// An agent whose only collector is `collector` (the simulated host):
    /// no eBPF, no procfs, no VM discovery, no service checks.
    pub fn simulated(config: &Config, collector: Box<dyn Collector>) -> Self {
        let mut none = Config::default();
        for (name, _) in crate::collectors::COLLECTORS {
            if let Some(enabled) = none.collectors.enabled_mut(name) {
                *enabled = false;
            }
        }
        let mut registry = Registry::new(&none, None);
        registry.push(collector);
        let stream = (!config.stream.endpoints.is_empty())
            .then(|| Arc::new(StreamHandle::new(config.stream.buffer_records)));
        Self {
            registry,
            ebpf: None,
            stream,
            config: config.clone(),
            bus: EventBus::new(),
            exits: None,
            vms: Arc::new(VmTracker::new(None)),
            services: Arc::new(ServiceStates::default()),
        }
    }

    /// Where this host's inventory comes from: the host itself, the VM
    /// tracker when the `vm` collector runs, the storage backends when the
    /// `storage` collector runs and any are configured.
    fn inventory_sources(&self) -> RealSources {
        let config = &self.config;
        let c = &config.collectors;
        let s = &config.storage;
        let storage = c.storage.enabled
            && !(s.lvm_volume_groups.is_empty()
                && s.directory_pools.is_empty()
                && s.block_devices.is_empty());
        let mut base = stream::identity::inventory(&config.paths.procfs);
        // The watchdog learns the service targets before any changes state.
        base.services = config.services.0.iter().map(|s| s.name.clone()).collect();
        if c.vm.enabled {
            base.roles.push(inventory::ROLE_HYPERVISOR.into());
        }
        if storage {
            base.roles.push(inventory::ROLE_STORAGE.into());
        }
        RealSources {
            base,
            vms: c.vm.enabled.then(|| self.vms.clone()),
            storage: storage.then(|| {
                (
                    config.storage.clone(),
                    config.paths.procfs.clone(),
                    config.paths.sysfs.clone(),
                )
            }),
        }
    }

    /// The stream's shared state, when a stream is configured.
    pub fn stream_handle(&self) -> Option<&Arc<StreamHandle>> {
        self.stream.as_ref()
    }

    /// Emits events to the watchdog; None when no stream is configured.
    pub fn watchdog_events(&self) -> Option<EventSender> {
        self.stream.as_ref().map(|s| s.events())
    }

    /// Every process exit the kernel reports (None without eBPF); the
    /// service checks subscribe to it, and so may a forwarder.
    pub fn exit_feed(&self) -> Option<&Arc<ExitFeed>> {
        self.exits.as_ref()
    }

    /// The VMs found at the last inventory refresh.
    pub fn vm_inventory(&self) -> VmInventory {
        self.vms.inventory()
    }

    /// The loaded kernel programs, when eBPF runs.
    pub fn ebpf(&self) -> Option<&Arc<Ebpf>> {
        self.ebpf.as_ref()
    }

    /// Starts the background tasks on the current tokio runtime.
    pub fn start(&self) -> BackgroundTasks {
        let mut tasks = Vec::new();
        if let Some(sender) = self.watchdog_events() {
            // Subscribed before any task below can publish.
            tasks.push(tokio::spawn(forward::run(self.bus.subscribe(), sender)));
        }
        let c = &self.config.collectors;
        if let (Some(ebpf), Some(feed)) = (&self.ebpf, &self.exits) {
            if let Some(ring) = ebpf.take_events() {
                let (feed, bus) = (feed.clone(), self.bus.clone());
                tasks.push(tokio::spawn(exits::run(ring, feed, bus)));
            }
            if c.cpu_stuck.enabled {
                tasks.push(tokio::spawn(monitor::watch_stuck_cpus(
                    ebpf.clone(),
                    c.cpu_stuck.threshold_seconds,
                    self.bus.clone(),
                )));
            }
            if ebpf.stats_enabled() {
                tasks.push(tokio::spawn(monitor::enforce_budget(
                    ebpf.clone(),
                    self.config.ebpf.budget.clone(),
                    self.bus.clone(),
                )));
            }
        }
        if c.vm.enabled {
            tasks.push(tokio::spawn(refresh_vms(
                c.vm.clone(),
                self.config.paths.procfs.clone(),
                self.vms.clone(),
            )));
        }
        tasks.extend(services::spawn(
            &self.config.services.0,
            &self.services,
            &self.bus,
            self.exits.clone(),
            self.config.paths.procfs.clone(),
        ));
        BackgroundTasks(tasks)
    }

    /// Whether the kernel programs are loaded.
    pub fn ebpf_enabled(&self) -> bool {
        self.ebpf.is_some()
    }

    /// One scrape: every collector plus the agent's own series.
    pub fn gather(&self) -> Vec<Family> {
        let mut families = self.registry.gather();
        let mut build = Family::new(
            "hyperwatch_build_info",
            "A metric with a constant '1' value labeled by version and target of hyperwatch-agent.",
            Kind::Gauge,
        );
        build.push(
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("program", "hyperwatch-agent".to_owned()),
            ],
            1.0,
        );
        families.push(build);
        families.push(
            Family::new(
                "hyperwatch_ebpf_enabled",
                "Whether the eBPF programs are loaded (1) or the agent runs on procfs alone (0).",
                Kind::Gauge,
            )
            .with(if self.ebpf_enabled() { 1.0 } else { 0.0 }),
        );
        if let Some(stream) = &self.stream {
            families.extend(stream.families());
        }
        families
    }
}

/// Takes the VM inventory now and every `refresh_seconds`.
async fn refresh_vms(config: vm::VmConfig, procfs: std::path::PathBuf, tracker: Arc<VmTracker>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs_f64(
        config.refresh_seconds.max(0.1),
    ));
    let mut last_error = String::new();
    loop {
        ticks.tick().await;
        match vm::discover(&config, &procfs).await {
            Ok(inventory) => {
                last_error.clear();
                tracker.update(inventory);
            }
            Err(e) => {
                let message = e.to_string();
                if message != last_error {
                    tracing::warn!(error = %message, "VM inventory failed; keeping the last one");
                    last_error = message;
                }
            }
        }
    }
}

fn load_ebpf(config: &Config) -> Result<Ebpf, EbpfError> {
    if !config.ebpf.enabled {
        return Err(EbpfError::Disabled);
    }
    Ebpf::load_with(&config.paths.tracefs, config.ebpf.attach_noop_baseline)
}

/// Runs the agent until `shutdown` completes; then stops serving, detaches
/// the programs and frees their maps.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let agent = Arc::new(Agent::new(&config));
    let background = agent.start();
    let mut tasks = Vec::new();
    let settings = match agent.stream.clone() {
        Some(handle) => {
            tasks.push(tokio::spawn(inventory::watch_real(
                handle.inventory.clone(),
                agent.inventory_sources(),
            )));
            Some(Settings::load(&config, &handle, agent.ebpf_enabled())?)
        }
        None => None,
    };
    serve(agent, &config, settings, tasks, shutdown).await?;
    tracing::info!("stopped serving; detaching eBPF programs");
    drop(background);
    Ok(())
}

/// Serves /metrics and, with `settings`, keeps the stream to the watchdog
/// up (with its telemetry loop) until `shutdown`; then stops `tasks` too.
/// The real agent and the simulator both run through here.
pub async fn serve(
    agent: Arc<Agent>,
    config: &Config,
    settings: Option<Settings>,
    mut tasks: Vec<JoinHandle<()>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: config.http.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(AgentError::Serve)?;
    // The stream hears of the shutdown too, to say goodbye on its way out.
    let (stopping_tx, stopping) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let mut stream_task = None;
    if let (Some(handle), Some(settings)) = (agent.stream.clone(), settings) {
        let interval =
            std::time::Duration::try_from_secs_f64(config.stream.telemetry_interval_seconds)
                .unwrap_or(std::time::Duration::MAX);
        let extra = config.stream.telemetry_metrics.clone();
        tasks.push(tokio::spawn(stream::session::telemetry_loop(
            handle.clone(),
            agent.clone(),
            interval,
            extra,
        )));
        stream_task = Some(tokio::spawn(stream::session::run(
            handle, settings, stopping,
        )));
    }
    announce(addr);
    let served = server::serve(listener, agent.clone(), shutdown).await;
    if let Some(mut task) = stream_task {
        // The goodbye is bounded; this bounds a stream still connecting.
        if tokio::time::timeout(STREAM_STOP_WAIT, &mut task)
            .await
            .is_err()
        {
            tracing::warn!("the stream did not stop within {STREAM_STOP_WAIT:?}; dropped");
            task.abort();
        }
    }
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    served.map_err(AgentError::Serve)
}

/// Tells the operator (and tests) where the metrics are.
fn announce(addr: SocketAddr) {
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), addr.port())
    } else {
        addr
    };
    println!("hyperwatch-agent: metrics at http://{shown}/metrics (listening on {addr})");
    tracing::info!(%addr, "listening");
}
