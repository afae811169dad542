//! The embedded store: one SQLite file holding pages, chunks, an FTS5 (BM25) index and vectors.
//!
//! Writes are single transactions (`BEGIN IMMEDIATE`), so a crash mid-update leaves the old page
//! or the new one, never a mix. The file is in WAL mode with a generous busy timeout, so the
//! webhook server and a cron crawl can open it at once: writers queue, readers never block.
//! Vectors are mirrored in memory for exact k-NN; the mirror reloads when another process
//! commits (SQLite's `data_version` tells).

mod schema;
mod vectors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use docbrain_core::{
    reciprocal_rank_fusion, CallCounter, CallHealth, EmbeddedChunk, IndexStats, IndexStore,
    IndexedChunk, IndexedPage, ModelInfo, PageId, ReadAccess, Reader, ReplaceOutcome, SearchHit,
    SearchRequest,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tracing::{debug, info};

use crate::error::IndexError;
use schema::{CREATE, MIGRATE_1_TO_2, MIGRATE_2_TO_3, MIGRATE_3_TO_4, SCHEMA_VERSION};
use vectors::{Keep, VectorCache};

/// How many candidates each ranking contributes to the fusion.
const CANDIDATES: usize = 50;
/// The `k` constant of reciprocal rank fusion.
const RRF_K: f64 = 60.0;
/// BM25 weight of the breadcrumb (title and headings) relative to the text.
const BREADCRUMB_WEIGHT: f64 = 2.0;

/// The default embedded [`IndexStore`]: a single SQLite file, safe to share between processes.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    /// How its reads and writes have gone (a full or read-only disk shows here).
    calls: CallCounter,
}

#[derive(Debug)]
struct State {
    conn: Connection,
    /// The mirror of the vectors and the `data_version` it was loaded at.
    vectors: Option<(i64, VectorCache)>,
}

type Result<T, E = IndexError> = std::result::Result<T, E>;

impl EmbeddedStore {
    /// Deletes a page in one transaction, unless it holds a version above `at_most`.
    async fn delete(
        &self,
        id: &PageId,
        at_most: Option<u64>,
    ) -> docbrain_core::Result<Option<u64>> {
        let id = id.clone();
        self.run(move |state| {
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(at_most) = at_most {
                let held: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM pages WHERE page_id = ?1",
                        [id.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?;
                if held.is_some_and(|v| v as u64 > at_most) {
                    return Ok(None);
                }
            }
            let removed: Vec<i64> = {
                let mut stmt = tx.prepare_cached("SELECT id FROM chunks WHERE page_id = ?1")?;
                let ids = stmt
                    .query_map([id.as_str()], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                ids
            };
            tx.execute("DELETE FROM chunks WHERE page_id = ?1", [id.as_str()])?;
            tx.execute("DELETE FROM pages WHERE page_id = ?1", [id.as_str()])?;
            tx.commit()?;
            state.forget(&removed);
            Ok(Some(removed.len() as u64))
        })
        .await
    }
}

fn now_ms() -> i64 {
    docbrain_core::now_ms() as i64
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(IndexError::Corrupt { what: "vector" });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn to_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn from_json(s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|_| IndexError::Corrupt { what: "list" })
}

impl EmbeddedStore {
    /// The file name of the database inside the data folder.
    pub const FILE_NAME: &'static str = "index.sqlite3";

    /// Opens (creating if needed) the store in `data_dir`.
    ///
    /// # Errors
    /// [`IndexError::Open`] when the folder or file cannot be created or read,
    /// [`IndexError::SchemaVersion`] when the file was written by an incompatible build.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = data_dir.as_ref();
        let path = dir.join(Self::FILE_NAME);
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| IndexError::Open {
            path: path.clone(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.into()))?;
        let mut conn = Connection::open(&path).map_err(|e| open_err(e.into()))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(|e| open_err(e.into()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(e.into()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Read the index through memory maps and a 64 MiB page cache: search touches the
        // full-text index on every query.
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                tx.execute_batch(CREATE)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            1 => {
                tx.execute_batch(MIGRATE_1_TO_2)?;
                tx.execute_batch(MIGRATE_2_TO_3)?;
                tx.execute_batch(MIGRATE_3_TO_4)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                info!(path = %path.display(), "upgraded the index to schema {SCHEMA_VERSION}: pages stay hidden from permission-filtered searches until the next crawl reads their permissions");
            }
            2 | 3 => {
                if version == 2 {
                    tx.execute_batch(MIGRATE_2_TO_3)?;
                }
                tx.execute_batch(MIGRATE_3_TO_4)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                info!(path = %path.display(), "upgraded the index to schema {SCHEMA_VERSION}");
            }
            found => {
                return Err(IndexError::SchemaVersion {
                    path,
                    found,
                    expected: SCHEMA_VERSION,
                })
            }
        }
        tx.commit()?;
        debug!(path = %path.display(), "opened embedded index");
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(State {
                    conn,
                    vectors: None,
                }),
                calls: CallCounter::default(),
            }),
        })
    }

    /// Returns the path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn run<T, F>(&self, f: F) -> docbrain_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut state = lock(&inner.state);
            let out = f(&mut state);
            inner.calls.count(out.is_ok());
            out
        })
        .await
        .map_err(IndexError::from)?;
        Ok(out?)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions roll
    // back on drop), so the state is still usable.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn bound_dimension(conn: &Connection) -> Result<Option<usize>> {
    Ok(meta(conn, "dimension")?.and_then(|d| d.parse().ok()))
}

/// A page row with its JSON columns still as text.
type RawPage = (IndexedPage, [String; 5]);

fn read_page(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawPage> {
    Ok((
        IndexedPage {
            id: PageId::new(row.get::<_, String>(0)?),
            space_key: row.get(1)?,
            title: row.get(2)?,
            version: row.get::<_, i64>(3)? as u64,
            url: row.get(4)?,
            ancestors: Vec::new(),
            labels: Vec::new(),
            content_hash: row.get(7)?,
            chunk_count: row.get::<_, i64>(8)? as u32,
            ancestor_ids: Vec::new(),
            access: ReadAccess::nobody(),
            access_read_ms: row.get::<_, i64>(11)? as u64,
            source: row.get(12)?,
            parent: Some(row.get::<_, String>(13)?)
                .filter(|p| !p.is_empty())
                .map(PageId::new),
            parts: Vec::new(),
        },
        [
            row.get(5)?,
            row.get(6)?,
            row.get(9)?,
            row.get(10)?,
            row.get(14)?,
        ],
    ))
}

/// How much of the index file searches read through a memory map.
const MMAP_BYTES: i64 = 1 << 30;
/// How many page ids one statement looks up.
const STATE_LOOKUP: usize = 500;
/// SQLite's page cache for searches and writes (negative: KiB).
const CACHE_KIB: i64 = -65_536;

const PAGE_COLUMNS: &str = "page_id, space_key, title, version, url, ancestors, labels, content_hash, chunk_count, ancestor_ids, access, access_read_ms, source, parent, parts";

fn decode_page(raw: RawPage) -> Result<IndexedPage> {
    let (mut page, [ancestors, labels, ancestor_ids, access, parts]) = raw;
    page.parts = serde_json::from_str(&parts).map_err(|_| IndexError::Corrupt { what: "parts" })?;
    page.ancestors = from_json(&ancestors)?;
    page.labels = from_json(&labels)?;
    page.ancestor_ids = from_json(&ancestor_ids)?
        .into_iter()
        .map(PageId::new)
        .collect();
    page.access =
        serde_json::from_str(&access).map_err(|_| IndexError::Corrupt { what: "read rule" })?;
    Ok(page)
}

fn access_json(access: &ReadAccess) -> String {
    serde_json::to_string(access).unwrap_or_else(|_| "[[]]".into())
}

impl State {
    /// Hands the page records `clause` (what follows `FROM pages`, with `params`) selects to
    /// `each`, one row decoded at a time.
    fn each_page(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
        mut each: impl FnMut(IndexedPage),
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {PAGE_COLUMNS} FROM pages {clause}"))?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            each(decode_page(read_page(row)?)?);
        }
        Ok(())
    }

    /// Runs `read` through a small page cache rather than the memory map or the searches'
    /// 64 MiB cache: page records sit among the chunks in the file, and a crawl's pass over
    /// them should not leave its footprint grown with the file.
    fn lean<T>(&mut self, read: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.conn.pragma_update(None, "mmap_size", 0)?;
        self.conn.pragma_update(None, "cache_size", -2_048)?;
        let out = read(self);
        self.conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        self.conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        out
    }

    /// Returns the vector mirror, reloading it if another connection committed since.
    fn vectors(&mut self) -> Result<&VectorCache> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        let stale = !matches!(&self.vectors, Some((v, _)) if *v == version);
        if stale {
            let dimension = bound_dimension(&self.conn)?.unwrap_or(0);
            let mut cache = VectorCache::new(dimension);
            let mut stmt = self
                .conn
                .prepare("SELECT c.id, c.space_key, c.vector, p.access FROM chunks c JOIN pages p ON p.page_id = c.page_id")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let vector = decode_vector(&row.get::<_, Vec<u8>>(2)?)?;
                if vector.len() == dimension {
                    let access: String = row.get(3)?;
                    cache.insert(row.get(0)?, &row.get::<_, String>(1)?, &access, &vector);
                }
            }
            debug!(rows = cache.len(), "loaded vectors into memory");
            self.vectors = Some((version, cache));
        }
        match &self.vectors {
            Some((_, cache)) => Ok(cache),
            None => Err(IndexError::Corrupt {
                what: "vector mirror",
            }),
        }
    }

    /// Drops rows this connection deleted from the mirror (own commits do not move
    /// `data_version`).
    fn forget(&mut self, removed: &[i64]) {
        if let Some((_, cache)) = &mut self.vectors {
            for id in removed {
                cache.remove(*id);
            }
        }
    }

    /// Applies this connection's own replace of a page to the mirror: `removed` rows go,
    /// `added` rows (row id, vector) of the page in `space` under rule `access` come in.
    fn mirror<'v>(
        &mut self,
        removed: &[i64],
        added: impl IntoIterator<Item = (i64, &'v [f32])>,
        space: &str,
        access: &str,
    ) {
        self.forget(removed);
        if let Some((_, cache)) = &mut self.vectors {
            for (id, v) in added {
                cache.insert(id, space, access, v);
            }
        }
    }

    /// Returns the best chunk row ids by BM25 that `keep` lets through. The full-text index
    /// alone ranks (no join); with a filter, its ranking is read in order and filtered through
    /// the mirror until `limit` rows pass, so no hit is lost to the filter.
    fn bm25(&mut self, terms: &[String], keep: Option<&Keep>, limit: usize) -> Result<Vec<i64>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let expr = terms
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 \
             ORDER BY bm25(chunks_fts, {BREADCRUMB_WEIGHT}, 1.0) LIMIT ?2"
        );
        // Rows come ranked; SQLite's LIMIT only bounds them when nothing is filtered out.
        // The mirror is the one the search loaded in its snapshot (never reloaded here).
        let depth = if keep.is_some() { -1 } else { limit as i64 };
        let Self { conn, vectors, .. } = self;
        let mirror = vectors.as_ref().map(|(_, cache)| cache);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![expr, depth])?;
        let mut ids = Vec::with_capacity(limit);
        while ids.len() < limit {
            let Some(row) = rows.next()? else { break };
            let id: i64 = row.get(0)?;
            let kept = match (keep, mirror) {
                (None, _) => true,
                (Some(keep), Some(mirror)) => mirror.keeps(keep, id),
                (Some(_), None) => false,
            };
            if kept {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The mirror as loaded by the last [`State::vectors`], without looking for newer commits.
    fn loaded(&self) -> Result<&VectorCache> {
        self.vectors
            .as_ref()
            .map(|(_, cache)| cache)
            .ok_or(IndexError::Corrupt {
                what: "vector mirror",
            })
    }

    /// Runs `f` in one read transaction: every statement in it sees the same snapshot of the
    /// file, whatever other processes commit meanwhile.
    fn snapshot<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        // The snapshot starts with the first read; `data_version` then names that snapshot.
        let started = self
            .conn
            .query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0));
        let out = started.map_err(IndexError::from).and_then(|_| f(self));
        let end = self.conn.execute_batch("COMMIT");
        let out = out?;
        end?;
        Ok(out)
    }

    /// The hit of chunk row `id`, read in the search's snapshot, or `None` when its page is
    /// not one `space` and `reader` let through: the row's rule is checked again on the row
    /// itself, whatever the mirror said.
    fn hit(
        &self,
        id: i64,
        score: f64,
        space: Option<&str>,
        reader: Option<&Reader>,
    ) -> Result<Option<SearchHit>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.chunk_id, c.page_id, c.heading_path, c.text, p.title, p.space_key, p.url, p.access \
             FROM chunks c JOIN pages p ON p.page_id = c.page_id WHERE c.id = ?1",
        )?;
        let Some((chunk_id, page_id, path, text, title, space_key, url, access)) = stmt
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .optional()?
        else {
            return Ok(None);
        };
        if space.is_some_and(|s| s != space_key) {
            return Ok(None);
        }
        if let Some(reader) = reader {
            // A rule that does not parse admits nobody.
            let rule: ReadAccess =
                serde_json::from_str(&access).unwrap_or_else(|_| ReadAccess::nobody());
            if !rule.admits(reader) {
                return Ok(None);
            }
        }
        Ok(Some(SearchHit {
            chunk_id,
            page_id: PageId::new(page_id),
            title,
            space_key,
            heading_path: from_json(&path)?,
            url,
            text,
            score,
        }))
    }

    /// Replaces `page` and its chunks in one transaction, unless a newer version is held, and
    /// mirrors the change.
    fn replace(&mut self, page: &IndexedPage, chunks: &[EmbeddedChunk]) -> Result<ReplaceOutcome> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        check_dimension(&tx, chunks)?;
        if let Some((held, read_ms)) = held_version(&tx, &page.id)? {
            if page.is_stale_against(held as u64, read_ms as u64) {
                return Ok(ReplaceOutcome::Stale { held: held as u64 });
            }
        }
        let removed = chunk_row_ids(&tx, &page.id)?;
        tx.execute("DELETE FROM chunks WHERE page_id = ?1", [page.id.as_str()])?;
        let access = access_json(&page.access);
        write_page_record(&tx, page, chunks.len(), &access)?;
        let added = insert_chunks(&tx, page, chunks)?;
        tx.commit()?;
        let rows = added
            .iter()
            .copied()
            .zip(chunks.iter().map(|c| c.vector.as_slice()));
        self.mirror(&removed, rows, &page.space_key, &access);
        Ok(ReplaceOutcome::Replaced)
    }
}

/// Fails on the first of `chunks` whose vector does not have the bound dimension.
fn check_dimension(conn: &Connection, chunks: &[EmbeddedChunk]) -> Result<()> {
    let dimension = bound_dimension(conn)?;
    if let Some(expected) = dimension {
        if let Some(bad) = chunks.iter().find(|c| c.vector.len() != expected) {
            return Err(IndexError::Dimension {
                chunk_id: bad.chunk.id.clone(),
                found: bad.vector.len(),
                expected,
            });
        }
    }
    Ok(())
}

/// Returns the version and permission-read time of page `id`'s record, if it has one.
fn held_version(conn: &Connection, id: &PageId) -> Result<Option<(i64, i64)>> {
    Ok(conn
        .query_row(
            "SELECT version, access_read_ms FROM pages WHERE page_id = ?1",
            [id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Returns the row ids of page `id`'s chunks.
fn chunk_row_ids(conn: &Connection, id: &PageId) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM chunks WHERE page_id = ?1")?;
    let ids = stmt
        .query_map([id.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Writes `page`'s record, with `chunk_count` chunks and its read rule as `access` JSON.
fn write_page_record(
    conn: &Connection,
    page: &IndexedPage,
    chunk_count: usize,
    access: &str,
) -> Result<()> {
    conn.execute(
        &format!("INSERT OR REPLACE INTO pages({PAGE_COLUMNS}, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
        params![
            page.id.as_str(),
            page.space_key,
            page.title,
            page.version as i64,
            page.url,
            to_json(&page.ancestors),
            to_json(&page.labels),
            page.content_hash,
            chunk_count as i64,
            to_json(&page.ancestor_ids.iter().map(|a| a.as_str().to_owned()).collect::<Vec<_>>()),
            access,
            page.access_read_ms as i64,
            page.source,
            page.parent.as_ref().map_or("", PageId::as_str),
            serde_json::to_string(&page.parts).unwrap_or_else(|_| "[]".into()),
            now_ms(),
        ],
    )?;
    Ok(())
}

/// Inserts `page`'s `chunks` and returns their row ids, in order.
fn insert_chunks(
    conn: &Connection,
    page: &IndexedPage,
    chunks: &[EmbeddedChunk],
) -> Result<Vec<i64>> {
    let mut added = Vec::with_capacity(chunks.len());
    let mut stmt = conn.prepare_cached(
        "INSERT INTO chunks(chunk_id, page_id, position, space_key, breadcrumb, heading_path, text, content_hash, token_count, vector) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for c in chunks {
        stmt.execute(params![
            c.chunk.id,
            page.id.as_str(),
            c.chunk.position,
            page.space_key,
            c.chunk.breadcrumb(),
            to_json(&c.chunk.heading_path),
            c.chunk.text,
            c.chunk.content_hash,
            c.chunk.token_count,
            encode_vector(&c.vector),
        ])?;
        added.push(conn.last_insert_rowid());
    }
    Ok(added)
}

#[async_trait]
impl IndexStore for EmbeddedStore {
    fn health(&self) -> Option<CallHealth> {
        Some(self.inner.calls.snapshot())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn bind_model(&self, model: &ModelInfo) -> docbrain_core::Result<()> {
        let model = model.clone();
        self.run(move |state| {
            let tx = state
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let held = meta(&tx, "model_id")?;
            let held_dimension = bound_dimension(&tx)?;
            match (held, held_dimension) {
                (Some(held), Some(held_dimension)) => {
                    if held != model.model_id || held_dimension != model.dimension {
                        return Err(IndexError::ModelMismatch {
                            held,
                            held_dimension,
                            configured: model.model_id,
                            dimension: model.dimension,
                        });
                    }
                }
                _ => {
                    tx.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('model_id', ?1), ('dimension', ?2)",
                        params![model.model_id, model.dimension.to_string()],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn page(&self, id: &PageId) -> docbrain_core::Result<Option<IndexedPage>> {
        let id = id.clone();
        self.run(move |state| {
            let raw = state
                .conn
                .query_row(
                    &format!("SELECT {PAGE_COLUMNS} FROM pages WHERE page_id = ?1"),
                    [id.as_str()],
                    read_page,
                )
                .optional()?;
            raw.map(decode_page).transpose()
        })
        .await
    }

    async fn chunk_vectors(&self, id: &PageId) -> docbrain_core::Result<Vec<(String, Vec<f32>)>> {
        let id = id.clone();
        self.run(move |state| {
            let mut stmt = state
                .conn
                .prepare_cached("SELECT content_hash, vector FROM chunks WHERE page_id = ?1")?;
            let mut rows = stmt.query([id.as_str()])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push((row.get(0)?, decode_vector(&row.get::<_, Vec<u8>>(1)?)?));
            }
            Ok(out)
        })
        .await
    }

    async fn chunks(&self, id: &PageId) -> docbrain_core::Result<Vec<IndexedChunk>> {
        let id = id.clone();
        self.run(move |state| {
            let mut stmt = state.conn.prepare_cached(
                "SELECT position, heading_path, text FROM chunks WHERE page_id = ?1 ORDER BY position",
            )?;
            let mut rows = stmt.query([id.as_str()])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(IndexedChunk {
                    position: row.get(0)?,
                    heading_path: from_json(&row.get::<_, String>(1)?)?,
                    text: row.get(2)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn replace_page(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
    ) -> docbrain_core::Result<ReplaceOutcome> {
        let page = page.clone();
        let chunks = chunks.to_vec();
        self.run(move |state| state.replace(&page, &chunks)).await
    }

    async fn delete_page(&self, id: &PageId) -> docbrain_core::Result<u64> {
        Ok(self.delete(id, None).await?.unwrap_or(0))
    }

    async fn delete_page_if(
        &self,
        id: &PageId,
        at_most: u64,
    ) -> docbrain_core::Result<Option<u64>> {
        self.delete(id, Some(at_most)).await
    }

    async fn list_pages(&self) -> docbrain_core::Result<Vec<IndexedPage>> {
        self.run(|state| {
            let mut pages = Vec::new();
            state.each_page("ORDER BY page_id", [], |page| pages.push(page))?;
            Ok(pages)
        })
        .await
    }

    async fn page_states(
        &self,
        after: Option<&PageId>,
        limit: usize,
    ) -> docbrain_core::Result<Vec<docbrain_core::PageState>> {
        let after = after.map(|id| id.as_str().to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |state| {
            state.lean(|state| {
                let mut pages = Vec::new();
                state.each_page(
                    "WHERE ?1 IS NULL OR page_id > ?1 ORDER BY page_id LIMIT ?2",
                    rusqlite::params![after, limit],
                    |page| pages.push(page),
                )?;
                Ok(docbrain_core::PageState::from_pages(pages))
            })
        })
        .await
    }

    async fn page_states_of(
        &self,
        ids: &[PageId],
    ) -> docbrain_core::Result<Vec<docbrain_core::PageState>> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        self.run(move |state| {
            state.lean(|state| {
                let mut pages = Vec::new();
                // Within SQLite's bound on parameters per statement.
                for ids in ids.chunks(STATE_LOOKUP) {
                    let marks = vec!["?"; ids.len()].join(",");
                    state.each_page(
                        &format!("WHERE page_id IN ({marks})"),
                        rusqlite::params_from_iter(ids),
                        |page| pages.push(page),
                    )?;
                }
                Ok(docbrain_core::PageState::from_pages(pages))
            })
        })
        .await
    }

    async fn search(&self, request: &SearchRequest) -> docbrain_core::Result<Vec<SearchHit>> {
        let request = request.clone();
        self.run(move |state| {
            // One snapshot for the whole search: the mirror, the filter built from it, both
            // rankings and the rows read back all describe the same state of the file, even
            // while another process rewrites pages (and SQLite reuses their row ids).
            state.snapshot(|state| {
                let space = request.filter.space_key.as_deref();
                let reader = request.reader.as_ref();
                let depth = request.k.max(CANDIDATES);
                let Some(keep) = state.vectors()?.keep(space, reader) else {
                    return Ok(Vec::new());
                };
                let filtered = space.is_some() || reader.is_some();
                let lexical = state.bm25(&request.terms(), filtered.then_some(&keep), depth)?;
                let semantic: Vec<i64> = state
                    .loaded()?
                    .top_k(&request.vector, depth, &keep)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                let mut hits = Vec::with_capacity(request.k);
                for (id, score) in reciprocal_rank_fusion(&[&lexical, &semantic], RRF_K) {
                    if hits.len() == request.k {
                        break;
                    }
                    hits.extend(state.hit(id, score, space, reader)?);
                }
                Ok(hits)
            })
        })
        .await
    }

    async fn stats(&self) -> docbrain_core::Result<IndexStats> {
        // Counting scans the page records: outside the memory map, as a crawl reads them.
        self.run(|state| {
            state.lean(|state| {
                let conn = &state.conn;
                let count = |sql: &str| -> Result<u64> {
                    Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
                };
                Ok(IndexStats {
                    pages: count("SELECT count(*) FROM pages WHERE parent = ''")?,
                    parts: count("SELECT count(*) FROM pages WHERE parent != ''")?,
                    chunks: count("SELECT count(*) FROM chunks")?,
                    model_id: meta(conn, "model_id")?,
                    dimension: bound_dimension(conn)?,
                    last_sync_ms: meta(conn, "last_sync_ms")?.and_then(|v| v.parse().ok()),
                })
            })
        })
        .await
    }

    async fn record_sync(&self, unix_ms: u64) -> docbrain_core::Result<()> {
        self.run(move |state| {
            state.conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_sync_ms', ?1)",
                [unix_ms.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    async fn note_rules_changed(&self) -> docbrain_core::Result<()> {
        self.run(|state| {
            state.conn.execute(
                "INSERT INTO meta(key, value) VALUES ('rule_changes', '1') \
                 ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
                [],
            )?;
            Ok(())
        })
        .await
    }

    async fn rule_changes(&self) -> docbrain_core::Result<u64> {
        self.run(|state| {
            Ok(meta(&state.conn, "rule_changes")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        })
        .await
    }
}

/// Chunk counts per page, for tests and status output.
impl EmbeddedStore {
    /// Returns how many chunks each indexed page has, read from the chunk table itself.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn chunk_counts(&self) -> docbrain_core::Result<HashMap<PageId, u64>> {
        self.run(|state| {
            let mut stmt = state
                .conn
                .prepare("SELECT page_id, count(*) FROM chunks GROUP BY page_id")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        PageId::new(r.get::<_, String>(0)?),
                        r.get::<_, i64>(1)? as u64,
                    ))
                })?
                .collect::<rusqlite::Result<HashMap<_, _>>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
