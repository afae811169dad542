//! What the workspace's tests share: a child process that never outlives
//! its test, and one wait for a condition, with a bound.

use std::future::Future;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child process that is killed and waited for when dropped, whether its test passed or
/// panicked; it derefs to its [`Child`].
#[derive(Debug)]
pub struct Running(Child);

impl Running {
    /// Spawns `cmd`.
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        cmd.spawn().map(Self)
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `check` holds, looking every 20 ms, and returns how long it took.
///
/// # Panics
/// After `bound`, naming `what`: the failure report of the test that waited.
pub async fn until<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < bound, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}
