//! Helpers for hyperwatch's end-to-end tests: starting the real binaries on
//! free loopback ports, scraping them, and stopping them.
//!
//! Layout:
//! * [`process`]: locating the built binaries and the [`process::AgentProcess`] handle.
//! * [`watchdog`]: the [`watchdog::WatchdogProcess`] handle, cluster
//!   certificates and agent configurations that stream to it.
//! * [`grpc`]: a raw gRPC-over-TLS client for feeding the watchdog bad input.
//! * [`http`]: a minimal HTTP/1.1 client for scrapes and API calls.
//! * [`ebpf`]: whether this run must exercise eBPF (root in CI) or may skip.
//! * [`root`]: the same rule for other root-only tests (loop devices, mounts).
//! * [`lvm`]: a throwaway LVM volume group on loop devices.
//! * [`metrics`]: reading a Prometheus text scrape (samples, histograms).
//! * [`runtime`]: the policy runtime's tests: console file, incidents API,
//!   operator CLI, SMTP sink and SMS gateway receivers.
//! * [`sim`]: simulated agents (`--simulate`) streaming to a watchdog.
//! * [`prometheus`]: a real Prometheus server and promtool.
//! * [`promql`]: the metric names PromQL expressions and Grafana
//!   dashboards read.
//!
//! The binaries come from the same `cargo test --workspace` build (as
//! `cargo xtask test` runs it).

pub mod ebpf;
pub mod grpc;
pub mod http;
pub mod lvm;
pub mod metrics;
pub mod process;
pub mod prometheus;
pub mod promql;
pub mod root;
pub mod runtime;
pub mod sim;
pub mod watchdog;
