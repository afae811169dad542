//! The webhook journal: an append-only file of accepted events, written before the 200 goes out.
//!
//! One writer thread appends records as JSON lines and makes each batch durable with one
//! `fdatasync` (group commit), so many concurrent deliveries share one disk flush. Records are
//! `add` (an accepted page event), `done` (reconciled) and `park` (gave up after too many
//! attempts). On start the file is replayed: every `add` without a later `done` or `park` is
//! pending again. A torn last line (the process was killed mid-write) was never acknowledged
//! and is skipped. When the file grows past a bound and few entries are pending, it is rewritten
//! with the pending entries only (write to a temporary file, fsync, rename).
//!
//! A write that fails (a full disk) is cut off again, so the file ends on a whole record and the
//! next record never lands on a torn line; nothing in a failed batch is acknowledged. The journal
//! opens even when its disk is full (it then skips the start-up rewrite), so the server starts
//! degraded: events get 503 and readiness fails until a write works again. One process at a time
//! holds the journal: an exclusive lock on `webhook-journal.lock` names the holder.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use crate::lockfile::{HeldLock, LockError};
use docbrain_core::PageId;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::ServerError;

/// The journal file's name inside the journal folder.
pub(crate) const FILE_NAME: &str = "webhook-journal.jsonl";
/// The lock file's name: held exclusively while a process has the journal open.
const LOCK_NAME: &str = "webhook-journal.lock";
/// Rewrite the file when it is larger than this and mostly settled.
const COMPACT_BYTES: u64 = 8 * 1024 * 1024;

/// One accepted page event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Sequence number, unique within the journal.
    pub(crate) seq: u64,
    /// The page.
    pub(crate) page: PageId,
    /// The event name as received (`page_updated`, `page_changed` for nameless Cloud bodies).
    pub(crate) event: String,
    /// The page version the event named, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u64>,
    /// The title the event carried, if any (for logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    /// When it was accepted, in milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
    /// What the event reaches beyond its page, for a worker to expand: none for a plain page
    /// event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reach: Option<Reach>,
}

/// The pages an access change reaches, expanded after the answer (the ack never waits on the
/// index): a page's change reaches the page itself and the indexed pages below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Reach {
    /// Every page below the entry's page (its restrictions or place changed).
    Below,
    /// Every page of this space (its permissions changed).
    Space(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Add(Entry),
    Done { seqs: Vec<u64> },
    Park { seqs: Vec<u64>, error: String },
}

enum Command {
    Write(Record, Option<oneshot::Sender<Result<(), String>>>),
    /// Can the journal take a record now? Appends and syncs a record-sized blank line, then
    /// cuts it off again.
    Probe(oneshot::Sender<Result<(), String>>),
}

/// A handle to the journal; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    tx: mpsc::Sender<CommandBox>,
    path: PathBuf,
    /// Held (locked) for as long as any handle lives.
    _lock: std::sync::Arc<HeldLock>,
}

/// `Command` boxed so the handle stays `Debug`.
struct CommandBox(Command);

impl std::fmt::Debug for CommandBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("journal command")
    }
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and returns it with the entries still pending.
    ///
    /// # Errors
    /// When the folder or file cannot be created, read or written.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<Entry>), ServerError> {
        let io = |e: std::io::Error| ServerError::Journal {
            path: dir.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let (pending, lines) = replay(&path).map_err(io)?;
        // Start from a compact file: the pending entries only. On a full disk keep the file as
        // it is and start anyway: events are refused until space returns.
        if let Err(e) = rewrite(&path, pending.values()) {
            warn!(path = %path.display(), error = %e, "cannot rewrite the webhook journal at start (disk full?); starting degraded: events get 503 until a write works");
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        debug!(path = %path.display(), replayed_lines = lines, pending = pending.len(), "journal open");
        let (tx, rx) = mpsc::channel::<CommandBox>();
        let writer_path = path.clone();
        let settled = pending.clone();
        thread::Builder::new()
            .name("webhook-journal".into())
            .spawn(move || writer(file, &writer_path, &rx, settled))
            .map_err(io)?;
        Ok((
            Self {
                tx,
                path,
                _lock: std::sync::Arc::new(lock),
            },
            pending.into_values().collect(),
        ))
    }

    /// Appends an accepted event; resolves once it is on disk.
    ///
    /// # Errors
    /// When the write or flush failed (the event must not be acknowledged then).
    pub(crate) async fn add(&self, entry: Entry) -> Result<(), ServerError> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Write(Record::Add(entry), Some(ack)))?;
        done.await
            .map_err(|_| self.closed())?
            .map_err(|detail| ServerError::JournalWrite {
                path: self.path.clone(),
                detail,
            })
    }

    /// Marks entries reconciled (durable at the next flush).
    pub(crate) fn done(&self, seqs: Vec<u64>) {
        if !seqs.is_empty() {
            let _ = self.send(Command::Write(Record::Done { seqs }, None));
        }
    }

    /// Marks entries given up on.
    pub(crate) fn park(&self, seqs: Vec<u64>, error: String) {
        if !seqs.is_empty() {
            let _ = self.send(Command::Write(Record::Park { seqs, error }, None));
        }
    }

    /// Whether the journal can take a record now (for readiness): appends and syncs a
    /// record-sized blank line, then cuts it off.
    ///
    /// # Errors
    /// What the write met (a full disk, a read-only folder, a stopped writer).
    pub(crate) async fn probe(&self) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Probe(ack)).map_err(|e| e.to_string())?;
        done.await
            .map_err(|_| "the journal writer stopped".to_owned())?
    }

    /// The journal file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, command: Command) -> Result<(), ServerError> {
        self.tx.send(CommandBox(command)).map_err(|_| self.closed())
    }

    fn closed(&self) -> ServerError {
        ServerError::JournalWrite {
            path: self.path.clone(),
            detail: "the journal writer stopped".into(),
        }
    }
}

/// Takes the journal folder's lock, or says who holds it.
fn lock(dir: &Path) -> Result<HeldLock, ServerError> {
    let path = dir.join(LOCK_NAME);
    let io = |e: std::io::Error| ServerError::Journal {
        path: dir.to_path_buf(),
        source: e,
    };
    HeldLock::try_take(&path).map_err(|e| match e {
        LockError::Held { holder } => ServerError::JournalLocked {
            path: dir.to_path_buf(),
            holder,
        },
        LockError::Io(e) => io(e),
    })
}

/// Reads the file: the pending entries by sequence number, and the number of lines read.
fn replay(path: &Path) -> std::io::Result<(BTreeMap<u64, Entry>, usize)> {
    let mut pending = BTreeMap::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((pending, 0)),
        Err(e) => return Err(e),
    };
    let mut lines = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        lines += 1;
        match serde_json::from_slice::<Record>(&line) {
            Ok(Record::Add(entry)) => {
                pending.insert(entry.seq, entry);
            }
            Ok(Record::Done { seqs } | Record::Park { seqs, .. }) => {
                for s in seqs {
                    pending.remove(&s);
                }
            }
            Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
            Err(e) => {
                warn!(error = %e, "skipped an unreadable journal line (a write cut short by a crash)");
            }
        }
    }
    Ok((pending, lines))
}

/// Replaces the file with one holding `entries` only.
fn rewrite<'a>(path: &Path, entries: impl Iterator<Item = &'a Entry>) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let written = (|| {
        let mut f = File::create(&tmp)?;
        for e in entries {
            serde_json::to_writer(&mut f, &Record::Add(e.clone()))?;
            f.write_all(b"\n")?;
        }
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn writer(
    mut file: File,
    path: &Path,
    rx: &mpsc::Receiver<CommandBox>,
    mut pending: BTreeMap<u64, Entry>,
) {
    let mut size = file.metadata().map_or(0, |m| m.len());
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut probes = Vec::new();
        let mut added = Vec::new();
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        buf.clear();
        for CommandBox(command) in batch {
            let (record, ack) = match command {
                Command::Write(record, ack) => (record, ack),
                Command::Probe(ack) => {
                    probes.push(ack);
                    continue;
                }
            };
            match &record {
                Record::Add(e) => {
                    pending.insert(e.seq, e.clone());
                    added.push(e.seq);
                }
                Record::Done { seqs } | Record::Park { seqs, .. } => {
                    for s in seqs {
                        pending.remove(s);
                    }
                }
            }
            if serde_json::to_writer(&mut buf, &record).is_ok() {
                buf.push(b'\n');
            }
            if let Some(ack) = ack {
                acks.push(ack);
            }
        }
        let result = append(&mut file, &mut size, &buf);
        if let Err(e) = &result {
            warn!(path = %path.display(), error = %e, "journal write failed; events are refused until it works");
            // Never acknowledged, so not pending either (Confluence delivers them again).
            for seq in added {
                pending.remove(&seq);
            }
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
        if !probes.is_empty() {
            let mut probe_size = size;
            let probed = append(&mut file, &mut probe_size, &PROBE)
                .and_then(|()| cut(&mut file, size).map_err(|e| e.to_string()));
            for ack in probes {
                let _ = ack.send(probed.clone());
            }
        }
        if result.is_ok() && size > COMPACT_BYTES && pending.len() < 10_000 {
            match rewrite(path, pending.values())
                .and_then(|()| OpenOptions::new().append(true).open(path))
            {
                Ok(f) => {
                    file = f;
                    size = file.metadata().map_or(0, |m| m.len());
                    debug!(pending = pending.len(), "journal compacted");
                }
                Err(e) => warn!(error = %e, "journal compaction failed; appending to the old file"),
            }
        }
    }
}

/// What a readiness probe writes: a blank line the size of a large record.
const PROBE: [u8; 4096] = {
    let mut line = [b' '; 4096];
    line[4095] = b'\n';
    line
};

/// Cuts the file back to `size` bytes, durably.
fn cut(file: &mut File, size: u64) -> std::io::Result<()> {
    file.set_len(size).and_then(|()| file.sync_data())
}

/// Appends `buf` and syncs it; on failure cuts the file back to `size`, so it still ends on a
/// whole record.
fn append(file: &mut File, size: &mut u64, buf: &[u8]) -> Result<(), String> {
    if buf.is_empty() {
        return Ok(());
    }
    match file.write_all(buf).and_then(|()| file.sync_data()) {
        Ok(()) => {
            *size += buf.len() as u64;
            Ok(())
        }
        Err(e) => {
            if let Err(failed) = cut(file, *size) {
                warn!(error = %failed, "cannot cut a failed journal write back; the next start skips the torn line");
                // Whatever is there now is where the next record starts after its newline.
                *size = file.metadata().map_or(*size, |m| m.len());
            }
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // reads answers the test asked for
mod tests {
    use super::*;

    fn entry(seq: u64, page: &str) -> Entry {
        Entry {
            seq,
            page: PageId::new(page),
            event: "page_updated".into(),
            version: Some(seq),
            title: None,
            at_ms: 1,
            reach: None,
        }
    }

    #[tokio::test]
    async fn pending_entries_survive_a_reopen_and_settled_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, pending) = Journal::open(dir.path()).unwrap();
        assert!(pending.is_empty());
        for seq in 1..=5 {
            journal.add(entry(seq, &format!("p{seq}"))).await.unwrap();
        }
        journal.done(vec![1, 2]);
        journal.park(vec![3], "gave up".into());
        assert_eq!(journal.probe().await, Ok(()));
        drop(journal);
        // A torn line at the end, as a kill -9 mid-write leaves it.
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"add","seq":9,"page":"p9","ev"#)
            .unwrap();
        drop(f);
        let (_journal, pending) = reopen(dir.path()).await;
        let seqs: Vec<u64> = pending.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(pending[0].page, PageId::new("p4"));
    }

    #[tokio::test]
    async fn a_second_process_is_refused_and_told_who_holds_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let err = Journal::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another server"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(journal);
        reopen(dir.path()).await;
    }

    /// Opens the journal again once the previous handle is gone: a child process another test
    /// is spawning may hold the lock's descriptor between its fork and its exec.
    async fn reopen(dir: &Path) -> (Journal, Vec<Entry>) {
        let started = std::time::Instant::now();
        loop {
            match Journal::open(dir) {
                Ok(opened) => return opened,
                Err(e @ ServerError::JournalLocked { .. }) => {
                    assert!(
                        started.elapsed() < std::time::Duration::from_secs(5),
                        "still locked after the holder is gone: {e}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// A small tmpfs: a disk that really fills up.
    struct SmallDisk {
        dir: tempfile::TempDir,
    }

    impl SmallDisk {
        fn mount(bytes: usize) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "mounting a tmpfs needs root");
            Self { dir }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        /// Writes a filler file until the disk is full.
        fn fill(&self) {
            let mut f = File::create(self.path().join("filler")).unwrap();
            let block = vec![0u8; 4096];
            while f.write_all(&block).is_ok() {}
            let _ = f.write_all(&[0]);
        }

        fn free(&self) {
            std::fs::remove_file(self.path().join("filler")).unwrap();
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            // Lazily: the journal's writer thread may still be closing its file.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }

    fn big_entry(seq: u64) -> Entry {
        Entry {
            title: Some("t".repeat(3000)),
            ..entry(seq, &format!("p{seq}"))
        }
    }

    #[tokio::test]
    #[ignore = "mounts a small tmpfs to fill a disk for real (needs root): scripts/test.sh runs it"]
    async fn a_full_disk_refuses_events_loses_none_acknowledged_and_recovers() {
        let disk = SmallDisk::mount(256 * 1024);
        let dir = disk.path().join("journal");
        let (journal, _) = Journal::open(&dir).unwrap();
        let mut acked = Vec::new();
        for seq in 1..=10 {
            journal.add(big_entry(seq)).await.unwrap();
            acked.push(seq);
        }
        disk.fill();
        for seq in 11..=20 {
            assert!(
                journal.add(big_entry(seq)).await.is_err(),
                "the disk is full"
            );
        }
        assert!(
            journal.probe().await.is_err(),
            "not ready while the disk is full"
        );
        drop(journal);

        // A start on the full disk: degraded, with what was pending.
        let (journal, pending) = reopen(&dir).await;
        assert_eq!(pending.iter().map(|e| e.seq).collect::<Vec<_>>(), acked);
        assert!(journal.probe().await.is_err());

        // Space returns: writes work again without a restart.
        disk.free();
        assert_eq!(journal.probe().await, Ok(()));
        for seq in 21..=25 {
            journal.add(big_entry(seq)).await.unwrap();
            acked.push(seq);
        }
        drop(journal);
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                serde_json::from_str::<Record>(line).is_ok(),
                "a torn line was left: {}",
                &line[..line.len().min(80)]
            );
        }
        let (_journal, pending) = reopen(&dir).await;
        assert_eq!(
            pending.iter().map(|e| e.seq).collect::<Vec<_>>(),
            acked,
            "every acknowledged event, and only those"
        );
    }

    #[tokio::test]
    #[ignore = "mounts a small tmpfs to fill a disk for real (needs root): scripts/test.sh runs it"]
    async fn a_server_on_a_full_disk_starts_degraded_and_recovers_by_itself() {
        use std::sync::Arc;

        use crate::settings::WebhookSettings;
        use docbrain_core::{MemoryStore, Pipeline, Secret};
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        use hyper::{Method, Request};

        use crate::{router, AppState, Metrics, Webhook};

        let disk = SmallDisk::mount(256 * 1024);
        disk.fill();
        let pipeline = Pipeline::searcher(
            Arc::new(docbrain_testsuite::LetterEmbedder::default()),
            Arc::new(MemoryStore::new()),
        )
        .await
        .unwrap();
        let settings = WebhookSettings::new(Secret::new("s3cret"), disk.path().join("journal"));
        let metrics = Arc::new(Metrics::default());
        let webhook = Webhook::start(settings, &pipeline, metrics.clone()).unwrap();
        let state = AppState::new(pipeline, Some(webhook), metrics, Default::default());
        let body = r#"{"timestamp":1,"event":"page_updated","page":{"id":42}}"#;
        let signature = docbrain_confluence::webhook::sign(b"s3cret", body.as_bytes());
        let call = |method: Method, path: &str, body: &'static str| {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header("x-hub-signature", signature.clone())
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap();
            let state = &state;
            async move {
                let response = router(state, request).await;
                let status = response.status().as_u16();
                let text = response.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&text).into_owned())
            }
        };
        assert_eq!(call(Method::GET, "/healthz", "").await.0, 200, "alive");
        let (status, text) = call(Method::GET, "/readyz", "").await;
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("cannot take a write"), "{text}");
        assert_eq!(call(Method::POST, "/confluence/events", body).await.0, 503);
        assert_eq!(
            call(Method::GET, "/search?q=anything", "").await.0,
            200,
            "search still served"
        );

        disk.free();
        assert_eq!(call(Method::GET, "/readyz", "").await.0, 200);
        assert_eq!(call(Method::POST, "/confluence/events", body).await.0, 200);
    }
}
