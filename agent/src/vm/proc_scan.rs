//! Finding qemu-system processes in /proc, and a process's threads and tap
//! devices (from the fdinfo of its /dev/net/tun descriptors).

use std::path::Path;

use super::{Vm, VmError, qemu_args};

/// Every qemu process under `procfs` as a VM.
pub fn scan(procfs: &Path) -> Result<Vec<Vm>, VmError> {
    let entries = std::fs::read_dir(procfs).map_err(|source| VmError::Read {
        path: procfs.to_owned(),
        source,
    })?;
    let mut vms = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        // comm first: one short read per process, the command line only
        // for candidates.
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !is_qemu(comm.trim_end()) {
            continue;
        }
        let Ok(argv) = cmdline(&dir) else { continue };
        if argv.is_empty() {
            continue; // a zombie
        }
        vms.push(vm_from_process(procfs, pid, &argv));
    }
    vms.sort_by(|a, b| a.name.cmp(&b.name).then(a.pid.cmp(&b.pid)));
    Ok(vms)
}

/// qemu-system-* (comm is cut to 15 bytes: "qemu-system-x86") and RHEL's
/// qemu-kvm.
fn is_qemu(comm: &str) -> bool {
    comm.starts_with("qemu-system-") || comm == "qemu-kvm"
}

/// The NUL-separated command line of the process in `dir`.
pub fn cmdline(dir: &Path) -> std::io::Result<Vec<String>> {
    let raw = std::fs::read(dir.join("cmdline"))?;
    Ok(raw
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// The VM of qemu process `pid` with command line `argv`.
pub fn vm_from_process(procfs: &Path, pid: u32, argv: &[String]) -> Vm {
    let args = qemu_args::parse(argv);
    Vm {
        name: args.name.unwrap_or_else(|| format!("qemu-{pid}")),
        uuid: args.uuid,
        pid,
        vcpus: args.vcpus,
        memory_bytes: args.memory_bytes,
        accelerator: args.accelerator,
        tap_interfaces: tap_interfaces(procfs, pid),
        threads: threads(procfs, pid),
    }
}

/// Thread ids of process `pid`.
pub fn threads(procfs: &Path, pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_dir(procfs.join(pid.to_string()).join("task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    tids
}

/// Tap devices the process holds: each /dev/net/tun descriptor's fdinfo
/// names its interface (`iff:\tNAME`, drivers/net/tun.c).
pub fn tap_interfaces(procfs: &Path, pid: u32) -> Vec<String> {
    let base = procfs.join(pid.to_string());
    let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
        return Vec::new();
    };
    let mut taps = Vec::new();
    for fd in fds.flatten() {
        let is_tun = std::fs::read_link(fd.path()).is_ok_and(|t| t == Path::new("/dev/net/tun"));
        if !is_tun {
            continue;
        }
        let info =
            std::fs::read_to_string(base.join("fdinfo").join(fd.file_name())).unwrap_or_default();
        if let Some(name) = info.lines().find_map(|l| l.strip_prefix("iff:")) {
            taps.push(name.trim().to_owned());
        }
    }
    taps.sort();
    taps.dedup();
    taps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_process(root: &Path, pid: u32, comm: &str, argv: &[&str], tids: &[u32]) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(dir.join("task")).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        let mut cmd = argv.join("\0");
        cmd.push('\0');
        std::fs::write(dir.join("cmdline"), cmd).unwrap();
        for t in tids {
            std::fs::create_dir_all(dir.join("task").join(t.to_string())).unwrap();
        }
    }

    #[test]
    fn finds_qemu_processes_only_with_their_threads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fake_process(
            root,
            4242,
            "qemu-system-x86",
            &[
                "/usr/bin/qemu-system-x86_64",
                "-name",
                "guest=web,debug-threads=on",
                "-smp",
                "2",
                "-m",
                "1G",
            ],
            &[4242, 4250, 4251],
        );
        fake_process(root, 100, "bash", &["bash"], &[100]);
        fake_process(
            root,
            4300,
            "qemu-kvm",
            &["/usr/libexec/qemu-kvm", "-m", "256"],
            &[4300],
        );
        std::fs::write(root.join("uptime"), "1 1\n").unwrap();
        let vms = scan(root).unwrap();
        assert_eq!(vms.len(), 2);
        assert_eq!(vms[0].name, "qemu-4300");
        assert_eq!(vms[0].memory_bytes, 256 << 20);
        assert_eq!(vms[1].name, "web");
        assert_eq!(vms[1].vcpus, 2);
        assert_eq!(vms[1].threads, vec![4242, 4250, 4251]);
        assert_eq!(vms[1].memory_bytes, 1 << 30);
    }
}
