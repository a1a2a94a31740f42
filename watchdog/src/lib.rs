//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//! * [`config`]: the TOML configuration, its embedded default and its errors.
//! * [`certs`]: the cluster CA and agent/watchdog certificates (rcgen).
//! * [`tls`]: the perimeter: mutual TLS server setup, refusal reasons.
//! * [`ingest`]: the gRPC stream service and connection admission.
//! * [`detector`]: the pure phi-accrual failure detector of one host.
//! * [`health`]: a host's health states and transitions (pure).
//! * [`registry`]: all hosts, updated by ingest and the detector loop.
//! * [`snapshot`]: serialisable views of hosts for readers.
//! * [`events`]: [`events::ClusterEvents`], what later parts subscribe to.
//! * [`commands`]: `send_command`, named actions to agents and their results.
//! * [`metrics`]: the watchdog's own Prometheus metrics.
//! * [`api`]: the HTTP JSON API and /metrics.
//! * [`service`]: wiring it all into a running [`service::Watchdog`].
//! * [`cli`]: the subcommands (serve, certs, loadgen), one file each.
//!
//! The policy runtime, channels, planner and rebalancer arrive with their
//! issues; they subscribe to [`events::ClusterEvents`], read
//! [`registry::Registry`] snapshots and act through
//! [`commands::CommandRouter::send_command`].

pub mod api;
pub mod certs;
pub mod cli;
pub mod commands;
pub mod config;
pub mod detector;
pub mod events;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod registry;
pub mod service;
pub mod snapshot;
pub mod tls;
pub mod version;
