//! Bad input on the stream port: random bytes, garbage after TLS, a
//! truncated gRPC frame, an oversized frame, a storm of hellos and of idle
//! connections past the connection bound. Each offender is dropped; the
//! three real agents stay healthy, the API keeps answering, and the
//! watchdog's memory stays under a stated bound.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use hyperwatch_tests::{
    grpc,
    watchdog::{WatchdogProcess, start_cluster},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The bound this test holds the watchdog's resident memory to (a debug
/// build serving three agents measures ~20 MiB; the storm must not grow it
/// past this).
const RSS_BOUND_KIB: u64 = 256 * 1024;
/// Connections the watchdog admits in this test, so the storm hits the bound.
const MAX_CONNECTIONS: usize = 200;
/// Concurrent hellos in the storm.
const STORM: usize = 400;
/// Bound on the watchdog answering or dropping one offender.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

fn rejected(w: &WatchdogProcess, reason: &str) -> f64 {
    w.metric(&format!(
        "hyperwatch_stream_rejected_total{{reason=\"{reason}\"}}"
    ))
    .unwrap()
    .unwrap_or(0.0)
}

/// Reads until the peer closes (or errors); bounded.
async fn closed_by_peer(mut s: impl tokio::io::AsyncRead + Unpin) -> bool {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// The gRPC status the watchdog answered a raw session with.
async fn grpc_status(session: grpc::RawSession) -> String {
    let answer = async {
        let response = session.response.await?;
        if let Some(s) = response.headers().get("grpc-status") {
            return Ok::<_, anyhow::Error>(s.to_str()?.to_owned());
        }
        let mut body = response.into_body();
        while body.data().await.is_some() {}
        let trailers = body.trailers().await?.unwrap_or_default();
        Ok(trailers
            .get("grpc-status")
            .map(|s| s.to_str().unwrap_or("?").to_owned())
            .unwrap_or_else(|| "none".into()))
    };
    match tokio::time::timeout(ANSWER_WITHIN, answer).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => format!("reset: {e}"),
        Err(_) => "no answer".into(),
    }
}

async fn random_bytes(addr: SocketAddr) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let junk: Vec<u8> = (0..65_536).map(|_| fastrand::u8(..)).collect();
    let _ = s.write_all(&junk).await;
    assert!(
        closed_by_peer(s).await,
        "random bytes: the connection is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dropped_and_the_watchdog_keeps_serving() -> anyhow::Result<()> {
    let extra = format!("max_connections = {MAX_CONNECTIONS}\nhello_timeout_seconds = 2.0");
    let hosts = ["hv-1", "hv-2", "hv-3"];
    let (certs, watchdog, _agents) = tokio::task::block_in_place(|| start_cluster(&hosts, &extra))?;
    let certs = Arc::new(certs);
    let w = &watchdog;
    let addr = w.stream_addr;
    let rss_before = w.rss_kib()?;
    certs.agent("hv-raw")?;

    // Random bytes where a TLS handshake belongs.
    let before = rejected(w, "tls_handshake");
    let junk: Vec<_> = (0..20).map(|_| tokio::spawn(random_bytes(addr))).collect();
    for j in junk {
        j.await?;
    }
    assert!(
        rejected(w, "tls_handshake") >= before + 20.0,
        "counted as tls_handshake"
    );

    // Garbage after a good handshake, instead of HTTP/2.
    let mut tls = grpc::connect(addr, &certs, "hv-raw").await?;
    tls.write_all(b"GET / HTTP/1.1\r\nthis is not http/2 at all\r\n\r\n")
        .await?;
    assert!(closed_by_peer(tls).await, "garbage after TLS: dropped");

    // A truncated frame: the header promises a whole hello, half comes.
    let hello = grpc::hello("hv-raw");
    let mut s = grpc::open(addr, &certs, "hv-raw").await?;
    s.body.send_data(
        grpc::frame_claiming(&hello[..hello.len() / 2], hello.len() as u32),
        true,
    )?;
    let status = grpc_status(s).await;
    assert_ne!(status, "0", "a truncated frame is an error, got {status}");

    // An oversized frame: 16 MiB announced, far past max_message_bytes.
    let mut s = grpc::open(addr, &certs, "hv-raw").await?;
    s.body
        .send_data(grpc::frame_claiming(&[0u8; 1024], 16 * 1024 * 1024), false)?;
    let status = grpc_status(s).await;
    assert_ne!(status, "0", "an oversized frame is an error, got {status}");
    assert!(
        w.host("hv-raw")?.is_none(),
        "no host registered from bad frames"
    );
    assert!(rejected(w, "bad_message") >= 2.0, "bad frames counted");

    // A storm: many connections at once, each sending a hello for the same
    // host, kept open, so stream replacement and the connection bound both
    // work at full tilt.
    let started = Instant::now();
    let storm: Vec<_> = (0..STORM)
        .map(|_| {
            let certs = certs.clone();
            tokio::spawn(async move {
                let mut s = grpc::open(addr, &certs, "hv-raw").await.ok()?;
                s.body
                    .send_data(grpc::frame(&grpc::hello("hv-raw")), false)
                    .ok()?;
                Some(s)
            })
        })
        .collect();
    let mut held = Vec::new();
    for s in storm {
        held.push(s.await?);
    }
    let opened = held.iter().filter(|s| s.is_some()).count();
    eprintln!(
        "storm: {opened} of {STORM} sessions opened in {:?}",
        started.elapsed()
    );
    let api_answers = tokio::task::block_in_place(|| w.get_json("/api/v1/hosts"));
    assert!(
        api_answers.is_ok(),
        "the API answers during the storm: {api_answers:?}"
    );
    let rss_storm = w.rss_kib()?;
    assert!(
        rejected(w, "too_many_connections") >= 1.0,
        "the connection bound held"
    );
    drop(held);

    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        for h in hosts {
            assert_eq!(w.state(h)?.as_deref(), Some("healthy"), "{h} stays healthy");
        }
        assert_eq!(
            w.metric("hyperwatch_host_state_changes_total{state=\"failed\"}")?,
            None,
            "nothing was declared failed"
        );
        // The storm's connections are released: back to the three agents.
        w.wait_for("storm connections closed", ANSWER_WITHIN, |w| {
            Ok((w.metric("hyperwatch_stream_connections")? == Some(3.0)).then_some(()))
        })?;
        Ok(())
    })?;
    let rss_after = w.rss_kib()?;
    eprintln!(
        "watchdog RSS: {rss_before} KiB before, {rss_storm} KiB in the storm, {rss_after} KiB after"
    );
    assert!(
        rss_storm < RSS_BOUND_KIB && rss_after < RSS_BOUND_KIB,
        "memory stays under {RSS_BOUND_KIB} KiB"
    );
    Ok(())
}
