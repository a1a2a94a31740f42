//! The running watchdog: binds the stream and HTTP listeners, runs ingest,
//! the detector loop and the API until shutdown. [`Watchdog`] is also the
//! handle later parts use: the registry snapshot, the [`ClusterEvents`]
//! subscription, `send_command`, and [`StatusSources`] for the status page.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyperwatch_proto::v1::stream_server::StreamServer;
use tokio::net::TcpListener;

use crate::{
    api,
    commands::CommandRouter,
    config::{Config, secs},
    events::ClusterEvents,
    ingest::{
        Ingest,
        listener::{self, Admission},
    },
    metrics::Metrics,
    registry::Registry,
    status::{StatusSources, metrics::StatusCollector},
    tls,
};

/// HTTP/2 keepalive: a silent connection is probed this often...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// ...and closed when the probe goes unanswered this long.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams per connection: an agent needs one; a few more let a reconnect
/// overlap without letting one connection open thousands.
const MAX_STREAMS_PER_CONNECTION: u32 = 4;
/// HTTP/2 flow-control windows: bound what one connection can make the
/// watchdog buffer (a hello with a large inventory still fits).
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 512 * 1024;

/// Bound on the graceful stop: streams get this long to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the watchdog could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cluster CA {path}: {message}")]
    Cluster { path: String, message: String },
    #[error("stream server failed: {0}")]
    Stream(#[from] tonic::transport::Error),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// A bound, not yet running watchdog and the handles into it.
pub struct Watchdog {
    pub registry: Arc<Registry>,
    pub commands: Arc<CommandRouter>,
    pub events: ClusterEvents,
    /// Where parts register what the status page and /metrics show.
    pub status: Arc<StatusSources>,
    pub cluster: String,
    pub stream_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stream_listener: TcpListener,
    http_listener: TcpListener,
    config: Config,
    /// Routes other parts serve beside the API (the policy runtime's, the
    /// placement service's).
    routes: Vec<axum::Router>,
}

impl Watchdog {
    /// Loads the certificates and binds both listeners.
    pub async fn bind(config: Config) -> Result<Self, ServiceError> {
        let s = &config.stream;
        let cluster = if !s.cluster.is_empty() || s.insecure {
            if s.cluster.is_empty() {
                "insecure".to_owned()
            } else {
                s.cluster.clone()
            }
        } else {
            let pem = std::fs::read_to_string(&s.ca).map_err(|e| ServiceError::Cluster {
                path: s.ca.display().to_string(),
                message: e.to_string(),
            })?;
            crate::certs::cluster_of_ca_pem(&pem).map_err(|message| ServiceError::Cluster {
                path: s.ca.display().to_string(),
                message,
            })?
        };
        let status = Arc::new(StatusSources::default());
        let mut metrics = Metrics::default();
        metrics.register_collector(Box::new(StatusCollector(status.clone())));
        let metrics = Arc::new(metrics);
        let events = ClusterEvents::default();
        let registry = Arc::new(Registry::new(
            &cluster,
            &config.detector,
            events.clone(),
            metrics,
        ));
        let commands = Arc::new(CommandRouter::new(
            registry.clone(),
            secs(config.commands.timeout_seconds),
        ));
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServiceError::Listen { addr, source })
        };
        let stream_listener = bind(s.listen).await?;
        let http_listener = bind(config.http.listen).await?;
        let local = |l: &TcpListener, addr| {
            l.local_addr()
                .map_err(|source| ServiceError::Listen { addr, source })
        };
        Ok(Self {
            stream_addr: local(&stream_listener, s.listen)?,
            http_addr: local(&http_listener, config.http.listen)?,
            registry,
            commands,
            events,
            status,
            cluster,
            stream_listener,
            http_listener,
            config,
            routes: Vec::new(),
        })
    }

    /// Serves `routes` on the HTTP listener beside the API.
    pub fn add_routes(&mut self, routes: axum::Router) {
        self.routes.push(routes);
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let s = &self.config.stream;
        let tls = if s.insecure {
            tracing::warn!(
                addr = %self.stream_addr,
                "INSECURE: [stream] insecure = true: agents connect over plain TCP without authentication; for local trials only"
            );
            None
        } else {
            let config = tls::server_config(&s.ca, &s.cert, &s.key)?;
            Some(tokio_rustls::TlsAcceptor::from(config))
        };
        tracing::info!(cluster = %self.cluster, stream = %self.stream_addr, http = %self.http_addr, "watchdog serving");
        let admission = Admission {
            tls,
            cluster: self.cluster.clone(),
            max_connections: s.max_connections,
            handshake_timeout: secs(s.handshake_timeout_seconds),
            metrics: self.registry.metrics.clone(),
        };
        let incoming = listener::incoming(self.stream_listener, admission);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ingest = Ingest::new(
            self.registry.clone(),
            self.commands.clone(),
            secs(s.hello_timeout_seconds),
            stop_rx.clone(),
        );
        let service = StreamServer::new(ingest)
            .max_decoding_message_size(s.max_message_bytes)
            .max_encoding_message_size(s.max_message_bytes);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let detector = tokio::spawn(detector_loop(
            self.registry.clone(),
            self.config.detector.check_interval(),
            stopped(stop_rx.clone()),
        ));
        let grpc = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .initial_stream_window_size(Some(STREAM_WINDOW))
            .initial_connection_window_size(Some(CONNECTION_WINDOW))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone()));
        let app = self.routes.into_iter().fold(
            api::router(api::ApiState {
                registry: self.registry.clone(),
                commands: self.commands.clone(),
                status: self.status.clone(),
            }),
            axum::Router::merge,
        );
        let mut stopping = stop_rx.clone();
        let http = axum::serve(self.http_listener, app).with_graceful_shutdown(stopped(stop_rx));
        let both = async { tokio::join!(grpc, async { http.await }) };
        tokio::pin!(both);
        let (grpc, http) = tokio::select! {
            r = &mut both => r,
            _ = async {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {
                tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown began; stopping anyway");
                (Ok(()), Ok(()))
            }
        };
        detector.abort();
        grpc?;
        http.map_err(ServiceError::Http)?;
        tracing::info!("watchdog stopped");
        Ok(())
    }
}

/// Evaluates every host's verdict each `interval` until `stop`.
async fn detector_loop(
    registry: Arc<Registry>,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => registry.check(),
        }
    }
}
