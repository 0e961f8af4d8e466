//! Reading fragment bytes back from WAL segments.
//!
//! The live store keeps only where each fragment's bytes are (segment, offset, length);
//! lookups, searches and block writes read them here with positioned reads, mostly from
//! the page cache. Handles are cached per segment and shared: a reader takes its handles
//! while the live store guarantees the segments exist, so a segment deleted afterwards (its
//! traces now in a block) stays readable through the handle until the reader is done.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::segment_path;
use crate::error::{Error, Result};

/// Most segment handles kept open; past it the cache starts over (handles in use stay
/// valid through their `Arc`).
const MAX_OPEN: usize = 256;

/// Open read handles of WAL segments, by sequence number.
pub struct SegmentFiles {
    dir: PathBuf,
    open: Mutex<HashMap<u64, Arc<File>>>,
}

/// Bytes of one fragment to read: its segment's handle and where they are.
#[derive(Clone)]
pub struct Located {
    file: Arc<File>,
    segment: u64,
    offset: u64,
    len: u32,
}

impl Located {
    /// Length of the bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl SegmentFiles {
    /// Handles for segments in `dir`.
    pub fn new(dir: &Path) -> Self {
        SegmentFiles {
            dir: dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The read handle of segment `seq` (opened on first use).
    pub fn get(&self, seq: u64) -> Result<Arc<File>> {
        let mut open = self.open.lock();
        if let Some(f) = open.get(&seq) {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, seq);
        let f = Arc::new(File::open(&path).map_err(|source| Error::Wal { path, source })?);
        if open.len() >= MAX_OPEN {
            open.clear();
        }
        open.insert(seq, f.clone());
        Ok(f)
    }

    /// Where `len` bytes at `offset` of segment `seq` are, with the segment's handle.
    pub fn locate(&self, seq: u64, offset: u64, len: u32) -> Result<Located> {
        Ok(Located {
            file: self.get(seq)?,
            segment: seq,
            offset,
            len,
        })
    }

    /// Drop the handles of segments below `seq` (they are being deleted).
    pub fn forget_below(&self, seq: u64) {
        self.open.lock().retain(|s, _| *s >= seq);
    }

    /// Append the bytes of every part, in order, to `out`.
    pub fn read_into(&self, parts: &[Located], out: &mut Vec<u8>) -> Result<()> {
        out.reserve(parts.iter().map(Located::len).sum());
        for p in parts {
            let at = out.len();
            out.resize(at + p.len(), 0);
            p.file
                .read_exact_at(&mut out[at..], p.offset)
                .map_err(|source| Error::Wal {
                    path: segment_path(&self.dir, p.segment),
                    source,
                })?;
        }
        Ok(())
    }
}
