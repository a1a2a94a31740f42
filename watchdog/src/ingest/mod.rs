//! Ingest: the gRPC `Stream` service agents talk to. It checks each hello
//! (protocol version, host id against the certificate), registers the
//! stream, and feeds heartbeats, telemetry, events and command results to
//! the registry and the command router, answering with acks.
//!
//! * [`listener`]: admitting connections (TLS, identity, bounds).

pub mod listener;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use hyperwatch_proto::{
    spiffe::valid_name,
    v1::{self, agent_message::Body, stream_server},
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    commands::CommandRouter,
    registry::{Connection, HostEntry, Registry},
};
use listener::PeerInfo;

/// Messages queued to one agent: acks and commands are small and few; a
/// full queue means the agent stopped reading, and acks are skipped (the
/// next one covers them).
const OUTBOUND_QUEUE: usize = 64;

/// The service behind `hyperwatch.v1.Stream`.
#[derive(Clone)]
pub struct Ingest {
    registry: Arc<Registry>,
    commands: Arc<CommandRouter>,
    hello_timeout: Duration,
    next_connection: Arc<AtomicU64>,
    /// Turns true at shutdown: every stream ends so the server can stop.
    stopping: watch::Receiver<bool>,
}

impl Ingest {
    pub fn new(
        registry: Arc<Registry>,
        commands: Arc<CommandRouter>,
        hello_timeout: Duration,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            registry,
            commands,
            hello_timeout,
            next_connection: Arc::new(AtomicU64::new(1)),
            stopping,
        }
    }

    fn reject(&self, peer: &PeerInfo, reason: &'static str, detail: String) -> Status {
        self.registry.metrics.rejected(reason);
        tracing::warn!(addr = %peer.addr, reason, %detail, "agent stream refused");
        Status::permission_denied(format!("{reason}: {detail}"))
    }

    /// Waits (bounded) for the hello and checks it.
    async fn hello(
        &self,
        peer: &PeerInfo,
        inbound: &mut Streaming<v1::AgentMessage>,
    ) -> Result<v1::Hello, Status> {
        let first = match tokio::time::timeout(self.hello_timeout, inbound.message()).await {
            Err(_) => {
                return Err(self.reject(
                    peer,
                    "hello_timeout",
                    format!("no hello within {:?}", self.hello_timeout),
                ));
            }
            Ok(Err(status)) => {
                return Err(self.reject(peer, "bad_message", status.message().to_owned()));
            }
            Ok(Ok(None)) => {
                return Err(self.reject(peer, "bad_message", "stream ended before hello".into()));
            }
            Ok(Ok(Some(m))) => m,
        };
        let Some(Body::Hello(hello)) = first.body else {
            return Err(self.reject(peer, "no_hello", "the first message must be a hello".into()));
        };
        if hello.protocol_version != hyperwatch_proto::PROTOCOL_VERSION {
            return Err(self.reject(
                peer,
                "protocol_version",
                format!(
                    "agent speaks protocol {}, this watchdog {}",
                    hello.protocol_version,
                    hyperwatch_proto::PROTOCOL_VERSION
                ),
            ));
        }
        if !valid_name(&hello.host_id) {
            return Err(self.reject(
                peer,
                "bad_host_id",
                format!("{:?} is not a valid host id", hello.host_id),
            ));
        }
        if let Some(id) = &peer.identity
            && id.host_name() != Some(hello.host_id.as_str())
        {
            return Err(self.reject(
                peer,
                "host_mismatch",
                format!(
                    "hello says host {:?} but the certificate is {id}",
                    hello.host_id
                ),
            ));
        }
        Ok(hello)
    }
}

#[tonic::async_trait]
impl stream_server::Stream for Ingest {
    type SessionStream = ReceiverStream<Result<v1::WatchdogMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .cloned()
            .ok_or_else(|| Status::internal("connection without peer information"))?;
        let mut inbound = request.into_inner();
        let hello = self.hello(&peer, &mut inbound).await?;
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let connection = Connection {
            id: self.next_connection.fetch_add(1, Ordering::Relaxed),
            peer: peer.addr,
            since: SystemTime::now(),
            outbound: tx.clone(),
            replaced: Arc::new(tokio::sync::Notify::new()),
        };
        let replaced = connection.replaced.clone();
        let connection_id = connection.id;
        let host = hello.host_id.clone();
        tracing::info!(%host, addr = %peer.addr, agent = %hello.agent_version, boot_id = %hello.boot_id, "agent connected");
        self.registry.metrics.connections_accepted.inc();
        let (entry, welcome) = self.registry.attach(hello, connection);
        let _ = tx.try_send(Ok(welcome));
        let this = self.clone();
        tokio::spawn(async move {
            let reason = tokio::select! {
                reason = this.pump(&entry, connection_id, &mut inbound, &tx) => reason,
                _ = replaced.notified() => "replaced by a newer stream of the same host".into(),
            };
            tracing::info!(%host, addr = %peer.addr, %reason, "agent stream ended");
            this.commands.connection_closed(connection_id);
            this.registry.detach(&entry, connection_id, reason);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl Ingest {
    /// Handles the agent's messages until the stream ends; returns why.
    async fn pump(
        &self,
        entry: &HostEntry,
        connection_id: u64,
        inbound: &mut Streaming<v1::AgentMessage>,
        tx: &mpsc::Sender<Result<v1::WatchdogMessage, Status>>,
    ) -> String {
        let metrics = &self.registry.metrics;
        let mut stopping = self.stopping.clone();
        loop {
            let next = tokio::select! {
                m = inbound.message() => m,
                _ = stopping.wait_for(|s| *s) => return "watchdog shutting down".into(),
            };
            let message = match next {
                Ok(Some(m)) => m,
                Ok(None) => return "agent closed the stream".into(),
                Err(status) => {
                    let reason = if status.code() == tonic::Code::Cancelled {
                        "cancelled"
                    } else {
                        "bad_message"
                    };
                    if reason == "bad_message" {
                        metrics.rejected("bad_message");
                    }
                    return format!("{}: {}", reason, status.message());
                }
            };
            let ack = match message.body {
                Some(Body::Heartbeat(hb)) => {
                    metrics.message("heartbeat");
                    self.registry.heartbeat(entry, &hb);
                    None
                }
                Some(Body::Telemetry(t)) => {
                    metrics.message("telemetry");
                    Some(self.registry.telemetry(entry, t))
                }
                Some(Body::Event(e)) => {
                    metrics.message("event");
                    Some(self.registry.event(entry, e))
                }
                Some(Body::InventoryUpdate(u)) => {
                    metrics.message("inventory_update");
                    self.registry.inventory_update(entry, u);
                    None
                }
                Some(Body::CommandResult(r)) => {
                    metrics.message("command_result");
                    self.commands.complete(r);
                    None
                }
                Some(Body::Goodbye(g)) => {
                    metrics.message("goodbye");
                    self.registry.goodbye(entry, connection_id, &g.reason);
                    // Ending the stream here is the agent's receipt.
                    return format!("agent said goodbye: {}", g.reason);
                }
                Some(Body::Hello(_)) => {
                    metrics.rejected("repeated_hello");
                    return "a second hello on one stream".into();
                }
                None => {
                    metrics.message("empty");
                    None
                }
            };
            if let Some(ack) = ack {
                // A full queue: the agent is not reading; the next ack covers this one.
                let _ = tx.try_send(Ok(ack));
            }
        }
    }
}
