//! Moves in and out of a simulated host: what the `vm-migrate-*` and
//! `lun-migrate-*` commands do to the model, step by step, so that a VM or
//! LUN is always served by its source until its destination takes over.

use super::model::{Io, LunProfile, LunState, SimHost, SimLun, SimVm, VmProfile, VmState};
use super::scenario::HostKind;

/// Moves in and out of this host: what the migration commands do to the
/// model. Each returns why it refuses, in words.
impl SimHost {
    /// A VM gets ready to leave: it keeps running until released.
    pub fn vm_prepare_out(&mut self, name: &str) -> Result<(), String> {
        let vm = self.vm(name)?;
        match vm.state {
            VmState::Running | VmState::Migrating => {
                if !vm.profile.unmovable_reason.is_empty() {
                    return Err(format!(
                        "vm {name} cannot move: {}",
                        vm.profile.unmovable_reason
                    ));
                }
                vm.state = VmState::Migrating;
                Ok(())
            }
            VmState::Incoming => Err(format!("vm {name} is still arriving here")),
        }
    }

    /// The VM left: its copy here is gone.
    pub fn vm_release(&mut self, name: &str) -> Result<(), String> {
        self.vm(name)?;
        self.vms.remove(name);
        Ok(())
    }

    /// The move is off: a prepared VM simply runs on here.
    pub fn vm_abort_out(&mut self, name: &str) {
        if let Some(vm) = self.vms.get_mut(name)
            && vm.state == VmState::Migrating
        {
            vm.state = VmState::Running;
        }
    }

    /// A VM starts arriving; returns the seconds its memory takes to copy.
    pub fn vm_begin_in(&mut self, name: &str, profile: VmProfile) -> Result<f64, String> {
        if self.kind != HostKind::Hypervisor {
            return Err(format!("{} is not a hypervisor", self.name));
        }
        if self
            .vms
            .get(name)
            .is_some_and(|v| v.state != VmState::Incoming)
        {
            return Err(format!("vm {name} already runs here"));
        }
        if profile.vcpus == 0 || profile.memory_bytes == 0 {
            return Err(format!("vm {name}: vcpus and memory_bytes must be above 0"));
        }
        let free = self.memory_bytes.saturating_sub(self.memory_used());
        let mut profile = profile;
        if profile.resident_bytes == 0 {
            profile.resident_bytes = profile.memory_bytes;
        }
        if profile.resident_bytes > free {
            return Err(format!(
                "vm {name} needs {} bytes of memory; {free} are free",
                profile.resident_bytes
            ));
        }
        let seconds = profile.resident_bytes as f64 / self.copy_per_second as f64;
        self.vms.insert(
            name.to_owned(),
            SimVm {
                profile,
                wave: (0.0, 1.0),
                state: VmState::Incoming,
                cpu_now: 0.0,
                cpu_seconds: 0.0,
            },
        );
        Ok(seconds)
    }

    /// The copy is done: the VM runs here.
    pub fn vm_finish_in(&mut self, name: &str) -> Result<(), String> {
        match self.vms.get_mut(name) {
            Some(vm) if vm.state == VmState::Incoming => {
                vm.state = VmState::Running;
                Ok(())
            }
            _ => Err(format!("vm {name} stopped arriving (aborted)")),
        }
    }

    /// The move is off: whatever arrived is discarded.
    pub fn vm_abort_in(&mut self, name: &str) {
        self.vms.remove(name);
    }

    fn vm(&mut self, name: &str) -> Result<&mut SimVm, String> {
        self.vms
            .get_mut(name)
            .ok_or_else(|| format!("vm {name} is not on this host"))
    }

    /// A LUN gets ready to leave: it is served here until released.
    pub fn lun_prepare_out(&mut self, id: &str) -> Result<(), String> {
        let lun = self
            .luns
            .iter_mut()
            .find(|((l, _), x)| l == id && x.state != LunState::Incoming)
            .map(|(_, x)| x)
            .ok_or_else(|| format!("lun {id} is not served here"))?;
        if lun.pinned {
            return Err(format!("lun {id} is pinned"));
        }
        lun.state = LunState::Leaving;
        Ok(())
    }

    /// The LUN is served from its destination: the leaving copy goes.
    pub fn lun_release(&mut self, id: &str) -> Result<(), String> {
        let key = self
            .luns
            .iter()
            .find(|((l, _), x)| l == id && x.state == LunState::Leaving)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| format!("lun {id} has no leaving copy here"))?;
        self.luns.remove(&key);
        Ok(())
    }

    /// The move is off: the leaving copy is served on.
    pub fn lun_abort_out(&mut self, id: &str) {
        for ((l, _), x) in &mut self.luns {
            if l == id && x.state == LunState::Leaving {
                x.state = LunState::Active;
            }
        }
    }

    /// A LUN starts arriving on `device`; returns the seconds its data
    /// takes to copy.
    pub fn lun_begin_in(
        &mut self,
        id: &str,
        device: &str,
        profile: LunProfile,
    ) -> Result<f64, String> {
        let Some(d) = self.devices.get(device) else {
            return Err(format!("device {device} is not on this host"));
        };
        if self.luns.contains_key(&(id.to_owned(), device.to_owned())) {
            return Err(format!("lun {id} is already on device {device}"));
        }
        let free = d.capacity.saturating_sub(self.device_used(device));
        let used = profile.used_bytes.min(profile.size_bytes);
        if used > free {
            return Err(format!(
                "lun {id} needs {used} bytes; device {device} has {free} free"
            ));
        }
        self.luns.insert(
            (id.to_owned(), device.to_owned()),
            SimLun {
                size: profile.size_bytes,
                used: used as f64,
                fill_per_second: 0.0,
                iops: profile.iops,
                pinned: false,
                consumer: profile.consumer,
                state: LunState::Incoming,
                io: Io::default(),
            },
        );
        Ok(used as f64 / self.copy_per_second as f64)
    }

    /// The copy is done: the LUN is served from `device`.
    pub fn lun_finish_in(&mut self, id: &str, device: &str) -> Result<(), String> {
        match self.luns.get_mut(&(id.to_owned(), device.to_owned())) {
            Some(l) if l.state == LunState::Incoming => {
                l.state = LunState::Active;
                Ok(())
            }
            _ => Err(format!("lun {id} stopped arriving on {device} (aborted)")),
        }
    }

    /// The move is off: the copy on `device` is discarded (the mover asks
    /// only while the source still serves the LUN).
    pub fn lun_abort_in(&mut self, id: &str, device: &str) {
        self.luns.remove(&(id.to_owned(), device.to_owned()));
    }
}
