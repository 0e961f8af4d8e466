//! Write-ahead log: append-only segment files with group commit.
//!
//! One writer thread owns the open segment. Appends queue on a channel; the thread drains
//! everything queued, writes it, calls `fdatasync` once and then acknowledges every append
//! in the group, so concurrent requests share one fsync. An append is acknowledged only
//! after its bytes are on disk.
//!
//! Segments are named `<seq:016x>.wal`. `open` replays every segment (truncating a torn or
//! corrupt tail with a warning) before the writer starts a fresh one; replay keeps where
//! each fragment is, not its bytes. A segment is deleted only through
//! [`Wal::delete_below`], which the flusher calls once every record in it is in a durable
//! block. Until then the segments are where unflushed spans live: the live store reads
//! them back through [`SegmentFiles`].

pub mod files;
pub mod record;
pub mod replay;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::ingest::batch::Fragment;
use crate::metrics::Metrics;
pub use files::{Located, SegmentFiles};
pub use record::{FragmentRef, Record};
pub use replay::ReplayedRecord;

/// Segments rotate once they pass this size.
const SEGMENT_MAX_BYTES: u64 = 128 * 1024 * 1024;
/// A group commit writes at most this much before its fsync.
const GROUP_MAX_BYTES: usize = 16 * 1024 * 1024;

enum Command {
    Append {
        data: Vec<u8>,
        done: oneshot::Sender<Result<Appended>>,
    },
    Rotate {
        done: oneshot::Sender<Result<u64>>,
    },
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Segment holding the record.
    pub segment: u64,
    /// File offset of the record in that segment.
    pub offset: u64,
}

/// Handle to the WAL writer.
pub struct Wal {
    tx: mpsc::UnboundedSender<Command>,
    dir: PathBuf,
    shared: Arc<Shared>,
    files: Arc<SegmentFiles>,
}

struct Shared {
    /// Size of every segment on disk, by sequence number.
    segments: Mutex<BTreeMap<u64, u64>>,
    /// Sequence number of the open segment.
    current: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn total_bytes(&self) -> u64 {
        self.segments.lock().values().sum()
    }
    fn publish(&self) {
        self.metrics.wal_bytes.set(self.total_bytes());
    }
}

/// What replay found: records in order, each with where its fragments are.
pub struct Replay {
    /// Records in log order.
    pub records: Vec<ReplayedRecord>,
    /// Segments read.
    pub segments: usize,
    /// Bytes cut from torn or corrupt tails.
    pub truncated_bytes: u64,
}

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Wal {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// List `(seq, size)` of the segments in `dir`.
fn list_segments(dir: &Path) -> Result<BTreeMap<u64, u64>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        let Ok(seq) = u64::from_str_radix(stem, 16) else {
            continue;
        };
        let len = entry.metadata().map_err(io_err(dir))?.len();
        out.insert(seq, len);
    }
    Ok(out)
}

/// What replay keeps of one segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// The good records, in order.
    pub records: Vec<Record>,
    /// Where the good prefix ends when a bad tail follows it, and why it is bad.
    pub cut: Option<(usize, String)>,
}

/// Scan a whole segment held in memory: its header, then records up to the first torn or
/// corrupt one (the rules start-up replay, [`replay::replay_segment`], applies reading a
/// record at a time; the fuzz target checks that both agree). `Err` (naming the version) for a segment of a WAL version this build cannot read.
/// A file too short for a header, or with another magic, keeps nothing (cut at 0).
pub fn scan_segment(data: &[u8]) -> std::result::Result<SegmentScan, String> {
    if data.len() < record::HEADER_LEN || &data[..6] != record::MAGIC {
        return Ok(SegmentScan {
            records: Vec::new(),
            cut: Some((0, "no valid header".into())),
        });
    }
    let version = u16::from_le_bytes([data[6], data[7]]);
    if version != record::VERSION {
        return Err(format!(
            "wal segment version {version} is not supported (this release reads version {})",
            record::VERSION
        ));
    }
    let (records, stop) = record::decode_all(data);
    let cut = match stop {
        record::Stop::End => None,
        record::Stop::Torn { offset } => Some((offset, "torn tail".into())),
        record::Stop::Corrupt { offset, reason } => Some((offset, reason)),
    };
    Ok(SegmentScan { records, cut })
}

fn create_segment(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(&record::header()).map_err(io_err(&path))?;
    f.sync_all().map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(f)
}

impl Wal {
    /// Replay the WAL in `dir` and start the writer on a new segment.
    pub fn open(dir: &Path, metrics: Arc<Metrics>) -> Result<(Wal, Replay)> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments = list_segments(dir)?;
        let mut replay = Replay {
            records: Vec::new(),
            segments: segments.len(),
            truncated_bytes: 0,
        };
        let mut empty = Vec::new();
        for (&seq, size) in segments.iter_mut() {
            let path = segment_path(dir, seq);
            let (records, cut) = replay::replay_segment(&path, seq)?;
            replay.truncated_bytes += cut;
            *size -= cut.min(*size);
            if records.is_empty() {
                empty.push(seq);
            }
            replay.records.extend(records);
        }
        let next = segments.keys().next_back().map_or(1, |s| s + 1);
        // Segments without records hold nothing to keep.
        for seq in empty {
            let path = segment_path(dir, seq);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            segments.remove(&seq);
        }
        let file = create_segment(dir, next)?;
        segments.insert(next, record::HEADER_LEN as u64);
        let shared = Arc::new(Shared {
            segments: Mutex::new(segments),
            current: AtomicU64::new(next),
            metrics,
        });
        shared.publish();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            file,
            seq: next,
            size: record::HEADER_LEN as u64,
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        info!(dir = %dir.display(), segments = replay.segments, records = replay.records.len(), "wal replayed");
        Ok((
            Wal {
                tx,
                dir: dir.to_path_buf(),
                shared,
                files: Arc::new(SegmentFiles::new(dir)),
            },
            replay,
        ))
    }

    /// Read handles of the segments (shared with the live store).
    pub fn files(&self) -> &Arc<SegmentFiles> {
        &self.files
    }

    /// Append a record and wait until it is on disk. Returns where it landed; the bytes of
    /// its fragments are at [`record::fragment_refs`] from there.
    pub async fn append(&self, tenant: &str, fragments: &[Fragment]) -> Result<Appended> {
        let data = record::encode(tenant, fragments);
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Append { data, done })
            .map_err(|_| Error::NotReady("wal writer stopped"))?;
        rx.await
            .map_err(|_| Error::NotReady("wal writer stopped"))?
    }

    /// [`Wal::rotate`] when the open segment holds records; otherwise its number.
    pub async fn rotate_if_written(&self) -> Result<u64> {
        let current = self.current();
        let size = self.shared.segments.lock().get(&current).copied();
        if size.is_some_and(|s| s <= record::HEADER_LEN as u64) {
            return Ok(current);
        }
        self.rotate().await
    }

    /// Close the open segment and start a new one; returns the new segment's number.
    /// Everything appended before the call is in older segments.
    pub async fn rotate(&self) -> Result<u64> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Rotate { done })
            .map_err(|_| Error::NotReady("wal writer stopped"))?;
        rx.await
            .map_err(|_| Error::NotReady("wal writer stopped"))?
    }

    /// Delete every closed segment numbered below `seq`. The caller guarantees their
    /// records are all in durable blocks.
    pub fn delete_below(&self, seq: u64) -> Result<usize> {
        let current = self.current();
        let doomed: Vec<u64> = self
            .shared
            .segments
            .lock()
            .range(..seq.min(current))
            .map(|(s, _)| *s)
            .collect();
        self.files.forget_below(seq.min(current));
        for s in &doomed {
            let path = segment_path(&self.dir, *s);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            self.shared.segments.lock().remove(s);
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
            self.shared.publish();
        }
        Ok(doomed.len())
    }

    /// Number of the open segment.
    pub fn current(&self) -> u64 {
        self.shared.current.load(Ordering::Acquire)
    }

    /// Bytes of all segments on disk.
    pub fn bytes(&self) -> u64 {
        self.shared.total_bytes()
    }

    /// Segment numbers on disk.
    pub fn segments(&self) -> Vec<u64> {
        self.shared.segments.lock().keys().copied().collect()
    }
}

struct Writer {
    dir: PathBuf,
    file: File,
    seq: u64,
    size: u64,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut group: Vec<Command> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            let mut bytes = 0usize;
            while bytes < GROUP_MAX_BYTES {
                match rx.try_recv() {
                    Ok(c) => {
                        if let Command::Append { data, .. } = &c {
                            bytes += data.len();
                        }
                        group.push(c);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut group);
        }
        if let Err(e) = self.file.sync_data() {
            warn!(error = %e, "wal final sync failed");
        }
    }

    fn path(&self) -> PathBuf {
        segment_path(&self.dir, self.seq)
    }

    /// Write a group, fsync once, then acknowledge.
    fn commit(&mut self, group: &mut Vec<Command>) {
        let mut acks: Vec<(oneshot::Sender<Result<Appended>>, Appended)> = Vec::new();
        let mut failed: Option<String> = None;
        for cmd in group.drain(..) {
            match cmd {
                Command::Append { data, done } => {
                    let at = Appended {
                        segment: self.seq,
                        offset: self.size,
                    };
                    if failed.is_none() {
                        if let Err(e) = self.file.write_all(&data) {
                            failed = Some(e.to_string());
                        } else {
                            self.size += data.len() as u64;
                            self.shared.metrics.wal_records.inc();
                        }
                    }
                    acks.push((done, at));
                }
                Command::Rotate { done } => {
                    // Make what came before durable, then switch.
                    let r = self.sync().and_then(|()| self.rotate());
                    if let Err(e) = &r {
                        failed = Some(e.to_string());
                    }
                    let _ = done.send(r.map(|()| self.seq));
                }
            }
        }
        if failed.is_none()
            && let Err(e) = self.sync()
        {
            failed = Some(e.to_string());
        }
        self.shared.segments.lock().insert(self.seq, self.size);
        self.shared.publish();
        for (done, at) in acks {
            let r = match &failed {
                None => Ok(at),
                Some(m) => Err(Error::Wal {
                    path: self.path(),
                    source: std::io::Error::other(m.clone()),
                }),
            };
            let _ = done.send(r);
        }
        if failed.is_some() {
            // Unacknowledged bytes may be half written: start a clean segment so replay
            // never stops early on them.
            warn!(path = %self.path().display(), error = failed.as_deref().unwrap_or(""), "wal write failed, rotating");
            let _ = self.rotate();
        } else if self.size >= SEGMENT_MAX_BYTES
            && let Err(e) = self.rotate()
        {
            warn!(error = %e, "wal rotation failed");
        }
    }

    fn sync(&mut self) -> Result<()> {
        let start = Instant::now();
        let r = self.file.sync_data().map_err(io_err(&self.path()));
        self.shared.metrics.wal_fsyncs.inc();
        self.shared
            .metrics
            .wal_fsync_seconds
            .observe(start.elapsed().as_secs_f64());
        r
    }

    fn rotate(&mut self) -> Result<()> {
        let next = self.seq + 1;
        let file = create_segment(&self.dir, next)?;
        self.shared.segments.lock().insert(self.seq, self.size);
        self.file = file;
        self.seq = next;
        self.size = record::HEADER_LEN as u64;
        self.shared.segments.lock().insert(next, self.size);
        self.shared.current.store(next, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn frag(n: u8) -> Fragment {
        Fragment {
            trace_id: [n; 16],
            spans: 1,
            start_ns: 1,
            end_ns: 2,
            bytes: vec![n; 40],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appended_records_survive_reopen_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        {
            let (wal, replay) = Wal::open(dir.path(), m.clone()).unwrap();
            assert!(replay.records.is_empty());
            let s1 = wal.append("a", &[frag(1)]).await.unwrap().segment;
            let s2 = wal.rotate().await.unwrap();
            assert_eq!(s2, s1 + 1);
            let frags = [frag(2), frag(3)];
            let at = wal.append("b", &frags).await.unwrap();
            assert_eq!(at.segment, s2);
            // The fragments' bytes can be read back where the append says they are.
            for (r, f) in record::fragment_refs(at.offset, "b", &frags)
                .iter()
                .zip(&frags)
            {
                let mut out = Vec::new();
                let part = wal.files().locate(at.segment, r.offset, r.len).unwrap();
                wal.files().read_into(&[part], &mut out).unwrap();
                assert_eq!(out, f.bytes);
            }
        }
        let (wal, replay) = Wal::open(dir.path(), m.clone()).unwrap();
        let got: Vec<_> = replay
            .records
            .iter()
            .map(|r| (r.segment, r.tenant.clone(), r.fragments.len()))
            .collect();
        assert_eq!(got, vec![(1, "a".into(), 1), (2, "b".into(), 2)]);
        let mut out = Vec::new();
        let f = replay.records[1].fragments[1];
        let part = wal.files().locate(2, f.offset, f.len).unwrap();
        wal.files().read_into(&[part], &mut out).unwrap();
        assert_eq!(out, frag(3).bytes);
        assert_eq!(wal.current(), 3);
        assert_eq!(wal.delete_below(2).unwrap(), 1);
        assert_eq!(wal.segments(), vec![2, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let (wal, _) = Wal::open(dir.path(), m.clone()).unwrap();
        let wal = Arc::new(wal);
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.append("t", &[frag(i)]).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(m.wal_records.get(), 64);
        assert!(m.wal_fsyncs.get() <= 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_tail_is_truncated_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        {
            let (wal, _) = Wal::open(dir.path(), m.clone()).unwrap();
            wal.append("t", &[frag(1)]).await.unwrap();
            wal.append("t", &[frag(2)]).await.unwrap();
        }
        let path = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        let (_, replay) = Wal::open(dir.path(), m).unwrap();
        assert_eq!(replay.records.len(), 1);
        assert!(replay.truncated_bytes > 0);
        assert_eq!(replay.records[0].fragments[0].trace_id, [1; 16]);
    }
}
