//! Running the `docbrain-server` binary from tests: a clean environment, a port of its own
//! choosing (read from the `listening on http://…` line it prints), its log captured on demand.

#![allow(dead_code)] // each test binary uses the part it needs

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) use docbrain_testsuite::{until, Running};

/// The server binary with only `PATH`, the model's variables, `SERVER_BIND=127.0.0.1` and
/// `SERVER_PORT=0` set; with `fd_limit`, under `ulimit -n`.
pub(crate) fn command(fd_limit: Option<u32>) -> Command {
    let exe = env!("CARGO_BIN_EXE_docbrain-server");
    let mut cmd = match fd_limit {
        None => Command::new(exe),
        Some(n) => {
            let mut sh = Command::new("sh");
            sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\""), exe]);
            sh
        }
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SERVER_BIND", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in ["MODEL_DIR", "HOME", "XDG_CACHE_HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd
}

/// Spawns `cmd` and waits for the address it listens on; returns it with its base URL.
pub(crate) fn spawn(mut cmd: Command) -> (Running, String) {
    let mut child = Running::spawn(&mut cmd).unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the server did not start: {line:?}"))
        .to_owned();
    (child, base)
}

/// A child's stderr, collected line by line on a thread.
pub(crate) struct Log {
    lines: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
}

impl Log {
    /// Starts collecting (the child must have been spawned with a piped stderr).
    pub(crate) fn capture(child: &mut Child) -> Self {
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        Self { lines, reader }
    }

    /// The lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a line contains `needle`, or panics after `within`.
    pub(crate) async fn wait_for(&self, needle: &str, within: Duration) {
        let what = format!("a log line with {needle:?}");
        until(within, &what, || async {
            self.lines().iter().any(|l| l.contains(needle))
        })
        .await;
    }

    /// Every line, once the child is gone.
    pub(crate) fn finish(self) -> Vec<String> {
        self.reader.join().unwrap();
        Arc::try_unwrap(self.lines).unwrap().into_inner().unwrap()
    }
}
