//! The running agent: collectors, eBPF state and the HTTP server, from start
//! to a clean shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc};

use crate::{
    collectors::Registry,
    config::Config,
    ebpf::{Ebpf, EbpfError},
    metrics::{Family, Kind},
    server,
    stream::{self, EventSender, StreamHandle},
};

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

/// Everything a scrape needs.
pub struct Agent {
    registry: Registry,
    ebpf: Option<Arc<Ebpf>>,
    /// The stream to the watchdog, when endpoints are configured.
    stream: Option<Arc<StreamHandle>>,
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
        let registry = Registry::new(config, ebpf.clone());
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
        }
    }

    /// Emits events to the watchdog; None when no stream is configured.
    pub fn events(&self) -> Option<EventSender> {
        self.stream.as_ref().map(|s| s.events())
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

fn load_ebpf(config: &Config) -> Result<Ebpf, EbpfError> {
    if !config.ebpf.enabled {
        return Err(EbpfError::Disabled);
    }
    Ebpf::load(&config.paths.tracefs)
}

/// Runs the agent until `shutdown` completes; then stops serving, detaches
/// the programs and frees their maps.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let agent = Arc::new(Agent::new(&config));
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: config.http.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(AgentError::Serve)?;
    let mut tasks = Vec::new();
    if let Some(handle) = agent.stream.clone() {
        let settings = stream::session::Settings::load(&config, &handle, agent.ebpf_enabled())?;
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
        tasks.push(tokio::spawn(stream::session::run(handle, settings)));
    }
    announce(addr);
    let served = server::serve(listener, agent.clone(), shutdown).await;
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    served.map_err(AgentError::Serve)?;
    tracing::info!("stopped serving; detaching eBPF programs");
    drop(agent);
    Ok(())
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
