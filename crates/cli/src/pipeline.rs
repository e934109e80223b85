//! Orchestration: one item through the library (decrypt or scan), and one mailbox through
//! source -> parallel batches -> ordered sink -> journal. The cryptography and the MIME work
//! live in unseal-core, the containers in unseal-mailbox.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use unseal_mailbox::{Error as MailboxError, Format, Item, ItemKind, OutFormat};

use crate::journal::{self, Journal, Line};
use crate::progress::Progress;
use crate::report::{Record, Report, hex, item_name, sha256_hex};
use crate::uc::cms::RecipientId;
use crate::uc::mime::{self, MessageOptions};
use crate::uc::{Decryptor, Error, LayerInfo};

/// A batch is processed in parallel, then written in order; bounded by bytes and by count so a
/// mailbox is never read far ahead. Batches start small, so that writing starts early and the
/// pipeline fills fast, and grow: each batch ends on a barrier (the last item's private-key
/// operation runs while other pool threads wait), which costs less the larger the batch.
const BATCH_BYTES: usize = 16 << 20;
const BATCH_ITEMS_FIRST: usize = 16;
const BATCH_ITEMS: usize = 256;
/// Inputs from this size on are hashed on another thread while they decrypt.
const JOIN_HASH_BYTES: usize = 1 << 20;

pub struct Ctx<'a> {
    pub dec: &'a Decryptor<'a>,
    pub msg_opts: MessageOptions,
    pub verbose: u8,
    /// --try-all-keys: a missing recipient match is not yet a missing key.
    pub try_all: bool,
    /// Report text per recipient, made once (see [`recipient_text`]).
    pub names: std::sync::Mutex<std::collections::HashMap<RecipientId, String>>,
    /// Messages at least this large are decrypted by the writer as a stream, in bounded memory
    /// (see [`stream_item`]), when their shape allows it.
    pub stream_above: u64,
}

impl<'a> Ctx<'a> {
    /// The context of one run; the trace header's time is now.
    pub fn new(
        dec: &'a Decryptor<'a>,
        trace_header: bool,
        verbose: u8,
        try_all: bool,
        stream_above: u64,
    ) -> Self {
        Ctx {
            dec,
            msg_opts: MessageOptions {
                trace_header,
                max_depth: crate::commands::decrypt::MAX_DEPTH,
                timestamp: crate::report::now_rfc2822(),
            },
            verbose,
            try_all,
            names: Default::default(),
            stream_above,
        }
    }
}

/// The DER/BER of a CMS item (its file may hold PEM or base64).
pub fn cms_bytes(input: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    unseal_mailbox::single::decode_cms(input).unwrap_or(std::borrow::Cow::Borrowed(input))
}

pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::Mbox => "mbox",
        Format::Maildir => "maildir",
        Format::EmlTree => "eml-tree",
        Format::Eml => "eml",
        Format::P7m => "p7m",
        Format::Msg => "msg",
        Format::Pst => "pst",
    }
}

/// A recipient as the report shows it: issuer + serial or SKI, and the key's subject if known.
/// How a recipient is named in reports, e.g. `issuer "CN=CA", serial 0x1F (CN=bob)`. Formatting an
/// X.509 name looks every attribute up in the OID table; a mailbox names the same few recipients
/// thousands of times, so the text is made once per recipient and run.
pub fn recipient_text(ctx: &Ctx<'_>, r: &RecipientId) -> String {
    if let Ok(names) = ctx.names.lock()
        && let Some(t) = names.get(r)
    {
        return t.clone();
    }
    let text = match ctx.dec.keys().describe(r) {
        Some(d) => format!("{r} ({d})"),
        None => r.to_string(),
    };
    if let Ok(mut names) = ctx.names.lock() {
        names.insert(r.clone(), text.clone());
    }
    text
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn fill_layers(ctx: &Ctx<'_>, rec: &mut Record, layers: &[&LayerInfo]) {
    let mut ciphers = Vec::new();
    let mut transports = Vec::new();
    let mut keys = Vec::new();
    for l in layers {
        push_unique(&mut ciphers, l.content_cipher.clone());
        push_unique(&mut transports, l.key_transport.clone());
        for r in &l.recipients {
            push_unique(&mut rec.recipients, recipient_text(ctx, r));
        }
        let key = match ctx.dec.keys().describe(&l.used_recipient) {
            Some(d) => format!("{} ({d})", l.key_source),
            None => l.key_source.clone(),
        };
        push_unique(&mut keys, key);
    }
    if !ciphers.is_empty() {
        rec.cipher = Some(ciphers.join(" / "));
        rec.key_transport = Some(transports.join(" / "));
        rec.key = Some(keys.join("; "));
    }
}

/// A new report record for `item`, with its input size.
fn item_record(mailbox: &str, indexed: bool, item: &Item, status: &str) -> Record {
    let mut rec = Record::new(
        mailbox,
        &item.id,
        item_name(mailbox, &item.id, indexed),
        status,
    );
    rec.bytes_in = Some(item.bytes().len() as u64);
    rec
}

/// Status for an error: no_key when no recipient matched, failed otherwise.
fn error_status(e: &Error) -> &'static str {
    if e.kind() == "no_key" {
        "no_key"
    } else {
        "failed"
    }
}

/// The result of one item: the bytes to write (None = the input unchanged) and its record.
pub struct Processed {
    pub body: Option<Vec<u8>>,
    pub record: Record,
    /// A large message left to the writer, which streams it into the sink (see
    /// [`stream_item`]) or else decrypts it in memory then.
    pub deferred: bool,
}

/// Decrypts one item, or defers a large message to the writer.
pub fn process_item(ctx: &Ctx<'_>, mailbox: &str, indexed: bool, item: &Item) -> Processed {
    // Only what may well stream is left to the writer (which handles it alone): a large
    // message that will not (GCM, no top-level envelope) is decrypted here, in parallel.
    if item.kind == ItemKind::Message
        && item.bytes().len() as u64 >= ctx.stream_above
        && crate::uc::stream::plausible(item.bytes())
    {
        let record = item_record(mailbox, indexed, item, "plain");
        return Processed {
            body: None,
            record,
            deferred: true,
        };
    }
    decrypt_item(ctx, mailbox, indexed, item)
}

/// Streams a large message from the input into `sink`: `Ok(Some(record))` when done,
/// `Ok(None)` when the message needs the in-memory path instead (its shape, or streaming
/// failed midway: the sink then holds nothing of it), `Err` when the sink itself failed.
fn stream_item(
    ctx: &Ctx<'_>,
    mailbox: &str,
    indexed: bool,
    sink: &mut dyn unseal_mailbox::Sink,
    item: &Item,
) -> Result<Option<Record>, unseal_mailbox::Error> {
    if !sink.can_stream(&item.meta) {
        return Ok(None);
    }
    let input = item.bytes();
    let prepared = catch_unwind(AssertUnwindSafe(|| {
        crate::uc::stream::prepare(ctx.dec, input)
    }));
    let Ok(Some(job)) = prepared else {
        return Ok(None);
    };
    let mut job = Some(job);
    let mut streamed = None;
    let filled = sink.write_streamed(&item.meta, &mut |w| {
        let job = job.take().ok_or("the stream was already used")?;
        let run = catch_unwind(AssertUnwindSafe(|| {
            job.run(&ctx.msg_opts, w, &mut |r| item.release_pages(r))
        }));
        match run {
            Ok(Ok(done)) => {
                streamed = Some(done);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string().into()),
            Err(_) => Err("internal error while streaming".into()),
        }
    })?;
    let done = match (filled, streamed) {
        (Ok(()), Some(done)) => done,
        (Err(why), _) => {
            if ctx.verbose > 1 {
                eprintln!(
                    "unseal: {}: {why}; decrypting in memory",
                    item_name(mailbox, &item.id, indexed)
                );
            }
            return Ok(None);
        }
        (Ok(()), None) => return Ok(None),
    };
    if ctx.verbose > 1 {
        eprintln!(
            "unseal: {}: decrypted as a stream",
            item_name(mailbox, &item.id, indexed)
        );
    }
    let mut rec = item_record(mailbox, indexed, item, "decrypted");
    fill_layers(ctx, &mut rec, &[&done.layer]);
    rec.bytes_out = Some(done.bytes_out);
    rec.sha256_in = Some(hex(&done.sha256_in));
    rec.sha256_out = Some(hex(&done.sha256_out));
    Ok(Some(rec))
}

/// Where an encrypted envelope shows in bytes that are no message (UTF-16 text, an archive, a
/// uuencoded block, binary or base64 anywhere), in words, with what to do about it.
pub fn envelope_in(bytes: &[u8]) -> Option<String> {
    if let Some(at) = mime::detect::utf16_envelope_at(bytes) {
        return Some(format!(
            "UTF-16 text in which character {at} starts an encrypted CMS envelope; not \
             decrypted (convert it to UTF-8 and run again)"
        ));
    }
    if let Some(kind) = mime::detect::compressed_envelope(bytes) {
        return Some(format!(
            "a {kind} archive whose contents hold an encrypted CMS envelope; not decrypted \
             (extract it and decrypt what it holds)"
        ));
    }
    if let Some(at) = mime::detect::uuencoded_envelope(bytes) {
        return Some(format!(
            "the uuencoded block at byte {at} holds an encrypted CMS envelope; not decrypted"
        ));
    }
    let at = *mime::detect::envelope_markers(bytes).first()?;
    Some(format!(
        "byte {at} holds an encrypted CMS envelope; not decrypted (give the file as an input \
         of its own, or name it .eml or .p7m)"
    ))
}

/// For a file the mailbox does not take as a message (a stray file in a folder of .eml files, a
/// Maildir's bookkeeping): whether its bytes still show an encrypted envelope, which copying it
/// as it is would leave unreadable once the key is gone.
pub fn hidden_envelope(bytes: &[u8]) -> Option<String> {
    let why = envelope_in(bytes)?;
    let join = if why.starts_with("byte ") {
        "but "
    } else if why.starts_with("the ") {
        "and "
    } else {
        ""
    };
    Some(format!("not a message of this mailbox, {join}{why}"))
}

/// A message stored compressed (Dovecot's zlib and mail_compress plugins write Maildir files
/// so): why it cannot pass as plain, or `None` when it is not compressed, or is gzip or zip
/// that was looked into and holds no envelope. unseal does not decompress and recompress mail.
pub fn compressed_message(bytes: &[u8]) -> Option<String> {
    let kind = unseal_mailbox::detect::compression(bytes)?;
    if mime::detect::compressed_envelope(bytes).is_some() {
        return Some(format!(
            "a {kind}-compressed message holding an encrypted envelope; not decrypted (unseal \
             does not decompress mail: decompress the mailbox first, e.g. with Dovecot's \
             compression turned off, then decrypt it)"
        ));
    }
    uninspectable(kind).then(|| {
        format!(
            "a {kind}-compressed message, which unseal cannot look into, so it is not proven \
             plain; not decrypted (decompress the mailbox first, then decrypt it)"
        )
    })
}

/// Compression that [`mime::detect::compressed_envelope`] cannot look into.
fn uninspectable(kind: &str) -> bool {
    !matches!(kind, "gzip" | "zip")
}

/// A file copied as it is that is compressed in a format unseal cannot look into: it may hold
/// encrypted mail, so it is not passed as plain.
pub fn sealed_archive(bytes: &[u8]) -> Option<String> {
    let kind = unseal_mailbox::detect::compression(bytes).filter(|k| uninspectable(k))?;
    Some(format!(
        "a {kind}-compressed file, which unseal cannot look into, so it is not proven free of \
         encrypted mail; copied unchanged (extract it and decrypt what it holds)"
    ))
}

/// A file copied as it is: `skipped` with `reason`, or `failed` when an envelope shows in it.
fn judge_passthrough(rec: &mut Record, input: &[u8], reason: &str) {
    match hidden_envelope(input).or_else(|| sealed_archive(input)) {
        Some(why) => {
            rec.status = "failed".into();
            rec.reason = Some(why);
        }
        None => {
            rec.status = "skipped".into();
            rec.reason = Some(reason.into());
        }
    }
}

/// A .p7m that is CMS but no envelope (SignedData, say): where an envelope shows inside it, as
/// in a message encrypted and then signed. It is not opened (the signature would have to go),
/// so it must not pass as plain.
pub fn envelope_in_unenveloped(cms: &[u8]) -> Option<String> {
    let at = *mime::detect::envelope_markers(cms).first()?;
    Some(format!(
        "byte {at} inside it holds an encrypted CMS envelope (encrypted, then signed?); not \
         decrypted: extract the signed content (`openssl cms -verify -noverify -inform DER -in \
         FILE -out inner.p7m`) and decrypt that"
    ))
}

/// A .p7m's decrypted content that is S/MIME again: a message (encrypted twice, as some
/// gateways do) is decrypted in turn, its layers reported after the outer one; any other
/// content in which an envelope still shows fails, since it would pass as decrypted with that
/// envelope shut. Returns the output, `None` (copied unchanged) when it failed.
fn open_nested_content(
    ctx: &Ctx<'_>,
    rec: &mut Record,
    outer: &LayerInfo,
    content: Vec<u8>,
) -> Option<Vec<u8>> {
    fill_layers(ctx, rec, &[outer]);
    rec.status = "decrypted".into();
    // A message is walked whatever it shows on its surface: the walk decodes its parts, where
    // an envelope may sit one encoding deeper (a forwarded S/MIME message as an attachment).
    if !unseal_mailbox::detect::looks_like_headers(&content) {
        return match envelope_in(&content) {
            Some(why) => {
                rec.status = "failed".into();
                rec.reason = Some(format!(
                    "decrypted, but its content still shows an envelope: {why}"
                ));
                None
            }
            None => Some(content),
        };
    }
    let mut opts = ctx.msg_opts.clone();
    opts.max_depth = opts.max_depth.saturating_sub(1);
    match mime::decrypt_message(ctx.dec, &content, &opts) {
        Ok(inner) => {
            if let Some(body) = inner.output {
                let mut layers: Vec<&LayerInfo> = vec![outer];
                layers.extend(inner.layers.iter().map(|l| &l.info));
                fill_layers(ctx, rec, &layers);
                return Some(body);
            }
        }
        Err(e) => {
            rec.status = error_status(&e).into();
            rec.reason = Some(format!(
                "the decrypted content is a message whose own envelope did not open: {e}"
            ));
            return None;
        }
    }
    Some(content)
}

/// Decrypts one item in memory. Never panics outward: a panic in the library becomes a failed
/// item.
pub fn decrypt_item(ctx: &Ctx<'_>, mailbox: &str, indexed: bool, item: &Item) -> Processed {
    let input = item.bytes();
    let rec = item_record(mailbox, indexed, item, "plain");
    let run = || -> (Option<Vec<u8>>, Record) {
        let mut rec = rec.clone();
        match item.kind {
            ItemKind::Passthrough => {
                judge_passthrough(&mut rec, input, "not a message: copied unchanged");
                (None, rec)
            }
            ItemKind::Message if let Some(why) = compressed_message(input) => {
                rec.status = "failed".into();
                rec.reason = Some(why);
                (None, rec)
            }
            ItemKind::Message => match mime::decrypt_message(ctx.dec, input, &ctx.msg_opts) {
                Ok(out) => {
                    let layers: Vec<&LayerInfo> = out.layers.iter().map(|l| &l.info).collect();
                    fill_layers(ctx, &mut rec, &layers);
                    if !out.signatures_removed.is_empty() {
                        rec.reason = Some(format!(
                            "signature removed: {}",
                            out.signatures_removed.join("; ")
                        ));
                    }
                    match out.output {
                        Some(body) => {
                            rec.status = "decrypted".into();
                            (Some(body), rec)
                        }
                        None => (None, rec),
                    }
                }
                Err(e) => {
                    rec.status = error_status(&e).into();
                    rec.reason = Some(e.to_string());
                    if let Ok(envs) = mime::find_envelopes(input, &ctx.msg_opts) {
                        for env in envs {
                            if let Ok(s) = env.summary {
                                if rec.cipher.is_none() {
                                    rec.cipher = Some(s.content_cipher.clone());
                                }
                                for r in &s.recipients {
                                    push_unique(&mut rec.recipients, recipient_text(ctx, r));
                                }
                            }
                        }
                    }
                    (None, rec)
                }
            },
            ItemKind::Cms => {
                let mut buf = Vec::new();
                let cms = cms_bytes(input);
                if let Some(at) = mime::detect::envelope_after_content_info(&cms) {
                    rec.status = "failed".into();
                    rec.reason = Some(mime::walk::second_envelope(at).to_string());
                    return (None, rec);
                }
                match ctx.dec.decrypt_cms_with(&cms, &mut buf, false) {
                    Ok(info) => {
                        let body = open_nested_content(ctx, &mut rec, &info, buf);
                        (body, rec)
                    }
                    Err(e) if e.kind() == "not_enveloped" => {
                        match envelope_in_unenveloped(&cms) {
                            Some(why) => {
                                rec.status = "failed".into();
                                rec.reason = Some(format!("{e}, but {why}"));
                            }
                            None => rec.reason = Some(e.to_string()),
                        }
                        (None, rec)
                    }
                    Err(e) => {
                        rec.status = error_status(&e).into();
                        rec.reason = Some(e.to_string());
                        if let Ok(s) = Decryptor::inspect_cms(&cms_bytes(input)) {
                            rec.cipher = Some(s.content_cipher.clone());
                            for r in &s.recipients {
                                push_unique(&mut rec.recipients, recipient_text(ctx, r));
                            }
                        }
                        (None, rec)
                    }
                }
            }
        }
    };
    // On a large message the input's hash costs as much as the decryption, so it runs beside
    // it. A small one is hashed in line: the batch's other items keep the cores busy.
    let (sha_in, result) = if input.len() >= JOIN_HASH_BYTES {
        rayon::join(|| sha256_hex(input), || catch_unwind(AssertUnwindSafe(run)))
    } else {
        (sha256_hex(input), catch_unwind(AssertUnwindSafe(run)))
    };
    let (body, mut rec) = match result {
        Ok(r) => r,
        Err(_) => {
            let mut r = rec;
            r.status = "failed".into();
            r.reason = Some("internal error while decrypting (copied unchanged)".into());
            (None, r)
        }
    };
    if matches!(rec.status.as_str(), "no_key" | "failed") {
        let why = rec.reason.take().unwrap_or_default();
        rec.reason = Some(format!("{why} (copied unchanged)"));
    }
    let out = body.as_deref().unwrap_or(input);
    rec.bytes_out = Some(out.len() as u64);
    // An item copied unchanged has the input's hash.
    rec.sha256_out = Some(match &body {
        Some(b) => sha256_hex(b),
        None => sha_in.clone(),
    });
    rec.sha256_in = Some(sha_in);
    Processed {
        body,
        record: rec,
        deferred: false,
    }
}

/// Scan result of one item: its record and the recipients without a key.
pub struct Scanned {
    pub record: Record,
    pub missing: Vec<String>,
}

/// Looks at one item without writing anything; with `trial`, decrypts it in memory.
pub fn scan_item(ctx: &Ctx<'_>, mailbox: &str, indexed: bool, item: &Item, trial: bool) -> Scanned {
    let input = item.bytes();
    let mut rec = item_record(mailbox, indexed, item, "plain");
    rec.sha256_in = Some(sha256_hex(input));
    let base = rec.clone();
    let run = || -> Scanned {
        let mut rec = base.clone();
        let mut missing = Vec::new();
        let summaries = match item.kind {
            ItemKind::Passthrough => {
                judge_passthrough(&mut rec, input, "not a message");
                return Scanned {
                    record: rec,
                    missing,
                };
            }
            ItemKind::Message if let Some(why) = compressed_message(input) => {
                rec.status = "failed".into();
                rec.reason = Some(why);
                return Scanned {
                    record: rec,
                    missing,
                };
            }
            ItemKind::Message => match mime::find_envelopes(input, &ctx.msg_opts) {
                Ok(envs) => envs.into_iter().map(|e| e.summary).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            },
            ItemKind::Cms => {
                let cms = cms_bytes(input);
                match mime::detect::envelope_after_content_info(&cms) {
                    Some(at) => vec![Err(mime::walk::second_envelope(at))],
                    None => match Decryptor::inspect_cms(&cms) {
                        Err(e) if e.kind() == "not_enveloped" => {
                            if let Some(why) = envelope_in_unenveloped(&cms) {
                                rec.status = "failed".into();
                                rec.reason = Some(format!("{e}, but {why}"));
                                return Scanned {
                                    record: rec,
                                    missing,
                                };
                            }
                            vec![]
                        }
                        r => vec![r],
                    },
                }
            }
        };
        if summaries.is_empty() {
            return Scanned {
                record: rec,
                missing,
            };
        }
        let mut ciphers = Vec::new();
        let mut all_keyed = true;
        for s in summaries {
            match s {
                Ok(s) => {
                    push_unique(&mut ciphers, s.content_cipher.clone());
                    let keyed = s
                        .recipients
                        .iter()
                        .any(|r| !ctx.dec.keys().lookup(r).is_empty());
                    for r in &s.recipients {
                        push_unique(&mut rec.recipients, recipient_text(ctx, r));
                        if !keyed {
                            push_unique(&mut missing, recipient_text(ctx, r));
                        }
                    }
                    all_keyed &= keyed;
                }
                Err(e) => {
                    rec.status = "failed".into();
                    rec.reason = Some(e.to_string());
                    return Scanned {
                        record: rec,
                        missing,
                    };
                }
            }
        }
        rec.cipher = Some(ciphers.join(" / "));
        rec.status = if all_keyed { "key_found" } else { "no_key" }.into();
        if trial && (all_keyed || ctx.try_all) {
            let res = match item.kind {
                ItemKind::Cms => ctx
                    .dec
                    .decrypt_cms_with(&cms_bytes(input), &mut std::io::sink(), false)
                    .map(|i| vec![i]),
                _ => mime::decrypt_message(ctx.dec, input, &ctx.msg_opts)
                    .map(|o| o.layers.into_iter().map(|l| l.info).collect()),
            };
            match res {
                Ok(layers) => {
                    let refs: Vec<&LayerInfo> = layers.iter().collect();
                    fill_layers(ctx, &mut rec, &refs);
                    rec.status = "decrypted".into();
                    missing.clear();
                }
                Err(e) => {
                    rec.status = error_status(&e).into();
                    rec.reason = Some(format!("trial decryption: {e}"));
                }
            }
        } else if !all_keyed {
            rec.reason = Some("no key for any recipient".into());
        }
        Scanned {
            record: rec,
            missing,
        }
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(s) => s,
        Err(_) => {
            let mut r = rec;
            r.status = "failed".into();
            r.reason = Some("internal error while scanning".into());
            Scanned {
                record: r,
                missing: vec![],
            }
        }
    }
}

/// Counts per status.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct Counts {
    pub items: u64,
    pub decrypted: u64,
    pub plain: u64,
    pub no_key: u64,
    pub failed: u64,
    pub skipped: u64,
    pub key_found: u64,
    pub resumed: u64,
}

impl Counts {
    pub fn add(&mut self, status: &str) {
        self.items += 1;
        match status {
            "decrypted" => self.decrypted += 1,
            "plain" => self.plain += 1,
            "no_key" => self.no_key += 1,
            "skipped" => self.skipped += 1,
            "key_found" => self.key_found += 1,
            _ => self.failed += 1,
        }
    }

    pub fn merge(&mut self, o: &Counts) {
        self.items += o.items;
        self.decrypted += o.decrypted;
        self.plain += o.plain;
        self.no_key += o.no_key;
        self.failed += o.failed;
        self.skipped += o.skipped;
        self.key_found += o.key_found;
        self.resumed += o.resumed;
    }

    pub fn bad(&self) -> bool {
        self.no_key > 0 || self.failed > 0
    }

    pub fn line(&self) -> String {
        let mut s = format!(
            "{} items: {} decrypted, {} plain, {} no key, {} failed",
            self.items, self.decrypted, self.plain, self.no_key, self.failed
        );
        if self.skipped > 0 {
            s.push_str(&format!(", {} other files copied", self.skipped));
        }
        if self.resumed > 0 {
            s.push_str(&format!(" ({} done by an earlier run)", self.resumed));
        }
        s
    }
}

/// One mailbox to decrypt.
pub struct MailboxJob {
    pub input: PathBuf,
    /// B: the input's base name (the journal's and the report's name for it).
    pub name: String,
    pub format: Format,
    pub out_format: OutFormat,
    pub out_root: PathBuf,
    pub journal_root: PathBuf,
    /// In-place runs mark the journal complete only after the original was replaced.
    pub defer_complete: bool,
    /// The input is the decrypted copy an earlier `--in-place` run put in place of the
    /// original: its journal is replayed, the input's change since then is that run's own.
    pub replaced: bool,
}

pub struct MailboxResult {
    pub name: String,
    pub counts: Counts,
    /// The mailbox could not be processed to the end (unreadable, output not writable).
    pub fatal: Option<String>,
    pub output: Option<PathBuf>,
    pub interrupted: bool,
    pub keys_used: BTreeSet<String>,
}

pub struct Shared<'a> {
    pub ctx: &'a Ctx<'a>,
    pub report: &'a Report,
    pub progress: &'a Progress,
    pub stop: &'a AtomicBool,
}

impl MailboxResult {
    fn new(name: &str) -> Self {
        MailboxResult {
            name: name.to_string(),
            counts: Counts::default(),
            fatal: None,
            output: None,
            interrupted: false,
            keys_used: BTreeSet::new(),
        }
    }

    fn note(&mut self, sh: &Shared<'_>, rec: &Record, resumed: bool) {
        self.counts.add(&rec.status);
        if resumed {
            self.counts.resumed += 1;
        }
        if rec.status == "decrypted"
            && let Some(k) = &rec.key
        {
            self.keys_used.insert(k.clone());
        }
        sh.report.item(rec);
        if !resumed && matches!(rec.status.as_str(), "no_key" | "failed") {
            sh.progress.println(&format!(
                "unseal: {}: {}: {}",
                rec.item,
                rec.status,
                rec.reason.as_deref().unwrap_or("")
            ));
        } else if sh.ctx.verbose > 1 && !resumed {
            sh.progress
                .println(&format!("unseal: {}: {}", rec.item, rec.status));
        }
    }
}

fn journal_item(rec: &Record, pos: Option<u64>) -> Line {
    Line::Item {
        id: rec.id.clone(),
        status: rec.status.clone(),
        sha256_in: rec.sha256_in.clone(),
        sha256_out: rec.sha256_out.clone(),
        pos,
        record: Box::new(rec.clone()),
    }
}

/// An item an earlier run decrypted under its old name (a Maildir message renamed by a mail
/// client since): when its bytes are the ones journaled, its copy takes the new name and the
/// earlier record, with the new id, is returned; otherwise `None` and it is done again.
fn renamed_since(
    input: &Path,
    jr: &Journal,
    identities: &HashMap<String, String>,
    sink: &mut dyn unseal_mailbox::Sink,
    mailbox: &str,
    item: &Item,
) -> Result<Option<Record>, String> {
    let Some((old, e)) = jr.renamed_entry(identities, &item.meta.location) else {
        return Ok(None);
    };
    // The old name still in the input is another copy of the message, with its own output.
    if input.join(old).exists() {
        return Ok(None);
    }
    if e.sha256_in.as_deref() != Some(sha256_hex(item.bytes()).as_str())
        || !sink.rename_earlier(&item.meta).map_err(|e| e.to_string())?
    {
        return Ok(None);
    }
    let mut rec = e.record.clone();
    rec.id = item.id.clone();
    rec.item = item_name(mailbox, &item.id, false);
    Ok(Some(rec))
}

/// Decrypts one mailbox into its output, resuming from its journal.
pub fn run_mailbox(job: &MailboxJob, sh: &Shared<'_>) -> MailboxResult {
    let mut res = MailboxResult::new(&job.name);
    if let Err(e) = run_mailbox_inner(job, sh, &mut res) {
        res.fatal = Some(e);
    }
    res
}

fn run_mailbox_inner(
    job: &MailboxJob,
    sh: &Shared<'_>,
    res: &mut MailboxResult,
) -> Result<(), String> {
    let jpath = journal::path_for(&job.journal_root, &job.name);
    let mut jr = Journal::read(&jpath)?;
    let indexed = job.format == Format::Mbox;
    let final_out = job.out_root.join(&job.name);

    // The journal is named by the input's base name only: make sure it is this input's, and,
    // for an unfinished run, that the input has not changed since (ids are positions in it).
    let (input_path, input_stamp) = journal::input_identity(&job.input);
    if let Some(prev) = &jr.input_path
        && *prev != input_path
    {
        return Err(format!(
            "{} already holds the journal of another input named {} ({prev}); decrypt {} with another --out",
            job.journal_root.display(),
            job.name,
            job.input.display()
        ));
    }
    if jr.started && !jr.complete && jr.input_stamp.is_some() && jr.input_stamp != input_stamp {
        sh.progress.println(&format!(
            "unseal: {}: the input changed since the earlier run ({} then, {} now); starting over",
            job.name,
            jr.input_stamp.as_deref().unwrap_or("?"),
            input_stamp.as_deref().unwrap_or("?")
        ));
        jr.restart()?;
    }
    // Complete, but mail arrived since: a file (mbox, PST, single message) whose size or mtime
    // changed is decrypted again from the start; a folder has no such stamp, so its items are
    // looked at again, those the earlier run wrote skipped, the new ones decrypted. Replaying
    // the old records instead would exit 0 with the new messages left encrypted.
    if jr.complete && !job.replaced {
        if jr.input_stamp.is_some() && jr.input_stamp != input_stamp {
            sh.progress.println(&format!(
                "unseal: {}: the input changed since the earlier, complete run ({} then, {} now); decrypting again",
                job.name,
                jr.input_stamp.as_deref().unwrap_or("?"),
                input_stamp.as_deref().unwrap_or("?")
            ));
            jr.restart()?;
        } else if input_stamp.is_none() && job.input.is_dir() {
            jr.complete = false;
        }
    }
    if jr.complete
        && jr
            .final_output
            .as_ref()
            .is_some_and(|o| !Path::new(o).exists())
    {
        sh.progress.println(&format!(
            "unseal: {}: the output of the earlier run is gone; decrypting again",
            job.name
        ));
        jr.restart()?;
    }
    if jr.complete {
        // Done by an earlier run: replay its records, touch nothing.
        for id in jr.order.clone() {
            if let Some(e) = jr.entries.get(&id) {
                res.note(sh, &e.record.clone(), true);
            }
        }
        res.output = Some(jr.final_output.clone().map_or(final_out, PathBuf::from));
        return Ok(());
    }

    let mut sink = unseal_mailbox::create_sink(job.out_format, &job.input, &job.out_root)
        .map_err(|e| e.to_string())?;
    let positional = job.out_format == OutFormat::Mbox;
    sweep_temps(sh, &job.name, sink.output());
    if !jr.entries.is_empty() {
        let ok = match (positional, job.out_format) {
            (true, _) => match sink.resume(jr.last_pos.unwrap_or(0)) {
                Ok(()) => true,
                Err(e) => {
                    sh.progress.println(&format!(
                        "unseal: {}: cannot continue the earlier run ({e}); starting over",
                        job.name
                    ));
                    false
                }
            },
            (false, OutFormat::MboxPerFolder) => false,
            _ => true,
        };
        if !ok {
            jr.restart()?;
            drop(sink);
            sink = unseal_mailbox::create_sink(job.out_format, &job.input, &job.out_root)
                .map_err(|e| e.to_string())?;
        }
    }
    if !jr.started {
        let (input_path, input_stamp) = journal::input_identity(&job.input);
        jr.push(Line::Start {
            input: job.input.display().to_string(),
            format: format_name(job.format).into(),
            output: sink.output().display().to_string(),
            started: crate::report::now_iso(),
            input_path: Some(input_path),
            input_stamp,
        });
        jr.commit()?;
    }

    let mut source = unseal_mailbox::open(&job.input, job.format).map_err(|e| e.to_string())?;
    // Three things overlap in each round: the batch read in the last round decrypts on the
    // pool, the batch decrypted in the last round is written (copy, fsync, journal) on a
    // thread of its own, and the next batch is read. Nothing serial idles the pool but the
    // bookkeeping between rounds.
    let identities = if job.format == Format::Maildir {
        jr.maildir_identities()
    } else {
        HashMap::new()
    };
    let mut batch_items = BATCH_ITEMS_FIRST;
    let (mut raw, mut exhausted) = read_ahead(source.as_mut(), batch_items);
    let mut pending: Option<(Vec<Item>, Vec<Processed>)> = None;
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            res.interrupted = true;
        }
        let mut batch: Vec<Item> = Vec::new();
        if res.interrupted {
            raw.clear();
        }
        // Once the source is exhausted, the rest is taken in halves: the last round's write
        // and fsync have nothing left to overlap with, so its batch should be small.
        let take = if exhausted && raw.len() > BATCH_ITEMS_FIRST {
            (raw.len() / 2).max(BATCH_ITEMS_FIRST)
        } else {
            raw.len()
        };
        // Skip what an earlier run finished; report what could not be read.
        let mut renamed = false;
        for next in raw.drain(..take) {
            match next {
                Ok(item) => {
                    if let Some(e) = jr.entries.get(&item.id)
                        && (positional || sink.already_written(&item.meta))
                    {
                        let rec = e.record.clone();
                        sh.progress.item(item.bytes().len() as u64);
                        res.note(sh, &rec, true);
                        continue;
                    }
                    if !positional
                        && let Some(rec) = renamed_since(
                            &job.input,
                            &jr,
                            &identities,
                            sink.as_mut(),
                            &job.name,
                            &item,
                        )?
                    {
                        sh.progress.item(item.bytes().len() as u64);
                        res.note(sh, &rec, true);
                        jr.push(journal_item(&rec, None));
                        renamed = true;
                        continue;
                    }
                    batch.push(item);
                }
                Err(e) => {
                    let id = e.item().to_string();
                    let mut rec =
                        Record::new(&job.name, &id, item_name(&job.name, &id, indexed), "failed");
                    rec.reason = Some(unread_reason(&e));
                    res.note(sh, &rec, false);
                }
            }
        }
        if renamed {
            // The renames durable first, then the journal lines that give the new names.
            sink.sync().map_err(|e| e.to_string())?;
            jr.commit()?;
        }
        let read_more = !res.interrupted && !exhausted;
        if batch.is_empty() && pending.is_none() && raw.is_empty() && !read_more {
            break;
        }
        let to_write = pending.take();
        let (written, done) = std::thread::scope(|scope| {
            // The writer spends much of its time waiting for fsync: on a pool thread, that
            // would leave a core idle.
            let writer = scope.spawn(|| match to_write {
                Some((items, processed)) => write_batch(
                    job, sh, res, &mut sink, &mut jr, positional, &items, processed,
                ),
                None => Ok(()),
            });
            // One item a piece: rayon otherwise folds runs of items on one thread, and once the
            // other has stolen the rest, it can only take the inner `join`'s half of each item
            // in turn, so a batch's last run went at little more than one core.
            let decrypting = scope.spawn(|| {
                batch
                    .par_iter()
                    .with_max_len(1)
                    .map(|it| process_item(sh.ctx, &job.name, indexed, it))
                    .collect::<Vec<Processed>>()
            });
            if read_more {
                batch_items = (batch_items * 2).min(BATCH_ITEMS);
                (raw, exhausted) = read_ahead(source.as_mut(), batch_items);
            }
            let done = decrypting.join();
            let written = writer
                .join()
                .unwrap_or_else(|_| Err("internal error while writing".to_string()));
            (written, done)
        });
        written?;
        let done = done.map_err(|_| "internal error while decrypting".to_string())?;
        if !batch.is_empty() {
            pending = Some((batch, done));
        }
    }
    if res.interrupted {
        return Ok(());
    }
    let out = sink.finish().map_err(|e| e.to_string())?;
    if !job.defer_complete {
        mark_complete(&job.journal_root, &job.name, &out)?;
    }
    res.output = Some(out);
    Ok(())
}

/// Removes the partial files a killed earlier run left in `dir` (a folder output or backup),
/// saying so; a failure to is only reported, the run goes on.
fn sweep_temps(sh: &Shared<'_>, name: &str, dir: &Path) {
    match unseal_mailbox::atomic::remove_stale_temps(dir, usize::MAX) {
        Ok(0) => {}
        Ok(n) => sh.progress.println(&format!(
            "unseal: {name}: removed {n} partial file(s) an interrupted earlier run left in {}",
            dir.display()
        )),
        Err(e) => sh.progress.println(&format!(
            "unseal: {name}: cannot remove the partial files an earlier run left in {}: {e}",
            dir.display()
        )),
    }
}

/// Why an item the source could not hand over failed: a read error, or (`Unsupported`) a
/// mailbox inside a folder, whose error already says what to do.
pub fn unread_reason(e: &MailboxError) -> String {
    match e {
        MailboxError::Unsupported { .. } => e.to_string(),
        _ => format!("cannot read: {e}"),
    }
}

/// Reads the next batch's worth of items (bounded by count and bytes); `true` once the source
/// is exhausted.
fn read_ahead(
    source: &mut dyn unseal_mailbox::Source,
    max_items: usize,
) -> (Vec<Result<Item, MailboxError>>, bool) {
    let mut raw = Vec::new();
    let mut bytes = 0usize;
    while raw.len() < max_items && bytes < BATCH_BYTES {
        let Some(next) = source.next() else {
            return (raw, true);
        };
        if let Ok(item) = &next {
            bytes += item.bytes().len();
        }
        raw.push(next);
    }
    (raw, false)
}

/// Writes one decrypted batch in order, syncs the sink, then journals it: the journal only
/// ever describes output that is on disk.
#[allow(clippy::too_many_arguments)]
fn write_batch(
    job: &MailboxJob,
    sh: &Shared<'_>,
    res: &mut MailboxResult,
    sink: &mut Box<dyn unseal_mailbox::Sink>,
    jr: &mut Journal,
    positional: bool,
    batch: &[Item],
    done: Vec<Processed>,
) -> Result<(), String> {
    let mut lines = Vec::with_capacity(done.len());
    let indexed = job.format == Format::Mbox;
    for (item, mut p) in batch.iter().zip(done) {
        let mut streamed = Ok(false);
        if p.deferred {
            let ctx = sh.ctx;
            streamed = match stream_item(ctx, &job.name, indexed, sink.as_mut(), item) {
                Ok(Some(rec)) => {
                    p.record = rec;
                    Ok(true)
                }
                Ok(None) => {
                    p = decrypt_item(ctx, &job.name, indexed, item);
                    Ok(false)
                }
                Err(e) => Err(e),
            };
        }
        let mut rec = p.record;
        let written = match (streamed, p.body.as_deref()) {
            (Err(e), _) => Err(e),
            (Ok(true), _) => Ok(()),
            (Ok(false), Some(body)) => sink.write(&item.meta, body),
            // Plain, or left encrypted: copied so that it is byte-identical.
            (Ok(false), None) => sink.write_unchanged(&item.meta, item.bytes()),
        };
        match written {
            Ok(()) => {
                // The journal holds the hash of the copy as it reads back, which verify checks.
                if let Some(body) = p.body.as_deref()
                    && let Some(stored) = sink.stored_form(&item.meta, body)
                {
                    rec.bytes_out = Some(stored.len() as u64);
                    rec.sha256_out = Some(sha256_hex(&stored));
                }
                let pos = positional.then(|| sink.position());
                lines.push(journal_item(&rec, pos));
            }
            Err(e) if !positional && job.out_format != OutFormat::MboxPerFolder => {
                rec.status = "failed".into();
                rec.reason = Some(format!("cannot write output: {e}"));
                rec.bytes_out = None;
                rec.sha256_out = None;
            }
            Err(e) => {
                // A half-written mbox: stop here; the journal still describes the durable prefix.
                return Err(format!("cannot write output: {e}"));
            }
        }
        sh.progress.item(item.bytes().len() as u64);
        res.note(sh, &rec, false);
    }
    sink.sync().map_err(|e| e.to_string())?;
    for l in lines {
        jr.push(l);
    }
    jr.commit()?;
    Ok(())
}

/// Records that a mailbox's output is final.
pub fn mark_complete(journal_root: &Path, name: &str, out: &Path) -> Result<(), String> {
    let mut jr = Journal::for_appending(&journal::path_for(journal_root, name));
    jr.push(Line::Complete {
        output: out.display().to_string(),
        finished: crate::report::now_iso(),
    });
    jr.commit()
}

/// The total size of the inputs, for the progress bar.
pub fn total_size(inputs: &[PathBuf]) -> u64 {
    inputs
        .iter()
        .map(|p| {
            if p.is_dir() {
                walkdir::WalkDir::new(p)
                    .into_iter()
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            } else {
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// B for an input: its file name.
pub fn base_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}
