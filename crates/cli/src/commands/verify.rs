//! `unseal verify`: for every item of every INPUT, DIR must hold its counterpart: encrypted items
//! decrypted (no envelope left, hash as journaled), plain items unchanged. Prints the verdict in
//! words and names every item that is missing or wrong.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use unseal_mailbox::{Format, Item, ItemKind, Location};

use crate::args::VerifyCmd;
use crate::journal::{self, Journal};
use crate::report::{Record, Report, item_name, sha256_hex};
use crate::uc::Decryptor;
use crate::uc::mime::{self, MessageOptions};
use crate::{EXIT_FATAL, EXIT_OK, EXIT_SOME, log};

#[derive(Default, serde::Serialize, Clone)]
struct VCounts {
    items: u64,
    ok: u64,
    missing: u64,
    mismatch: u64,
    undecrypted: u64,
    /// Decrypted copies whose hash no journal recorded: present, but not proven.
    unchecked: u64,
    /// Items that were encrypted in the input (and are ok, or not).
    encrypted: u64,
}

fn opts() -> MessageOptions {
    MessageOptions {
        trace_header: false,
        max_depth: crate::commands::decrypt::MAX_DEPTH,
        timestamp: String::new(),
    }
}

/// Whether bytes still hold an envelope (an error while looking counts as "yes": unproven).
fn has_envelope(kind: ItemKind, bytes: &[u8]) -> bool {
    let run = || match kind {
        ItemKind::Passthrough => {
            crate::pipeline::hidden_envelope(bytes).is_some()
                || crate::pipeline::sealed_archive(bytes).is_some()
        }
        ItemKind::Cms => {
            let cms = crate::pipeline::cms_bytes(bytes);
            match Decryptor::inspect_cms(&cms) {
                // SignedData (or other CMS) around an envelope: still encrypted.
                Err(e) if e.kind() == "not_enveloped" => {
                    crate::pipeline::envelope_in_unenveloped(&cms).is_some()
                }
                _ => true,
            }
        }
        ItemKind::Message => {
            crate::pipeline::compressed_message(bytes).is_some()
                || mime::find_envelopes(bytes, &opts()).map_or(true, |v| !v.is_empty())
        }
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or(true)
}

/// The key that pairs an input item with its output item.
fn match_key(item: &Item) -> String {
    match &item.meta.location {
        Location::Tree { rel_path } => rel_path.to_string_lossy().replace('\\', "/"),
        Location::File { .. } => String::new(),
        Location::Pst {
            folder_path,
            node_id,
            ..
        } => format!(
            "{}#N{node_id}",
            unseal_mailbox::maildir::pst_folder_name(folder_path)
        ),
        Location::Maildir(m) => {
            // PST output: "<secs>.N<node>.unseal:2,<flags>" in folder m.folder.
            if let Some(rest) = m.name.split_once(".N").map(|(_, r)| r)
                && let Some((node, _)) = rest.split_once(".unseal")
                && node.bytes().all(|b| b.is_ascii_digit())
            {
                return format!("{}#N{node}", m.folder);
            }
            // A message a mail client has since moved from new/ to cur/ or flagged is still
            // the same message.
            m.identity().unwrap_or_else(|| item.id.clone())
        }
        _ => item.id.clone(),
    }
}

struct OutItem {
    sha256: String,
    envelope: bool,
}

/// Where decrypt put INPUT's output under `out`.
fn output_path(input: &Path, name: &str, format: Format, out: &Path, jr: &Journal) -> PathBuf {
    let default = match format {
        Format::Eml | Format::P7m | Format::Msg => {
            out.join(unseal_mailbox::single::output_name(Path::new(name)))
        }
        Format::Pst => out.join(input.file_stem().unwrap_or_default()),
        _ => out.join(name),
    };
    if !default.exists()
        && let Some(p) = jr.final_output.as_ref().or(jr.output.as_ref())
    {
        return PathBuf::from(p);
    }
    default
}

fn index_output(
    path: &Path,
    single_kind: Option<ItemKind>,
) -> Result<HashMap<String, OutItem>, String> {
    let mut map = HashMap::new();
    if let Some(kind) = single_kind {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // A decrypted .p7m is its content (anything): still encrypted if it is a .p7m again,
        // a message with an envelope, or anything else in which one shows.
        let env = match kind {
            ItemKind::Cms => {
                matches!(unseal_mailbox::detect(path), Ok(Format::P7m))
                    || (unseal_mailbox::detect::looks_like_headers(&data)
                        && has_envelope(ItemKind::Message, &data))
                    || crate::pipeline::envelope_in(&data).is_some()
            }
            k => has_envelope(k, &data),
        };
        map.insert(
            String::new(),
            OutItem {
                sha256: sha256_hex(&data),
                envelope: env,
            },
        );
        return Ok(map);
    }
    let format = unseal_mailbox::detect(path).map_err(|e| e.to_string())?;
    let source = unseal_mailbox::open(path, format).map_err(|e| e.to_string())?;
    for it in source {
        let it = it.map_err(|e| format!("output unreadable: {e}"))?;
        let kind = it.kind;
        map.insert(
            match_key(&it),
            OutItem {
                sha256: sha256_hex(it.bytes()),
                envelope: has_envelope(kind, it.bytes()),
            },
        );
    }
    Ok(map)
}

pub fn run(cmd: &VerifyCmd, _verbose: u8) -> i32 {
    let report = match Report::create(cmd.report.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            log(&e);
            return EXIT_FATAL;
        }
    };
    let mut total = VCounts::default();
    let mut keys = BTreeSet::new();
    let mut problems: Vec<String> = Vec::new();
    let mut per_box = Vec::new();
    for input in &cmd.inputs {
        let name = crate::pipeline::base_name(input).unwrap_or_else(|| input.display().to_string());
        let mut c = VCounts::default();
        match verify_box(
            input,
            &name,
            &cmd.out,
            cmd.journal.as_deref(),
            &report,
            &mut c,
            &mut keys,
            &mut problems,
        ) {
            Ok(()) => {}
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                let mut rec = Record::new(&name, "", name.clone(), "missing");
                rec.reason = Some(e.clone());
                report.item(&rec);
                c.missing += 1;
                c.items += 1;
            }
        }
        eprintln!(
            "{name}: {} items: {} ok, {} missing, {} changed, {} still encrypted, {} unchecked",
            c.items, c.ok, c.missing, c.mismatch, c.undecrypted, c.unchecked
        );
        total.items += c.items;
        total.ok += c.ok;
        total.missing += c.missing;
        total.mismatch += c.mismatch;
        total.undecrypted += c.undecrypted;
        total.unchecked += c.unchecked;
        total.encrypted += c.encrypted;
        per_box.push(serde_json::json!({ "mailbox": name, "counts": c }));
    }
    let safe = problems.is_empty();
    for p in &problems {
        println!("NOT OK: {p}");
    }
    let verdict = if safe {
        if total.encrypted == 0 {
            "safe: every item is present and readable (no encrypted item found, no key needed)"
                .to_string()
        } else if keys.is_empty() {
            format!(
                "safe: all {} encrypted items have their checked decrypted copies (the journal \
                 names no key)",
                total.encrypted
            )
        } else {
            format!(
                "safe to destroy the keys used for: {}",
                keys.iter().cloned().collect::<Vec<_>>().join("; ")
            )
        }
    } else {
        format!(
            "NOT safe to destroy the keys: {} missing, {} changed, {} still encrypted, {} \
             unchecked (listed above)",
            total.missing, total.mismatch, total.undecrypted, total.unchecked
        )
    };
    println!("{verdict}");
    let summary = serde_json::json!({
        "command": "verify",
        "mailboxes": per_box,
        "counts": total,
        "safe": safe,
        "keys_used": keys,
        "verdict": verdict,
    });
    if let Err(e) = report.summary(summary) {
        log(&e);
        return EXIT_FATAL;
    }
    if safe { EXIT_OK } else { EXIT_SOME }
}

/// The journal of INPUT's decrypt run, read without changing it: in `--journal DIR` when given,
/// else in `out`, else beside INPUT (`--in-place` runs without `--out` keep it in the backup
/// folder, beside the original copy). None found is an empty journal: every decrypted copy is
/// then `unchecked`. A journal written for another input is an error.
fn find_journal(
    input: &Path,
    name: &str,
    out: &Path,
    journal_dir: Option<&Path>,
) -> Result<Journal, String> {
    let candidates: Vec<PathBuf> = match journal_dir {
        Some(d) => vec![journal::path_for(d, name)],
        None => std::iter::once(journal::path_for(out, name))
            .chain(input.parent().map(|p| journal::path_for(p, name)))
            .collect(),
    };
    let Some(path) = candidates.iter().find(|p| p.exists()) else {
        return Journal::read_only(&candidates[0]);
    };
    let jr = Journal::read_only(path)?;
    // The input decrypt read: this one, or (after --in-place) the original that the backup
    // given here was copied from, which now holds the output.
    if let Some(recorded) = &jr.input_path {
        let this = journal::input_identity(input).0;
        let original = journal::input_identity(&out.join(name)).0;
        if *recorded != this && *recorded != original {
            return Err(format!(
                "{}: the journal there was written for another input, {recorded}; its hashes \
                 say nothing about {}",
                path.display(),
                input.display()
            ));
        }
    }
    Ok(jr)
}

#[allow(clippy::too_many_arguments)]
fn verify_box(
    input: &Path,
    name: &str,
    out: &Path,
    journal_dir: Option<&Path>,
    report: &Report,
    c: &mut VCounts,
    keys: &mut BTreeSet<String>,
    problems: &mut Vec<String>,
) -> Result<(), String> {
    let format = unseal_mailbox::detect(input).map_err(|e| e.to_string())?;
    let jr = find_journal(input, name, out, journal_dir)?;
    let out_path = output_path(input, name, format, out, &jr);
    if !out_path.exists() {
        return Err(format!("no output at {}", out_path.display()));
    }
    if format == Format::Pst && out_path.is_dir() && !unseal_mailbox::maildir::is_maildir(&out_path)
    {
        // One mbox per folder: its messages carry no node id to pair them with the PST's.
        return Err(format!(
            "{} holds one mbox per folder (--out-format mbox), which verify cannot pair with the \
             PST's messages yet; decrypt the PST again into another --out without --out-format \
             and verify that",
            out_path.display()
        ));
    }
    let single = match format {
        Format::Eml | Format::Msg => Some(ItemKind::Message),
        Format::P7m => Some(ItemKind::Cms),
        _ => None,
    };
    let outputs = index_output(&out_path, single)?;
    let indexed = format == Format::Mbox;
    // Journaled Maildir messages by identity, for those renamed since they were decrypted.
    let renamed = if format == Format::Maildir {
        jr.maildir_identities()
    } else {
        HashMap::new()
    };
    let source = unseal_mailbox::open(input, format).map_err(|e| e.to_string())?;
    for it in source {
        let it = match it {
            Ok(it) => it,
            Err(e) => {
                // A mailbox inside a folder was not decrypted with it; anything else could not
                // be read. Either way the copy is not proven.
                let nested = matches!(e, unseal_mailbox::Error::Unsupported { .. });
                let (status, reason) = if nested {
                    ("undecrypted", e.to_string())
                } else {
                    ("missing", format!("input unreadable: {e}"))
                };
                let id = e.item().to_string();
                let mut rec = Record::new(name, &id, item_name(name, &id, indexed), status);
                rec.reason = Some(reason.clone());
                report.item(&rec);
                problems.push(format!("{}: {status}: {reason}", rec.item));
                c.items += 1;
                if nested {
                    c.undecrypted += 1;
                } else {
                    c.missing += 1;
                }
                continue;
            }
        };
        c.items += 1;
        let bytes = it.bytes();
        let sha_in = sha256_hex(bytes);
        let mut rec = Record::new(name, &it.id, item_name(name, &it.id, indexed), "ok");
        rec.bytes_in = Some(bytes.len() as u64);
        rec.sha256_in = Some(sha_in.clone());
        let encrypted = has_envelope(it.kind, bytes);
        let entry = jr
            .entries
            .get(&it.id)
            .or_else(|| Some(jr.renamed_entry(&renamed, &it.meta.location)?.1));
        let key = if single.is_some() {
            String::new()
        } else {
            match_key(&it)
        };
        let (status, reason) = match outputs.get(&key) {
            None => ("missing", "no output counterpart".to_string()),
            Some(o) => {
                rec.sha256_out = Some(o.sha256.clone());
                if encrypted {
                    if o.envelope || o.sha256 == sha_in {
                        (
                            "undecrypted",
                            "the output still holds an envelope".to_string(),
                        )
                    } else if let Some(e) = entry {
                        if e.status != "decrypted" {
                            ("undecrypted", format!("decrypt reported {}", e.status))
                        } else if e.sha256_out.is_none() || e.sha256_in.is_none() {
                            (
                                "unchecked",
                                "the journal line records no hash for it".to_string(),
                            )
                        } else if e.sha256_out.as_deref().is_some_and(|h| h != o.sha256) {
                            (
                                "mismatch",
                                "output differs from what decrypt wrote".to_string(),
                            )
                        } else if e.sha256_in.as_deref().is_some_and(|h| h != sha_in) {
                            (
                                "mismatch",
                                "input changed since it was decrypted".to_string(),
                            )
                        } else {
                            if let Some(k) = &e.record.key {
                                keys.insert(k.clone());
                            }
                            ("ok", String::new())
                        }
                    } else {
                        (
                            "unchecked",
                            "decrypted copy present, but no journal records its hash, so it is \
                             not proven to be what decrypt wrote (give --journal DIR, or decrypt \
                             again)"
                                .to_string(),
                        )
                    }
                } else if o.sha256 == sha_in {
                    ("ok", String::new())
                } else {
                    ("mismatch", "plain item changed in the output".to_string())
                }
            }
        };
        rec.status = status.into();
        if !reason.is_empty() {
            rec.reason = Some(reason.clone());
        }
        if encrypted {
            c.encrypted += 1;
        }
        match status {
            "ok" => c.ok += 1,
            "missing" => c.missing += 1,
            "mismatch" => c.mismatch += 1,
            "unchecked" => c.unchecked += 1,
            _ => c.undecrypted += 1,
        }
        if status != "ok" {
            problems.push(format!("{}: {status}: {reason}", rec.item));
        }
        report.item(&rec);
    }
    Ok(())
}
