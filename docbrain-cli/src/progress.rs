//! A one-line progress display on stderr, drawn only when stderr is a terminal.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use docbrain_core::{PageOutcome, PageSummary, Result, SyncProgress};

/// Counts pages as a sync goes and redraws one status line at most ten times a second.
#[derive(Debug)]
pub(crate) struct Progress {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    listed: u64,
    done: u64,
    updated: u64,
    failed: u64,
    last_draw: Option<Instant>,
    started: Instant,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                listed: 0,
                done: 0,
                updated: 0,
                failed: 0,
                last_draw: None,
                started: Instant::now(),
            }),
        }
    }

    fn draw(state: &mut State, force: bool, title: &str) {
        let due = state
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !force && !due {
            return;
        }
        state.last_draw = Some(Instant::now());
        let width = 24usize;
        let filled = if state.listed == 0 {
            0
        } else {
            (state.done as usize * width / state.listed as usize).min(width)
        };
        let title: String = title.chars().take(40).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{}{}] {}/{} pages, {} updated, {} failed, {:.0}s  {}",
            "=".repeat(filled),
            " ".repeat(width - filled),
            state.done,
            state.listed,
            state.updated,
            state.failed,
            state.started.elapsed().as_secs_f64(),
            title
        );
        let _ = err.flush();
    }

    /// Clears the line.
    pub(crate) fn finish(&self) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

impl SyncProgress for Progress {
    fn listed(&self, page: &PageSummary) {
        if let Ok(mut s) = self.state.lock() {
            s.listed += 1;
            Self::draw(&mut s, false, &page.title);
        }
    }

    fn page_done(&self, page: &PageSummary, outcome: &Result<PageOutcome>) {
        if let Ok(mut s) = self.state.lock() {
            s.done += 1;
            match outcome {
                Ok(PageOutcome::Updated { .. }) => s.updated += 1,
                Err(_) => s.failed += 1,
                Ok(_) => {}
            }
            Self::draw(&mut s, true, &page.title);
        }
    }
}
