//! The webhook journal: an append-only file of accepted events, written before the 200 goes out.
//!
//! One writer thread appends records as JSON lines and makes each batch durable with one
//! `fdatasync` (group commit), so many concurrent deliveries share one disk flush. Records are
//! `add` (an accepted page event), `done` (reconciled) and `park` (gave up after too many
//! attempts). On start the file is replayed: every `add` without a later `done` or `park` is
//! pending again. A torn last line (the process was killed mid-write) was never acknowledged
//! and is skipped. When the file grows past a bound and few entries are pending, it is rewritten
//! with the pending entries only (write to a temporary file, fsync, rename).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use docbrain_core::PageId;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::ServerError;

/// The journal file's name inside the journal folder.
pub(crate) const FILE_NAME: &str = "webhook-journal.jsonl";
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
}

/// A handle to the journal; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    tx: mpsc::Sender<CommandBox>,
    path: PathBuf,
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
        let path = dir.join(FILE_NAME);
        let (pending, lines) = replay(&path).map_err(io)?;
        // Start from a compact file: the pending entries only.
        rewrite(&path, pending.values()).map_err(io)?;
        let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
        debug!(path = %path.display(), replayed_lines = lines, pending = pending.len(), "journal open");
        let (tx, rx) = mpsc::channel::<CommandBox>();
        let writer_path = path.clone();
        let settled = pending.clone();
        thread::Builder::new()
            .name("webhook-journal".into())
            .spawn(move || writer(file, &writer_path, &rx, settled))
            .map_err(io)?;
        Ok((Self { tx, path }, pending.into_values().collect()))
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

    /// Whether the writer is alive (for readiness).
    pub(crate) async fn is_writable(&self) -> bool {
        let (ack, done) = oneshot::channel();
        // An empty `done` record is a harmless no-op that goes through the whole write path.
        if self
            .send(Command::Write(Record::Done { seqs: vec![] }, Some(ack)))
            .is_err()
        {
            return false;
        }
        matches!(done.await, Ok(Ok(())))
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
    {
        let mut f = File::create(&tmp)?;
        for e in entries {
            serde_json::to_writer(&mut f, &Record::Add(e.clone()))?;
            f.write_all(b"\n")?;
        }
        f.sync_all()?;
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
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        buf.clear();
        for CommandBox(Command::Write(record, ack)) in batch {
            match &record {
                Record::Add(e) => {
                    pending.insert(e.seq, e.clone());
                }
                Record::Done { seqs } | Record::Park { seqs, .. } => {
                    if seqs.is_empty() {
                        if let Some(ack) = ack {
                            acks.push(ack);
                        }
                        continue;
                    }
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
        let result = file
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            warn!(path = %path.display(), error = %e, "journal write failed; events are refused until it works");
        }
        size += buf.len() as u64;
        for ack in acks {
            let _ = ack.send(result.clone());
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

#[cfg(test)]
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
        assert!(journal.is_writable().await);
        drop(journal);
        // A torn line at the end, as a kill -9 mid-write leaves it.
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"add","seq":9,"page":"p9","ev"#)
            .unwrap();
        drop(f);
        let (_journal, pending) = Journal::open(dir.path()).unwrap();
        let seqs: Vec<u64> = pending.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(pending[0].page, PageId::new("p4"));
    }
}
