//! The policy runtime's tables in the watchdog's store, beside the outbox's
//! in the same SQLite file and on the same connection: the engine's state,
//! incidents (open and resolved), recovery step runs and the audit log.
//! [`Store::commit`] writes all of them and the decided notifications'
//! outbox deliveries in ONE transaction, so a crash (kill -9 included) at
//! any moment leaves either everything a batch of decisions changed or
//! none of it: no notification is lost and no completed step is forgotten.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::outbox::{
    Outbox, OutboxError,
    store::{Delivery, NewDelivery, insert_deliveries},
};

/// The store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite (through the outbox's connection) failed.
    #[error(transparent)]
    Sqlite(#[from] OutboxError),
    /// A stored row cannot be read back.
    #[error("store: {what} is unreadable: {message}")]
    Corrupt {
        /// Which row.
        what: String,
        /// What is wrong.
        message: String,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS engine_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    saved_ms INTEGER NOT NULL,
    state    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id          TEXT PRIMARY KEY,
    num         INTEGER NOT NULL,
    policy      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    severity    TEXT NOT NULL,
    summary     TEXT NOT NULL,
    status      TEXT NOT NULL,
    opened_ms   INTEGER NOT NULL,
    fired_ms    INTEGER,
    resolved_ms INTEGER,
    targets     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status, num);
CREATE TABLE IF NOT EXISTS step_runs (
    run         TEXT PRIMARY KEY,
    incident    TEXT NOT NULL,
    step        TEXT NOT NULL,
    decided_ms  INTEGER NOT NULL,
    result      TEXT,
    detail      TEXT,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS step_runs_incident ON step_runs (incident);
CREATE TABLE IF NOT EXISTS audit_log (
    seq      INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    incident TEXT,
    kind     TEXT NOT NULL,
    line     TEXT NOT NULL,
    detail   TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_incident ON audit_log (incident, seq);
";

/// The runtime's handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    outbox: Outbox,
}

/// One incident as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentRow {
    /// `inc-N`.
    pub id: String,
    /// N, for ordering.
    pub num: u64,
    /// The policy that opened it.
    pub policy: String,
    /// Policy plus target or group labels.
    pub fingerprint: String,
    /// info, warning, critical.
    pub severity: String,
    /// The filled-in summary.
    pub summary: String,
    /// pending, firing, recovering, resolved.
    pub status: String,
    /// Unix milliseconds.
    pub opened_ms: i64,
    /// When it first fired.
    pub fired_ms: Option<i64>,
    /// When it resolved.
    pub resolved_ms: Option<i64>,
    /// Every target it has had (`kind:id`).
    pub targets: Vec<String>,
}

/// One audit line: a decision of the engine or something the runtime did
/// about one (a command sent, an agent's answer, a refused input).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The incident it is about, if any.
    pub incident: Option<String>,
    /// The decision's kind (`notify`, `level-held`, ...) or `runtime`.
    pub kind: String,
    /// The timeline line, as policy tests write it.
    pub line: String,
    /// Further detail (an agent's output, a policy reload error).
    pub detail: Option<String>,
}

/// A recovery step the engine decided, as stored.
#[derive(Clone, Debug)]
pub struct StepRow {
    /// The run id (`inc-3/service:hv1/nginx/run1/step1/try1`).
    pub run: String,
    /// The incident.
    pub incident: String,
    /// The decision's step, as JSON.
    pub step: String,
    /// When it was decided.
    pub decided_ms: i64,
}

/// What became of a step, as stored.
#[derive(Clone, Debug)]
pub struct StepResultRow {
    /// The run id.
    pub run: String,
    /// The result, as JSON.
    pub result: String,
    /// What the executor said (an agent's output).
    pub detail: String,
    /// When it came.
    pub finished_ms: i64,
}

/// Everything one batch of decisions changes, committed at once.
#[derive(Default)]
pub struct Commit {
    /// The engine's state after the batch, as JSON (None: unchanged).
    pub state: Option<String>,
    /// Counters to set (`next_silence`).
    pub meta: Vec<(&'static str, i64)>,
    /// Incidents opened or changed.
    pub incidents: Vec<IncidentRow>,
    /// Steps decided.
    pub steps: Vec<StepRow>,
    /// Step results received.
    pub results: Vec<StepResultRow>,
    /// Audit lines.
    pub audit: Vec<AuditEntry>,
    /// The notifications decided, as outbox deliveries.
    pub deliveries: Vec<NewDelivery>,
}

impl Commit {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.state.is_none()
            && self.meta.is_empty()
            && self.incidents.is_empty()
            && self.steps.is_empty()
            && self.results.is_empty()
            && self.audit.is_empty()
            && self.deliveries.is_empty()
    }
}

impl Store {
    /// Creates the runtime's tables (if missing) in the outbox's database.
    pub async fn open(outbox: Outbox) -> Result<Self, StoreError> {
        outbox
            .with("creating the policy runtime's tables", |conn| {
                conn.execute_batch(SCHEMA)
            })
            .await?;
        Ok(Self { outbox })
    }

    /// Writes a batch in one transaction; returns how many outbox
    /// deliveries were new (a replayed decision adds none).
    pub async fn commit(&self, c: Commit, now_ms: i64) -> Result<usize, StoreError> {
        if c.is_empty() {
            return Ok(0);
        }
        let added = self
            .outbox
            .with("committing decisions", move |conn| {
                let tx = conn.transaction()?;
                if let Some(state) = &c.state {
                    tx.prepare_cached(
                        "INSERT INTO engine_state (id, saved_ms, state) VALUES (1, ?1, ?2)
                         ON CONFLICT (id) DO UPDATE SET saved_ms = ?1, state = ?2",
                    )?
                    .execute(params![now_ms, state])?;
                }
                for (key, value) in &c.meta {
                    tx.prepare_cached(
                        "INSERT INTO engine_meta (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = ?2",
                    )?
                    .execute(params![key, value])?;
                }
                for i in &c.incidents {
                    tx.prepare_cached(
                        "INSERT INTO incidents (id, num, policy, fingerprint, severity, summary,
                             status, opened_ms, fired_ms, resolved_ms, targets)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                         ON CONFLICT (id) DO UPDATE SET status = ?7, fired_ms = ?9,
                             resolved_ms = ?10, targets = ?11, summary = ?6",
                    )?
                    .execute(params![
                        i.id,
                        i.num as i64,
                        i.policy,
                        i.fingerprint,
                        i.severity,
                        i.summary,
                        i.status,
                        i.opened_ms,
                        i.fired_ms,
                        i.resolved_ms,
                        serde_json::to_string(&i.targets).expect("strings serialize"),
                    ])?;
                }
                for s in &c.steps {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO step_runs (run, incident, step, decided_ms)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        s.run,
                        s.incident,
                        s.step,
                        s.decided_ms
                    ])?;
                }
                for r in &c.results {
                    tx.prepare_cached(
                        "UPDATE step_runs SET result = ?2, detail = ?3, finished_ms = ?4
                         WHERE run = ?1",
                    )?
                    .execute(params![
                        r.run,
                        r.result,
                        r.detail,
                        r.finished_ms
                    ])?;
                }
                for a in &c.audit {
                    tx.prepare_cached(
                        "INSERT INTO audit_log (at_ms, incident, kind, line, detail)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![a.at_ms, a.incident, a.kind, a.line, a.detail])?;
                }
                let added = insert_deliveries(&tx, &c.deliveries, now_ms)?;
                tx.commit()?;
                Ok(added)
            })
            .await?;
        Ok(added)
    }

    /// The saved engine state (JSON) and when it was saved, if any.
    pub async fn state(&self) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self
            .outbox
            .with("reading the engine state", |conn| {
                conn.query_row(
                    "SELECT state, saved_ms FROM engine_state WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await?)
    }

    /// A counter, 0 when never set.
    pub async fn meta(&self, key: &'static str) -> Result<i64, StoreError> {
        Ok(self
            .outbox
            .with("reading a counter", move |conn| {
                conn.query_row("SELECT value FROM engine_meta WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()
                .map(Option::unwrap_or_default)
            })
            .await?)
    }

    /// Incidents, newest first: the open ones (not resolved), or the
    /// resolved ones, at most `limit`.
    pub async fn incidents(
        &self,
        resolved: bool,
        limit: usize,
    ) -> Result<Vec<IncidentRow>, StoreError> {
        let rows = self
            .outbox
            .with("reading incidents", move |conn| {
                let op = if resolved { "=" } else { "!=" };
                let mut q = conn.prepare_cached(&format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status {op} 'resolved'
                     ORDER BY num DESC LIMIT ?1"
                ))?;
                q.query_map([limit as i64], raw_incident)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        rows.into_iter().map(decode_incident).collect()
    }

    /// One incident, open or resolved.
    pub async fn incident(&self, id: &str) -> Result<Option<IncidentRow>, StoreError> {
        let id = id.to_owned();
        let row = self
            .outbox
            .with("reading an incident", move |conn| {
                conn.query_row(
                    &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
                    [id],
                    raw_incident,
                )
                .optional()
            })
            .await?;
        row.map(decode_incident).transpose()
    }

    /// The stored step of a run (its decision's JSON) and when it was
    /// decided.
    pub async fn step(&self, run: &str) -> Result<Option<(String, i64)>, StoreError> {
        let run = run.to_owned();
        Ok(self
            .outbox
            .with("reading a step run", move |conn| {
                conn.query_row(
                    "SELECT step, decided_ms FROM step_runs WHERE run = ?1",
                    [run],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await?)
    }

    /// The audit lines of an incident (or, with `None`, those about no
    /// incident: reloads, silences), oldest first, the last `limit`.
    pub async fn audit(
        &self,
        incident: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let incident = incident.map(str::to_owned);
        Ok(self
            .outbox
            .with("reading the audit log", move |conn| {
                let mut q = conn.prepare_cached(
                    "SELECT at_ms, incident, kind, line, detail FROM (
                         SELECT seq, at_ms, incident, kind, line, detail FROM audit_log
                         WHERE incident IS ?1 ORDER BY seq DESC LIMIT ?2
                     ) ORDER BY seq",
                )?;
                q.query_map(params![incident, limit as i64], |r| {
                    Ok(AuditEntry {
                        at_ms: r.get(0)?,
                        incident: r.get(1)?,
                        kind: r.get(2)?,
                        line: r.get(3)?,
                        detail: r.get(4)?,
                    })
                })?
                .collect()
            })
            .await?)
    }

    /// The outbox deliveries of an incident's notifications.
    pub async fn deliveries(&self, incident: &str) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.outbox.by_key_prefix(format!("{incident}:")).await?)
    }
}

const INCIDENT_COLUMNS: &str = "id, num, policy, fingerprint, severity, summary, status, opened_ms, fired_ms, resolved_ms, targets";

fn raw_incident(r: &rusqlite::Row<'_>) -> rusqlite::Result<(IncidentRow, String)> {
    Ok((
        IncidentRow {
            id: r.get(0)?,
            num: r.get::<_, i64>(1)? as u64,
            policy: r.get(2)?,
            fingerprint: r.get(3)?,
            severity: r.get(4)?,
            summary: r.get(5)?,
            status: r.get(6)?,
            opened_ms: r.get(7)?,
            fired_ms: r.get(8)?,
            resolved_ms: r.get(9)?,
            targets: Vec::new(),
        },
        r.get(10)?,
    ))
}

fn decode_incident((mut row, targets): (IncidentRow, String)) -> Result<IncidentRow, StoreError> {
    row.targets = serde_json::from_str(&targets).map_err(|e| StoreError::Corrupt {
        what: format!("incident {}", row.id),
        message: format!("targets: {e}"),
    })?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Durability;

    fn incident(id: u64, status: &str) -> IncidentRow {
        IncidentRow {
            id: format!("inc-{id}"),
            num: id,
            policy: "p".into(),
            fingerprint: format!("p/host:hv{id}"),
            severity: "critical".into(),
            summary: "down".into(),
            status: status.into(),
            opened_ms: 1000,
            fired_ms: Some(1000),
            resolved_ms: None,
            targets: vec![format!("host:hv{id}")],
        }
    }

    #[tokio::test]
    async fn a_commit_lands_whole_and_reads_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = Store::open(Outbox::open(&path, Durability::Full).unwrap())
            .await
            .unwrap();
        let commit = Commit {
            state: Some("{\"x\":1}".into()),
            meta: vec![("next_silence", 3)],
            incidents: vec![incident(1, "firing"), incident(2, "resolved")],
            steps: vec![StepRow {
                run: "inc-1/host:hv1/run1/step1/try1".into(),
                incident: "inc-1".into(),
                step: "{}".into(),
                decided_ms: 1000,
            }],
            audit: vec![AuditEntry {
                at_ms: 1000,
                incident: Some("inc-1".into()),
                kind: "opened".into(),
                line: "inc-1 firing: p on host:hv1".into(),
                detail: None,
            }],
            ..Commit::default()
        };
        store.commit(commit, 1000).await.unwrap();
        drop(store);

        let store = Store::open(Outbox::open(&path, Durability::Full).unwrap())
            .await
            .unwrap();
        assert_eq!(
            store.state().await.unwrap(),
            Some(("{\"x\":1}".into(), 1000))
        );
        assert_eq!(store.meta("next_silence").await.unwrap(), 3);
        assert_eq!(store.meta("other").await.unwrap(), 0);
        assert_eq!(
            store.incidents(false, 10).await.unwrap(),
            [incident(1, "firing")]
        );
        assert_eq!(
            store.incidents(true, 10).await.unwrap(),
            [incident(2, "resolved")]
        );
        let audit = store.audit(Some("inc-1"), 10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].line, "inc-1 firing: p on host:hv1");
        assert!(
            store
                .step("inc-1/host:hv1/run1/step1/try1")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn the_audit_keeps_order_and_limits_to_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Outbox::open(&dir.path().join("s.db"), Durability::Off).unwrap())
            .await
            .unwrap();
        let audit = (0..5)
            .map(|i| AuditEntry {
                at_ms: i,
                incident: None,
                kind: "runtime".into(),
                line: format!("line {i}"),
                detail: None,
            })
            .collect();
        store
            .commit(
                Commit {
                    audit,
                    ..Commit::default()
                },
                0,
            )
            .await
            .unwrap();
        let lines: Vec<String> = store
            .audit(None, 3)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.line)
            .collect();
        assert_eq!(lines, ["line 2", "line 3", "line 4"]);
    }
}
