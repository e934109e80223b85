//! The per-mailbox journal, `DIR/.unseal-journal/<B>.jsonl`: one JSON line per finished item,
//! appended and fsynced in batches, only after the output they describe is durable. A re-run
//! reads it to continue where the last run stopped; `verify` reads it for the recorded hashes.
//!
//! Lines: `{"t":"start",...}`, `{"t":"item","id":..,"status":..,"sha256_in":..,"sha256_out":..,
//! "pos":..,"record":{..}}` (`pos`: the mbox sink position after the item, after sync), and
//! `{"t":"complete",...}` once the output has its final name. A torn last line (power loss) is
//! dropped on open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::Record;

pub const DIR_NAME: &str = ".unseal-journal";

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Line {
    Start {
        input: String,
        format: String,
        output: String,
        started: String,
        /// Which input this journal belongs to (canonical path), and its size and modification
        /// time when it is a file: a resume must continue the same input, unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_stamp: Option<String>,
    },
    Item {
        id: String,
        status: String,
        sha256_in: Option<String>,
        sha256_out: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pos: Option<u64>,
        record: Box<Record>,
    },
    Complete {
        output: String,
        finished: String,
    },
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub status: String,
    pub sha256_in: Option<String>,
    pub sha256_out: Option<String>,
    pub record: Record,
}

pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    pending: Vec<String>,
    pub entries: HashMap<String, Entry>,
    /// Ids in the order they were journaled.
    pub order: Vec<String>,
    /// Position after the last journaled mbox item.
    pub last_pos: Option<u64>,
    pub complete: bool,
    pub started: bool,
    /// The output path the run announced (sink output).
    pub output: Option<String>,
    /// The final output path recorded when the mailbox was completed.
    pub final_output: Option<String>,
    /// From the start line: the input's canonical path and stamp (see [`input_identity`]).
    pub input_path: Option<String>,
    pub input_stamp: Option<String>,
}

/// The canonical path of an input and a stamp of its content (size and modification time for
/// a file, nothing for a folder, whose items are matched by name).
pub fn input_identity(input: &Path) -> (String, Option<String>) {
    let canon = std::fs::canonicalize(input).unwrap_or_else(|_| input.to_path_buf());
    let stamp = std::fs::metadata(input)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{} bytes, modified {mtime}", m.len())
        });
    (canon.display().to_string(), stamp)
}

pub fn path_for(root: &Path, name: &str) -> PathBuf {
    root.join(DIR_NAME).join(format!("{name}.jsonl"))
}

impl Journal {
    /// A journal to append to without reading what is in it: for the last line of a run, whose
    /// file (one line per item) can be far larger than is worth parsing again.
    pub fn for_appending(path: &Path) -> Journal {
        Journal {
            path: path.to_path_buf(),
            file: None,
            pending: Vec::new(),
            entries: HashMap::new(),
            order: Vec::new(),
            last_pos: None,
            complete: false,
            started: false,
            output: None,
            final_output: None,
            input_path: None,
            input_stamp: None,
        }
    }

    /// Reads what an earlier run journaled (nothing if there is no journal), for a run that
    /// will append: an unreadable tail (a line torn by a crash, or anything after a damaged
    /// line) is cut so later appends start on a line boundary; the items it held are done again.
    /// A damaged journal is first copied aside whole (`<B>.jsonl.damaged-<time>`), as evidence.
    pub fn read(path: &Path) -> Result<Journal, String> {
        let (j, good_end, len, damaged, _) = Self::parse(path)?;
        if damaged {
            let mut aside = path.to_path_buf().into_os_string();
            aside.push(format!(
                ".damaged-{}",
                crate::report::now_iso().replace(':', "")
            ));
            std::fs::copy(path, &aside)
                .map_err(|e| format!("{}: cannot keep the damaged journal: {e}", path.display()))?;
        }
        if good_end < len {
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("{}: cannot repair journal: {e}", path.display()))?;
            f.set_len(good_end as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("{}: cannot repair journal: {e}", path.display()))?;
        }
        Ok(j)
    }

    /// Reads a journal without changing it, for `verify`: a torn last line (no line end: the
    /// run was killed while writing it) is ignored, as its item was never recorded; a complete
    /// line that does not parse, or anything after it, makes this an error, because the hashes
    /// it held cannot be checked.
    pub fn read_only(path: &Path) -> Result<Journal, String> {
        let (j, good_end, _, damaged, lines) = Self::parse(path)?;
        if damaged {
            let line = lines + 1;
            return Err(format!(
                "{}: journal damaged at line {line} (byte {good_end}): the hashes recorded from \
                 there on cannot be checked; decrypt this input again into a new --out",
                path.display()
            ));
        }
        Ok(j)
    }

    /// The journal's complete lines up to the first that does not parse; with the offset
    /// after the last good line, the file's length, and whether a complete line failed to
    /// parse (damage, not a torn tail), and how many lines parsed.
    fn parse(path: &Path) -> Result<(Journal, usize, usize, bool, usize), String> {
        let mut j = Journal::for_appending(path);
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((j, 0, 0, false, 0));
            }
            Err(e) => return Err(format!("{}: cannot read journal: {e}", path.display())),
        };
        let mut start = 0usize;
        let mut lines = 0;
        while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
            let line = &data[start..start + nl];
            let Ok(parsed) = serde_json::from_slice::<Line>(line) else {
                break;
            };
            j.apply(parsed);
            lines += 1;
            start += nl + 1;
        }
        let damaged = data[start..].contains(&b'\n');
        Ok((j, start, data.len(), damaged, lines))
    }

    /// For a Maildir's journal: the journaled message ids by
    /// [`unseal_mailbox::maildir::MaildirMeta::identity`], so that a message a mail client has
    /// renamed since (new/ to cur/, other flags) is known as the one decrypted.
    pub fn maildir_identities(&self) -> HashMap<String, String> {
        self.order
            .iter()
            .filter_map(|id| Some((unseal_mailbox::maildir::identity_of_id(id)?, id.clone())))
            .collect()
    }

    /// The line of a Maildir message journaled under another name than it has now (a mail
    /// client renamed it), looked up through [`Journal::maildir_identities`]: its old id and
    /// entry.
    pub fn renamed_entry<'a>(
        &'a self,
        identities: &'a HashMap<String, String>,
        location: &unseal_mailbox::Location,
    ) -> Option<(&'a String, &'a Entry)> {
        let unseal_mailbox::Location::Maildir(m) = location else {
            return None;
        };
        let old = identities.get(&m.identity()?)?;
        Some((old, self.entries.get(old)?))
    }

    fn apply(&mut self, l: Line) {
        match l {
            Line::Start {
                output,
                input_path,
                input_stamp,
                ..
            } => {
                self.started = true;
                self.output = Some(output);
                self.input_path = input_path;
                self.input_stamp = input_stamp;
            }
            Line::Item {
                id,
                status,
                sha256_in,
                sha256_out,
                pos,
                record,
            } => {
                if pos.is_some() {
                    self.last_pos = pos;
                }
                if !self.entries.contains_key(&id) {
                    self.order.push(id.clone());
                }
                self.entries.insert(
                    id,
                    Entry {
                        status,
                        sha256_in,
                        sha256_out,
                        record: *record,
                    },
                );
            }
            Line::Complete { output, .. } => {
                self.complete = true;
                self.final_output = Some(output);
            }
        }
    }

    /// Moves the old journal aside (kept as evidence) and starts empty.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.path.exists() {
            let mut aside = self.path.clone().into_os_string();
            aside.push(format!(
                ".old-{}",
                crate::report::now_iso().replace(':', "")
            ));
            std::fs::rename(&self.path, &aside)
                .map_err(|e| format!("{}: cannot move journal aside: {e}", self.path.display()))?;
        }
        self.file = None;
        self.pending.clear();
        self.entries.clear();
        self.order.clear();
        self.last_pos = None;
        self.complete = false;
        self.started = false;
        self.output = None;
        self.final_output = None;
        self.input_path = None;
        self.input_stamp = None;
        Ok(())
    }

    /// Queues a line; durable after [`Journal::commit`].
    pub fn push(&mut self, l: Line) {
        if let Ok(s) = serde_json::to_string(&l) {
            self.pending.push(s);
        }
        // Items of this run go to disk only: lookups are for an earlier run's items (read at
        // start), and keeping every record would make memory grow with the mailbox.
        if !matches!(l, Line::Item { .. }) {
            self.apply(l);
        }
    }

    /// Appends the queued lines and fsyncs the journal.
    pub fn commit(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let err = |e: std::io::Error| format!("{}: journal write failed: {e}", self.path.display());
        if self.file.is_none() {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            unseal_mailbox::atomic::create_dir_all_private(dir).map_err(err)?;
            let existed = self.path.exists();
            let mut opts = OpenOptions::new();
            opts.create(true).append(true);
            // Like every output: readable by the owner only (it names every item and its hashes).
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&self.path).map_err(err)?;
            f.seek(SeekFrom::End(0)).map_err(err)?;
            if !existed {
                let _ = unseal_mailbox::atomic::fsync_dir(dir);
            }
            self.file = Some(f);
        }
        let mut buf = String::new();
        for l in self.pending.drain(..) {
            buf.push_str(&l);
            buf.push('\n');
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(buf.as_bytes()).map_err(err)?;
            f.sync_data().map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_dropped_and_appends_continue() {
        let d = tempfile::tempdir().unwrap();
        let p = path_for(d.path(), "x.mbox");
        let mut j = Journal::read(&p).unwrap();
        for (i, pos) in [(0, 10u64), (1, 25)] {
            j.push(Line::Item {
                id: i.to_string(),
                status: "plain".into(),
                sha256_in: None,
                sha256_out: None,
                pos: Some(pos),
                record: Box::default(),
            });
        }
        j.commit().unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"t\":\"item\",\"id\":\"2\",\"sta").unwrap();
        drop(f);
        let mut j = Journal::read(&p).unwrap();
        assert_eq!(j.order, vec!["0", "1"]);
        assert_eq!(j.last_pos, Some(25));
        j.push(Line::Complete {
            output: "o".into(),
            finished: "t".into(),
        });
        j.commit().unwrap();
        let j = Journal::read(&p).unwrap();
        assert!(j.complete);
        assert_eq!(j.entries.len(), 2);
    }

    fn two_items(p: &Path) -> Vec<u8> {
        let mut j = Journal::read(p).unwrap();
        for i in 0..2 {
            j.push(Line::Item {
                id: i.to_string(),
                status: "decrypted".into(),
                sha256_in: Some("aa".into()),
                sha256_out: Some("bb".into()),
                pos: None,
                record: Box::default(),
            });
        }
        j.commit().unwrap();
        std::fs::read(p).unwrap()
    }

    #[test]
    fn read_only_ignores_a_torn_tail_and_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = path_for(d.path(), "x.mbox");
        let mut data = two_items(&p);
        data.extend_from_slice(b"{\"t\":\"item\",\"id\":\"2\",\"sta");
        std::fs::write(&p, &data).unwrap();
        let j = Journal::read_only(&p).unwrap();
        assert_eq!(j.order, vec!["0", "1"]);
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }

    #[test]
    fn read_only_refuses_a_damaged_line_and_leaves_the_journal_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let p = path_for(d.path(), "x.mbox");
        let good = two_items(&p);
        let first_end = good.iter().position(|&b| b == b'\n').unwrap();
        // The first line loses its closing brace; the second is intact after it.
        let mut data = good[..first_end - 1].to_vec();
        data.extend_from_slice(&good[first_end..]);
        std::fs::write(&p, &data).unwrap();
        let e = Journal::read_only(&p).err().expect("damage is an error");
        assert!(e.contains("journal damaged at line 1 (byte 0)"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), data, "verify must not repair");
        // A run that appends still cuts it, and does that item and the rest again; the
        // damaged journal is kept beside it.
        let j = Journal::read(&p).unwrap();
        assert!(j.entries.is_empty());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        let kept: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|q| q.to_string_lossy().contains("x.mbox.jsonl.damaged-"))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(std::fs::read(&kept[0]).unwrap(), data);
    }
}
