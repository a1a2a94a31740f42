//! The outbox's tables in the watchdog's SQLite store. A delivery (one
//! notification to one channel and recipient) is committed before any
//! attempt and is marked delivered only after the receiver accepted it;
//! every attempt is kept as an audit record.
//!
//! Durability: WAL with `synchronous = FULL` by default, so a committed
//! enqueue is on disk (the WAL is fsynced at every commit) and survives
//! power loss, not only a crash of the process. NORMAL would survive `kill
//! -9` too but may lose the last commits on power loss: a page the policy
//! engine believes queued must not vanish. The price is one fsync per
//! transaction, which the benchmark measures (`cargo xtask bench notify`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rusqlite::{Connection, OptionalExtension, params};

pub use super::record::{Attempt, Delivery, NewDelivery, State};
use crate::channels::Receipt;

/// How long a writer waits for the database lock (another process, such as
/// an operator's `sqlite3`, reading it) before the write fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How hard commits are pushed to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// fsync the WAL at every commit: survives power loss (the default).
    #[default]
    Full,
    /// fsync at checkpoints only: survives a crash of the process, may lose
    /// the last commits on power loss.
    Normal,
    /// No fsync at all: for benchmarks' baselines only.
    Off,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
            Durability::Off => "OFF",
        }
    }
}

/// The outbox failed to read or write the store.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// SQLite failed; the text says doing what, on which file.
    #[error("outbox store {path}: {doing}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the outbox was doing.
        doing: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A stored row cannot be read back (written by an incompatible version).
    #[error("outbox store {path}: delivery {id} is unreadable: {message}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The row.
        id: i64,
        /// What is wrong.
        message: String,
    },
    /// The blocking store thread went away (the runtime is shutting down).
    #[error("outbox store {path}: the store task failed: {message}")]
    Task {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The outbox: a handle on the store, cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox_deliveries (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    notification    TEXT NOT NULL,
    note            TEXT,
    tried           TEXT NOT NULL,
    state           TEXT NOT NULL,
    enqueued_ms     INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    outcome         TEXT,
    finished_ms     INTEGER,
    UNIQUE (key, channel, recipient)
);
CREATE INDEX IF NOT EXISTS outbox_due
    ON outbox_deliveries (channel, state, next_attempt_ms);
CREATE TABLE IF NOT EXISTS outbox_attempts (
    delivery_id INTEGER NOT NULL REFERENCES outbox_deliveries (id),
    at_ms       INTEGER NOT NULL,
    accepted    INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_attempts_delivery ON outbox_attempts (delivery_id);
";

const COLUMNS: &str =
    "id, key, channel, recipient, notification, note, tried, state, enqueued_ms, attempts, outcome";

impl Outbox {
    /// Opens (creating if needed) the outbox tables in the store at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, OutboxError> {
        let err = |doing| {
            let path = path.to_owned();
            move |source| OutboxError::Sqlite {
                path,
                doing,
                source,
            }
        };
        let conn = Connection::open(path).map_err(err("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(err("setting the busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("enabling the write-ahead log"))?;
        conn.pragma_update(None, "synchronous", durability.pragma())
            .map_err(err("setting synchronous"))?;
        conn.execute_batch(SCHEMA)
            .map_err(err("creating the outbox tables"))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    /// Runs `f` on the connection in the blocking pool. The policy runtime's
    /// tables live in the same database and use the same connection, so its
    /// engine state, audit lines and notifications commit together.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        doing: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        let task_path = path.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-written
            // transaction behind (SQLite rolls it back), so a poisoned lock
            // is still usable.
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn).map_err(|source| OutboxError::Sqlite {
                path: task_path,
                doing,
                source,
            })
        })
        .await
        .map_err(|e| OutboxError::Task {
            path,
            message: e.to_string(),
        })?
    }

    /// Records deliveries in one transaction (one fsync). A delivery whose
    /// key, channel and recipient are already recorded is ignored, so
    /// replaying a decision never sends twice. Returns how many are new.
    pub async fn enqueue(
        &self,
        deliveries: Vec<NewDelivery>,
        now_ms: i64,
    ) -> Result<usize, OutboxError> {
        self.with("recording notifications", move |conn| {
            let tx = conn.transaction()?;
            let added = insert_deliveries(&tx, &deliveries, now_ms)?;
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    /// Pending deliveries of a channel that are due at `now_ms`, oldest first.
    pub async fn due(
        &self,
        channel: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        let channel = channel.to_owned();
        let rows = self
            .with("reading due deliveries", move |conn| {
                let mut q = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM outbox_deliveries
                     WHERE channel = ?1 AND state = 'pending' AND next_attempt_ms <= ?2
                     ORDER BY enqueued_ms, id LIMIT ?3"
                ))?;
                q.query_map(params![channel, now_ms, limit as i64], raw_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        rows.into_iter().map(|r| self.decode(r)).collect()
    }

    /// Pending deliveries to channels other than `channels` (removed from
    /// the configuration since they were recorded).
    pub async fn pending_elsewhere(
        &self,
        channels: Vec<String>,
    ) -> Result<Vec<Delivery>, OutboxError> {
        let rows = self
            .with("reading deliveries to unknown channels", move |conn| {
                let mut q = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM outbox_deliveries WHERE state = 'pending' ORDER BY id"
                ))?;
                let rows = q.query_map([], raw_row)?.collect::<Result<Vec<_>, _>>()?;
                Ok(rows
                    .into_iter()
                    .filter(|r| !channels.contains(&r.channel))
                    .collect::<Vec<_>>())
            })
            .await?;
        rows.into_iter().map(|r| self.decode(r)).collect()
    }

    /// When the next pending delivery of a channel is due (Unix milliseconds).
    pub async fn next_due(&self, channel: &str) -> Result<Option<i64>, OutboxError> {
        let channel = channel.to_owned();
        self.with("finding the next due delivery", move |conn| {
            conn.query_row(
                "SELECT MIN(next_attempt_ms) FROM outbox_deliveries
                 WHERE channel = ?1 AND state = 'pending'",
                [channel],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Marks deliveries accepted, with the receiver's answer, and records
    /// the attempt.
    pub async fn delivered(
        &self,
        ids: Vec<i64>,
        receipt: Receipt,
        now_ms: i64,
    ) -> Result<(), OutboxError> {
        self.with("recording a delivery", move |conn| {
            let tx = conn.transaction()?;
            for id in &ids {
                tx.execute(
                    "UPDATE outbox_deliveries SET state = 'delivered', attempts = attempts + 1,
                     outcome = ?2, finished_ms = ?3 WHERE id = ?1",
                    params![id, receipt.answer, now_ms],
                )?;
                let detail = if receipt.detail.is_empty() {
                    receipt.answer.clone()
                } else {
                    format!("{}\n{}", receipt.answer, receipt.detail)
                };
                record_attempt(&tx, *id, now_ms, true, &detail)?;
            }
            tx.commit()
        })
        .await
    }

    /// Records a failed attempt and when to try again.
    pub async fn retry(
        &self,
        id: i64,
        error: String,
        next_attempt_ms: i64,
        now_ms: i64,
    ) -> Result<(), OutboxError> {
        self.with("recording a failed attempt", move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE outbox_deliveries SET attempts = attempts + 1, outcome = ?2,
                 next_attempt_ms = ?3 WHERE id = ?1",
                params![id, error, next_attempt_ms],
            )?;
            record_attempt(&tx, id, now_ms, false, &error)?;
            tx.commit()
        })
        .await
    }

    /// Stops retrying a delivery and records its escalations in the same
    /// transaction, so a crash cannot lose the failure notice.
    pub async fn give_up(
        &self,
        id: i64,
        error: String,
        escalations: Vec<NewDelivery>,
        now_ms: i64,
    ) -> Result<(), OutboxError> {
        self.with("escalating a failed delivery", move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE outbox_deliveries SET state = 'failed', attempts = attempts + 1,
                 outcome = ?2, finished_ms = ?3 WHERE id = ?1",
                params![id, error, now_ms],
            )?;
            record_attempt(&tx, id, now_ms, false, &error)?;
            insert_deliveries(&tx, &escalations, now_ms)?;
            tx.commit()
        })
        .await
    }

    /// Pending deliveries per channel.
    pub async fn pending_counts(&self) -> Result<Vec<(String, i64)>, OutboxError> {
        self.with("counting pending deliveries", |conn| {
            let mut q = conn.prepare_cached(
                "SELECT channel, COUNT(*) FROM outbox_deliveries
                 WHERE state = 'pending' GROUP BY channel",
            )?;
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .await
    }

    /// The attempts made for a delivery, oldest first.
    pub async fn attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>, OutboxError> {
        self.with("reading attempts", move |conn| {
            let mut q = conn.prepare_cached(
                "SELECT at_ms, accepted, detail FROM outbox_attempts
                 WHERE delivery_id = ?1 ORDER BY rowid",
            )?;
            q.query_map([delivery_id], |r| {
                Ok(Attempt {
                    at_ms: r.get(0)?,
                    accepted: r.get::<_, i64>(1)? != 0,
                    detail: r.get(2)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// The delivery of a key to a channel and recipient, if recorded.
    pub async fn find(
        &self,
        key: &str,
        channel: &str,
        recipient: &str,
    ) -> Result<Option<Delivery>, OutboxError> {
        let (key, channel, recipient) = (key.to_owned(), channel.to_owned(), recipient.to_owned());
        let row = self
            .with("reading a delivery", move |conn| {
                conn.query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM outbox_deliveries
                         WHERE key = ?1 AND channel = ?2 AND recipient = ?3"
                    ),
                    params![key, channel, recipient],
                    raw_row,
                )
                .optional()
            })
            .await?;
        row.map(|r| self.decode(r)).transpose()
    }

    /// Every delivery whose key starts with `prefix` (an incident's
    /// notifications: `inc-7:`), in the order they were recorded.
    pub async fn by_key_prefix(&self, prefix: String) -> Result<Vec<Delivery>, OutboxError> {
        let rows = self
            .with("reading an incident's deliveries", move |conn| {
                // substr, not LIKE: keys may hold `%` and `_`.
                let mut q = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM outbox_deliveries
                     WHERE substr(key, 1, length(?1)) = ?1 ORDER BY id"
                ))?;
                q.query_map([prefix], raw_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        rows.into_iter().map(|r| self.decode(r)).collect()
    }

    fn decode(&self, r: RawRow) -> Result<Delivery, OutboxError> {
        let corrupt = |message: String| OutboxError::Corrupt {
            path: self.path.clone(),
            id: r.id,
            message,
        };
        Ok(Delivery {
            id: r.id,
            notification: serde_json::from_str(&r.notification)
                .map_err(|e| corrupt(format!("notification: {e}")))?,
            tried: serde_json::from_str(&r.tried).map_err(|e| corrupt(format!("tried: {e}")))?,
            state: State::parse(&r.state).ok_or_else(|| corrupt(format!("state {:?}", r.state)))?,
            key: r.key,
            channel: r.channel,
            recipient: r.recipient,
            note: r.note,
            enqueued_ms: r.enqueued_ms,
            attempts: r.attempts,
            outcome: r.outcome,
        })
    }
}

/// A row as stored, before its JSON columns are parsed.
struct RawRow {
    id: i64,
    key: String,
    channel: String,
    recipient: String,
    notification: String,
    note: Option<String>,
    tried: String,
    state: String,
    enqueued_ms: i64,
    attempts: u32,
    outcome: Option<String>,
}

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        key: r.get(1)?,
        channel: r.get(2)?,
        recipient: r.get(3)?,
        notification: r.get(4)?,
        note: r.get(5)?,
        tried: r.get(6)?,
        state: r.get(7)?,
        enqueued_ms: r.get(8)?,
        attempts: r.get(9)?,
        outcome: r.get(10)?,
    })
}

/// Records deliveries inside the caller's transaction; one already
/// recorded (same key, channel and recipient) is ignored. Returns how many
/// are new.
pub(crate) fn insert_deliveries(
    tx: &rusqlite::Transaction<'_>,
    deliveries: &[NewDelivery],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox_deliveries
         (key, channel, recipient, notification, note, tried, state, enqueued_ms, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
    )?;
    let mut added = 0;
    for d in deliveries {
        added += insert.execute(params![
            d.key,
            d.channel,
            d.recipient,
            to_json(&d.notification),
            d.note,
            to_json(&d.tried),
            now_ms
        ])?;
    }
    Ok(added)
}

fn record_attempt(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    at_ms: i64,
    accepted: bool,
    detail: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO outbox_attempts (delivery_id, at_ms, accepted, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![id, at_ms, i64::from(accepted), detail])?;
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("notifications and channel lists serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::notification::tests::sample;

    fn new(key_incident: &str, channel: &str) -> NewDelivery {
        let n = sample(key_incident);
        NewDelivery {
            key: n.idempotency_key(),
            channel: channel.to_owned(),
            recipient: String::new(),
            notification: n,
            note: None,
            tried: Vec::new(),
        }
    }

    #[tokio::test]
    async fn enqueue_is_idempotent_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let outbox = Outbox::open(&path, Durability::Full).unwrap();
        assert_eq!(
            outbox
                .enqueue(vec![new("a", "mail"), new("b", "mail")], 1000)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            outbox
                .enqueue(vec![new("a", "mail"), new("a", "sms")], 1001)
                .await
                .unwrap(),
            1
        );
        drop(outbox);

        let outbox = Outbox::open(&path, Durability::Full).unwrap();
        let due = outbox.due("mail", 1000, 10).await.unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].notification, sample("a"));
        assert_eq!(
            outbox.pending_counts().await.unwrap(),
            [("mail".to_owned(), 2), ("sms".to_owned(), 1)]
        );
    }

    #[tokio::test]
    async fn retry_delays_and_delivery_records_the_audit_trail() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
        outbox.enqueue(vec![new("a", "mail")], 1000).await.unwrap();
        let id = outbox.due("mail", 1000, 10).await.unwrap()[0].id;
        outbox
            .retry(id, "connection refused".into(), 5000, 1000)
            .await
            .unwrap();
        assert!(outbox.due("mail", 4999, 10).await.unwrap().is_empty());
        assert_eq!(outbox.next_due("mail").await.unwrap(), Some(5000));
        outbox
            .delivered(vec![id], Receipt::new("250 ok"), 5000)
            .await
            .unwrap();
        assert!(outbox.due("mail", 9999, 10).await.unwrap().is_empty());
        let d = outbox
            .find("a:L1:problem", "mail", "")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((d.state, d.attempts), (State::Delivered, 2));
        let attempts = outbox.attempts(id).await.unwrap();
        assert_eq!(attempts.len(), 2);
        assert!(!attempts[0].accepted && attempts[0].detail.contains("refused"));
        assert!(attempts[1].accepted && attempts[1].detail == "250 ok");
    }

    #[tokio::test]
    async fn giving_up_records_escalations_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("s.db"), Durability::Full).unwrap();
        outbox.enqueue(vec![new("a", "mail")], 1000).await.unwrap();
        let id = outbox.due("mail", 1000, 10).await.unwrap()[0].id;
        let mut fallback = new("a", "sms");
        fallback.tried = vec!["mail".into()];
        outbox
            .give_up(id, "5xx".into(), vec![fallback], 2000)
            .await
            .unwrap();
        let sms = outbox.due("sms", 2000, 10).await.unwrap();
        assert_eq!(sms.len(), 1);
        assert_eq!(sms[0].tried, ["mail"]);
        assert_eq!(
            outbox
                .find("a:L1:problem", "mail", "")
                .await
                .unwrap()
                .unwrap()
                .state,
            State::Failed
        );
    }
}
