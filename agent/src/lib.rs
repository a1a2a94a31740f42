//! hyperwatch-agent: measures a hypervisor or storage host and serves the
//! figures to Prometheus and streams them to the watchdog.
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
//! * [`events`]: the event bus (service changes, OOM kills, stuck CPUs, ...).
//! * [`exits`]: process exits and OOM kills from the kernel's ring buffer.
//! * [`stuck`]: stuck-CPU detection from the per-CPU switch stamps.
//! * [`monitor`]: the periodic kernel checks (stuck CPUs, eBPF budget).
//! * [`vm`]: the VMs on this host: inventory, slots, usage.
//! * [`services`]: the `[[services]]` checks.
//! * [`clock`]: kernel timestamps to wall-clock time.
//! * [`server`]: the HTTP endpoint (/metrics, /healthz, /, local events).
//! * [`forward`]: the event bus, forwarded to the watchdog stream.
//! * [`stream`]: heartbeats, telemetry, events and the inventory to the
//!   watchdog, and the allowlisted actions it may ask for.
//! * [`sim`]: simulation mode: a modelled hypervisor or storage host driven
//!   by a scenario, speaking the real protocol.
//! * [`agent`]: ties them together and runs until shutdown.

pub mod agent;
pub mod clock;
pub mod collectors;
pub mod config;
pub mod ebpf;
pub mod events;
pub mod exits;
pub mod exposition;
pub mod forward;
pub mod metrics;
pub mod monitor;
pub mod server;
pub mod services;
pub mod sim;
pub mod storage;
pub mod stream;
pub mod stuck;
pub mod vm;

pub use agent::{Agent, run};
