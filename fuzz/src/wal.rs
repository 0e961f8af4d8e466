//! WAL segment replay on corrupt and torn segments.

use reference_backend::ingest::batch::Fragment;
use reference_backend::wal::record::{self, HEADER_LEN};
use reference_backend::wal::replay::replay_segment;
use reference_backend::wal::{SegmentScan, scan_segment};

use crate::input::Input;

/// Replay of one segment file: `wal::scan_segment` over the bytes, and start-up replay
/// (`wal::replay::replay_segment`, which reads a file a record at a time and truncates it)
/// over the same bytes written to a file.
///
/// The first byte picks a mode:
/// - 0: the rest is a segment file as found on disk;
/// - 1: the same, with each record's checksum fixed up first, so the fuzzer reaches the
///   record bodies behind the CRC;
/// - 2: the rest describes records (tenant, fragments); they are encoded into a segment
///   that is then cut at a chosen length (a torn write) and has one chosen byte flipped.
///
/// Properties: never a panic; the records kept are exactly the segment's good prefix (they
/// re-encode to the bytes before the cut); the cut lies inside the file; start-up replay
/// keeps as many records, cuts as many bytes and leaves the file that long; in mode 2 every
/// record written wholly before the damage is kept.
pub fn wal_replay(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => {
            check(input.rest());
        }
        1 => {
            check(&fix_checksums(input.rest()));
        }
        _ => torn(&mut input),
    }
}

fn check(segment: &[u8]) -> Option<SegmentScan> {
    let scanned = scan_segment(segment);
    same_as_startup_replay(segment, &scanned);
    let scan = scanned.ok()?;
    let end = match &scan.cut {
        Some((at, _)) => *at,
        None => segment.len(),
    };
    assert!(end <= segment.len(), "cut {end} past the segment");
    let mut again = Vec::new();
    for r in &scan.records {
        again.extend_from_slice(&record::encode(&r.tenant, &r.fragments));
    }
    if end == 0 {
        assert!(
            scan.records.is_empty(),
            "records kept from a headerless file"
        );
    } else {
        assert_eq!(
            again.as_slice(),
            &segment[HEADER_LEN..end],
            "kept records do not re-encode to the good prefix"
        );
    }
    Some(scan)
}

/// Start-up replay of `segment` written to a file agrees with `scan`.
fn same_as_startup_replay(segment: &[u8], scan: &Result<SegmentScan, String>) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("00000000000000000001.wal");
    if std::fs::write(&path, segment).is_err() {
        return;
    }
    let replayed = replay_segment(&path, 1);
    let (scan, (records, cut)) = match (scan, replayed) {
        (Ok(scan), Ok(replayed)) => (scan, replayed),
        (Err(_), Err(_)) => return,
        (scan, replayed) => panic!(
            "scan and start-up replay disagree on whether the segment is readable: {:?} vs {:?}",
            scan.as_ref().map(|s| s.records.len()),
            replayed.map(|(r, _)| r.len())
        ),
    };
    let kept = scan.cut.as_ref().map_or(segment.len(), |(at, _)| *at);
    assert_eq!(records.len(), scan.records.len(), "records kept differ");
    assert_eq!(cut, (segment.len() - kept) as u64, "bytes cut differ");
    let len = std::fs::metadata(&path)
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    assert_eq!(
        len, kept as u64,
        "start-up replay left the file at another length"
    );
    for (r, s) in records.iter().zip(&scan.records) {
        assert_eq!(r.tenant, s.tenant, "tenants differ");
        assert_eq!(
            r.fragments.len(),
            s.fragments.len(),
            "fragment counts differ"
        );
    }
}

/// Recompute the checksum of every complete frame.
fn fix_checksums(segment: &[u8]) -> Vec<u8> {
    let mut out = segment.to_vec();
    let mut pos = HEADER_LEN;
    while pos + 8 <= out.len() {
        let len = u32::from_le_bytes([out[pos], out[pos + 1], out[pos + 2], out[pos + 3]]) as usize;
        let body = pos + 8;
        let Some(end) = body.checked_add(len).filter(|e| *e <= out.len()) else {
            break;
        };
        let crc = crc32c::crc32c(&out[body..end]);
        out[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
    out
}

fn torn(input: &mut Input<'_>) {
    let cut_at = usize::from(input.u16());
    let flip_at = usize::from(input.u16());
    let mut segment = record::header().to_vec();
    let mut ends = Vec::new();
    for _ in 0..usize::from(input.byte() % 8) {
        let tenant = String::from_utf8_lossy(input.chunk()).into_owned();
        let fragments: Vec<Fragment> = (0..input.byte() % 4)
            .map(|_| {
                let mut trace_id = [0u8; 16];
                trace_id.copy_from_slice(&{
                    let mut id = input.take(16).to_vec();
                    id.resize(16, 0);
                    id
                });
                Fragment {
                    trace_id,
                    spans: u32::from(input.u16()),
                    start_ns: u64::from(input.u16()),
                    end_ns: u64::from(input.u16()),
                    bytes: input.chunk().to_vec(),
                }
            })
            .collect();
        segment.extend_from_slice(&record::encode(&tenant, &fragments));
        ends.push(segment.len());
    }
    let cut_at = cut_at.min(segment.len());
    segment.truncate(cut_at);
    let damaged = flip_at < segment.len();
    if damaged {
        segment[flip_at] ^= 0x5a;
    }
    let first_bad = if damaged { flip_at } else { segment.len() };
    let whole = ends.iter().filter(|e| **e <= first_bad).count();
    if let Some(scan) = check(&segment)
        && first_bad >= HEADER_LEN
    {
        assert!(
            scan.records.len() >= whole,
            "{} of {whole} records before the damage kept",
            scan.records.len()
        );
    }
}
