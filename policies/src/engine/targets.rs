//! Inventory, samples, states and events coming in: targets are registered
//! (or learned from their first input), matched against policy selectors,
//! and every policy watching a target re-evaluates when it changes; a
//! host's change reaches the incidents of what is on it (through the host
//! index), not every open incident.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Engine;
use super::condition;
use super::state::{StateReading, TargetEntry, Watch};
use crate::input::{IncidentId, Sample};
use crate::policy::Policy;
use crate::target::{HOST_STATE, TargetInfo, TargetKind, TargetRef};

impl Engine {
    /// A target's labels as selectors and silences see them: its host's
    /// labels, overridden by its own, plus `kind`, `id`, `target`, `name` and
    /// `host`.
    pub(super) fn labels(&self, t: &TargetRef) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let Some(entry) = self.s.targets.get(t) else {
            return labels;
        };
        let info = &entry.info;
        if let Some(host) = info
            .host
            .as_ref()
            .filter(|h| t.kind != TargetKind::Host || **h != t.id)
            && let Some(h) = self.s.targets.get(&TargetRef::host(host))
        {
            labels.extend(h.info.labels.clone());
        }
        labels.extend(info.labels.clone());
        labels.insert("kind".into(), t.kind.to_string());
        labels.insert("id".into(), t.id.clone());
        labels.insert("target".into(), t.to_string());
        labels.insert("name".into(), info.name.clone());
        if let Some(h) = &info.host {
            labels.insert("host".into(), h.clone());
        }
        labels
    }

    /// The host a target is on, if known; a host is on itself.
    pub(super) fn host_of(&self, t: &TargetRef) -> Option<String> {
        if t.kind == TargetKind::Host {
            return Some(t.id.clone());
        }
        self.s.targets.get(t).and_then(|e| e.info.host.clone())
    }

    /// The open incidents with a member on `host` (the host included), in
    /// id order: what a change of the host's state or maintenance can
    /// hold or release.
    pub(super) fn incidents_on(&self, host: &str) -> BTreeSet<IncidentId> {
        let mut ids = BTreeSet::new();
        for t in self.hosts.on(host) {
            for watches in self.s.watches.values() {
                ids.extend(watches.get(t).and_then(|w| w.incident));
            }
        }
        ids
    }

    /// Re-evaluates the incidents with a member on `host`.
    pub(super) fn eval_incidents_on(&mut self, host: &str) {
        for id in self.incidents_on(host) {
            self.eval_incident(id);
        }
    }

    /// Learns of a target from an input about it.
    fn ensure_target(&mut self, t: &TargetRef) {
        if !self.s.targets.contains_key(t) {
            self.insert_target(TargetInfo::bare(t.clone()));
        }
    }

    fn insert_target(&mut self, info: TargetInfo) {
        let t = info.target.clone();
        self.hosts.insert(&info);
        let entry = TargetEntry {
            info,
            first_seen: self.s.now,
            metrics: BTreeMap::new(),
            states: BTreeMap::new(),
        };
        self.s.targets.insert(t.clone(), entry);
        self.rematch(&t);
    }

    pub(super) fn upsert_target(&mut self, info: TargetInfo) {
        let t = info.target.clone();
        match self.s.targets.get_mut(&t) {
            None => return self.insert_target(info),
            Some(e) if e.info == info => return,
            Some(e) => {
                self.hosts.remove(&e.info);
                self.hosts.insert(&info);
                e.info = info;
            }
        }
        self.rematch(&t);
        if t.kind == TargetKind::Host {
            // Targets on the host inherit its labels.
            let children: Vec<TargetRef> =
                self.hosts.on(&t.id).filter(|c| **c != t).cloned().collect();
            for c in children {
                self.rematch(&c);
            }
        }
    }

    pub(super) fn remove_target(&mut self, t: &TargetRef) {
        for p in self.watching(t) {
            self.drop_watch(&p, t, "removed from the inventory");
        }
        if let Some(e) = self.s.targets.remove(t) {
            self.hosts.remove(&e.info);
        }
    }

    /// Starts or stops watches so that exactly the policies selecting the
    /// target watch it.
    fn rematch(&mut self, t: &TargetRef) {
        let policies: Vec<Arc<Policy>> = self.policies.iter().cloned().collect();
        for p in policies {
            if self.rematch_one(&p, t) {
                self.eval_watch(&p, t);
            }
        }
    }

    /// Starts or stops one policy's watch of one target; true when a watch
    /// started (and wants evaluating).
    pub(super) fn rematch_one(&mut self, p: &Arc<Policy>, t: &TargetRef) -> bool {
        let selected = p.selector.matches(t.kind, &self.labels(t));
        let watching = self
            .s
            .watches
            .get(&p.name)
            .is_some_and(|w| w.contains_key(t));
        if selected && !watching {
            let mut w = Watch::default();
            if let Some(entry) = self.s.targets.get(t) {
                condition::seed(&p.when, &mut w.when, entry, self.s.now);
            }
            self.s
                .watches
                .entry(p.name.clone())
                .or_default()
                .insert(t.clone(), w);
            return true;
        }
        if !selected && watching {
            self.drop_watch(p, t, "no longer selected by the policy");
        }
        false
    }

    /// The policies watching a target, by name.
    pub(super) fn watching(&self, t: &TargetRef) -> Vec<Arc<Policy>> {
        self.policies
            .iter()
            .filter(|p| {
                self.s
                    .watches
                    .get(&p.name)
                    .is_some_and(|w| w.contains_key(t))
            })
            .cloned()
            .collect()
    }

    fn drop_watch(&mut self, p: &Arc<Policy>, t: &TargetRef, why: &str) {
        let w = self.s.watches.get_mut(&p.name).and_then(|w| w.remove(t));
        if let Some(id) = w.and_then(|w| w.incident) {
            self.leave(id, t, why, false);
        }
    }

    pub(super) fn samples(&mut self, mut samples: Vec<Sample>) {
        // Canonical order, so a batch built from a hash map decides the same
        // whatever order the map iterated in.
        samples.sort_by(|a, b| {
            (&a.target, &a.metric)
                .cmp(&(&b.target, &b.metric))
                .then(a.value.total_cmp(&b.value))
        });
        for s in samples {
            self.ensure_target(&s.target);
            let now = self.s.now;
            if let Some(e) = self.s.targets.get_mut(&s.target) {
                e.metrics.insert(s.metric.clone(), (now, s.value));
            }
            for p in self.watching(&s.target) {
                if let Some(w) = self
                    .s
                    .watches
                    .get_mut(&p.name)
                    .and_then(|w| w.get_mut(&s.target))
                {
                    condition::on_sample(&p.when, &mut w.when, &s.metric, s.value, now);
                    // The clear condition only matters to a member of an
                    // incident; idle watches stay empty (small snapshots).
                    if let Some(c) = p.clear.as_ref().filter(|_| w.incident.is_some()) {
                        condition::on_sample(c, &mut w.clear, &s.metric, s.value, now);
                    }
                }
                self.eval_watch(&p, &s.target);
            }
        }
    }

    pub(super) fn set_state(&mut self, t: TargetRef, name: &str, value: &str) {
        self.ensure_target(&t);
        let now = self.s.now;
        if let Some(e) = self.s.targets.get_mut(&t) {
            let r = e
                .states
                .entry(name.to_owned())
                .or_insert_with(|| StateReading {
                    value: value.to_owned(),
                    since: now,
                    seen: now,
                });
            if r.value != value {
                r.value = value.to_owned();
                r.since = now;
            }
            r.seen = now;
        }
        for p in self.watching(&t) {
            self.eval_watch(&p, &t);
        }
        if name == HOST_STATE && t.kind == TargetKind::Host {
            // Inhibition of everything on the host may have changed.
            self.eval_incidents_on(&t.id);
        }
    }

    pub(super) fn event(&mut self, t: TargetRef, name: &str) {
        self.ensure_target(&t);
        let now = self.s.now;
        for p in self.watching(&t) {
            if let Some(w) = self.s.watches.get_mut(&p.name).and_then(|w| w.get_mut(&t)) {
                condition::on_event(&p.when, &mut w.when, name, now);
                if let Some(c) = p.clear.as_ref().filter(|_| w.incident.is_some()) {
                    condition::on_event(c, &mut w.clear, name, now);
                }
            }
            self.eval_watch(&p, &t);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::input::{Input, InputKind};
    use crate::policy::PolicySet;
    use crate::time::Timestamp;
    use crate::{CheckOptions, checker::parse_policy};

    const SERVICE: &str = "version = 1\nname = \"svc\"\n[target]\nkind = \"service\"\n[when]\nstate = \"service\"\nis = \"exited\"\n[[step]]\nkind = \"agent-action\"\naction = \"restart\"\n[[escalate]]\nnotify = [\"console\"]\n";

    fn engine() -> Engine {
        let p = parse_policy(SERVICE, Path::new("svc.toml"), &CheckOptions::default()).unwrap();
        let mut e = Engine::new(PolicySet::new([p]));
        for s in ["service:hv1/nginx", "service:hv2/db"] {
            e.handle(Input {
                at: Timestamp(0),
                kind: InputKind::State {
                    target: s.parse().unwrap(),
                    name: "service".into(),
                    value: "exited".into(),
                },
            })
            .unwrap();
        }
        e
    }

    fn on(e: &Engine, host: &str) -> Vec<u64> {
        e.incidents_on(host).into_iter().map(|i| i.0).collect()
    }

    #[test]
    fn a_host_reaches_the_incidents_of_what_is_on_it_wherever_it_moved() {
        let mut e = engine();
        assert_eq!((on(&e, "hv1"), on(&e, "hv2")), (vec![1], vec![2]));
        // The inventory moves nginx to hv2.
        let moved = TargetInfo {
            host: Some("hv2".into()),
            ..TargetInfo::bare("service:hv1/nginx".parse().unwrap())
        };
        e.handle(Input {
            at: Timestamp(1_000),
            kind: InputKind::Target(moved),
        })
        .unwrap();
        assert_eq!((on(&e, "hv1"), on(&e, "hv2")), (vec![], vec![1, 2]));
        // Gone from the inventory: on no host.
        e.handle(Input {
            at: Timestamp(3_000),
            kind: InputKind::TargetRemoved("service:hv1/nginx".parse().unwrap()),
        })
        .unwrap();
        assert_eq!(on(&e, "hv2"), vec![2]);
        // A restored engine rebuilds the index from its targets.
        let (restored, _) = Engine::restore(e.policies().clone(), e.snapshot()).unwrap();
        assert_eq!(restored.hosts, e.hosts);
    }
}
