//! hyperwatch-agent: measures a hypervisor or storage host and serves the
//! figures to Prometheus and streams them to the watchdog.
//!
//! Layout:
//! * [`config`]: the TOML configuration, its embedded default and its errors.
//! * [`metrics`]: the plain metric model collectors fill.
//! * [`collectors`]: one file per collector and the registry that runs them.
//! * [`ebpf`]: loading the kernel programs and reading their maps.
//! * [`exposition`]: Prometheus text and OpenMetrics encoding.
//! * [`server`]: the HTTP endpoint (/metrics, /healthz, /, local events).
//! * [`stream`]: heartbeats, telemetry and events to the watchdog, and the
//!   allowlisted actions it may ask for.
//! * [`agent`]: ties them together and runs until shutdown.

pub mod agent;
pub mod collectors;
pub mod config;
pub mod ebpf;
pub mod exposition;
pub mod metrics;
pub mod server;
pub mod stream;

pub use agent::{Agent, run};
