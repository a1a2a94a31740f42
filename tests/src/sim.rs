//! Simulated agents (`hyperwatch-agent --simulate`) streaming to a
//! watchdog: each gets its certificate, its configuration and its scenario
//! written beside the cluster's certificates, and runs as its own process.

use std::net::SocketAddr;

use anyhow::Context;

use crate::{
    process::AgentProcess,
    watchdog::{ClusterCerts, agent_config},
};

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
