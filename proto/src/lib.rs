//! hyperwatch-proto: the agent-to-watchdog stream protocol, shared by both
//! sides.
//!
//! Layout:
//! * [`v1`]: the generated gRPC messages and the `Stream` service
//!   (proto/hyperwatch/v1/stream.proto is the source of truth).
//! * [`spiffe`]: the identities certificates carry
//!   (`spiffe://CLUSTER/host/HOST`).
//! * [`PROTOCOL_VERSION`] and the limits both sides agree on.

pub mod spiffe;

/// Generated from proto/hyperwatch/v1/stream.proto.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("hyperwatch.v1");
}

/// The version an agent sends in `Hello.protocol_version` and the watchdog
/// accepts. Bump it for a change an older peer cannot ignore.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest message either side decodes. A hello with a large inventory
/// (hundreds of VMs and LUNs) stays far below it; an oversized frame is
/// refused before it is buffered.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The watchdog's default stream port (the agent's /metrics is 9477).
pub const DEFAULT_STREAM_PORT: u16 = 9478;
