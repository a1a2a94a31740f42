//! Live migration through libvirt's `virsh`: `migrate --live` from the
//! source host's libvirtd to the destination's, `domstate` on the
//! destination to confirm, `domjobabort` and `resume` to undo.
//!
//! libvirt's own migration protocol already ends the source domain only
//! after the destination has resumed it, so releasing the source here means
//! checking that it is no longer running there.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    Actuator, ActuatorError, ActuatorFuture, MigrationRequest,
    command::{run, run_ok},
};
use crate::planner::MoveKind;

/// How to reach each host's libvirtd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibvirtSettings {
    /// The virsh program.
    pub virsh: PathBuf,
    /// Connection URI of a host, `{host}` replaced by the host id.
    pub uri: String,
}

impl Default for LibvirtSettings {
    fn default() -> Self {
        LibvirtSettings {
            virsh: PathBuf::from("virsh"),
            uri: "qemu+ssh://{host}/system".to_owned(),
        }
    }
}

/// Drives migrations with virsh.
#[derive(Debug, Clone, Default)]
pub struct LibvirtActuator {
    settings: LibvirtSettings,
}

/// The argv of each step, pure so that it can be checked without libvirtd.
impl LibvirtActuator {
    pub fn new(settings: LibvirtSettings) -> Self {
        LibvirtActuator { settings }
    }

    fn uri(&self, host: &str) -> String {
        self.settings.uri.replace("{host}", host)
    }

    fn virsh(&self, host: &str, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            self.settings.virsh.display().to_string(),
            "-c".to_owned(),
            self.uri(host),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// `migrate --live`: keeps the domain defined on the destination and
    /// removes it from the source once the destination runs it.
    pub fn migrate_argv(&self, r: &MigrationRequest) -> Vec<String> {
        let destination = self.uri(&r.destination);
        self.virsh(
            &r.source,
            &[
                "migrate",
                "--live",
                "--persistent",
                "--undefinesource",
                &r.vm,
                &destination,
            ],
        )
    }

    /// Starts a domain defined on the destination (shared definitions, as
    /// in a libvirt cluster) when its host failed.
    pub fn restart_argv(&self, r: &MigrationRequest) -> Vec<String> {
        self.virsh(&r.destination, &["start", &r.vm])
    }

    pub fn domstate_argv(&self, host: &str, vm: &str) -> Vec<String> {
        self.virsh(host, &["domstate", vm])
    }

    pub fn abort_argvs(&self, r: &MigrationRequest) -> [Vec<String>; 2] {
        [
            self.virsh(&r.source, &["domjobabort", &r.vm]),
            self.virsh(&r.source, &["resume", &r.vm]),
        ]
    }
}

/// Whether `virsh domstate` output says running.
pub fn says_running(domstate: &str) -> bool {
    domstate.trim() == "running"
}

impl Actuator for LibvirtActuator {
    fn name(&self) -> &'static str {
        "libvirt"
    }

    fn transfer<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let argv = match request.kind {
                MoveKind::Live => self.migrate_argv(request),
                MoveKind::Restart => self.restart_argv(request),
            };
            run_ok(&argv).await.map(drop)
        })
    }

    fn confirm_running<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, bool> {
        Box::pin(async move {
            let state = run_ok(&self.domstate_argv(&request.destination, &request.vm)).await?;
            Ok(says_running(&state))
        })
    }

    fn release_source<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            if request.kind == MoveKind::Restart {
                return Ok(());
            }
            // With --undefinesource the domain is gone from the source
            // (domstate fails); otherwise it must be shut off.
            let argv = self.domstate_argv(&request.source, &request.vm);
            match run(&argv).await? {
                (0, state, _) if says_running(&state) => Err(ActuatorError::Command {
                    command: argv.join(" "),
                    status: "domain still running on the source".to_owned(),
                    stderr: String::new(),
                }),
                _ => Ok(()),
            }
        })
    }

    fn abort<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let [abort, resume] = self.abort_argvs(request);
            // No job to abort, or not paused, are both fine.
            let _ = run(&abort).await?;
            let _ = run(&resume).await?;
            let state = run_ok(&self.domstate_argv(&request.source, &request.vm)).await?;
            if says_running(&state) {
                Ok(())
            } else {
                Err(ActuatorError::MigrationFailed {
                    vm: request.vm.clone(),
                    status: "aborted but not running at the source".to_owned(),
                    detail: Some(state.trim().to_owned()),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! libvirtd cannot run on this machine's test setup (it needs its
    //! daemons and two hosts), so these check the command lines only.

    use super::*;

    fn request(kind: MoveKind) -> MigrationRequest {
        MigrationRequest {
            index: 0,
            vm: "web-1".into(),
            source: "hv1".into(),
            destination: "hv2".into(),
            kind,
        }
    }

    #[test]
    fn live_migration_goes_from_the_source_daemon_to_the_destination() {
        let actuator = LibvirtActuator::default();
        assert_eq!(
            actuator.migrate_argv(&request(MoveKind::Live)).join(" "),
            "virsh -c qemu+ssh://hv1/system migrate --live --persistent --undefinesource web-1 qemu+ssh://hv2/system"
        );
        assert_eq!(
            actuator.domstate_argv("hv2", "web-1").join(" "),
            "virsh -c qemu+ssh://hv2/system domstate web-1"
        );
        assert_eq!(
            actuator.restart_argv(&request(MoveKind::Restart)).join(" "),
            "virsh -c qemu+ssh://hv2/system start web-1"
        );
    }

    #[test]
    fn the_uri_template_and_program_are_configurable() {
        let actuator = LibvirtActuator::new(LibvirtSettings {
            virsh: "/opt/virsh".into(),
            uri: "qemu+tls://{host}.dc1/system".into(),
        });
        let [abort, resume] = actuator.abort_argvs(&request(MoveKind::Live));
        assert_eq!(
            abort.join(" "),
            "/opt/virsh -c qemu+tls://hv1.dc1/system domjobabort web-1"
        );
        assert_eq!(
            resume.join(" "),
            "/opt/virsh -c qemu+tls://hv1.dc1/system resume web-1"
        );
    }

    #[test]
    fn domstate_output_is_read_as_virsh_prints_it() {
        assert!(says_running("running\n\n"));
        assert!(!says_running("paused\n"));
        assert!(!says_running("shut off\n"));
    }
}
