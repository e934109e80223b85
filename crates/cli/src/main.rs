//! The `unseal` command: argument parsing, orchestration, parallelism, progress, journal and
//! reports. The work itself lives in unseal-core (cryptography, MIME) and unseal-mailbox.

mod args;
mod commands;
mod journal;
mod passwords;
mod pipeline;
mod progress;
mod report;

use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

pub(crate) use unseal_core as uc;

/// Every encrypted item was decrypted (scan: has a key; verify: all ok).
pub const EXIT_OK: i32 = 0;
/// Some item failed, lacks a key or is missing.
pub const EXIT_SOME: i32 = 1;
/// Usage or fatal error (also: interrupted).
pub const EXIT_FATAL: i32 = 2;

/// One line on stderr.
pub fn log(msg: &str) {
    eprintln!("unseal: {msg}");
    if let Ok(mut last) = LAST_LOGGED.lock() {
        *last = Some(msg.to_string());
    }
}

/// The last line [`log`] wrote: the reason a run that ends fatally gives in its report.
static LAST_LOGGED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

static STOP: AtomicBool = AtomicBool::new(false);

fn main() {
    let cli = args::Cli::parse();
    // Ctrl-C: finish the batch in flight, sync output and journal, then stop. A second Ctrl-C
    // exits at once (the journal is still consistent: it only ever describes durable output).
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_FATAL);
        }
        eprintln!("unseal: stopping after the items in flight (Ctrl-C again to stop at once)");
    });
    // A panic in a worker is caught per item and reported; keep stderr to one line.
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("unseal: internal error{loc}");
    }));
    let (code, report) = match &cli.command {
        args::Command::Keys(c) => (commands::keys::run(c, cli.verbose), None),
        args::Command::Scan(c) => (
            commands::scan::run(c, cli.verbose, &STOP),
            c.report.as_ref(),
        ),
        args::Command::Decrypt(c) => (
            commands::decrypt::run(c, cli.verbose, &STOP),
            c.report.as_ref(),
        ),
        args::Command::Verify(c) => (commands::verify::run(c, cli.verbose), c.report.as_ref()),
    };
    // A run that stopped before its summary must not leave an older run's report behind, which
    // a script would read as this run's.
    if code == EXIT_FATAL
        && let Some(path) = report
        && !report::summary_written()
    {
        let why = LAST_LOGGED.lock().ok().and_then(|l| l.clone());
        if let Err(e) = report::write_fatal(path, why.as_deref().unwrap_or("fatal error")) {
            log(&e);
        }
    }
    std::process::exit(code);
}
