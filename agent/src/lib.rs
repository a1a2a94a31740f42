//! hyperwatch-agent: measures a hypervisor or storage host and serves the
//! figures to Prometheus (and, later, streams them to the watchdog).
//!
//! Layout:
//! * [`config`]: the TOML configuration, its embedded default and its errors.
//! * [`metrics`]: the plain metric model collectors fill.
//! * [`collectors`]: one file per collector and the registry that runs them.
//! * [`ebpf`]: loading the kernel programs and reading their maps.
//! * [`storage`]: storage devices and LUNs (LVM, directory pools, block
//!   devices), the `storage` collector and the streamable inventory.
//! * [`exposition`]: Prometheus text and OpenMetrics encoding.
//! * [`server`]: the HTTP endpoint (/metrics, /healthz, /).
//! * [`agent`]: ties them together and runs until shutdown.

pub mod agent;
pub mod collectors;
pub mod config;
pub mod ebpf;
pub mod exposition;
pub mod metrics;
pub mod server;
pub mod storage;

pub use agent::{Agent, run};
