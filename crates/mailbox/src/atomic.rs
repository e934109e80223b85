//! Crash-safe file output. Every output file is written under a temporary name in its
//! destination folder, fsynced, renamed over the final name and the folder fsynced, so a crash
//! leaves either the old state or the complete new file, never a torn one. Files are created
//! 0600 and folders 0700 on unix because the output is decrypted mail.
//!
//! The CLI uses the same helpers for its journal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Prefix of every temporary file this crate creates; readers skip such files.
pub const TEMP_PREFIX: &str = ".unseal-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary files an earlier, killed process left under `root` (`max_depth` as
/// walkdir's: 1 for files directly in `root`, `usize::MAX` for all; symbolic links not followed):
/// ours are named with this process's id and are never touched.
/// A killed run leaves partial copies (plaintext, for decrypted output) that nothing else
/// would ever clean up. Returns how many were removed.
pub fn remove_stale_temps(root: &Path, max_depth: usize) -> io::Result<usize> {
    let mine = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut n = 0;
    if !root.is_dir() {
        return Ok(0);
    }
    for e in walkdir::WalkDir::new(root)
        .follow_links(false)
        .max_depth(max_depth)
    {
        let e = e.map_err(io::Error::other)?;
        let name = e.file_name().to_string_lossy();
        if e.file_type().is_file() && name.starts_with(TEMP_PREFIX) && !name.starts_with(&mine) {
            fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// Creates `path` and its missing parents with mode 0700 (unix).
pub fn create_dir_all_private(path: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Opens a new file for writing with mode 0600 (unix). `create_new` refuses to follow or reuse
/// anything already at `path`.
pub fn create_private(path: &Path, create_new: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).read(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Fsyncs a directory so that a rename or create inside it survives a crash. On platforms
/// where directories cannot be opened this is a no-op.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The folder a path lives in ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file being written under a temporary name next to its destination.
/// Dropping it without [`AtomicFile::commit`] removes the temporary file.
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest`; its folder must exist.
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let dir = parent_dir(dest);
        // pid + process-wide counter makes names unique between threads and concurrent
        // processes; create_new makes a collision an error instead of a shared file.
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
            match create_private(&tmp, true) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: Some(file),
                        tmp,
                        dest: dest.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The open temporary file, for writing.
    pub fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("atomic file already committed"))
    }

    /// Sets the modification time the final file will have.
    pub fn set_modified(&mut self, t: SystemTime) -> io::Result<()> {
        self.file()?.set_modified(t)
    }

    /// Fsyncs, renames over the destination and fsyncs the folder.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("atomic file already committed"))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.dest)?;
        // The rename succeeded: nothing left to clean up even if the dir fsync fails.
        self.tmp = PathBuf::new();
        fsync_dir(parent_dir(&self.dest))
    }
}

impl AtomicFile {
    /// Renames over the destination without waiting for the disk, and hands back the file so
    /// that [`DeferredSync`] can make it durable later together with others.
    pub fn rename_unsynced(mut self) -> io::Result<File> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("atomic file already committed"))?;
        fs::rename(&self.tmp, &self.dest)?;
        self.tmp = PathBuf::new();
        Ok(file)
    }
}

/// Files renamed into place whose fsync waits for [`DeferredSync::sync`], which makes a whole
/// batch durable at once: concurrent file fsyncs and one fsync per folder, instead of a file
/// fsync and a folder fsync per message one after the other (a Maildir of small messages spent
/// most of its time there). Until then a crash may
/// leave a renamed file incomplete; the CLI's journal lists an item only after `sync`, so a
/// resumed run writes such an item again.
#[derive(Default)]
pub struct DeferredSync {
    files: Vec<File>,
    dirs: std::collections::BTreeSet<PathBuf>,
    /// A sync failed: files written before may not be durable, so every later sync fails too
    /// (the caller must not record anything after this).
    failed: Option<String>,
}

/// More files than this pending: synced at once (bounds open file handles).
const MAX_PENDING: usize = 512;

impl DeferredSync {
    /// Writes `data` to `dest` through a temporary file and a rename.
    pub fn write(&mut self, dest: &Path, data: &[u8], mtime: Option<SystemTime>) -> io::Result<()> {
        let mut f = AtomicFile::create(dest)?;
        f.write_all(data)?;
        self.finish(f, dest, mtime)
    }

    /// As [`DeferredSync::write`], with the bytes written by `fill` (see
    /// [`write_atomic_streamed`]).
    pub fn write_streamed(
        &mut self,
        dest: &Path,
        mtime: Option<SystemTime>,
        fill: &mut crate::Fill<'_>,
    ) -> io::Result<crate::Filled> {
        let f = match filled_file(dest, fill)? {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        self.finish(f, dest, mtime)?;
        Ok(Ok(()))
    }

    /// [`DeferredSync::write`] of an item's bytes, with the item's mtime; errors name `dest`.
    pub fn write_item(
        &mut self,
        dest: &Path,
        meta: &crate::Meta,
        body: &[u8],
    ) -> Result<(), crate::Error> {
        self.write(dest, body, meta.mtime)
            .map_err(|e| crate::Error::io_path(dest, "write", e))
    }

    /// [`DeferredSync::write_streamed`] of an item; errors name `dest`.
    pub fn write_item_streamed(
        &mut self,
        dest: &Path,
        meta: &crate::Meta,
        fill: &mut crate::Fill<'_>,
    ) -> Result<crate::Filled, crate::Error> {
        self.write_streamed(dest, meta.mtime, fill)
            .map_err(|e| crate::Error::io_path(dest, "write", e))
    }

    /// Renames a file that is already durable (an earlier run's output) to `to`; the two
    /// folder entries become durable at the next [`DeferredSync::sync`].
    pub fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)?;
        self.dirs.insert(parent_dir(from).to_path_buf());
        self.dirs.insert(parent_dir(to).to_path_buf());
        Ok(())
    }

    /// [`DeferredSync::sync`]; errors name `root`, the output being written.
    pub fn sync_output(&mut self, root: &Path) -> Result<(), crate::Error> {
        self.sync()
            .map_err(|e| crate::Error::io_path(root, "fsync", e))
    }

    fn finish(
        &mut self,
        mut f: AtomicFile,
        dest: &Path,
        mtime: Option<SystemTime>,
    ) -> io::Result<()> {
        if let Some(t) = mtime {
            f.set_modified(t)?;
        }
        self.files.push(f.rename_unsynced()?);
        self.dirs.insert(parent_dir(dest).to_path_buf());
        if self.files.len() >= MAX_PENDING {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes every file written since the last call durable, with its folder entry. The file
    /// fsyncs are issued from several threads at once: a journaling file system commits them
    /// together, where one after the other each waits for a commit of its own. (`syncfs` would be
    /// one call, but it also waits for every other program's unwritten data on that disk.)
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(why) = &self.failed {
            return Err(io::Error::other(format!("an earlier fsync failed: {why}")));
        }
        let r = self.sync_pending();
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn sync_pending(&mut self) -> io::Result<()> {
        const THREADS: usize = 16;
        let files = std::mem::take(&mut self.files);
        if !files.is_empty() {
            let per = files.len().div_ceil(THREADS);
            std::thread::scope(|scope| {
                let handles: Vec<_> = files
                    .chunks(per)
                    .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(File::sync_all)))
                    .collect();
                handles.into_iter().try_for_each(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("an fsync thread failed")))
                })
            })?;
        }
        for d in std::mem::take(&mut self.dirs) {
            fsync_dir(&d)?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `data` to `dest` atomically (temp file, fsync, rename, dir fsync), optionally with a
/// modification time.
pub fn write_atomic(dest: &Path, data: &[u8], mtime: Option<SystemTime>) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(data)?;
    if let Some(t) = mtime {
        f.set_modified(t)?;
    }
    f.commit()
}

/// As [`write_atomic`], with the bytes written by `fill` through a buffer. If `fill` fails the
/// temporary file is removed and its error returned as `Ok(Err(_))`.
pub fn write_atomic_streamed(
    dest: &Path,
    mtime: Option<SystemTime>,
    fill: &mut crate::Fill<'_>,
) -> io::Result<crate::Filled> {
    let mut f = match filled_file(dest, fill)? {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(t) = mtime {
        f.set_modified(t)?;
    }
    f.commit()?;
    Ok(Ok(()))
}

/// A new atomic file for `dest` with what `fill` wrote into it through a buffer and writeback
/// requests; if `fill` fails, its error (and the temporary file is gone with the dropped file).
fn filled_file(
    dest: &Path,
    fill: &mut crate::Fill<'_>,
) -> io::Result<Result<AtomicFile, crate::FillError>> {
    let mut f = AtomicFile::create(dest)?;
    {
        let mut w = io::BufWriter::with_capacity(STREAM_BUFFER, Writeback::new(f.file()?, 0));
        if let Err(e) = fill(&mut w) {
            return Ok(Err(e));
        }
        w.flush()?;
    }
    Ok(Ok(f))
}

/// Write buffer of a streamed item: fewer, larger write calls.
pub const STREAM_BUFFER: usize = 1 << 20;

/// Writes to a file and, every [`WRITEBACK_EVERY`] bytes, asks the kernel to start writing them
/// to disk (Linux `sync_file_range`, without waiting). A streamed item can be hundreds of MB: left
/// to the final fsync, its writeback would all happen after the work is done (77 ms for a
/// 200 MB message measured here); started early, it overlaps the decryption. Durability still
/// comes from the fsync the sink does anyway.
pub struct Writeback<'f> {
    file: &'f File,
    /// File offset of the next byte written, and where writeback was last started from.
    at: u64,
    started: u64,
}

/// How much is written between two writeback requests.
pub const WRITEBACK_EVERY: u64 = 8 << 20;

impl<'f> Writeback<'f> {
    /// `at`: the file's current write offset.
    pub fn new(file: &'f File, at: u64) -> Self {
        Writeback {
            file,
            at,
            started: at,
        }
    }
}

impl Write for Writeback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.at += n as u64;
        if self.at - self.started >= WRITEBACK_EVERY {
            start_writeback(self.file, self.started, self.at - self.started);
            self.started = self.at;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.file).flush()
    }
}

/// Starts writing `len` bytes at `offset` of `file` to disk; a hint, errors ignored.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on a file descriptor we hold open; no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Renames `from` to `to` and fsyncs the destination folder (and the source folder if it is a
/// different one).
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    let (a, b) = (parent_dir(from), parent_dir(to));
    fsync_dir(b)?;
    if a != b {
        fsync_dir(a)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_other_processes_are_removed_ours_kept() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a/cur");
        fs::create_dir_all(&deep).unwrap();
        let stale = deep.join(format!("{TEMP_PREFIX}999999999-3"));
        fs::write(&stale, b"partial plaintext").unwrap();
        let keep = deep.join("1.host:2,S");
        fs::write(&keep, b"Subject: x\n\n").unwrap();
        // One of ours, in flight: never removed.
        let mut f = AtomicFile::create(&deep.join("2.host")).unwrap();
        f.write_all(b"in flight").unwrap();
        assert_eq!(
            remove_stale_temps(d.path(), 2).unwrap(),
            0,
            "two folders down"
        );
        assert_eq!(remove_stale_temps(d.path(), usize::MAX).unwrap(), 1);
        assert!(!stale.exists() && keep.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(deep.join("2.host")).unwrap(), b"in flight");
        assert_eq!(remove_stale_temps(&d.path().join("missing"), 9).unwrap(), 0);
    }

    #[test]
    fn deferred_files_are_in_place_at_once_and_synced_together() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        let mut pending = DeferredSync::default();
        for i in 0..5 {
            let dir = if i % 2 == 0 {
                d.path().to_path_buf()
            } else {
                d.path().join("sub")
            };
            pending
                .write(
                    &dir.join(format!("{i}.eml")),
                    format!("m{i}").as_bytes(),
                    None,
                )
                .unwrap();
        }
        let failed = pending
            .write_streamed(&d.path().join("x.eml"), None, &mut |w| {
                w.write_all(b"half")?;
                Err("bad padding".into())
            })
            .unwrap();
        assert!(failed.is_err());
        pending.sync().unwrap();
        pending.sync().unwrap(); // nothing pending: fine
        assert_eq!(fs::read(d.path().join("4.eml")).unwrap(), b"m4");
        assert_eq!(fs::read(d.path().join("sub/3.eml")).unwrap(), b"m3");
        let mut names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["0.eml", "2.eml", "4.eml", "sub"]);
    }

    #[test]
    fn a_streamed_file_appears_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("m.eml");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let r = write_atomic_streamed(&dest, Some(t), &mut |w| {
            w.write_all(b"Subject: x\n\n")?;
            w.write_all(&[b'a'; 3 * STREAM_BUFFER])?;
            Ok(())
        })
        .unwrap();
        assert!(r.is_ok());
        assert_eq!(fs::read(&dest).unwrap().len(), 12 + 3 * STREAM_BUFFER);
        assert_eq!(fs::metadata(&dest).unwrap().modified().unwrap(), t);
        let failed = d.path().join("f.eml");
        let r = write_atomic_streamed(&failed, None, &mut |w| {
            w.write_all(&[b'b'; 2 * STREAM_BUFFER])?;
            Err("wrong key".into())
        })
        .unwrap();
        assert_eq!(r.unwrap_err().to_string(), "wrong key");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("m.eml")]);
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.eml");
        fs::write(&p, b"old").unwrap();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        write_atomic(&p, b"new", Some(t)).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), t);
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Replaced file gets the temp file's 0600, not the old file's mode.
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn dropped_atomic_file_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!p.exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_are_0700() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        create_dir_all_private(&p).unwrap();
        for q in [d.path().join("a"), p] {
            assert_eq!(
                fs::metadata(&q).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
    }
}
