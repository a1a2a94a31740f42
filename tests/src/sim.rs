//! Simulated agents (`hyperwatch-agent --simulate`) streaming to a
//! watchdog: each gets its certificate, its configuration and its scenario
//! written beside the cluster's certificates, and runs as its own process.
//! [`SimCluster`] puts a watchdog in the test's process around them, so a
//! test reaches its registry and command router directly.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyperwatch::{
    cluster_view::HostCapacity,
    commands::CommandRouter,
    config,
    registry::Registry,
    service::{ServiceError, Watchdog},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    process::AgentProcess,
    watchdog::{ClusterCerts, agent_config, watchdog_config},
};

/// A hypervisor `hv-2` with room (8 cores, 32 GiB) and one small VM: where
/// another host's VMs go.
pub const SPARE_HYPERVISOR: &str = r#"
[host]
name = "hv-2"
kind = "hypervisor"
cores = 8
memory = "32 GiB"
tick = 0.2
copy_per_second = "8 GiB"

[[vms]]
name = "small-1"
vcpus = 1
memory = "2 GiB"
cpu_cores = 0.2
"#;

/// A storage host `st-b` with one shared device `d1` (100 GiB, 10 GiB
/// used) in group `fast` and no LUNs: where another device's LUNs go.
pub const SPARE_STORAGE: &str = r#"
[host]
name = "st-b"
kind = "storage"
cores = 4
memory = "8 GiB"
tick = 0.2
copy_per_second = "20 GiB"

[[devices]]
id = "d1"
group = "fast"
shared = true
capacity = "100 GiB"
used = "10 GiB"
"#;

/// Bound on simulated hosts connecting with their inventory.
pub const CONNECTED_WITHIN: Duration = Duration::from_secs(40);
/// Bound on the watchdog's own graceful stop.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// Starts a simulated host `host` (its certificate issued now) running
/// `scenario` (TOML text), streaming to `endpoint`.
pub fn start_simulated(
    certs: &ClusterCerts,
    endpoint: SocketAddr,
    host: &str,
    scenario: &str,
) -> anyhow::Result<AgentProcess> {
    certs.agent(host)?;
    let config = certs.path(&format!("agent-{host}.toml"));
    std::fs::write(&config, agent_config(certs, endpoint, host, host, ""))?;
    let scenario_path = certs.path(&format!("sim-{host}.toml"));
    std::fs::write(&scenario_path, scenario)?;
    AgentProcess::start(&[
        "--config",
        config.to_str().context("utf-8 path")?,
        "--simulate",
        scenario_path.to_str().context("utf-8 path")?,
    ])
}

/// Polls `check` every 50 ms until it is true or `limit` passes.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !check() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A watchdog in this process (mutual TLS, its own runtime) and simulated
/// agents around it; everything stops when it is dropped.
pub struct SimCluster {
    pub runtime: tokio::runtime::Runtime,
    pub registry: Arc<Registry>,
    pub commands: Arc<CommandRouter>,
    /// The HTTP API.
    pub api: SocketAddr,
    /// The agents, in the order given; dropping one kills it.
    pub agents: Vec<AgentProcess>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServiceError>>>,
    _certs: ClusterCerts,
}

impl SimCluster {
    /// The watchdog (`watchdog_extra` TOML after its [stream] keys) and one
    /// simulated agent per (host, scenario), each seen with its inventory.
    pub fn start(hosts: &[(&str, &str)], watchdog_extra: &str) -> anyhow::Result<Self> {
        Ok(Self::start_with(hosts, watchdog_extra, |_, _| ())?.0)
    }

    /// [`SimCluster::start`] with `before_run` called on the bound watchdog
    /// (inside its runtime) before it serves, as `hyperwatch serve` calls a
    /// part's hook; returns what the hook returned.
    pub fn start_with<T>(
        hosts: &[(&str, &str)],
        watchdog_extra: &str,
        before_run: impl FnOnce(&config::Config, &mut Watchdog) -> T,
    ) -> anyhow::Result<(Self, T)> {
        let certs = ClusterCerts::new("e2e")?;
        let text = watchdog_config(&certs, 0, watchdog_extra);
        let config = config::parse(&text, "watchdog.toml")?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let mut watchdog = runtime.block_on(Watchdog::bind(config.clone()))?;
        let hooked = {
            let _inside = runtime.enter();
            before_run(&config, &mut watchdog)
        };
        let (registry, commands) = (watchdog.registry.clone(), watchdog.commands.clone());
        let (stream, api) = (watchdog.stream_addr, watchdog.http_addr);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = runtime.spawn(watchdog.run(async {
            let _ = stopped.await;
        }));
        let agents = hosts
            .iter()
            .map(|(host, scenario)| start_simulated(&certs, stream, host, scenario))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cluster = Self {
            runtime,
            registry,
            commands,
            api,
            agents,
            stop: Some(stop),
            server: Some(server),
            _certs: certs,
        };
        wait_until("every host's inventory", CONNECTED_WITHIN, || {
            hosts.iter().all(|(h, _)| {
                cluster
                    .capacity(h)
                    .is_some_and(|c| c.inventory.revision > 0)
            })
        })?;
        Ok((cluster, hooked))
    }

    /// What the registry holds of `host`.
    pub fn capacity(&self, host: &str) -> Option<HostCapacity> {
        self.registry.capacity().into_iter().find(|h| h.id == host)
    }

    /// The state `host`'s inventory gives `vm`, if it lists it.
    pub fn vm_state(&self, host: &str, vm: &str) -> Option<String> {
        let h = self.capacity(host)?;
        h.inventory
            .vms
            .iter()
            .find(|v| v.name == vm)
            .map(|v| v.state.clone())
    }

    /// The LUNs `host` lists on `device`, with their states.
    pub fn luns_on(&self, host: &str, device: &str) -> Vec<(String, String)> {
        self.capacity(host)
            .and_then(|h| {
                let d = h.inventory.storage.iter().find(|d| d.name == device)?;
                Some(
                    d.luns
                        .iter()
                        .map(|l| (l.id.clone(), l.state.clone()))
                        .collect(),
                )
            })
            .unwrap_or_default()
    }

    /// GET a JSON document from the API.
    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let r = crate::http::get(self.api, path, &[])?;
        serde_json::from_str(&r.body).with_context(|| format!("GET {path}: {}", r.body))
    }

    /// Sends `action` to `host` through the command router; its status.
    pub fn command(
        &self,
        host: &str,
        action: &str,
        args: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let args = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let o = self
            .runtime
            .block_on(self.commands.send_command(host, action, args))?;
        Ok(o.status.to_owned())
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(STOP_WITHIN, server).await });
        }
    }
}
