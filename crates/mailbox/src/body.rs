//! Item bytes: either a range of a shared memory map (mbox messages, large files — no copy)
//! or an owned buffer (un-quoted mbox messages, decoded .p7m, small files).

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::Error;

/// Files at most this big are read into memory instead of mapped: a map costs a syscall pair
/// and a page-table setup that is not worth it for small messages.
const MAP_THRESHOLD: u64 = 256 * 1024;

#[derive(Debug)]
pub enum Body {
    Owned(Vec<u8>),
    Mapped(Arc<Mmap>, Range<usize>),
}

impl Body {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Owned(v) => v,
            // A bad range yields empty bytes rather than a panic; ranges are built by this
            // crate from the map's own length, so this does not happen in practice.
            Body::Mapped(m, r) => m.get(r.clone()).unwrap_or(&[]),
        }
    }

    /// Tells the kernel the pages behind `range` (of [`Body::bytes`]) are not needed for now,
    /// so that reading a large mapped item once does not leave it all resident. The bytes stay
    /// readable: a later read faults them in again from the file. Owned bodies: nothing to do.
    pub fn release(&self, range: Range<usize>) {
        if let Body::Mapped(m, r) = self {
            let start = r.start.saturating_add(range.start).min(r.end);
            let end = r.start.saturating_add(range.end).min(r.end);
            if start < end {
                // SAFETY: a read-only file mapping (shared, never written): MADV_DONTNEED only drops
                // resident pages (see `mbox::release_behind`); nothing is invalidated.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Body::Owned(v) => v,
            Body::Mapped(..) => self.bytes().to_vec(),
        }
    }
}

/// Maps a whole file read-only.
pub(crate) fn map_file(path: &Path, file: &File) -> Result<Option<Arc<Mmap>>, Error> {
    let len = file
        .metadata()
        .map_err(|e| Error::io_path(path, "stat", e))?
        .len();
    if len == 0 {
        // Mapping an empty file fails on some platforms; there is nothing to map anyway.
        return Ok(None);
    }
    // SAFETY: the map is read-only and unseal's contract is that inputs are not modified while
    // it runs (they are the originals being preserved). A concurrent truncation by another
    // program could still fault, which is the documented limitation of mapping files.
    let map = unsafe { Mmap::map(file) }.map_err(|e| Error::io_path(path, "memory-map", e))?;
    Ok(Some(Arc::new(map)))
}

/// Loads a file as a body: mapped when large, read when small.
pub(crate) fn load_file(path: &Path) -> Result<Body, Error> {
    let file = File::open(path).map_err(|e| Error::io_path(path, "open", e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io_path(path, "stat", e))?
        .len();
    if len <= MAP_THRESHOLD {
        // Sized from the stat, one byte more so that the read that sees the end needs no
        // growth, and read into directly: `read_to_end` starts at 8 KiB and doubles (four
        // `read` calls for a 28 KB message), this takes one and one to see the end. A file
        // that grew since the stat is read on with `take`, so it cannot make this allocate
        // without limit.
        use std::io::Read;
        let mut v = vec![0u8; len as usize + 1];
        let mut got = 0;
        while got < v.len() {
            match (&file).read(&mut v[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io_path(path, "read", e)),
            }
        }
        v.truncate(got);
        if got > len as usize {
            // The file grew since the stat: the rest, still bounded.
            (&file)
                .take(MAP_THRESHOLD.saturating_sub(got as u64))
                .read_to_end(&mut v)
                .map_err(|e| Error::io_path(path, "read", e))?;
        }
        return Ok(Body::Owned(v));
    }
    match map_file(path, &file)? {
        Some(m) => {
            let n = m.len();
            Ok(Body::Mapped(m, 0..n))
        }
        None => Ok(Body::Owned(Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small files are read whole into a buffer of their own size; from the threshold up they
    /// are mapped. Either way the bytes are the file's.
    #[test]
    fn files_load_whole_on_either_side_of_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let t = MAP_THRESHOLD as usize;
        for len in [0, 1, 28_703, t - 1, t, t + 1] {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).unwrap();
            let body = load_file(&path).unwrap();
            assert_eq!(body.bytes(), &data[..], "{len} bytes");
            match &body {
                Body::Owned(v) => {
                    assert!(len <= t, "{len} bytes read, not mapped");
                    assert!(v.capacity() <= len + 1, "{len} bytes: no slack");
                }
                Body::Mapped(..) => assert!(len > t, "{len} bytes mapped"),
            }
        }
    }
}
