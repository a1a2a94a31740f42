//! Connecting to the watchdog and living one stream: endpoints tried in
//! order with failover, jittered exponential backoff between attempts,
//! mutual TLS, then hello, welcome, heartbeats, the outbox drained in
//! order, acks and commands, and a goodbye when the agent stops. Also the
//! telemetry producer, which runs whether or not a stream is up.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant, SystemTime},
};

use hyperwatch_proto::v1::{self, stream_client::StreamClient, watchdog_message::Body};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::{
    StreamHandle,
    actions::{Allowlist, CommandHandler},
    backoff::Backoff,
    goodbye, identity, monotonic_nanos,
    runs::OncePerRun,
    telemetry::Summariser,
    unix_nanos,
};
use crate::{Agent, config::Config};

/// HTTP/2 pings on a quiet connection, so a vanished watchdog is noticed
/// even when heartbeats sit in a dead TCP buffer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages queued towards the watchdog: a heartbeat never waits behind more
/// than this many records.
const OUTBOUND_QUEUE: usize = 256;
/// Records sent per turn of the stream loop, so heartbeats and acks
/// interleave with a long resend after a reconnect.
const DRAIN_BATCH: usize = 64;
/// The capability of an agent running its eBPF programs.
const EBPF: &str = "ebpf";
/// The capability of an agent that runs without eBPF by design (`[ebpf]
/// enabled = false`, or a simulated host): the watchdog then does not page
/// about eBPF being unavailable.
const EBPF_DISABLED: &str = "ebpf.disabled";

/// Why the stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// Everything a stream needs, resolved at start.
pub struct Settings {
    endpoints: Vec<String>,
    hello: v1::Hello,
    tls: Option<ClientTlsConfig>,
    heartbeat: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    connect_timeout: Duration,
    commands: Arc<dyn CommandHandler>,
}

impl Settings {
    /// Reads the certificates and builds the hello.
    pub fn load(config: &Config, handle: &StreamHandle, ebpf: bool) -> Result<Self, StreamError> {
        let s = &config.stream;
        let tls = if s.insecure {
            tracing::warn!(
                "INSECURE: [stream] insecure = true: plain TCP to the watchdog, no authentication; for local trials only"
            );
            None
        } else {
            let read = |what, path: &std::path::Path| {
                std::fs::read(path).map_err(|source| StreamError::Read {
                    what,
                    path: path.display().to_string(),
                    source,
                })
            };
            Some(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read("CA certificate", &s.ca)?))
                    .identity(Identity::from_pem(
                        read("certificate", &s.cert)?,
                        read("key", &s.key)?,
                    )),
            )
        };
        let procfs = &config.paths.procfs;
        let mut capabilities = vec![
            "telemetry".to_owned(),
            "events".to_owned(),
            "inventory_updates".to_owned(),
        ];
        if !config.actions.is_empty() {
            capabilities.push("actions".into());
        }
        if ebpf {
            capabilities.push(EBPF.into());
        } else if !config.ebpf.enabled {
            capabilities.push(EBPF_DISABLED.into());
        }
        let secs = |v: f64| Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX);
        Ok(Self {
            endpoints: s.endpoints.clone(),
            hello: v1::Hello {
                protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
                host_id: identity::host_id(&s.host_id, procfs),
                boot_id: identity::boot_id(procfs),
                agent_instance: handle.instance,
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                capabilities,
                // Filled from the latest inventory at every connection.
                inventory: None,
                heartbeat_interval_ms: secs(s.heartbeat_interval_seconds).as_millis() as u64,
                dropped_events: 0,
                dropped_telemetry: 0,
                labels: config.labels.clone().into_iter().collect(),
            },
            tls,
            heartbeat: secs(s.heartbeat_interval_seconds),
            backoff_initial: secs(s.backoff_initial_seconds),
            backoff_max: secs(s.backoff_max_seconds),
            connect_timeout: secs(s.connect_timeout_seconds),
            commands: Arc::new(OncePerRun::new(Arc::new(Allowlist(config.actions.clone())))),
        })
    }

    /// Simulation mode: `handler` (the simulated host) answers commands
    /// instead of the allowlist, and the hello says so; a simulated host
    /// has no kernel programs by design.
    pub fn simulated(mut self, handler: Arc<dyn CommandHandler>) -> Self {
        self.commands = Arc::new(OncePerRun::new(handler));
        let caps = &mut self.hello.capabilities;
        caps.retain(|c| c != "actions" && c != EBPF && c != EBPF_DISABLED);
        caps.extend([
            "actions".to_owned(),
            "simulated".to_owned(),
            EBPF_DISABLED.to_owned(),
        ]);
        self
    }
}

/// How an established stream ended.
enum Ended {
    /// Lost (the watchdog closed it, a transport error), in words: reconnect.
    Lost(String),
    /// The agent is stopping and said goodbye: do not reconnect.
    Goodbye,
}

/// Keeps a stream to some watchdog up until `stopping` turns true (the
/// agent's SIGTERM or SIGINT); then says goodbye on it and returns.
pub async fn run(
    handle: Arc<StreamHandle>,
    settings: Settings,
    mut stopping: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(
        settings.backoff_initial,
        settings.backoff_max,
        fastrand::Rng::new(),
    );
    // The first hello should carry the inventory, which its watcher
    // publishes moments after the start; a slow one is sent as an update.
    let mut inventory = handle.inventory.subscribe();
    let _ = tokio::time::timeout(
        settings.connect_timeout,
        inventory.wait_for(|i| i.revision > 0),
    )
    .await;
    let mut next = 0;
    let mut established_before = false;
    tracing::info!(host = %settings.hello.host_id, endpoints = ?settings.endpoints, "streaming to the watchdog");
    loop {
        if *stopping.borrow() {
            return;
        }
        let endpoint = &settings.endpoints[next % settings.endpoints.len()];
        match session(
            &handle,
            &settings,
            endpoint,
            &mut established_before,
            &mut stopping,
        )
        .await
        {
            Ok(Ended::Goodbye) => {
                handle.connected.store(false, Relaxed);
                return;
            }
            Ok(Ended::Lost(reason)) => {
                tracing::warn!(%endpoint, %reason, "stream to the watchdog ended; reconnecting");
                backoff.reset();
            }
            Err(e) => {
                tracing::warn!(%endpoint, error = %e, "cannot reach the watchdog; trying the next endpoint");
                next += 1;
            }
        }
        handle.connected.store(false, Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            // Not connected: nobody to say goodbye to.
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// One stream: Err when it could not be established, Ok when an
/// established stream ended.
async fn session(
    handle: &StreamHandle,
    s: &Settings,
    url: &str,
    established_before: &mut bool,
    stopping: &mut watch::Receiver<bool>,
) -> Result<Ended, String> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("bad endpoint {url:?}: {e}"))?
        .connect_timeout(s.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if let Some(tls) = &s.tls {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("TLS setup: {e}"))?;
    }
    let bounded = |what: &'static str| move |_| format!("no {what} within {:?}", s.connect_timeout);
    let channel = tokio::time::timeout(s.connect_timeout, endpoint.connect())
        .await
        .map_err(bounded("connection"))?
        .map_err(|e| format!("connecting: {}", source_chain(&e)))?;
    let mut client = StreamClient::new(channel)
        .max_decoding_message_size(hyperwatch_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(hyperwatch_proto::MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let mut inventory = handle.inventory.subscribe();
    let mut hello = s.hello.clone();
    hello.inventory = Some((**inventory.borrow_and_update()).clone());
    hello.dropped_events = handle.outbox.dropped.events.load(Relaxed);
    hello.dropped_telemetry = handle.outbox.dropped.telemetry.load(Relaxed);
    let _ = tx.try_send(message(v1::agent_message::Body::Hello(hello)));
    let response = tokio::time::timeout(s.connect_timeout, client.session(ReceiverStream::new(rx)))
        .await
        .map_err(bounded("answer to the hello"))?
        .map_err(|status| format!("refused: {:?}: {}", status.code(), status.message()))?;
    let mut inbound = response.into_inner();
    let welcome = match tokio::time::timeout(s.connect_timeout, inbound.message()).await {
        Err(_) => return Err(format!("no welcome within {:?}", s.connect_timeout)),
        Ok(Err(status)) => {
            return Err(format!(
                "refused: {:?}: {}",
                status.code(),
                status.message()
            ));
        }
        Ok(Ok(Some(v1::WatchdogMessage {
            body: Some(Body::Welcome(w)),
        }))) => w,
        Ok(Ok(_)) => return Err("the watchdog did not answer with a welcome".into()),
    };
    handle
        .outbox
        .resume(welcome.events_through, welcome.telemetry_through);
    handle.connected.store(true, Relaxed);
    if *established_before {
        handle.reconnects.fetch_add(1, Relaxed);
    }
    *established_before = true;
    tracing::info!(%url, buffered = handle.outbox.len(), "stream to the watchdog up");

    let mut heartbeat = tokio::time::interval(s.heartbeat);
    // After a stall (SIGSTOP, a paused VM) send one heartbeat, not a burst.
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0;
    let mut backlog = true;
    loop {
        tokio::select! {
            biased;
            // A dropped sender is the agent going down too. (The watch's
            // guard is dropped here: it must not live across the goodbye.)
            _ = async { stopping.wait_for(|s| *s).await.map(|_| ()) } => {
                match goodbye::say(tx, &mut inbound).await {
                    Ok(()) => tracing::info!(%url, reason = goodbye::REASON, "said goodbye to the watchdog; stream closed"),
                    Err(e) => tracing::warn!(%url, error = %e, "goodbye to the watchdog not confirmed"),
                }
                return Ok(Ended::Goodbye);
            }
            _ = heartbeat.tick() => {
                seq += 1;
                let hb = v1::Heartbeat {
                    seq,
                    sent_monotonic_nanos: monotonic_nanos(),
                    sent_unix_nanos: unix_nanos(SystemTime::now()),
                };
                if tx.send(message(v1::agent_message::Body::Heartbeat(hb))).await.is_err() {
                    return lost("the stream closed");
                }
            }
            incoming = inbound.message() => match incoming {
                Ok(Some(m)) => handle_message(handle, s, &tx, m),
                Ok(None) => return lost("the watchdog closed the stream"),
                Err(status) => return lost(&format!("{:?}: {}", status.code(), status.message())),
            },
            changed = inventory.changed() => {
                // The publisher lives as long as the handle: never closed.
                if changed.is_ok() {
                    let update = v1::InventoryUpdate {
                        inventory: Some((**inventory.borrow_and_update()).clone()),
                        monotonic_nanos: monotonic_nanos(),
                        unix_nanos: unix_nanos(SystemTime::now()),
                    };
                    if tx.send(message(v1::agent_message::Body::InventoryUpdate(update))).await.is_err() {
                        return lost("the stream closed");
                    }
                }
            }
            _ = handle.outbox.ready.notified() => backlog = true,
            _ = std::future::ready(()), if backlog => {}
        }
        if backlog {
            backlog = false;
            for _ in 0..DRAIN_BATCH {
                let Some(m) = handle.outbox.next_unsent() else {
                    break;
                };
                if tx.send(m).await.is_err() {
                    return lost("the stream closed");
                }
                backlog = true;
            }
        }
    }
}

fn lost(why: &str) -> Result<Ended, String> {
    Ok(Ended::Lost(why.to_owned()))
}

fn handle_message(
    handle: &StreamHandle,
    s: &Settings,
    tx: &mpsc::Sender<v1::AgentMessage>,
    m: v1::WatchdogMessage,
) {
    match m.body {
        Some(Body::Ack(a)) => handle.outbox.ack(a.events_through, a.telemetry_through),
        Some(Body::Command(c)) => {
            let (commands, tx) = (s.commands.clone(), tx.clone());
            tokio::spawn(async move {
                let result = commands.handle(c).await;
                let _ = tx
                    .send(message(v1::agent_message::Body::CommandResult(result)))
                    .await;
            });
        }
        Some(Body::Welcome(_)) | None => {}
    }
}

fn message(body: v1::agent_message::Body) -> v1::AgentMessage {
    v1::AgentMessage { body: Some(body) }
}

/// An error with its causes, which tonic's transport errors hide.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Every `interval`, summarises a scrape into the outbox, connected or not.
pub async fn telemetry_loop(
    handle: Arc<StreamHandle>,
    agent: Arc<Agent>,
    interval: Duration,
    extra: Vec<String>,
) {
    let mut summariser = Summariser::new(extra);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = Instant::now();
    loop {
        tick.tick().await;
        let families = agent.gather();
        let mut t = summariser.summarise(&families, start.elapsed().as_secs_f64());
        t.sampled_monotonic_nanos = monotonic_nanos();
        t.sampled_unix_nanos = unix_nanos(SystemTime::now());
        handle.outbox.push_telemetry(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::actions::Allowlist;

    /// The capabilities a hello announces about eBPF.
    fn ebpf_caps(enabled: bool, loaded: bool, simulated: bool) -> Vec<String> {
        let mut config = Config::default();
        config.ebpf.enabled = enabled;
        config.stream.insecure = true;
        let handle = StreamHandle::new(16);
        let mut settings = Settings::load(&config, &handle, loaded).unwrap();
        if simulated {
            settings = settings.simulated(Arc::new(Allowlist(Default::default())));
        }
        let caps = settings.hello.capabilities;
        caps.into_iter().filter(|c| c.starts_with(EBPF)).collect()
    }

    #[test]
    fn the_hello_tells_ebpf_disabled_by_design_from_ebpf_that_failed() {
        assert_eq!(ebpf_caps(true, true, false), [EBPF]);
        assert_eq!(ebpf_caps(false, false, false), [EBPF_DISABLED]);
        // Wanted but not loaded (no root, no BTF): neither.
        assert!(ebpf_caps(true, false, false).is_empty());
        assert_eq!(ebpf_caps(true, false, true), [EBPF_DISABLED]);
    }
}
