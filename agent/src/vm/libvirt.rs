//! libvirt's domains through virsh: the authoritative list, UUIDs, vCPUs
//! and memory; the qemu process of each (for threads, taps and usage) is
//! found in /proc by the `-name guest=NAME` libvirt gives it.

use std::{path::Path, process::Stdio, time::Duration};

use super::{Vm, VmConfig, VmError, proc_scan};

/// Bound on one virsh call: libvirtd answers in milliseconds; a hung
/// daemon must not stall the inventory.
const VIRSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Sockets of libvirtd (monolithic) and virtqemud (modular daemons).
const LIBVIRT_SOCKETS: &[&str] = &[
    "/run/libvirt/libvirt-sock",
    "/run/libvirt/libvirt-sock-ro",
    "/run/libvirt/virtqemud-sock",
];

/// Whether libvirt runs here: a daemon socket exists and virsh can be run.
pub fn available(virsh: &Path) -> bool {
    LIBVIRT_SOCKETS.iter().any(|s| Path::new(s).exists()) && find_program(virsh)
}

fn find_program(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).exists()))
}

/// The running domains as VMs.
pub async fn domains(config: &VmConfig, procfs: &Path) -> Result<Vec<Vm>, VmError> {
    let names = virsh(config, &["list", "--name"]).await?;
    let procs = proc_scan::scan(procfs)?;
    let mut vms = Vec::new();
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let info = parse_dominfo(&virsh(config, &["dominfo", name]).await?);
        let process = procs
            .iter()
            .find(|p| p.name == name || (info.uuid.is_some() && p.uuid == info.uuid));
        vms.push(Vm {
            name: name.to_owned(),
            uuid: info.uuid.clone(),
            pid: process.map_or(0, |p| p.pid),
            vcpus: info.vcpus.or(process.map(|p| p.vcpus)).unwrap_or(1),
            memory_bytes: info
                .memory_bytes
                .or(process.map(|p| p.memory_bytes))
                .unwrap_or(0),
            accelerator: process.map_or_else(|| "kvm".to_owned(), |p| p.accelerator.clone()),
            tap_interfaces: process
                .map(|p| p.tap_interfaces.clone())
                .unwrap_or_default(),
            threads: process.map(|p| p.threads.clone()).unwrap_or_default(),
        });
    }
    Ok(vms)
}

async fn virsh(config: &VmConfig, args: &[&str]) -> Result<String, VmError> {
    let command = format!(
        "{} -c {} {}",
        config.virsh.display(),
        config.libvirt_uri,
        args.join(" ")
    );
    let fail = |message: String| VmError::Virsh {
        command: command.clone(),
        message,
    };
    let run = tokio::process::Command::new(&config.virsh)
        .arg("-c")
        .arg(&config.libvirt_uri)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(VIRSH_TIMEOUT, run)
        .await
        .map_err(|_| fail(format!("no answer within {VIRSH_TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        return Err(fail(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The facts `virsh dominfo` prints.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DomInfo {
    pub uuid: Option<String>,
    pub vcpus: Option<u32>,
    pub memory_bytes: Option<u64>,
}

/// Parses `virsh dominfo` output (`Key:   value` lines).
pub fn parse_dominfo(text: &str) -> DomInfo {
    let mut info = DomInfo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "UUID" => info.uuid = Some(value.to_owned()),
            "CPU(s)" => info.vcpus = value.parse().ok(),
            "Max memory" => {
                info.memory_bytes = value
                    .strip_suffix("KiB")
                    .and_then(|kib| kib.trim().parse::<u64>().ok())
                    .map(|kib| kib * 1024);
            }
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `virsh dominfo` as libvirt 9.0 (Debian 12) prints it.
    const DOMINFO: &str = "Id:             3
Name:           db1
UUID:           5b2a3f4e-9f8c-4c1e-8a43-0c3f1d2e4b5a
OS Type:        hvm
State:          running
CPU(s):         4
CPU time:       1203.4s
Max memory:     8388608 KiB
Used memory:    8388608 KiB
Persistent:     yes
Autostart:      enable
Managed save:   no
Security model: apparmor
Security DOI:   0
Security label: libvirt-5b2a3f4e-9f8c-4c1e-8a43-0c3f1d2e4b5a (enforcing)

";

    #[test]
    fn dominfo_gives_uuid_vcpus_and_memory() {
        assert_eq!(
            parse_dominfo(DOMINFO),
            DomInfo {
                uuid: Some("5b2a3f4e-9f8c-4c1e-8a43-0c3f1d2e4b5a".into()),
                vcpus: Some(4),
                memory_bytes: Some(8 << 30),
            }
        );
    }

    #[tokio::test]
    async fn a_missing_virsh_is_an_error_naming_the_command() {
        let config = VmConfig {
            virsh: "/nonexistent/virsh".into(),
            ..VmConfig::default()
        };
        let err = domains(&config, Path::new("/proc")).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/virsh -c qemu:///system list --name"),
            "{err}"
        );
        assert!(!available(Path::new("/nonexistent/virsh")));
    }
}
