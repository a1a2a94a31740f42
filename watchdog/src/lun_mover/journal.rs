//! The journal of a move in flight: one small JSON file per move in the
//! executor's state directory, replaced atomically (write, fsync, rename,
//! fsync the directory) at every phase, removed when the move is settled.
//! What is in the directory at start is what a crash interrupted.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{MoveError, MoveOrder};

/// How far a move got. Movers use the phases that apply to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Recorded, nothing done yet.
    Started,
    /// Data is being copied; the source is the LUN.
    Copying,
    /// A verified, durable copy is at the destination; the source is still
    /// the LUN.
    Copied,
    /// Consumers now find the LUN at the destination; the source is left
    /// to release.
    Switched,
}

/// What a journal file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The mover that owns the move.
    pub mover: String,
    /// The move.
    pub order: MoveOrder,
    /// How far it got.
    pub phase: Phase,
    /// Mover-specific facts recovery needs (a checksum, a path).
    #[serde(default)]
    pub facts: BTreeMap<String, String>,
}

/// A move's journal file and its current record.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: Record,
}

impl Journal {
    /// Starts the journal of `order` in `dir` (created if missing). Refuses
    /// when the LUN already has one: an unsettled move must be recovered
    /// first.
    pub fn create(dir: &Path, mover: &str, order: &MoveOrder) -> Result<Self, MoveError> {
        fs::create_dir_all(dir).map_err(MoveError::io("creating state directory", dir))?;
        let path = dir.join(file_name(&order.lun));
        if path.exists() {
            return Err(MoveError::Journal {
                path,
                message: "an unsettled move of this LUN is journaled; recover it first".into(),
            });
        }
        let mut journal = Self {
            path,
            record: Record {
                mover: mover.to_owned(),
                order: order.clone(),
                phase: Phase::Started,
                facts: BTreeMap::new(),
            },
        };
        journal.write()?;
        Ok(journal)
    }

    /// Every journal in `dir`, by file name; none when `dir` is missing.
    pub fn pending(dir: &Path) -> Result<Vec<Self>, MoveError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(MoveError::io("reading state directory", dir)(e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = fs::read_to_string(&path).map_err(MoveError::io("reading", &path))?;
                let record = serde_json::from_str(&text).map_err(|e| MoveError::Journal {
                    path: path.clone(),
                    message: format!("not a move journal: {e}"),
                })?;
                Ok(Self { path, record })
            })
            .collect()
    }

    /// The record as last written.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a new phase durably, with facts to add.
    pub fn advance(&mut self, phase: Phase, facts: &[(&str, &str)]) -> Result<(), MoveError> {
        self.record.phase = phase;
        for (k, v) in facts {
            self.record.facts.insert((*k).to_owned(), (*v).to_owned());
        }
        self.write()
    }

    /// Removes the journal: the move is settled.
    pub fn settle(self) -> Result<(), MoveError> {
        fs::remove_file(&self.path).map_err(MoveError::io("removing journal", &self.path))?;
        sync_dir(parent(&self.path))
    }

    fn write(&mut self) -> Result<(), MoveError> {
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.record).expect("a record serializes");
        let mut f = File::create(&tmp).map_err(MoveError::io("creating", &tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(MoveError::io("writing", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(MoveError::io("renaming journal to", &self.path))?;
        sync_dir(parent(&self.path))
    }
}

/// The journal file of a LUN: its name in hex, so any LUN name (with `/`
/// or dots) maps to one safe, distinct file name.
fn file_name(lun: &str) -> String {
    let hex: String = lun.bytes().map(|b| format!("{b:02x}")).collect();
    format!("lun-{hex}.json")
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// fsyncs a directory, making renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), MoveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(MoveError::io("syncing directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(lun: &str) -> MoveOrder {
        MoveOrder {
            lun: lun.into(),
            from: "a".into(),
            to: "b".into(),
            bytes: 1,
        }
    }

    #[test]
    fn a_journal_survives_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "file", &order("vg/lv.1")).unwrap();
        j.advance(Phase::Copied, &[("sha256", "ab")]).unwrap();
        assert!(Journal::create(dir.path(), "file", &order("vg/lv.1")).is_err());
        let found = Journal::pending(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].record().phase, Phase::Copied);
        assert_eq!(found[0].record().facts["sha256"], "ab");
        assert_eq!(found[0].record().order.lun, "vg/lv.1");
        found.into_iter().next().unwrap().settle().unwrap();
        assert!(Journal::pending(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_journal_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("lun-00.json"), "{").unwrap();
        let err = Journal::pending(dir.path()).unwrap_err().to_string();
        assert!(err.contains("lun-00.json: not a move journal"), "{err}");
    }
}
