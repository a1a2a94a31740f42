//! The recovery-policy language of hyperwatch: the TOML files operators
//! write, the deterministic engine that watches, decides, acts, reports and
//! escalates, and the tools that check and test policies. Pure: no clock, no
//! I/O but reading policy and test files.
//!
//! Layout:
//! * [`time`]: virtual instants and durations ("1h30m").
//! * [`glob`]: `*`/`?` name patterns.
//! * [`target`]: what policies watch, target references and selectors.
//! * [`diag`]: diagnostics with file, line, column and suggestions.
//! * [`ast`]: the policy file as written (serde, with spans).
//! * [`policy`]: the checked model the engine runs, with its defaults.
//! * [`checker`]: `policy check`, loading a directory into a [`PolicySet`].
//! * [`input`]: what the engine is fed, and incident and step-run ids.
//! * [`decision`]: what it decides, each rendering as one timeline line.
//! * [`planner`]: the interface failover, rebalance and LUN moves go through.
//! * [`engine`]: the deterministic engine, its snapshot and restore.
//! * [`testing`]: `policy test`, policy unit tests in virtual time.
//!
//! The language reference is policies/README.md.

pub mod ast;
pub mod checker;
pub mod decision;
pub mod diag;
pub mod engine;
pub mod glob;
pub mod input;
pub mod planner;
pub mod policy;
pub mod target;
pub mod testing;
pub mod time;

pub use checker::{CheckOptions, Report, check_dir, load_dir};
pub use decision::{Decision, DecisionKind};
pub use engine::{Engine, EngineError, EngineState};
pub use input::{IncidentId, Input, InputKind, RunId};
pub use policy::{Policy, PolicySet};
pub use testing::{TestReport, test_file};

/// Version of the policy file format; files declare the version they target.
pub const LANGUAGE_VERSION: u32 = 1;
