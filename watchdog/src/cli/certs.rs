//! `hyperwatch certs init|issue`: bootstrap a cluster's CA and its agent and
//! watchdog certificates.

use std::{net::IpAddr, path::PathBuf, process::ExitCode};

use hyperwatch_proto::spiffe::Role;

use crate::certs;

/// `hyperwatch certs ...`
#[derive(clap::Subcommand, Debug)]
pub enum CertsCommand {
    /// Create the cluster's CA (DIR/ca.pem, DIR/ca.key); never overwrites.
    Init {
        /// The cluster's name; agents' certificates name it.
        #[arg(long)]
        cluster: String,
        /// Where the files go.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Issue a certificate signed by DIR/ca.pem: DIR/NAME.pem and DIR/NAME.key.
    Issue {
        /// The host (agent) or watchdog name.
        #[arg(long, value_name = "NAME")]
        host: String,
        /// A watchdog (server) certificate instead of an agent's.
        #[arg(long)]
        watchdog: bool,
        /// DNS names agents dial this watchdog by (default: NAME).
        #[arg(long, value_name = "NAME")]
        dns: Vec<String>,
        /// IP addresses agents dial this watchdog at.
        #[arg(long, value_name = "ADDR")]
        ip: Vec<IpAddr>,
        /// Where the CA is and the files go.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

pub fn run(command: CertsCommand) -> ExitCode {
    let result = match command {
        CertsCommand::Init { cluster, dir } => {
            certs::init_dir(&cluster, &dir).map(|(cert, key)| {
                println!(
                    "cluster {cluster}: CA certificate {}, key {} (keep it secret)",
                    cert.display(),
                    key.display()
                );
            })
        }
        CertsCommand::Issue {
            host,
            watchdog,
            mut dns,
            ip,
            dir,
        } => {
            let role = if watchdog {
                if dns.is_empty() {
                    dns.push(host.clone());
                }
                Role::Watchdog(host)
            } else {
                Role::Host(host)
            };
            certs::issue_dir(&dir, role, &dns, &ip).map(|(cert, key)| {
                println!("certificate {}, key {}", cert.display(), key.display());
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyperwatch certs: {e}");
            ExitCode::from(1)
        }
    }
}
