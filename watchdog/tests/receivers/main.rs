//! The channels against real receivers started by the tests: aiosmtpd with
//! STARTTLS and implicit TLS, net-snmp's snmptrapd with HYPERWATCH-MIB,
//! HTTP servers for SMS gateways, webhooks and Jira, scripts run by the
//! batch channel, and a pty for the console. Deliveries go through the
//! real outbox (SQLite) and its delivery loop; the `hyperwatch` binary is
//! SIGKILLed with deliveries pending and must deliver them after restart,
//! and `hyperwatch notify test` reports what a receiver answered.

mod batch;
mod console;
mod crash;
mod email;
mod gateways;
mod http;
mod notify_cli;
mod snmp;
mod support;
