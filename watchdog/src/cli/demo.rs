//! `hyperwatch demo`: the whole system on this machine, one story, one
//! timeline (see [`crate::demo`]).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use crate::demo::{self, DemoOptions, scale::TimeScale};

/// The default time scale: the story in about five minutes (measured:
/// 4 min 35 s on a loaded 2-core machine).
const DEFAULT_SCALE: f64 = 5.0;
/// `--short`: the same story in about 75 seconds (CI runs it).
const SHORT_SCALE: f64 = 20.0;

/// Flags of `hyperwatch demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The same story compressed into about 75 seconds (time scale 20).
    #[arg(long, conflicts_with = "time_scale")]
    pub short: bool,
    /// How much faster than the policies' real times the story runs; 1
    /// runs the shipped policies as shipped (about half an hour).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SCALE)]
    pub time_scale: f64,
    /// Keep the cluster running after the story, until Ctrl-C.
    #[arg(long)]
    pub forever: bool,
    /// Where the status page, the API and /metrics listen (a taken port
    /// falls back to a free one).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9479")]
    pub http: SocketAddr,
    /// Keep the demo's directory (configurations, logs, store, mail).
    #[arg(long)]
    pub keep: bool,
    /// The hyperwatch-agent binary (default: the one beside this program).
    #[arg(long, value_name = "FILE")]
    pub agent: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> ExitCode {
    let scale = if args.short {
        SHORT_SCALE
    } else {
        args.time_scale
    };
    if !(scale.is_finite() && scale >= 1.0) {
        eprintln!("hyperwatch demo: --time-scale {scale}: must be a number >= 1");
        return ExitCode::from(2);
    }
    demo::run(DemoOptions {
        scale: TimeScale(scale),
        forever: args.forever,
        http: args.http,
        keep: args.keep,
        agent: args.agent,
    })
}
