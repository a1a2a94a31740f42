//! `hyperwatch loadgen` (hidden): many simulated agents in one process for
//! `cargo xtask bench ingest`. Each gets its own certificate from the
//! cluster CA, its own mutual-TLS connection and stream, and sends a hello,
//! heartbeats every second (phases spread over the second) and a telemetry
//! summary every ten seconds, like a real agent. Runs for a bounded time.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant, SystemTime},
};

use hyperwatch_proto::{
    spiffe::Role,
    v1::{self, agent_message::Body, stream_client::StreamClient},
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{
    certs::{self, LEAF_VALIDITY, Validity},
    registry::unix_nanos,
};

/// Samples in each simulated telemetry summary, about what a real agent's
/// default summary carries.
const TELEMETRY_SAMPLES: usize = 16;
/// Pause before a simulated agent reconnects after losing its stream.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Flags of `hyperwatch loadgen`.
#[derive(clap::Args, Debug)]
pub struct LoadgenArgs {
    /// The watchdog's stream address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub target: String,
    /// Directory with the cluster CA (ca.pem, ca.key) to mint host certificates.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: PathBuf,
    /// Simulated hosts.
    #[arg(long)]
    pub hosts: usize,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 500)]
    pub ramp: usize,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 1.0)]
    pub heartbeat_seconds: f64,
    /// Seconds between telemetry summaries.
    #[arg(long, default_value_t = 10.0)]
    pub telemetry_seconds: f64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub duration_seconds: f64,
    /// Host names are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "lg-")]
    pub prefix: String,
}

#[derive(Default)]
struct Counters {
    up: AtomicU64,
    heartbeats: AtomicU64,
    failures: AtomicU64,
}

pub fn run(args: LoadgenArgs, log_level: &str) -> ExitCode {
    super::init_logging(log_level);
    super::raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(generate(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}

async fn generate(args: LoadgenArgs) -> Result<(), String> {
    let ca = certs::read_ca(&args.ca_dir).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut tls = Vec::with_capacity(args.hosts);
    let ca_cert = Certificate::from_pem(&ca.cert);
    for i in 0..args.hosts {
        let host = format!("{}{i}", args.prefix);
        let leaf = certs::issue(
            &ca,
            Role::Host(host.clone()),
            &[],
            &[],
            Validity::starting_now(LEAF_VALIDITY),
        )
        .map_err(|e| e.to_string())?;
        tls.push((
            host,
            ClientTlsConfig::new()
                .ca_certificate(ca_cert.clone())
                .identity(Identity::from_pem(leaf.cert, leaf.key)),
        ));
    }
    eprintln!(
        "loadgen: {} certificates in {:.1?}",
        args.hosts,
        started.elapsed()
    );
    let counters = Arc::new(Counters::default());
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration_seconds);
    let heartbeat = Duration::from_secs_f64(args.heartbeat_seconds);
    let telemetry = Duration::from_secs_f64(args.telemetry_seconds);
    let url = format!("https://{}", args.target);
    for (i, (host, tls)) in tls.into_iter().enumerate() {
        let start = Duration::from_secs_f64(i as f64 / args.ramp.max(1) as f64);
        let (url, counters) = (url.clone(), counters.clone());
        tokio::spawn(async move {
            tokio::time::sleep(start).await;
            while Instant::now() < deadline {
                if let Err(e) = agent(
                    &url,
                    &host,
                    tls.clone(),
                    heartbeat,
                    telemetry,
                    &counters,
                    deadline,
                )
                .await
                {
                    counters.failures.fetch_add(1, Relaxed);
                    tracing::debug!(%host, error = %e, "simulated agent lost its stream");
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        });
    }
    while Instant::now() < deadline {
        tokio::time::sleep(PROGRESS_EVERY.min(deadline.saturating_duration_since(Instant::now())))
            .await;
        eprintln!(
            "loadgen: {} of {} streams up, {} heartbeats sent, {} stream failures",
            counters.up.load(Relaxed),
            args.hosts,
            counters.heartbeats.load(Relaxed),
            counters.failures.load(Relaxed)
        );
    }
    Ok(())
}

/// One simulated agent's stream until it fails or the run ends.
async fn agent(
    url: &str,
    host: &str,
    tls: ClientTlsConfig,
    heartbeat: Duration,
    telemetry: Duration,
    counters: &Counters,
    deadline: Instant,
) -> Result<(), String> {
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(16);
    let hello = v1::Hello {
        protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
        host_id: host.to_owned(),
        boot_id: format!("loadgen-{host}"),
        agent_instance: fastrand::u64(1..),
        agent_version: "loadgen".into(),
        capabilities: vec!["telemetry".into()],
        inventory: Some(v1::Inventory {
            cpu_cores: 64,
            memory_bytes: 512 << 30,
            ..Default::default()
        }),
        heartbeat_interval_ms: heartbeat.as_millis() as u64,
        ..Default::default()
    };
    let send = |body| v1::AgentMessage { body: Some(body) };
    tx.send(send(Body::Hello(hello)))
        .await
        .map_err(|e| e.to_string())?;
    let mut inbound = StreamClient::new(channel)
        .session(ReceiverStream::new(rx))
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    counters.up.fetch_add(1, Relaxed);
    let result = async {
        // Spread phases over the period, as independent hosts are.
        tokio::time::sleep(heartbeat.mul_f64(fastrand::f64())).await;
        let mut beat = tokio::time::interval(heartbeat);
        let mut summary = tokio::time::interval_at(tokio::time::Instant::now() + telemetry.mul_f64(fastrand::f64()), telemetry);
        let (mut seq, mut tseq) = (0, 0);
        loop {
            if Instant::now() >= deadline {
                return Ok(());
            }
            tokio::select! {
                _ = beat.tick() => {
                    seq += 1;
                    let hb = v1::Heartbeat {
                        seq,
                        sent_monotonic_nanos: crate::registry::monotonic_nanos(),
                        sent_unix_nanos: unix_nanos(SystemTime::now()),
                    };
                    tx.send(send(Body::Heartbeat(hb))).await.map_err(|e| e.to_string())?;
                    counters.heartbeats.fetch_add(1, Relaxed);
                }
                _ = summary.tick() => {
                    tseq += 1;
                    tx.send(send(Body::Telemetry(fake_telemetry(tseq)))).await.map_err(|e| e.to_string())?;
                }
                m = inbound.message() => match m {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err("stream closed".to_owned()),
                    Err(s) => return Err(s.to_string()),
                },
            }
        }
    }
    .await;
    counters.up.fetch_sub(1, Relaxed);
    result
}

fn fake_telemetry(seq: u64) -> v1::Telemetry {
    v1::Telemetry {
        seq,
        sampled_monotonic_nanos: crate::registry::monotonic_nanos(),
        sampled_unix_nanos: unix_nanos(SystemTime::now()),
        cpu_utilisation: Some(fastrand::f64()),
        memory_used_bytes: Some(fastrand::u64(1 << 30..256 << 30)),
        memory_total_bytes: Some(512 << 30),
        load1: Some(fastrand::f64() * 32.0),
        load5: Some(fastrand::f64() * 32.0),
        load15: Some(fastrand::f64() * 32.0),
        samples: (0..TELEMETRY_SAMPLES)
            .map(|i| v1::Sample {
                name: "node_disk_io_time_seconds_total".into(),
                labels: vec![v1::Label {
                    name: "device".into(),
                    value: format!("sd{i}"),
                }],
                value: fastrand::f64() * 1e6,
            })
            .collect(),
        // Hosts without VMs or storage, as the hello's inventory says.
        vm_usage: Vec::new(),
        device_usage: Vec::new(),
        lun_usage: Vec::new(),
    }
}
