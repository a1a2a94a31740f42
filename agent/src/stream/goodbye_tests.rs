//! The goodbye against an in-process watchdog stand-in on loopback: the
//! stream task, told to stop, sends Goodbye with its reason as its last
//! message and returns; it returns within its bound also when the watchdog
//! never confirms (hangs, or predates the goodbye).

use std::{sync::Arc, time::Duration};

use hyperwatch_proto::v1::{
    self, agent_message::Body, stream_server::Stream as StreamService, stream_server::StreamServer,
    watchdog_message,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::{REASON, RECEIPT_TIMEOUT};
use crate::{
    config::Config,
    stream::{
        StreamHandle,
        session::{Settings, run},
    },
};

/// Bound on anything the test waits for: generous beside the 1 s
/// receipt timeout, so a loaded machine does not fail it.
const WITHIN: Duration = Duration::from_secs(10);

/// A watchdog that welcomes, records what arrives, and on a goodbye either
/// ends the stream (as the real one does) or holds it open for ever.
#[derive(Clone)]
struct StandIn {
    confirms: bool,
    seen: mpsc::UnboundedSender<v1::AgentMessage>,
}

#[tonic::async_trait]
impl StreamService for StandIn {
    type SessionStream = ReceiverStream<Result<v1::WatchdogMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let welcome = v1::WatchdogMessage {
            body: Some(watchdog_message::Body::Welcome(v1::Welcome::default())),
        };
        let _ = tx.send(Ok(welcome)).await;
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                let goodbye = matches!(m.body, Some(Body::Goodbye(_)));
                let _ = this.seen.send(m);
                if goodbye && this.confirms {
                    return; // drops tx: the stream ends, the receipt
                }
            }
            // A hung watchdog: the response stays open.
            std::future::pending::<()>().await;
            drop(tx);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Streams to a stand-in until the first heartbeat, then stops; returns
/// everything the stand-in received.
async fn stop_after_a_heartbeat(confirms: bool) -> Vec<v1::AgentMessage> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = tonic::transport::Server::builder()
        .add_service(StreamServer::new(StandIn {
            confirms,
            seen: seen_tx,
        }))
        .serve_with_incoming(TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let mut config = Config::default();
    config.stream.insecure = true;
    config.stream.endpoints = vec![format!("http://{addr}")];
    config.stream.heartbeat_interval_seconds = 0.05;
    let handle = Arc::new(StreamHandle::new(16));
    handle.inventory.publish(v1::Inventory::default());
    let settings = Settings::load(&config, &handle, false).unwrap();
    let (stop, stopping) = watch::channel(false);
    let task = tokio::spawn(run(handle, settings, stopping));

    let mut messages = Vec::new();
    tokio::time::timeout(WITHIN, async {
        while let Some(m) = seen.recv().await {
            let beat = matches!(m.body, Some(Body::Heartbeat(_)));
            messages.push(m);
            if beat {
                return;
            }
        }
    })
    .await
    .expect("a heartbeat from the agent");
    stop.send(true).unwrap();
    tokio::time::timeout(WITHIN, task)
        .await
        .expect("the stream task returns once stopped")
        .unwrap();
    while let Ok(m) = seen.try_recv() {
        messages.push(m);
    }
    server.abort();
    messages
}

fn last_is_goodbye(messages: &[v1::AgentMessage]) {
    match messages.last().and_then(|m| m.body.as_ref()) {
        Some(Body::Goodbye(g)) => assert_eq!(g.reason, REASON),
        other => panic!("last message {other:?}, not a goodbye"),
    }
}

#[tokio::test]
async fn a_stopping_agent_says_goodbye_last_and_the_watchdog_closing_confirms_it() {
    let messages = stop_after_a_heartbeat(true).await;
    assert!(matches!(messages[0].body, Some(Body::Hello(_))));
    last_is_goodbye(&messages);
}

#[tokio::test]
async fn a_watchdog_that_never_confirms_holds_the_stop_only_for_the_bound() {
    let started = tokio::time::Instant::now();
    let messages = stop_after_a_heartbeat(false).await;
    last_is_goodbye(&messages);
    // Not a timing assertion on speed: the agent did wait for a receipt
    // (it could not have returned sooner), and `WITHIN` bounded the rest.
    assert!(started.elapsed() >= RECEIPT_TIMEOUT);
}
