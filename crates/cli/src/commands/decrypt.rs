//! `unseal decrypt`: every INPUT into DIR/B, a few mailboxes at once and their items in parallel,
//! resumable.
//! With `--in-place --backup DIR`: the original is copied to the backup (hash checked), the
//! output is produced beside the original and renamed over it.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use unseal_mailbox::{Format, OutFormat};

use crate::args::{DecryptCmd, OutFormatArg};
use crate::pipeline::{self, Counts, Ctx, MailboxJob, MailboxResult, Shared};
use crate::progress::Progress;
use crate::report::Record;
use crate::{EXIT_FATAL, EXIT_OK, EXIT_SOME, commands::keys, log};

/// MIME nesting still followed: multiparts, forwarded messages, signatures and envelopes each
/// count one level. A forward of a forward of a signed, encrypted message is already about ten
/// deep; beyond this an item fails with a `limit` error (and is never called safe).
pub const MAX_DEPTH: usize = 32;

fn out_format(arg: Option<OutFormatArg>, f: Format) -> Result<OutFormat, String> {
    match (arg, f) {
        (None, f) => Ok(OutFormat::for_input(f)),
        (Some(OutFormatArg::Mbox), Format::Pst) => Ok(OutFormat::MboxPerFolder),
        (Some(OutFormatArg::Mbox), _) => Ok(OutFormat::Mbox),
        (Some(OutFormatArg::Maildir), Format::Maildir | Format::Pst) => Ok(OutFormat::Maildir),
        (Some(OutFormatArg::Maildir), _) => {
            Err("--out-format maildir needs a Maildir or PST input".into())
        }
    }
}

/// One input, prepared: either a job or the reason it cannot run.
struct Prepared {
    job: Result<MailboxJob, String>,
    name: String,
    in_place: Option<InPlace>,
}

struct InPlace {
    original: PathBuf,
    backup: PathBuf,
    /// Hashes of the original's files (relative path -> sha256), checked again before replacing.
    hashes: Vec<(PathBuf, String)>,
}

pub fn run(cmd: &DecryptCmd, verbose: u8, stop: &AtomicBool) -> i32 {
    if let Some(n) = cmd.jobs
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
    {
        log(&format!("--jobs: {e}"));
    }
    let loaded = match keys::load(&cmd.keys, verbose) {
        Ok(l) => l,
        Err(e) => {
            log(&e);
            return EXIT_FATAL;
        }
    };
    if loaded.ring.keys().is_empty() {
        log("no usable key loaded: nothing can be decrypted (give --key FILE or --keys DIR)");
        return EXIT_FATAL;
    }
    let journal_root = match (&cmd.out, &cmd.backup) {
        (Some(o), _) => o.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => {
            log("--out DIR is required");
            return EXIT_FATAL;
        }
    };
    // Before anything is written: a folder this run writes must not lie inside any input, or
    // the other inputs' decrypted copies (and journals) would land in that input.
    for (what, dir) in [
        ("--out", cmd.out.as_ref()),
        ("--backup", cmd.backup.as_ref()),
    ] {
        let Some(dir) = dir else { continue };
        if let Some(input) = cmd.inputs.iter().find(|i| i.is_dir() && inside(dir, i)) {
            log(&format!(
                "{what} {} is inside the input {}: decrypted mail would be written into an input; choose a folder outside every input",
                dir.display(),
                input.display()
            ));
            return EXIT_FATAL;
        }
    }
    if let Err(e) = unseal_mailbox::atomic::create_dir_all_private(&journal_root) {
        log(&format!("{}: cannot create: {e}", journal_root.display()));
        return EXIT_FATAL;
    }
    if let Some(b) = &cmd.backup
        && let Err(e) = unseal_mailbox::atomic::create_dir_all_private(b)
    {
        log(&format!(
            "{}: cannot create backup folder: {e}",
            b.display()
        ));
        return EXIT_FATAL;
    }
    let (report, dec) = match super::report_and_decryptor(
        &loaded.ring,
        cmd.report.as_deref(),
        cmd.try_all_keys,
        // Large AuthEnvelopedData plaintext waits for its tag in the output folder.
        Some(&journal_root),
    ) {
        Ok(x) => x,
        Err(e) => {
            log(&e);
            return EXIT_FATAL;
        }
    };
    let ctx = Ctx::new(
        &dec,
        !cmd.no_trace_header,
        verbose,
        cmd.try_all_keys,
        cmd.stream_above,
    );

    // The same input named twice (`/srv/mail/*` and `/srv/mail/alice`) is decrypted once.
    let mut given = HashSet::new();
    let inputs: Vec<PathBuf> = cmd
        .inputs
        .iter()
        .filter(|input| {
            let first = given.insert(std::fs::canonicalize(input).unwrap_or(input.to_path_buf()));
            if !first {
                log(&format!(
                    "{}: given more than once; decrypted once",
                    input.display()
                ));
            }
            first
        })
        .cloned()
        .collect();
    let mut seen = HashSet::new();
    let prepared: Vec<Prepared> = inputs
        .iter()
        .map(|input| prepare(cmd, input, &journal_root, &mut seen))
        .collect();

    let progress = Progress::new(pipeline::total_size(&inputs), "decrypt");
    let shared = Shared {
        ctx: &ctx,
        report: &report,
        progress: &progress,
        stop,
    };
    let results = run_all(prepared, &shared);
    let rate = progress.finish();

    let mut total = Counts::default();
    let mut failed_boxes = Vec::new();
    let mut interrupted = false;
    let mut keys_used = BTreeSet::new();
    for r in &results {
        total.merge(&r.counts);
        keys_used.extend(r.keys_used.iter().cloned());
        interrupted |= r.interrupted;
        let mut line = format!("{}: {}", r.name, r.counts.line());
        if let Some(o) = &r.output {
            line.push_str(&format!(" -> {}", o.display()));
        }
        if let Some(f) = &r.fatal {
            line.push_str(&format!("; STOPPED: {f}"));
            failed_boxes.push(r.name.clone());
            let mut rec = Record::new(&r.name, "", r.name.clone(), "failed");
            rec.reason = Some(f.clone());
            report.item(&rec);
        }
        if r.interrupted {
            line.push_str("; interrupted (run the same command again to continue)");
        }
        eprintln!("{line}");
    }
    for f in &loaded.failures {
        let mut rec = Record::new("", "", f.file.display().to_string(), "failed");
        rec.reason = Some(format!("key file: {}", f.reason));
        report.item(&rec);
    }
    eprintln!(
        "total: {} mailboxes, {}; {rate}",
        results.len(),
        total.line()
    );
    let summary = serde_json::json!({
        "command": "decrypt",
        "mailboxes": results.iter().map(|r| serde_json::json!({
            "mailbox": r.name,
            "counts": r.counts,
            "output": r.output.as_ref().map(|o| o.display().to_string()),
            "error": r.fatal,
            "interrupted": r.interrupted,
        })).collect::<Vec<_>>(),
        "counts": total,
        // Mailboxes stopped by an error of their own: their remaining items are in no count.
        "mailboxes_failed": failed_boxes.len(),
        "keys_used": keys_used,
        "key_files_failed": loaded.failures.iter().map(|f| format!("{}: {}", f.file.display(), f.reason)).collect::<Vec<_>>(),
        "interrupted": interrupted,
    });
    if let Err(e) = report.summary(summary) {
        log(&e);
        return EXIT_FATAL;
    }
    if interrupted {
        log("interrupted: the journal is consistent; run the same command again to continue");
        EXIT_FATAL
    } else if total.bad() || !failed_boxes.is_empty() {
        EXIT_SOME
    } else {
        EXIT_OK
    }
}

fn prepare(
    cmd: &DecryptCmd,
    input: &Path,
    journal_root: &Path,
    seen: &mut HashSet<String>,
) -> Prepared {
    let name = pipeline::base_name(input).unwrap_or_else(|| input.display().to_string());
    let fail = |name: &str, e: String| Prepared {
        job: Err(e),
        name: name.to_string(),
        in_place: None,
    };
    let format = match unseal_mailbox::detect(input) {
        Ok(f) => f,
        Err(e) => return fail(&name, e.to_string()),
    };
    let of = match out_format(cmd.out_format, format) {
        Ok(f) => f,
        Err(e) => return fail(&name, e),
    };
    // Two inputs must not write the same output: `a.p7m` and `a.eml` both become `a.eml`.
    let out_name = if of == OutFormat::File {
        unseal_mailbox::single::output_name(Path::new(&name))
            .to_string_lossy()
            .into_owned()
    } else {
        name.clone()
    };
    if !seen.insert(out_name.clone()) {
        return fail(
            &name,
            format!(
                "{}: another input also writes {out_name}; decrypt it in a separate run or --out",
                input.display()
            ),
        );
    }
    // A single file's output must not replace a file this run did not write before (with --out
    // pointing at the input's own folder, `a.p7m` would otherwise overwrite an original `a.eml`).
    if of == OutFormat::File
        && let Some(out) = &cmd.out
        && !cmd.in_place
        && out.join(&out_name).exists()
        && !crate::journal::path_for(journal_root, &name).exists()
    {
        return fail(
            &name,
            format!(
                "{}: {} exists and is not the output of an earlier run; refusing to overwrite it",
                input.display(),
                out.join(&out_name).display()
            ),
        );
    }
    let (out_root, in_place) = if cmd.in_place {
        let Some(backup) = cmd.backup.as_ref() else {
            return fail(&name, "--in-place needs --backup DIR".into());
        };
        if format == Format::Pst {
            return fail(
                &name,
                "--in-place cannot replace a PST file; use --out".into(),
            );
        }
        let parent = input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = parent.join(format!(".unseal-inplace-{name}"));
        let jpath = crate::journal::path_for(journal_root, &name);
        let this_input = crate::journal::input_identity(input).0;
        if crate::journal::Journal::read(&jpath)
            .is_ok_and(|j| j.complete && j.input_path.as_ref().is_none_or(|p| *p == this_input))
        {
            // Replaced by an earlier run: the original is already the decrypted copy.
            return Prepared {
                job: Ok(MailboxJob {
                    input: input.to_path_buf(),
                    name: name.clone(),
                    format,
                    out_format: of,
                    out_root: tmp,
                    journal_root: journal_root.to_path_buf(),
                    defer_complete: false,
                    replaced: true,
                }),
                name,
                in_place: None,
            };
        }
        match make_backup(input, &backup.join(&name)) {
            Ok(hashes) => (
                tmp,
                Some(InPlace {
                    original: input.to_path_buf(),
                    backup: backup.join(&name),
                    hashes,
                }),
            ),
            Err(e) => return fail(&name, format!("backup failed, original left alone: {e}")),
        }
    } else {
        match &cmd.out {
            Some(o) => (o.clone(), None),
            None => return fail(&name, "--out DIR is required".into()),
        }
    };
    Prepared {
        job: Ok(MailboxJob {
            input: input.to_path_buf(),
            name: name.clone(),
            format,
            out_format: of,
            out_root,
            journal_root: journal_root.to_path_buf(),
            defer_complete: in_place.is_some(),
            replaced: false,
        }),
        name,
        in_place,
    }
}

/// Whether `path` is `dir` or below it, comparing absolute paths with symbolic links resolved
/// as far as they exist (`path` may not exist yet).
fn inside(path: &Path, dir: &Path) -> bool {
    fn resolve(p: &Path) -> PathBuf {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut missing = Vec::new();
        let mut cur = abs.as_path();
        loop {
            if let Ok(c) = std::fs::canonicalize(cur) {
                return missing.iter().rev().fold(c, |acc, part| acc.join(part));
            }
            match (cur.parent(), cur.file_name()) {
                (Some(parent), Some(name)) => {
                    missing.push(name.to_os_string());
                    cur = parent;
                }
                _ => return abs,
            }
        }
    }
    resolve(path).starts_with(resolve(dir))
}

/// At most this many mailboxes are decrypted at once. Each one's items already spread over every
/// pool thread; a few at once keep the pool busy through the start and end of small mailboxes
/// (small first batches, the last fsync) while bounding the batches held in memory.
const MAX_MAILBOXES_AT_ONCE: usize = 4;

/// Runs every mailbox, a few at once, each on a thread of its own rather than on the rayon pool:
/// a mailbox's loop waits (plain `join`s) for its writer and for the thread that hands its batch
/// to the pool. A pool thread waiting so runs no pool work, so with as many mailboxes as pool
/// threads nothing would be left to decrypt their batches (a `decrypt` of two mailboxes on two
/// cores hung this way). Results come back in input order.
fn run_all(prepared: Vec<Prepared>, sh: &Shared<'_>) -> Vec<MailboxResult> {
    let n = prepared.len();
    let width = rayon::current_num_threads()
        .clamp(1, MAX_MAILBOXES_AT_ONCE)
        .min(n);
    let queue = Mutex::new(prepared.into_iter().enumerate());
    let done = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..width {
            scope.spawn(|| {
                loop {
                    // A panic elsewhere poisons the lock; the queue itself is still sound.
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((i, p)) = next else { break };
                    let r = run_one(p, sh);
                    done.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

fn run_one(p: Prepared, sh: &Shared<'_>) -> MailboxResult {
    let job = match p.job {
        Ok(j) => j,
        Err(e) => {
            sh.progress.println(&format!("unseal: {}: {e}", p.name));
            return MailboxResult {
                name: p.name,
                counts: Counts::default(),
                fatal: Some(e),
                output: None,
                interrupted: false,
                keys_used: BTreeSet::new(),
            };
        }
    };
    let mut res = pipeline::run_mailbox(&job, sh);
    if let Some(ip) = p.in_place
        && res.fatal.is_none()
        && !res.interrupted
        && let Some(out) = res.output.clone()
        && out.exists()
    {
        match replace(&ip, &out, &job.out_root) {
            Ok(final_path) => {
                if let Err(e) = pipeline::mark_complete(&job.journal_root, &job.name, &final_path) {
                    res.fatal = Some(e);
                }
                res.output = Some(final_path);
            }
            Err(e) => res.fatal = Some(format!("in-place replace failed, original kept: {e}")),
        }
    }
    if let Some(e) = &res.fatal {
        sh.progress.println(&format!("unseal: {}: {e}", res.name));
    }
    res
}

/// Every regular file under `p` (or `p` itself), relative path -> sha256.
fn hash_tree(p: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(p).sort_by_file_name() {
        let e = e.map_err(|e| e.to_string())?;
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(p)
                .unwrap_or(Path::new(""))
                .to_path_buf();
            out.push((rel, sha256_file(e.path())?));
        }
    }
    Ok(out)
}

/// A file's SHA-256, read in pieces (an mbox can be larger than memory).
fn sha256_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h =
        crate::uc::provider::default_provider().hasher(crate::uc::provider::HashAlg::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::report::hex(&h.finish()))
}

/// Copies `input` to `dest` (file or tree) and checks every file's hash. Never overwrites a
/// backup file that differs from the original (that would destroy the only encrypted copy).
fn make_backup(input: &Path, dest: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let orig = hash_tree(input)?;
    // A killed earlier backup may have left partial copies: in the folder's copy, or beside the
    // file's.
    let (leftovers, depth) = if input.is_dir() {
        (dest, usize::MAX)
    } else {
        (dest.parent().unwrap_or(dest), 1)
    };
    unseal_mailbox::atomic::remove_stale_temps(leftovers, depth)
        .map_err(|e| format!("{}: cannot remove partial copies: {e}", leftovers.display()))?;
    let existing: std::collections::HashMap<PathBuf, String> = if dest.exists() {
        hash_tree(dest)?.into_iter().collect()
    } else {
        Default::default()
    };
    for (rel, hash) in &orig {
        match existing.get(rel) {
            Some(h) if h == hash => continue,
            Some(_) => {
                return Err(format!(
                    "{}: a different file is already in the backup; move it away first",
                    dest.join(rel).display()
                ));
            }
            None => {}
        }
        let (src, target) = if rel.as_os_str().is_empty() {
            (input.to_path_buf(), dest.to_path_buf())
        } else {
            (input.join(rel), dest.join(rel))
        };
        if let Some(dir) = target.parent() {
            unseal_mailbox::atomic::create_dir_all_private(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        // Streamed, with the original's modification time: the backup is the original as it was.
        let mtime = std::fs::metadata(&src).and_then(|m| m.modified()).ok();
        let mut from = std::fs::File::open(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let mut fill =
            |w: &mut (dyn std::io::Write + Send)| -> Result<(), unseal_mailbox::FillError> {
                std::io::copy(&mut from, w)?;
                Ok(())
            };
        unseal_mailbox::atomic::write_atomic_streamed(&target, mtime, &mut fill)
            .map_err(|e| format!("{}: {e}", target.display()))?
            .map_err(|e| format!("{}: {e}", src.display()))?;
    }
    // Folders too, empty ones included: a Maildir's empty new/ and tmp/ make it a Maildir.
    if input.is_dir() {
        for e in walkdir::WalkDir::new(input).min_depth(1) {
            let e = e.map_err(|e| e.to_string())?;
            if e.file_type().is_dir()
                && let Ok(rel) = e.path().strip_prefix(input)
            {
                let d = dest.join(rel);
                unseal_mailbox::atomic::create_dir_all_private(&d)
                    .map_err(|err| format!("{}: {err}", d.display()))?;
            }
        }
    }
    let copy: std::collections::HashMap<PathBuf, String> = hash_tree(dest)?.into_iter().collect();
    if orig.iter().any(|(rel, h)| copy.get(rel) != Some(h)) {
        return Err(format!(
            "{}: the copy does not match the original",
            dest.display()
        ));
    }
    Ok(orig)
}

/// Puts the decrypted output in the original's place.
fn replace(ip: &InPlace, out: &Path, tmp_root: &Path) -> Result<PathBuf, String> {
    // The backup must still match the original as it is now.
    let now = hash_tree(&ip.original)?;
    let backup: std::collections::HashMap<PathBuf, String> =
        hash_tree(&ip.backup)?.into_iter().collect();
    if now != ip.hashes || ip.hashes.iter().any(|(rel, h)| backup.get(rel) != Some(h)) {
        return Err("original or backup changed since the backup was made".into());
    }
    let parent = ip
        .original
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let final_path = if ip.original.is_dir() {
        let name = ip
            .original
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let old = parent.join(format!(".unseal-old-{name}"));
        std::fs::rename(&ip.original, &old)
            .map_err(|e| format!("{}: {e}", ip.original.display()))?;
        if let Err(e) = std::fs::rename(out, &ip.original) {
            let _ = std::fs::rename(&old, &ip.original);
            return Err(format!("{}: {e}", ip.original.display()));
        }
        std::fs::remove_dir_all(&old).map_err(|e| format!("{}: {e}", old.display()))?;
        ip.original.clone()
    } else {
        // Single file or mbox: an atomic rename; the name may change (.msg -> .eml, x.p7m -> x).
        let target = parent.join(out.file_name().unwrap_or_default());
        unseal_mailbox::atomic::rename_durable(out, &target)
            .map_err(|e| format!("{}: {e}", target.display()))?;
        if target != ip.original {
            std::fs::remove_file(&ip.original)
                .map_err(|e| format!("{}: {e}", ip.original.display()))?;
        }
        target
    };
    let _ = unseal_mailbox::atomic::fsync_dir(parent);
    let _ = std::fs::remove_dir_all(tmp_root);
    Ok(final_path)
}
