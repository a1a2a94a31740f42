//! The interface later parts build on, in process: a subscriber to
//! `ClusterEvents` sees a host connect, turn healthy, send an event and,
//! when its heartbeats stop, fail; the registry snapshot agrees. The agent
//! here is a bare protocol client over the insecure (plain TCP) listener,
//! which also shows that mode working.

use std::time::Duration;

use hyperwatch::{config, events::ClusterEvent, health::HostState, service::Watchdog};
use hyperwatch_proto::v1::{self, agent_message::Body, stream_client::StreamClient};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Bound on each expected event.
const EVENT_WITHIN: Duration = Duration::from_secs(10);

async fn next_matching(
    rx: &mut broadcast::Receiver<ClusterEvent>,
    what: &str,
    f: impl Fn(&ClusterEvent) -> bool,
) -> ClusterEvent {
    tokio::time::timeout(EVENT_WITHIN, async {
        loop {
            let e = rx.recv().await.expect("events channel open");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {EVENT_WITHIN:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_connect_health_events_and_failure() {
    let text = "[stream]\nlisten = \"127.0.0.1:0\"\ninsecure = true\ncluster = \"lab\"\n[http]\nlisten = \"127.0.0.1:0\"\n";
    let config = config::parse(text, "test.toml").unwrap();
    let watchdog = Watchdog::bind(config).await.unwrap();
    let (addr, registry, mut events) = (
        watchdog.stream_addr,
        watchdog.registry.clone(),
        watchdog.events.subscribe(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(watchdog.run(async {
        let _ = stop_rx.await;
    }));

    let (tx, rx) = mpsc::channel(16);
    let send = |b| v1::AgentMessage { body: Some(b) };
    tx.send(send(Body::Hello(v1::Hello {
        protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
        host_id: "hv-sub".into(),
        boot_id: "b1".into(),
        agent_instance: 9,
        heartbeat_interval_ms: 200,
        ..Default::default()
    })))
    .await
    .unwrap();
    let mut client = StreamClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let welcome = inbound.message().await.unwrap().unwrap();
    assert!(matches!(
        welcome.body,
        Some(v1::watchdog_message::Body::Welcome(_))
    ));

    next_matching(
        &mut events,
        "connected",
        |e| matches!(e, ClusterEvent::Connected { host, .. } if host == "hv-sub"),
    )
    .await;
    for seq in 1..=5u64 {
        tx.send(send(Body::Heartbeat(v1::Heartbeat {
            seq,
            sent_monotonic_nanos: hyperwatch::registry::monotonic_nanos(),
            sent_unix_nanos: hyperwatch::registry::unix_nanos(std::time::SystemTime::now()),
        })))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tx.send(send(Body::Event(v1::Event {
        seq: 1,
        kind: Some(v1::event::Kind::ServiceStateChange(
            v1::ServiceStateChange {
                service: "libvirtd".into(),
                old_state: "up".into(),
                new_state: "down".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    })))
    .await
    .unwrap();
    let e = next_matching(&mut events, "agent event", |e| {
        matches!(e, ClusterEvent::AgentEvent { .. })
    })
    .await;
    let ClusterEvent::AgentEvent { host, event } = e else {
        unreachable!()
    };
    assert_eq!(host, "hv-sub");
    assert!(
        matches!(&event.kind, Some(v1::event::Kind::ServiceStateChange(s)) if s.service == "libvirtd")
    );

    // Silence: the host fails, and the subscriber is told.
    let e = next_matching(&mut events, "failure", |e| {
        matches!(
            e,
            ClusterEvent::HostState {
                to: HostState::Failed,
                ..
            }
        )
    })
    .await;
    let ClusterEvent::HostState {
        host, from, reason, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(host, "hv-sub");
    assert!(from.is_some() && reason.contains("silent"), "{reason}");
    let snapshot = registry.host("hv-sub").expect("known host");
    assert_eq!(snapshot.state, HostState::Failed);
    assert_eq!(snapshot.events_through, 1);
    drop(tx);
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
