//! `unseal scan`: per item its recipients and whether a key is at hand (`--trial`: proven by
//! decrypting in memory). Writes nothing but the report; ends with per-mailbox and per-recipient
//! summaries ("missing key: ... — 5 items in 2 mailboxes").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use unseal_mailbox::{Format, Item};

use crate::args::ScanCmd;
use crate::pipeline::{self, Counts, Ctx, Scanned};
use crate::progress::Progress;
use crate::report::{Record, Report};
use crate::{EXIT_FATAL, EXIT_OK, EXIT_SOME, commands::keys, log};

const BATCH: usize = 64;

/// recipient -> (items, mailboxes)
type Missing = BTreeMap<String, (u64, BTreeSet<String>)>;

struct BoxResult {
    name: String,
    counts: Counts,
    fatal: Option<String>,
}

pub fn run(cmd: &ScanCmd, verbose: u8, stop: &AtomicBool) -> i32 {
    if let Some(n) = cmd.jobs {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let loaded = match keys::load(&cmd.keys, verbose) {
        Ok(l) => l,
        Err(e) => {
            log(&e);
            return EXIT_FATAL;
        }
    };
    let (report, dec) = match super::report_and_decryptor(
        &loaded.ring,
        cmd.report.as_deref(),
        cmd.try_all_keys,
        None,
    ) {
        Ok(x) => x,
        Err(e) => {
            log(&e);
            return EXIT_FATAL;
        }
    };
    // Scan writes nothing: no trace header, and nothing is streamed.
    let ctx = Ctx::new(&dec, false, verbose, cmd.try_all_keys, u64::MAX);
    let progress = Progress::new(pipeline::total_size(&cmd.inputs), "scan");
    let missing: Mutex<Missing> = Mutex::new(BTreeMap::new());
    let results: Vec<BoxResult> = cmd
        .inputs
        .par_iter()
        .map(|input| scan_box(&ctx, input, cmd.trial, &report, &progress, &missing, stop))
        .collect();
    let rate = progress.finish();

    let mut total = Counts::default();
    let mut fatal = 0;
    for r in &results {
        total.merge(&r.counts);
        let mut line = format!(
            "{}: {} items: {} encrypted with a key{}, {} without a key, {} plain, {} failed",
            r.name,
            r.counts.items,
            r.counts.key_found + r.counts.decrypted,
            if cmd.trial { " (proven)" } else { "" },
            r.counts.no_key,
            r.counts.plain,
            r.counts.failed
        );
        if let Some(e) = &r.fatal {
            fatal += 1;
            line.push_str(&format!("; STOPPED: {e}"));
            let mut rec = Record::new(&r.name, "", r.name.clone(), "failed");
            rec.reason = Some(e.clone());
            report.item(&rec);
        }
        eprintln!("{line}");
    }
    let missing = missing.into_inner().unwrap_or_default();
    for (r, (n, boxes)) in &missing {
        eprintln!(
            "missing key: {r} — {n} item{} in {} mailbox{}",
            if *n == 1 { "" } else { "s" },
            boxes.len(),
            if boxes.len() == 1 { "" } else { "es" }
        );
    }
    eprintln!("total: {}; {rate}", total.line());
    let summary = serde_json::json!({
        "command": "scan",
        "trial": cmd.trial,
        "mailboxes": results.iter().map(|r| serde_json::json!({
            "mailbox": r.name, "counts": r.counts, "error": r.fatal,
        })).collect::<Vec<_>>(),
        "missing_keys": missing.iter().map(|(r, (n, b))| serde_json::json!({
            "recipient": r, "items": n, "mailboxes": b,
        })).collect::<Vec<_>>(),
        "counts": total,
        // Mailboxes that could not be read at all: their items are in no count above.
        "mailboxes_failed": fatal,
        "key_files_failed": loaded.failures.iter().map(|f| format!("{}: {}", f.file.display(), f.reason)).collect::<Vec<_>>(),
    });
    if let Err(e) = report.summary(summary) {
        log(&e);
        return EXIT_FATAL;
    }
    if stop.load(Ordering::SeqCst) {
        EXIT_FATAL
    } else if total.bad() || fatal > 0 {
        EXIT_SOME
    } else {
        EXIT_OK
    }
}

fn scan_box(
    ctx: &Ctx<'_>,
    input: &Path,
    trial: bool,
    report: &Report,
    progress: &Progress,
    missing: &Mutex<Missing>,
    stop: &AtomicBool,
) -> BoxResult {
    let name = pipeline::base_name(input).unwrap_or_else(|| input.display().to_string());
    let mut res = BoxResult {
        name: name.clone(),
        counts: Counts::default(),
        fatal: None,
    };
    let opened =
        unseal_mailbox::detect(input).and_then(|f| unseal_mailbox::open(input, f).map(|s| (f, s)));
    let (format, mut source) = match opened {
        Ok(x) => x,
        Err(e) => {
            progress.println(&format!("unseal: {name}: {e}"));
            res.fatal = Some(e.to_string());
            return res;
        }
    };
    let indexed = format == Format::Mbox;
    let mut done = false;
    while !done && !stop.load(Ordering::SeqCst) {
        let mut batch: Vec<Item> = Vec::new();
        while batch.len() < BATCH {
            match source.next() {
                None => {
                    done = true;
                    break;
                }
                Some(Ok(it)) => batch.push(it),
                Some(Err(e)) => {
                    let id = e.item().to_string();
                    let mut rec = Record::new(
                        &name,
                        &id,
                        crate::report::item_name(&name, &id, indexed),
                        "failed",
                    );
                    rec.reason = Some(pipeline::unread_reason(&e));
                    progress.println(&format!("unseal: {}: failed: {e}", rec.item));
                    res.counts.add("failed");
                    report.item(&rec);
                }
            }
        }
        // One item a piece, as in decrypt: rayon would otherwise fold runs of items on one
        // thread and leave the other idle at the end of each batch.
        let scanned: Vec<Scanned> = batch
            .par_iter()
            .with_max_len(1)
            .map(|it| pipeline::scan_item(ctx, &name, indexed, it, trial))
            .collect();
        for (it, s) in batch.iter().zip(scanned) {
            progress.item(it.bytes().len() as u64);
            res.counts.add(&s.record.status);
            if matches!(s.record.status.as_str(), "failed")
                || (ctx.verbose > 0 && s.record.status == "no_key")
            {
                progress.println(&format!(
                    "unseal: {}: {}: {}",
                    s.record.item,
                    s.record.status,
                    s.record.reason.as_deref().unwrap_or("")
                ));
            }
            if !s.missing.is_empty()
                && let Ok(mut m) = missing.lock()
            {
                for r in s.missing {
                    let e = m.entry(r).or_default();
                    e.0 += 1;
                    e.1.insert(name.clone());
                }
            }
            report.item(&s.record);
        }
    }
    report.flush();
    res
}
