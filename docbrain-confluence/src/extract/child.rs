//! Extraction in a child process of the same binary, under a time and a memory limit.
//!
//! The child starts with an empty environment (no credential reaches it). The parent writes
//! one JSON header line (type, character cap, memory limit) and the file's bytes to the
//! child's stdin; the child, having limited its own address space
//! (`RLIMIT_AS`), extracts and writes one line, `DOCBRAIN-EXTRACTED ` and a JSON answer, to
//! stdout. A child that panics answers an error; one that crashes, runs out of memory or
//! answers nothing fails that file; one past the time limit is killed.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{extract, ExtractError, FileType};

/// Set in the child's environment: [`serve_if_child`] extracts and exits when it is.
pub const CHILD_ENV: &str = "DOCBRAIN_EXTRACT_CHILD";

/// Set by [`serve_if_child`]: this binary can be its own extractor.
static SERVES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Opens the child's answer line (libtest and others may write to stdout before it).
const MARKER: &str = "DOCBRAIN-EXTRACTED ";

#[derive(Serialize, Deserialize)]
struct Header {
    kind: FileType,
    max_chars: usize,
    memory_bytes: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Text(String),
    Error(ExtractError),
}

/// The child's answer line.
#[derive(Serialize, Deserialize)]
struct Reply {
    answer: Answer,
    /// The child's peak resident memory, in KiB (`VmHWM`), when it can tell.
    peak_kib: Option<u64>,
}

/// This process's peak resident memory in KiB (Linux's `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Runs [`extract`] in a child process: the binary itself by default
/// ([`Extractor::this_binary`], whose `main` calls [`serve_if_child`] first), with a time
/// limit (30 s by default) and a memory limit (1 GiB by default).
#[derive(Debug, Clone)]
pub struct Extractor {
    program: PathBuf,
    args: Vec<OsString>,
    /// How long one file may take; the child is killed then.
    pub timeout: Duration,
    /// The child's address-space limit in bytes (0: none).
    pub memory_bytes: u64,
    /// The highest peak memory a child reported, in KiB, shared by clones.
    peak_kib: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Extractor {
    /// The running executable as the extractor, once its `main` has called
    /// [`serve_if_child`] (both DocBrain binaries do, first thing).
    ///
    /// # Errors
    /// When `main` did not call [`serve_if_child`] (started as a child, such a binary would run
    /// its own `main` again), or the executable's path cannot be read.
    pub fn this_binary() -> std::io::Result<Self> {
        if !SERVES.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::other(
                "this program does not run attachment extraction: its main must call docbrain_confluence::extract::serve_if_child() first",
            ));
        }
        Ok(Self::command(std::env::current_exe()?, Vec::new()))
    }

    /// This extractor with a time limit and a memory limit (bytes; 0: none).
    pub fn with_limits(mut self, timeout: Duration, memory_bytes: u64) -> Self {
        self.timeout = timeout;
        self.memory_bytes = memory_bytes;
        self
    }

    /// `program` with `args` as the extractor (a test binary running the one test that calls
    /// [`serve_if_child`]).
    pub fn command(program: impl Into<PathBuf>, args: Vec<OsString>) -> Self {
        Self {
            program: program.into(),
            args,
            timeout: Duration::from_secs(30),
            memory_bytes: 1 << 30,
            peak_kib: std::sync::Arc::default(),
        }
    }

    /// The highest peak resident memory (KiB) any child of this extractor (or its clones)
    /// reported.
    pub fn peak_kib(&self) -> u64 {
        self.peak_kib.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The text of `bytes`, a file of type `kind`, cut at `max_chars` characters, extracted
    /// in a child process.
    ///
    /// # Errors
    /// What [`extract`] fails with; [`ExtractError::Crashed`] when the child cannot start,
    /// dies, runs out of memory or time, or answers nothing.
    pub async fn extract(
        &self,
        kind: FileType,
        bytes: &[u8],
        max_chars: usize,
    ) -> Result<String, ExtractError> {
        let crashed = |what: String| ExtractError::Crashed(what);
        // The child reads a stranger's file: it gets none of this process's environment (no
        // token, key or secret), only the variable that makes it an extractor.
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| crashed(format!("could not start: {e}")))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(crashed("has no stdin or stdout".into()));
        };
        let header = serde_json::to_string(&Header {
            kind,
            max_chars,
            memory_bytes: self.memory_bytes,
        })
        .map_err(|e| crashed(e.to_string()))?;
        // An answer is at most the capped text, escaped: anything longer is not one.
        let cap = (max_chars as u64)
            .saturating_mul(12)
            .saturating_add(1 << 20);
        let work = async {
            let write = async {
                // The child may die before reading it all: that shows in its answer.
                let _ = stdin.write_all(header.as_bytes()).await;
                let _ = stdin.write_all(b"\n").await;
                let _ = stdin.write_all(bytes).await;
                drop(stdin);
            };
            let read = async {
                let mut out = Vec::new();
                let _ = stdout.take(cap).read_to_end(&mut out).await;
                out
            };
            let ((), out) = tokio::join!(write, read);
            (out, child.wait().await)
        };
        let (out, status) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                crashed(format!(
                    "took longer than {:?} and was stopped",
                    self.timeout
                ))
            })?;
        let reply = String::from_utf8_lossy(&out)
            .lines()
            .find_map(|l| l.strip_prefix(MARKER).map(str::to_owned))
            .and_then(|a| serde_json::from_str::<Reply>(&a).ok());
        if let Some(peak) = reply.as_ref().and_then(|r| r.peak_kib) {
            self.peak_kib
                .fetch_max(peak, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(
                kind = kind.name(),
                bytes = bytes.len(),
                peak_kib = peak,
                "extracted in a child process"
            );
        }
        match reply.map(|r| r.answer) {
            Some(Answer::Text(text)) => Ok(text),
            Some(Answer::Error(e)) => Err(e),
            None => Err(crashed(match status {
                Ok(status) => format!("answered nothing ({status}): out of memory, or crashed"),
                Err(e) => format!("answered nothing: {e}"),
            })),
        }
    }
}

/// In a child started by [`Extractor`] (its environment has [`CHILD_ENV`]): limits its own
/// memory, extracts the file on stdin, writes the answer and exits. Elsewhere returns at once.
/// Binaries call it first thing in `main`.
pub fn serve_if_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        SERVES.store(true, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    let code = match serve() {
        Ok(()) => 0,
        Err(_) => 2,
    };
    std::process::exit(code);
}

fn serve() -> std::io::Result<()> {
    let mut input = Vec::new();
    std::io::stdin().lock().read_to_end(&mut input)?;
    let split = input
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(input.len());
    let header: Header = serde_json::from_slice(&input[..split])?;
    if header.memory_bytes > 0 {
        rlimit::setrlimit(
            rlimit::Resource::AS,
            header.memory_bytes,
            header.memory_bytes,
        )?;
    }
    let bytes = input.get(split + 1..).unwrap_or_default();
    let answer = match std::panic::catch_unwind(|| extract(header.kind, bytes, header.max_chars)) {
        Ok(Ok(text)) => Answer::Text(text),
        Ok(Err(e)) => Answer::Error(e),
        Err(_) => Answer::Error(ExtractError::Crashed("panicked".into())),
    };
    let line = serde_json::to_string(&Reply {
        answer,
        peak_kib: peak_rss_kib(),
    })?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(format!("\n{MARKER}{line}\n").as_bytes())?;
    stdout.flush()
}
