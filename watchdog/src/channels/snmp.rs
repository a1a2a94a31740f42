//! The SNMP channel: SNMPv2c notifications as defined by
//! mibs/HYPERWATCH-MIB.txt. The varbinds are sysUpTime.0 and snmpTrapOID.0
//! first (RFC 3416 section 4.2.6), then the incident's objects.
//!
//! A trap is fire-and-forget UDP: "delivered" then only means "sent". With
//! `inform = true` the receiver acknowledges each notification (an
//! InformRequest answered by a Response), which gives the outbox a real
//! acceptance; the inform is retransmitted every second until answered or
//! the attempt times out.
//!
//! SNMPv3 is not offered: no well-kept Rust crate implements the USM
//! (authentication and privacy) for sending notifications, and hand-rolled
//! cryptography is not sound for a monitoring product.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::net::UdpSocket;

use super::{
    BoxFuture, BuildError, Channel, Message, Notification, Receipt, SendError, Severity, Status,
    ber,
    config::{DeliverySettings, Secret},
};

/// The enterprise arc of HYPERWATCH-MIB. hyperwatch has no IANA Private
/// Enterprise Number yet: 99999 is a placeholder that must be replaced by
/// the registered one (here and in the MIB) before release.
pub const ENTERPRISE: u32 = 99999;
/// hyperwatchMIB: iso.org.dod.internet.private.enterprises.ENTERPRISE.
pub const HYPERWATCH_MIB: [u32; 7] = [1, 3, 6, 1, 4, 1, ENTERPRISE];
/// sysUpTime.0 (SNMPv2-MIB).
const SYS_UPTIME_0: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
/// snmpTrapOID.0 (SNMPv2-MIB).
const SNMP_TRAP_OID_0: [u32; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];
/// The SNMP version field for v2c (RFC 1901).
const VERSION_2C: i64 = 1;
/// The standard trap port.
const DEFAULT_PORT: u16 = 162;
/// How often an unanswered inform is sent again within one attempt
/// (net-snmp's default inform timeout is one second too).
const INFORM_RETRANSMIT: Duration = Duration::from_secs(1);
/// SnmpAdminString is at most 255 octets (SNMP-FRAMEWORK-MIB).
const MAX_STRING: usize = 255;

/// The object arcs under hyperwatchObjects (hyperwatchMIB.1), as in the MIB.
pub mod object {
    pub const INCIDENT_ID: u32 = 1;
    pub const LEVEL: u32 = 2;
    pub const REPEAT: u32 = 3;
    pub const STATUS: u32 = 4;
    pub const SEVERITY: u32 = 5;
    pub const TARGET: u32 = 6;
    pub const SUMMARY: u32 = 7;
    pub const POLICY: u32 = 8;
    pub const LABELS: u32 = 9;
    pub const FIRED_AT: u32 = 10;
    pub const IDEMPOTENCY_KEY: u32 = 11;
    pub const MORE_INCIDENTS: u32 = 12;
    pub const TEST: u32 = 13;
    pub const NOTE: u32 = 14;
}

/// `[channels.NAME]` with `type = "snmp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpConfig {
    /// The trap receiver, "host" or "host:port" (default port 162).
    pub target: String,
    /// The SNMPv2c community.
    #[serde(default = "default_community")]
    pub community: Secret,
    /// Send informs (acknowledged) instead of traps.
    #[serde(default)]
    pub inform: bool,
    /// Retries, rate limit, fallback, attempt timeout (for informs).
    #[serde(default)]
    pub delivery: DeliverySettings,
}

fn default_community() -> Secret {
    Secret::Inline("public".to_owned())
}

/// The SNMP channel.
pub struct Snmp {
    target: String,
    community: String,
    inform: bool,
    attempt_timeout: Duration,
    started: Instant,
}

impl Snmp {
    /// Builds the channel from its configuration.
    pub fn build(name: &str, config: &SnmpConfig) -> Result<Self, BuildError> {
        let target = if config.target.contains(':') {
            config.target.clone()
        } else {
            format!("{}:{DEFAULT_PORT}", config.target)
        };
        Ok(Self {
            target,
            community: config
                .community
                .read()
                .map_err(|e| BuildError::invalid(name, e))?,
            inform: config.inform,
            attempt_timeout: config.delivery.attempt_timeout,
            started: Instant::now(),
        })
    }

    fn resolve(&self) -> Result<SocketAddr, SendError> {
        self.target
            .to_socket_addrs()
            .map_err(|e| SendError::Transient(format!("resolving {}: {e}", self.target)))?
            .next()
            .ok_or_else(|| SendError::Transient(format!("{} has no address", self.target)))
    }

    async fn notify(&self, message: &Message) -> Result<Receipt, SendError> {
        let target = self.resolve()?;
        let bind: SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|e| SendError::Transient(format!("binding a UDP socket: {e}")))?;
        socket
            .connect(target)
            .await
            .map_err(|e| SendError::Transient(format!("connecting to {target}: {e}")))?;
        // Positive and random, so answers to other informs are told apart.
        let request_id = i64::from(fastrand::u32(1..i32::MAX as u32));
        let uptime = (self.started.elapsed().as_millis() / 10) as u32;
        let packet = encode(message, &self.community, self.inform, request_id, uptime);
        let sent = |e: std::io::Error| SendError::Transient(format!("sending to {target}: {e}"));
        if !self.inform {
            socket.send(&packet).await.map_err(sent)?;
            return Ok(Receipt::new(format!(
                "trap sent to {target} (traps are not acknowledged)"
            )));
        }
        let deadline = Instant::now() + self.attempt_timeout;
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            socket.send(&packet).await.map_err(sent)?;
            let wait = INFORM_RETRANSMIT.min(deadline.saturating_duration_since(Instant::now()));
            let until = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
                    Err(_) => break,
                    // ICMP port unreachable: nobody listens (yet).
                    Ok(Err(e)) => return Err(SendError::Transient(format!("{target}: {e}"))),
                    Ok(Ok(n)) => {
                        if let Some(status) = response_status(&buf[..n], request_id) {
                            return match status {
                                0 => Ok(Receipt::new(format!("inform acknowledged by {target}"))),
                                s => Err(SendError::Transient(format!(
                                    "{target} answered the inform with error-status {s}"
                                ))),
                            };
                        }
                    }
                }
            }
        }
        Err(SendError::Transient(format!(
            "{target} did not acknowledge the inform within {:?}",
            self.attempt_timeout
        )))
    }
}

impl Channel for Snmp {
    fn kind(&self) -> &'static str {
        "snmp"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.notify(message))
    }
}

/// The notification OID for a status (hyperwatchNotifications.N).
pub fn notification_oid(status: Status) -> Vec<u32> {
    let n = Status::ALL.iter().position(|s| *s == status).unwrap_or(0) as u32 + 1;
    [&HYPERWATCH_MIB[..], &[0, n]].concat()
}

/// The instance OID of a scalar object (hyperwatchObjects.N.0).
pub fn object_oid(arc: u32) -> Vec<u32> {
    [&HYPERWATCH_MIB[..], &[1, arc, 0]].concat()
}

/// The whole packet: v2c message, trap or inform PDU, varbinds.
pub fn encode(
    message: &Message,
    community: &str,
    inform: bool,
    request_id: i64,
    uptime_cs: u32,
) -> Vec<u8> {
    let n = &message.notification;
    let text = |arc, s: &str| varbind(&object_oid(arc), ber::octet_string(clip(s).as_bytes()));
    let gauge = |arc, v: u32| varbind(&object_oid(arc), ber::unsigned(ber::GAUGE32, v));
    let int = |arc, v: i64| varbind(&object_oid(arc), ber::integer(v));
    let labels = n
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut varbinds = vec![
        varbind(&SYS_UPTIME_0, ber::unsigned(ber::TIMETICKS, uptime_cs)),
        varbind(&SNMP_TRAP_OID_0, ber::oid(&notification_oid(n.status))),
        text(object::INCIDENT_ID, &n.incident_id),
        gauge(object::LEVEL, n.level),
        gauge(object::REPEAT, n.repeat),
        int(object::STATUS, status_value(n.status)),
        int(object::SEVERITY, severity_value(n.severity)),
        text(object::TARGET, &n.target),
        text(object::SUMMARY, &n.summary),
        text(object::POLICY, &n.policy),
        text(object::LABELS, &labels),
        varbind(
            &object_oid(object::FIRED_AT),
            ber::octet_string(&date_and_time(n)),
        ),
        text(object::IDEMPOTENCY_KEY, &message.key),
        gauge(object::MORE_INCIDENTS, message.others.len() as u32),
        // TruthValue: true(1), false(2).
        int(object::TEST, if message.test { 1 } else { 2 }),
    ];
    if let Some(note) = &message.note {
        varbinds.push(text(object::NOTE, note));
    }
    let pdu_tag = if inform {
        ber::INFORM_REQUEST_PDU
    } else {
        ber::SNMPV2_TRAP_PDU
    };
    let pdu = ber::constructed(
        pdu_tag,
        &[
            ber::integer(request_id),
            ber::integer(0), // error-status
            ber::integer(0), // error-index
            ber::constructed(ber::SEQUENCE, &varbinds),
        ],
    );
    ber::constructed(
        ber::SEQUENCE,
        &[
            ber::integer(VERSION_2C),
            ber::octet_string(community.as_bytes()),
            pdu,
        ],
    )
}

fn varbind(oid: &[u32], value: Vec<u8>) -> Vec<u8> {
    ber::constructed(ber::SEQUENCE, &[ber::oid(oid), value])
}

/// hyperwatchStatus values, as enumerated in the MIB.
fn status_value(s: Status) -> i64 {
    Status::ALL.iter().position(|x| *x == s).unwrap_or(0) as i64 + 1
}

/// hyperwatchSeverity values, as enumerated in the MIB.
fn severity_value(s: Severity) -> i64 {
    match s {
        Severity::Critical => 1,
        Severity::Warning => 2,
        Severity::Info => 3,
    }
}

/// Text cut to SnmpAdminString's 255 octets on a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_STRING {
        return s;
    }
    let mut end = MAX_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// DateAndTime (SNMPv2-TC) in UTC: year (2 octets), month, day, hour,
/// minutes, seconds, deci-seconds, '+', 0, 0.
fn date_and_time(n: &Notification) -> Vec<u8> {
    // "2025-01-31T12:34:56Z": fixed positions.
    let text = humantime::format_rfc3339_seconds(n.fired_at).to_string();
    let field = |from: usize, to: usize| {
        text.get(from..to)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0)
    };
    let year = field(0, 4);
    vec![
        (year >> 8) as u8,
        year as u8,
        field(5, 7) as u8,
        field(8, 10) as u8,
        field(11, 13) as u8,
        field(14, 16) as u8,
        field(17, 19) as u8,
        0,
        b'+',
        0,
        0,
    ]
}

/// The error-status of a Response to our request, or None for any other packet.
fn response_status(packet: &[u8], request_id: i64) -> Option<i64> {
    let mut r = ber::Reader::new(packet);
    let mut msg = r.expect(ber::SEQUENCE, "a message").ok()?;
    if msg.integer().ok()? != VERSION_2C {
        return None;
    }
    msg.octet_string().ok()?;
    let mut pdu = msg.expect(ber::RESPONSE_PDU, "a Response-PDU").ok()?;
    if pdu.integer().ok()? != request_id {
        return None;
    }
    pdu.integer().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::notification::tests::sample;

    #[test]
    fn trap_starts_with_uptime_and_trap_oid() {
        let m = Message::single(sample("inc-1"), "");
        let packet = encode(&m, "public", false, 42, 1234);
        let mut r = ber::Reader::new(&packet);
        let mut msg = r.expect(ber::SEQUENCE, "message").unwrap();
        assert_eq!(msg.integer().unwrap(), VERSION_2C);
        assert_eq!(msg.octet_string().unwrap(), b"public");
        let mut pdu = msg.expect(ber::SNMPV2_TRAP_PDU, "trap").unwrap();
        assert_eq!(pdu.integer().unwrap(), 42);
        assert_eq!(pdu.integer().unwrap(), 0);
        assert_eq!(pdu.integer().unwrap(), 0);
        let binds = pdu.expect(ber::SEQUENCE, "varbinds").unwrap();
        let first_two = [
            varbind(&SYS_UPTIME_0, ber::unsigned(ber::TIMETICKS, 1234)),
            varbind(
                &SNMP_TRAP_OID_0,
                ber::oid(&notification_oid(Status::Problem)),
            ),
        ]
        .concat();
        assert!(binds.rest().starts_with(&first_two));
        let third = varbind(
            &object_oid(object::INCIDENT_ID),
            ber::octet_string(b"inc-1"),
        );
        assert!(binds.rest()[first_two.len()..].starts_with(&third));
    }

    #[test]
    fn response_to_our_inform_is_recognised() {
        let response = ber::constructed(
            ber::SEQUENCE,
            &[
                ber::integer(VERSION_2C),
                ber::octet_string(b"public"),
                ber::constructed(
                    ber::RESPONSE_PDU,
                    &[ber::integer(77), ber::integer(0), ber::integer(0)],
                ),
            ],
        );
        assert_eq!(response_status(&response, 77), Some(0));
        assert_eq!(response_status(&response, 78), None);
        assert_eq!(response_status(b"junk", 77), None);
    }

    #[test]
    fn fired_at_is_date_and_time_in_utc() {
        // sample() fired at 2023-11-14T22:13:20Z
        let d = date_and_time(&sample("x"));
        assert_eq!(d, [0x07, 0xE7, 11, 14, 22, 13, 20, 0, b'+', 0, 0]);
    }

    #[test]
    fn long_text_is_clipped_on_a_char_boundary() {
        let s = "é".repeat(200);
        let c = clip(&s);
        assert!(c.len() <= MAX_STRING && c.len().is_multiple_of(2));
    }
}
