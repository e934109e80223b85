//! Adapts the callback-driven PST walker ([`crate::pst::read_pst`]) to a [`crate::Source`]
//! iterator: the walk runs on its own thread and hands items over a small bounded channel, so
//! memory stays bounded (PST messages are owned MIME buffers) and the CLI keeps one pull-based
//! interface for every format. Dropping the source stops the walk at the next message.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::pst::{PstFlags, PstItem, read_pst};
use crate::{Body, Error, Item, ItemKind, Location, Meta};

/// Messages buffered between the walker thread and the consumer.
const QUEUE: usize = 8;

/// Maildir flag letters for PST state, in the ASCII order the Maildir spec requires.
pub fn maildir_flags(f: &PstFlags) -> String {
    let mut s = String::new();
    for (on, c) in [
        (f.draft, 'D'),
        (f.flagged, 'F'),
        (f.forwarded, 'P'),
        (f.answered, 'R'),
        (f.read, 'S'),
    ] {
        if on {
            s.push(c);
        }
    }
    s
}

fn to_item(p: PstItem) -> Item {
    let mut id = p.folder_path.join("/");
    if !id.is_empty() {
        id.push('/');
    }
    id.push_str(&p.node_id.to_string());
    let mtime = p
        .date
        .and_then(|s| u64::try_from(s).ok())
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    Item::new(
        id,
        ItemKind::Message,
        Meta {
            location: Location::Pst {
                folder_path: p.folder_path,
                node_id: p.node_id,
                flags: maildir_flags(&p.flags),
            },
            mtime,
        },
        Body::Owned(p.mime),
    )
}

pub struct PstSource {
    rx: Receiver<Result<Item, Error>>,
    thread: Option<JoinHandle<()>>,
    name: String,
}

impl PstSource {
    pub fn open(path: &Path) -> Result<PstSource, Error> {
        // Fail fast on a missing file here rather than as the first item.
        std::fs::metadata(path).map_err(|e| Error::io_path(path, "stat", e))?;
        let (tx, rx) = sync_channel(QUEUE);
        let p: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("unseal-pst".into())
            .spawn(move || walk(&p, tx))
            .map_err(|e| Error::io_path(path, "start PST reader thread", e))?;
        Ok(PstSource {
            rx,
            thread: Some(thread),
            name: path.display().to_string(),
        })
    }
}

fn walk(path: &Path, tx: SyncSender<Result<Item, Error>>) {
    let mut each = |item: PstItem| match tx.send(Ok(to_item(item))) {
        Ok(()) => ControlFlow::Continue(()),
        // The consumer is gone: stop walking.
        Err(_) => ControlFlow::Break(()),
    };
    match read_pst(path, &mut each) {
        Ok(summary) => {
            // Unreadable messages and folders are reported as errors so the run's report counts
            // them; the walk itself carried on past them.
            for p in summary.skipped {
                let item = format!("{}#{}", path.display(), p.folder_path.join("/"));
                let reason = format!("node {}: {}", p.node_id, p.reason);
                if tx.send(Err(Error::format(item, reason))).is_err() {
                    return;
                }
            }
        }
        Err(e) => {
            let _ = tx.send(Err(Error::format(path.display(), e.to_string())));
        }
    }
}

impl Iterator for PstSource {
    type Item = Result<Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Ok(x) = self.rx.recv() {
            return Some(x);
        }
        // Channel closed: the walk ended. A panic in the walker must not look like a normal end.
        let t = self.thread.take()?;
        match t.join() {
            Ok(()) => None,
            Err(_) => Some(Err(Error::format(
                &self.name,
                "PST reader failed unexpectedly; output is incomplete",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_sorted_maildir_letters() {
        let f = PstFlags {
            read: true,
            flagged: true,
            answered: true,
            forwarded: false,
            draft: false,
        };
        assert_eq!(maildir_flags(&f), "FRS");
        assert_eq!(maildir_flags(&PstFlags::default()), "");
    }
}
