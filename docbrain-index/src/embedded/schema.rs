//! The embedded store's SQLite schema.

/// Bumped whenever the tables change; an index of another version is refused, not migrated
/// silently.
pub(crate) const SCHEMA_VERSION: i64 = 4;

/// Brings a version 1 file to version 2: pages gain their ancestor ids and read rule. Records
/// written before read `[[]]`, nobody, until a crawl reads their permissions.
pub(crate) const MIGRATE_1_TO_2: &str = "
ALTER TABLE pages ADD COLUMN ancestor_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE pages ADD COLUMN access TEXT NOT NULL DEFAULT '[[]]';
";

/// Brings a version 2 file to version 3: pages gain when their rule was read (0: unknown, so
/// any new read of the same version replaces it) and the source they came from (empty:
/// unknown, kept in step by a crawl only in the spaces it lists).
pub(crate) const MIGRATE_2_TO_3: &str = "
ALTER TABLE pages ADD COLUMN access_read_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pages ADD COLUMN source TEXT NOT NULL DEFAULT '';
";

/// Brings a version 3 file to version 4: records gain the page they are a part of (empty: a
/// page) and the parts a page carries (comments, each a record of its own).
pub(crate) const MIGRATE_3_TO_4: &str = "
ALTER TABLE pages ADD COLUMN parent TEXT NOT NULL DEFAULT '';
ALTER TABLE pages ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';
";

pub(crate) const CREATE: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE pages (
    page_id      TEXT PRIMARY KEY,
    space_key    TEXT NOT NULL,
    title        TEXT NOT NULL,
    version      INTEGER NOT NULL,
    url          TEXT,
    ancestors    TEXT NOT NULL,
    labels       TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunk_count  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    ancestor_ids TEXT NOT NULL DEFAULT '[]',
    access       TEXT NOT NULL DEFAULT '[[]]',
    access_read_ms INTEGER NOT NULL DEFAULT 0,
    source       TEXT NOT NULL DEFAULT '',
    parent       TEXT NOT NULL DEFAULT '',
    parts        TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE chunks (
    id           INTEGER PRIMARY KEY,
    chunk_id     TEXT NOT NULL UNIQUE,
    page_id      TEXT NOT NULL,
    position     INTEGER NOT NULL,
    space_key    TEXT NOT NULL,
    breadcrumb   TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    text         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    token_count  INTEGER NOT NULL,
    vector       BLOB NOT NULL
);
CREATE INDEX chunks_by_page ON chunks(page_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    breadcrumb, text,
    content = 'chunks', content_rowid = 'id',
    tokenize = 'porter unicode61'
);
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, breadcrumb, text) VALUES (new.id, new.breadcrumb, new.text);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, breadcrumb, text)
    VALUES ('delete', old.id, old.breadcrumb, old.text);
END;
";
