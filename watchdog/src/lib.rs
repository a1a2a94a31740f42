//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`lun_mover`]: the executor and the movers (lvm, file, command, agent,
//!   simulated) that carry plans out without ever losing a LUN.
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//! * [`rebalancer`]: the LUN rebalancer, a pure function from a storage
//!   snapshot to a plan of LUN moves.
//! * [`channels`]: the escalation channels (console, batch, email, SMS, SNMP
//!   trap, webhook, Jira), one file each behind one trait, with their
//!   configuration and message templates.
//! * [`outbox`]: the durable outbox in the store: notifications are recorded
//!   before any attempt and delivered at least once, with retries, rate
//!   limits, digests, fallback on failure and metrics.
//! * [`planner`]: VM placement, a pure function from a cluster snapshot to a
//!   migration plan (rebalance and failover modes), and a plan verifier.
//! * [`migration`]: the executor that carries a plan out through
//!   actuators (qemu QMP, libvirt, a command template, the agents,
//!   simulated).
//! * [`placement`]: the planner and rebalancer wired into the running
//!   watchdog: policy steps, the capacity and storage loops, the plan
//!   history and its API, metrics and audit lines.
//! * [`config`]: the TOML configuration, its embedded default and its errors.
//! * [`certs`]: the cluster CA and agent/watchdog certificates (rcgen).
//! * [`tls`]: the perimeter: mutual TLS server setup, refusal reasons.
//! * [`ingest`]: the gRPC stream service and connection admission.
//! * [`detector`]: the pure phi-accrual failure detector of one host.
//! * [`health`]: a host's health states and transitions (pure).
//! * [`registry`]: all hosts, updated by ingest and the detector loop.
//! * [`snapshot`]: serialisable views of hosts for readers.
//! * [`usage_window`]: each host's usage over a bounded window.
//! * [`cluster_view`]: the registry as the planner's and the rebalancer's
//!   snapshots, and the storage map of the API.
//! * [`events`]: [`events::ClusterEvents`], what later parts subscribe to.
//! * [`commands`]: `send_command`, named actions to agents and their results.
//! * [`metrics`]: the watchdog's own Prometheus metrics.
//! * [`api`]: the HTTP JSON API and /metrics.
//! * [`status`]: the status page at `/`, `GET /api/v1/status`, and the
//!   [`status::StatusSources`] other parts register providers with.
//! * [`service`]: wiring it all into a running [`service::Watchdog`].
//! * [`store`]: the policy runtime's tables (engine state, incidents, step
//!   runs, audit log) beside the outbox's in the same SQLite store.
//! * [`runtime`]: the policy runtime: the engine fed by the cluster's
//!   events, its decisions committed and carried out, the operators' API.
//! * [`demo`]: `hyperwatch demo`, the whole system on one machine telling
//!   one story (simulated cluster, real agent, mail sink, timeline).
//! * [`cli`]: the subcommands (serve, certs, policy, notify, ack, silence,
//!   maintenance, plan, demo, loadgen), one file each.

pub mod api;
pub mod certs;
pub mod channels;
pub mod cli;
pub mod cluster_view;
pub mod commands;
pub mod config;
pub mod demo;
pub mod detector;
pub mod events;
pub mod health;
pub mod ingest;
pub mod lun_mover;
pub mod metrics;
pub mod migration;
pub mod outbox;
pub mod placement;
pub mod planner;
pub mod rebalancer;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod tls;
pub mod usage_window;
pub mod version;
