//! Start-up replay: every segment read record by record, keeping only where each
//! fragment's bytes are, so replaying a large WAL needs one record's worth of memory.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::Path;

use tracing::warn;

use super::io_err;
use super::record::{self, FRAME_LEN, FragmentRef, HEADER_LEN};
use crate::error::{Error, Result};

/// One record found by replay: its tenant and where its fragments are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedRecord {
    /// Segment holding the record.
    pub segment: u64,
    /// Tenant the fragments belong to.
    pub tenant: String,
    /// The record's fragments (bytes stay in the segment).
    pub fragments: Vec<FragmentRef>,
}

/// Read buffer of the segment reader.
const READ_BUFFER: usize = 1 << 20;

/// Fill `buf` from `r`; returns how many bytes were read (less than asked at the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_len(len).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Read segment `seq` at `path`, truncating a torn or corrupt tail with a warning.
/// Returns its records and the bytes cut.
pub fn replay_segment(path: &Path, seq: u64) -> Result<(Vec<ReplayedRecord>, u64)> {
    let file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::with_capacity(READ_BUFFER, file);
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(&mut r, &mut head).map_err(io_err(path))?;
    if got < HEADER_LEN || &head[..6] != record::MAGIC {
        warn!(path = %path.display(), len = size, "wal segment has no valid header, truncating it");
        truncate(path, 0)?;
        return Ok((Vec::new(), size));
    }
    let version = u16::from_le_bytes([head[6], head[7]]);
    if version != record::VERSION {
        return Err(Error::Wal {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "wal segment version {version} is not supported (this release reads version {})",
                record::VERSION
            )),
        });
    }
    let mut records = Vec::new();
    let mut pos = HEADER_LEN as u64;
    let mut body = Vec::new();
    let stop = loop {
        let mut frame = [0u8; FRAME_LEN];
        let got = read_full(&mut r, &mut frame).map_err(io_err(path))?;
        if got == 0 {
            break None;
        }
        if got < FRAME_LEN {
            warn!(path = %path.display(), offset = pos, "wal segment has a torn tail, truncating");
            break Some(pos);
        }
        let (len, crc) = record::frame(&frame);
        let body_at = pos + FRAME_LEN as u64;
        // A length past the end of the file is a write that never completed (or a
        // damaged length): never allocate for it.
        if len as u64 > size.saturating_sub(body_at) {
            warn!(path = %path.display(), offset = pos, "wal segment has a torn tail, truncating");
            break Some(pos);
        }
        body.resize(len, 0);
        if read_full(&mut r, &mut body).map_err(io_err(path))? < len {
            warn!(path = %path.display(), offset = pos, "wal segment has a torn tail, truncating");
            break Some(pos);
        }
        if crc32c::crc32c(&body) != crc {
            warn!(path = %path.display(), offset = pos, reason = "checksum mismatch", "wal segment has a corrupt record, truncating from it");
            break Some(pos);
        }
        let Some((tenant, fragments)) = record::scan_body(&body, body_at) else {
            warn!(path = %path.display(), offset = pos, reason = "malformed record body", "wal segment has a corrupt record, truncating from it");
            break Some(pos);
        };
        records.push(ReplayedRecord {
            segment: seq,
            tenant,
            fragments,
        });
        pos = body_at + len as u64;
    };
    let mut cut = 0;
    if let Some(at) = stop {
        truncate(path, at)?;
        cut = size - at;
    }
    Ok((records, cut))
}
