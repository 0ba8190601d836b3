//! Stage 2, admit: the ledger records every file seen, by name, size, mtime and content hash,
//! and every batch with the sink commits that hold it.
//!
//! The ledger is a cache: the truth about what is committed lives in the sinks (the Delta log's
//! `txn` actions and commit info, the Parquet folder's batch manifests). At start-up
//! [`crate::recover`] reconciles the two, so a lost or stale ledger costs time, never rows.
//!
//! SQLite in WAL mode with `synchronous=FULL`: every transaction is durable when it returns,
//! one file holds everything, and an operator can answer "did file X make it in?" with the
//! `sqlite3` shell.

mod actor;
mod schema;

use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

pub use actor::LedgerHandle;
pub use schema::LEDGER_FILE;

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Part of a batch whose commit is under way.
    InFlight,
    /// Its rows are committed to every sink of its source.
    Committed,
    /// Same content as a file already committed; not ingested again.
    Duplicate,
    /// Refused; moved to the quarantine folder.
    Quarantined,
    /// A new version of a committed file, not ingested (`allow_overwrites = false`).
    Ignored,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::InFlight => "in_flight",
            FileState::Committed => "committed",
            FileState::Duplicate => "duplicate",
            FileState::Quarantined => "quarantined",
            FileState::Ignored => "ignored",
        }
    }

    fn parse(text: &str) -> Option<FileState> {
        Some(match text {
            "in_flight" => FileState::InFlight,
            "committed" => FileState::Committed,
            "duplicate" => FileState::Duplicate,
            "quarantined" => FileState::Quarantined,
            "ignored" => FileState::Ignored,
            _ => return None,
        })
    }
}

/// A file as the ledger knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub size: Option<u64>,
    pub mtime_ns: Option<i64>,
    /// BLAKE3 of the file's bytes as stored (before decompression), hex.
    pub hash: String,
    pub rows: Option<u64>,
}

/// A batch: the files whose rows one commit per sink holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    pub source: String,
    /// Per-source sequence number; the Delta `txn` version of the commit.
    pub seq: i64,
    pub files: Vec<FileEntry>,
    /// The `_ingested_at` of its rows (UTC µs): a batch redone for another sink carries the
    /// same value as in the sinks that hold it already.
    pub ingested_at_us: Option<i64>,
}

/// The newest commit of a source's batches to one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct LastCommit {
    pub source: String,
    pub sink: String,
    pub seq: i64,
    /// The sink's reference, e.g. "delta version 7".
    pub reference: String,
    pub at: String,
}

/// Ledger counts for `ingestd status`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub source: String,
    pub state: String,
    pub files: u64,
    pub rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("ledger {path} is damaged ({detail}); it was not used")]
    Damaged { path: PathBuf, detail: String },
    #[error("cannot create state folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
    #[error(
        "ledger {path} belongs to instance {recorded:?} but the config says {configured:?}; set `instance = {recorded:?}` (a new instance needs a new state_dir)"
    )]
    InstanceChanged { path: PathBuf, recorded: String, configured: String },
    #[error("the ledger thread has stopped")]
    Stopped,
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// The open ledger of one daemon.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl Ledger {
    /// Opens (or creates) the ledger in `state_dir`, checking its integrity first. Only a real
    /// corruption is `Damaged`; a busy or unreadable ledger is an ordinary error.
    pub fn open(state_dir: &Path) -> Result<Ledger> {
        std::fs::create_dir_all(state_dir).map_err(|source| LedgerError::Folder { path: state_dir.to_path_buf(), source })?;
        let path = state_dir.join(LEDGER_FILE);
        let classify = |source: rusqlite::Error, path: &Path| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                LedgerError::Damaged { path: path.to_path_buf(), detail: source.to_string() }
            }
            _ => LedgerError::Sqlite { path: path.to_path_buf(), source },
        };
        let conn = Connection::open(&path).map_err(|e| classify(e, &path))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| classify(e, &path))?;
        let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| classify(e, &path))?;
        if verdict != "ok" {
            return Err(LedgerError::Damaged { path, detail: verdict });
        }
        schema::migrate(&conn).map_err(|e| classify(e, &path))?;
        Ok(Ledger { conn, path })
    }

    /// Pins the instance name: sinks know batches by (instance, source), so a ledger written under
    /// one instance must not be used under another (a changed host name would otherwise hide
    /// committed batches from recovery).
    pub fn claim_instance(&self, instance: &str) -> Result<()> {
        let recorded: Option<String> =
            self.conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| r.get(0)).optional().map_err(|e| self.err(e))?;
        match recorded {
            Some(recorded) if recorded != instance => {
                Err(LedgerError::InstanceChanged { path: self.path.clone(), recorded, configured: instance.to_string() })
            }
            Some(_) => Ok(()),
            None => self
                .conn
                .execute("INSERT INTO meta (key, value) VALUES ('instance', ?1)", params![instance])
                .map(drop)
                .map_err(|e| self.err(e)),
        }
    }

    /// Opens the ledger; a damaged one is never trusted: it is renamed aside (with its WAL) and
    /// a new one started, which start-up recovery rebuilds from the sinks. Returns where the
    /// damaged files went, if anywhere.
    pub fn open_or_set_aside(state_dir: &Path) -> Result<(Ledger, Option<PathBuf>)> {
        match Ledger::open(state_dir) {
            Err(LedgerError::Damaged { path, detail }) => {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
                let aside = path.with_file_name(format!("{LEDGER_FILE}.damaged-{stamp}"));
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    if from.exists() {
                        std::fs::rename(&from, format!("{}{suffix}", aside.display()))
                            .map_err(|source| LedgerError::Folder { path: from.clone(), source })?;
                    }
                }
                tracing::error!(ledger = %path.display(), %detail, set_aside = %aside.display(),
                    "the ledger is damaged: set aside, rebuilding from the sinks");
                Ok((Ledger::open(state_dir)?, Some(aside)))
            }
            other => other.map(|ledger| (ledger, None)),
        }
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite { path: self.path.clone(), source }
    }

    /// The state of a file already recorded under this name with this exact size and mtime.
    pub fn known(&self, source: &str, name: &str, size: u64, mtime_ns: i64) -> Result<Option<FileState>> {
        self.conn
            .query_row(
                "SELECT state FROM files WHERE source = ?1 AND name = ?2 AND size = ?3 AND mtime_ns = ?4
                 ORDER BY id DESC LIMIT 1",
                params![source, name, size as i64, mtime_ns],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|s| s.and_then(|s| FileState::parse(&s)))
            .map_err(|e| self.err(e))
    }

    /// A committed (or in-flight) file of this source with this content, if any: its name and
    /// whether it is committed.
    pub fn holder_of(&self, source: &str, hash: &str) -> Result<Option<(String, bool)>> {
        self.conn
            .query_row(
                "SELECT name, state = 'committed' FROM files WHERE source = ?1 AND hash = ?2 AND state IN ('committed', 'in_flight')
                 ORDER BY state = 'committed' DESC LIMIT 1",
                params![source, hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Fills in the size and mtime of a file rebuilt from a sink (which records only name and
    /// hash), so it is known again by name. Returns whether such a record existed.
    pub fn adopt(&self, source: &str, name: &str, hash: &str, size: u64, mtime_ns: i64) -> Result<bool> {
        self.conn
            .execute(
                "UPDATE files SET size = ?4, mtime_ns = ?5, updated_at = ?6
                 WHERE source = ?1 AND name = ?2 AND hash = ?3 AND size IS NULL AND state = 'committed'",
                params![source, name, hash, size as i64, mtime_ns, now()],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Whether a file of this name was committed before (whatever its content).
    pub fn committed_name(&self, source: &str, name: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM files WHERE source = ?1 AND name = ?2 AND state = 'committed')",
                params![source, name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Records a new version of a committed file that the policy says to leave out.
    pub fn record_ignored(&self, source: &str, file: &FileEntry) -> Result<()> {
        self.insert_file(source, file, FileState::Ignored, None, Some("rewritten after commit; allow_overwrites = false"))
    }

    /// Records a file that repeats content already committed.
    pub fn record_duplicate(&self, source: &str, file: &FileEntry, of: &str) -> Result<()> {
        self.insert_file(source, file, FileState::Duplicate, None, Some(&format!("same content as {of:?}")))
    }

    /// Records a refused file and why.
    pub fn record_quarantined(&self, source: &str, file: &FileEntry, reason: &str) -> Result<()> {
        self.insert_file(source, file, FileState::Quarantined, None, Some(reason))
    }

    fn insert_file(&self, source: &str, f: &FileEntry, state: FileState, batch: Option<i64>, note: Option<&str>) -> Result<()> {
        insert_file(&self.conn, source, f, state, batch, note).map_err(|e| self.err(e))
    }

    /// The sequence number the next batch of `source` takes.
    pub fn next_seq(&self, source: &str) -> Result<i64> {
        self.conn
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE source = ?1", params![source], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Durably records a batch as in flight, before any sink commit is attempted.
    pub fn begin_batch(&mut self, batch: &BatchEntry) -> Result<()> {
        let path = self.path.clone();
        let wrap = |source| LedgerError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        tx.execute(
            "INSERT INTO batches (source, seq, state, files, rows, started_at, ingested_at_us) VALUES (?1, ?2, 'in_flight', ?3, ?4, ?5, ?6)",
            params![batch.source, batch.seq, batch.files.len() as i64, total_rows(batch), now(), batch.ingested_at_us],
        )
        .map_err(wrap)?;
        for file in &batch.files {
            insert_file(&tx, &batch.source, file, FileState::InFlight, Some(batch.seq), None).map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }

    /// Records that `sink` holds the batch, with the sink's own reference (e.g. "delta version 7").
    pub fn record_sink_commit(&self, source: &str, seq: i64, sink: &str, commit_ref: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO batch_sinks (source, seq, sink, commit_ref, committed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![source, seq, sink, commit_ref, now()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The sinks that already hold a batch.
    pub fn sinks_holding(&self, source: &str, seq: i64) -> Result<Vec<String>> {
        let mut stmt =
            self.conn.prepare("SELECT sink FROM batch_sinks WHERE source = ?1 AND seq = ?2 ORDER BY sink").map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![source, seq], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Marks a batch and its files committed (every sink holds it).
    pub fn finish_batch(&mut self, source: &str, seq: i64) -> Result<()> {
        self.set_batch_state(source, seq, "committed", Some(FileState::Committed))
    }

    /// Forgets an in-flight batch that no sink holds: its files will be read again.
    pub fn abandon_batch(&mut self, source: &str, seq: i64) -> Result<()> {
        self.set_batch_state(source, seq, "abandoned", None)
    }

    fn set_batch_state(&mut self, source: &str, seq: i64, state: &str, files: Option<FileState>) -> Result<()> {
        let path = self.path.clone();
        let wrap = |source| LedgerError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        tx.execute("UPDATE batches SET state = ?3, finished_at = ?4 WHERE source = ?1 AND seq = ?2", params![source, seq, state, now()])
            .map_err(wrap)?;
        match files {
            Some(file_state) => tx.execute(
                "UPDATE files SET state = ?3, updated_at = ?4 WHERE source = ?1 AND batch = ?2 AND state = 'in_flight'",
                params![source, seq, file_state.as_str(), now()],
            ),
            None => tx.execute("DELETE FROM files WHERE source = ?1 AND batch = ?2 AND state = 'in_flight'", params![source, seq]),
        }
        .map_err(wrap)?;
        tx.commit().map_err(wrap)
    }

    /// Puts a committed batch back in flight, for sinks found not to hold it (a ledger rebuilt
    /// from sinks that stopped at different batches).
    pub fn reopen_batch(&mut self, source: &str, seq: i64) -> Result<()> {
        let path = self.path.clone();
        let wrap = |source| LedgerError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        tx.execute("UPDATE batches SET state = 'in_flight', finished_at = NULL WHERE source = ?1 AND seq = ?2", params![source, seq])
            .map_err(wrap)?;
        tx.execute(
            "UPDATE files SET state = 'in_flight', updated_at = ?3 WHERE source = ?1 AND batch = ?2 AND state = 'committed'",
            params![source, seq, now()],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)
    }

    /// Batches of `source` recorded as in flight (a crash interrupted them).
    pub fn in_flight_batches(&self, source: &str) -> Result<Vec<BatchEntry>> {
        let seqs: Vec<(i64, Option<i64>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT seq, ingested_at_us FROM batches WHERE source = ?1 AND state = 'in_flight' ORDER BY seq")
                .map_err(|e| self.err(e))?;
            let rows = stmt.query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
            rows.collect::<std::result::Result<_, _>>().map_err(|e| self.err(e))?
        };
        seqs.into_iter()
            .map(|(seq, ingested_at_us)| {
                Ok(BatchEntry { source: source.to_string(), seq, files: self.batch_files(source, seq)?, ingested_at_us })
            })
            .collect()
    }

    fn batch_files(&self, source: &str, seq: i64) -> Result<Vec<FileEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, size, mtime_ns, hash, rows FROM files WHERE source = ?1 AND batch = ?2 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![source, seq], |r| {
                Ok(FileEntry {
                    name: r.get(0)?,
                    size: r.get::<_, Option<i64>>(1)?.map(|s| s as u64),
                    mtime_ns: r.get(2)?,
                    hash: r.get(3)?,
                    rows: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The highest batch sequence of `source` that the ledger knows `sink` holds.
    pub fn highest_seq_in(&self, source: &str, sink: &str) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT MAX(seq) FROM batch_sinks WHERE source = ?1 AND sink = ?2", params![source, sink], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Rebuilds knowledge of batches found in a sink but missing here (the state folder was lost).
    pub fn import_committed(&mut self, sink: &str, batches: &[(BatchEntry, String)]) -> Result<()> {
        let path = self.path.clone();
        let wrap = |source| LedgerError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        for (batch, commit_ref) in batches {
            tx.execute(
                "INSERT OR IGNORE INTO batches (source, seq, state, files, rows, started_at, finished_at, ingested_at_us)
                 VALUES (?1, ?2, 'committed', ?3, ?4, ?5, ?5, ?6)",
                params![batch.source, batch.seq, batch.files.len() as i64, total_rows(batch), now(), batch.ingested_at_us],
            )
            .map_err(wrap)?;
            tx.execute(
                "INSERT OR REPLACE INTO batch_sinks (source, seq, sink, commit_ref, committed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![batch.source, batch.seq, sink, commit_ref, now()],
            )
            .map_err(wrap)?;
            let known: i64 = tx
                .query_row("SELECT COUNT(*) FROM files WHERE source = ?1 AND batch = ?2", params![batch.source, batch.seq], |r| r.get(0))
                .map_err(wrap)?;
            if known == 0 {
                for file in &batch.files {
                    insert_file(&tx, &batch.source, file, FileState::Committed, Some(batch.seq), Some("rebuilt from sink"))
                        .map_err(wrap)?;
                }
            }
        }
        tx.commit().map_err(wrap)
    }

    /// File counts and rows per source and state.
    pub fn status(&self) -> Result<Vec<StatusRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, state, COUNT(*), COALESCE(SUM(rows), 0) FROM files GROUP BY source, state ORDER BY source, state")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StatusRow { source: r.get(0)?, state: r.get(1)?, files: r.get::<_, i64>(2)? as u64, rows: r.get::<_, i64>(3)? as u64 })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The newest sink commit per (source, sink).
    pub fn last_commits(&self) -> Result<Vec<LastCommit>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source, sink, seq, commit_ref, committed_at FROM batch_sinks b
                 WHERE seq = (SELECT MAX(seq) FROM batch_sinks WHERE source = b.source AND sink = b.sink)
                 ORDER BY source, sink",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok(LastCommit { source: r.get(0)?, sink: r.get(1)?, seq: r.get(2)?, reference: r.get(3)?, at: r.get(4)? }))
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Quarantined files of a source: (name, reason).
    pub fn quarantined(&self, source: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, COALESCE(note, '') FROM files WHERE source = ?1 AND state = 'quarantined' ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Forgets a quarantine verdict so the file is read again when it reappears.
    pub fn forget_quarantined(&self, source: &str, name: &str) -> Result<usize> {
        self.conn
            .execute("DELETE FROM files WHERE source = ?1 AND name = ?2 AND state = 'quarantined'", params![source, name])
            .map_err(|e| self.err(e))
    }
}

fn insert_file(
    conn: &Connection,
    source: &str,
    f: &FileEntry,
    state: FileState,
    batch: Option<i64>,
    note: Option<&str>,
) -> rusqlite::Result<()> {
    let ts = now();
    conn.execute(
        "INSERT INTO files (source, name, size, mtime_ns, hash, state, batch, rows, note, first_seen_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![source, f.name, f.size.map(|s| s as i64), f.mtime_ns, f.hash, state.as_str(), batch, f.rows.map(|r| r as i64), note, ts],
    )
    .map(drop)
}

fn total_rows(batch: &BatchEntry) -> i64 {
    batch.files.iter().filter_map(|f| f.rows).sum::<u64>() as i64
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
