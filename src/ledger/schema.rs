//! The ledger's tables. `user_version` numbers the schema so later versions can migrate.

use rusqlite::Connection;

/// The ledger's file name inside the state folder.
pub const LEDGER_FILE: &str = "ledger.sqlite";

const SCHEMA_VERSION: i64 = 2;

pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // WAL + FULL: a transaction is on disk when commit returns, and readers never block the writer.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    if version == 1 {
        // 2: a batch remembers its rows' `_ingested_at`, so a redo for another sink matches.
        return conn.execute_batch("BEGIN; ALTER TABLE batches ADD COLUMN ingested_at_us INTEGER; PRAGMA user_version = 2; COMMIT;");
    }
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS files (
             id INTEGER PRIMARY KEY,
             source TEXT NOT NULL,
             name TEXT NOT NULL,
             size INTEGER,
             mtime_ns INTEGER,
             hash TEXT NOT NULL,
             state TEXT NOT NULL,
             batch INTEGER,
             rows INTEGER,
             note TEXT,
             first_seen_at TEXT NOT NULL,
             updated_at TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS files_by_name ON files (source, name);
         CREATE INDEX IF NOT EXISTS files_by_hash ON files (source, hash);
         CREATE INDEX IF NOT EXISTS files_by_batch ON files (source, batch);
         CREATE TABLE IF NOT EXISTS batches (
             source TEXT NOT NULL,
             seq INTEGER NOT NULL,
             state TEXT NOT NULL,
             files INTEGER NOT NULL,
             rows INTEGER NOT NULL,
             started_at TEXT NOT NULL,
             finished_at TEXT,
             ingested_at_us INTEGER,
             PRIMARY KEY (source, seq)
         );
         CREATE TABLE IF NOT EXISTS batch_sinks (
             source TEXT NOT NULL,
             seq INTEGER NOT NULL,
             sink TEXT NOT NULL,
             commit_ref TEXT NOT NULL,
             committed_at TEXT NOT NULL,
             PRIMARY KEY (source, seq, sink)
         );
         CREATE TABLE IF NOT EXISTS meta (
             key TEXT PRIMARY KEY,
             value TEXT NOT NULL
         );
         PRAGMA user_version = 2;
         COMMIT;",
    )
}
