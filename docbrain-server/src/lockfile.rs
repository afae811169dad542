//! An exclusive lock on a file that names its holder, for work one process at a time may do on
//! a data folder (the webhook journal, a crawl). The operating system releases it when the
//! holder exits, however it exits.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct HeldLock {
    _file: File,
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; `holder` is how it named itself (`pid N on HOST`).
    Held {
        /// The holder's note.
        holder: String,
    },
    /// The lock file cannot be opened or locked.
    Io(std::io::Error),
}

impl HeldLock {
    /// Takes the lock on `path` (created if missing) without waiting, and writes this process
    /// into it (`pid N on HOST`).
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder when another process has it; [`LockError::Io`]
    /// when the file cannot be opened.
    pub fn try_take(path: &Path) -> Result<Self, LockError> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                return Err(LockError::Held {
                    holder: holder.trim().to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let me = format!("pid {} on {}", std::process::id(), host.trim());
        // Best effort: the lock holds even if the note cannot be written (a full disk).
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(me.as_bytes()))
            .and_then(|()| file.sync_data());
        Ok(Self { _file: file })
    }
}

/// The lock file a crawl holds in its data folder.
pub const CRAWL_LOCK: &str = "crawl.lock";

/// Takes the crawl lock of data folder `data_dir` (created if missing): one crawl at a time per
/// folder, whichever process runs it (`docbrain ingest`, the server's schedule).
///
/// # Errors
/// [`docbrain_core::ErrorKind::Refused`] naming the holder when another crawl runs there;
/// [`docbrain_core::ErrorKind::Storage`] when the folder cannot be written.
pub fn crawl_lock(data_dir: &Path) -> docbrain_core::Result<HeldLock> {
    let io = |e: std::io::Error| {
        docbrain_core::Error::new(
            docbrain_core::ErrorKind::Storage,
            format!(
                "cannot lock {} for the crawl ({e}): check that DOCBRAIN_DATA_DIR is writable",
                data_dir.join(CRAWL_LOCK).display()
            ),
        )
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    HeldLock::try_take(&data_dir.join(CRAWL_LOCK)).map_err(|e| match e {
        LockError::Held { holder } => docbrain_core::Error::new(
            docbrain_core::ErrorKind::Refused,
            format!(
                "another crawl is running on {} ({holder}): wait for it to finish, or give this one its own DOCBRAIN_DATA_DIR",
                data_dir.display()
            ),
        ),
        LockError::Io(e) => io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_learns_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crawl.lock");
        let held = HeldLock::try_take(&path).unwrap();
        match HeldLock::try_take(&path) {
            Err(LockError::Held { holder }) => {
                assert!(
                    holder.starts_with(&format!("pid {} on ", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        assert!(HeldLock::try_take(&path).is_ok());
    }
}
