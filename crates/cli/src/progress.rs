//! Progress: a bar with items/s, MB/s and ETA when stderr is a terminal, else silence until
//! one summary line at the end.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    items: AtomicU64,
    bytes: AtomicU64,
    start: Instant,
}

impl Progress {
    /// `total_bytes`: the inputs' size, for the ETA.
    pub fn new(total_bytes: u64, what: &str) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b.set_prefix(what.to_string());
            b.enable_steady_tick(Duration::from_millis(250));
            Some(b)
        } else {
            None
        };
        Progress {
            bar,
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    pub fn item(&self, bytes: u64) {
        let n = self.items.fetch_add(1, Ordering::Relaxed) + 1;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(bytes);
            let secs = self.start.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!("{n} items, {:.0} items/s", n as f64 / secs));
        }
    }

    /// Prints a line above the bar (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Clears the bar; returns "N items, X MB in Ts (I items/s, M MB/s)".
    pub fn finish(&self) -> String {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        let n = self.items.load(Ordering::Relaxed);
        let mb = self.bytes.load(Ordering::Relaxed) as f64 / 1_000_000.0;
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        format!(
            "{n} items, {mb:.1} MB in {secs:.1} s ({:.0} items/s, {:.1} MB/s)",
            n as f64 / secs,
            mb / secs
        )
    }
}
