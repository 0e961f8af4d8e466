//! Fast path for the commonest attribute search: a string condition on a span attribute
//! whose values live in the `attrs.kv` dictionary. Instead of building arrow list arrays,
//! the column chunk's pages are decoded here directly: repetition levels (row starts),
//! definition levels (empty lists) and dictionary indices, evaluated through a per-entry
//! flag table. Pages that are not dictionary-encoded make it decline (the caller then
//! reads the column through arrow).

use std::sync::Arc;

use arrow::buffer::BooleanBuffer;
use bytes::{Buf, Bytes};

use parquet::basic::Encoding;
use parquet::column::page::Page;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

/// Bytes of one column chunk, addressed by file offset.
#[derive(Clone)]
pub struct ChunkAt {
    /// File offset of `bytes[0]`.
    pub offset: u64,
    /// The chunk.
    pub bytes: Bytes,
}

impl Length for ChunkAt {
    fn len(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

impl ChunkReader for ChunkAt {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let at = self.local(start, 0)?;
        Ok(self.bytes.slice(at..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let at = self.local(start, length)?;
        Ok(self.bytes.slice(at..at + length))
    }
}

impl ChunkAt {
    fn local(&self, start: u64, length: usize) -> parquet::errors::Result<usize> {
        start
            .checked_sub(self.offset)
            .map(|s| s as usize)
            .filter(|s| s + length <= self.bytes.len())
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!(
                    "read of {length} bytes at {start} outside the fetched chunk"
                ))
            })
    }
}

/// Rows that have the key, and rows whose first such element satisfies the condition.
pub struct KvScan {
    /// Rows with an element of the key.
    pub has: BooleanBuffer,
    /// Rows whose first element of the key matches.
    pub matched: BooleanBuffer,
}

/// Evaluate over the `attrs.kv` chunk: `flags(entry)` gives, per dictionary entry,
/// `IS_KEY` and `STR_MATCH` bits (see `eval`). `Ok(None)`: not dictionary-encoded
/// throughout, use the arrow path.
pub fn scan(
    chunk: &ChunkAt,
    meta: &ColumnChunkMetaData,
    rows: usize,
    flags: impl Fn(&[u8]) -> Result<u8, String>,
    is_key: u8,
    str_match: u8,
) -> Result<Option<KvScan>, String> {
    let descr = meta.column_descr();
    if descr.max_def_level() != 1 || descr.max_rep_level() != 1 {
        return Ok(None);
    }
    let pages = SerializedPageReader::new(Arc::new(chunk.clone()), meta, rows, None)
        .map_err(|e| e.to_string())?;
    let mut lut: Vec<u8> = Vec::new();
    // Per row: has an element of the key; its first such element matched.
    let mut found = vec![0u8; rows];
    let mut ok = vec![0u8; rows];
    // Row of the current level: starts "before row 0"; each repetition level 0 moves on.
    let mut row = usize::MAX;
    // The current row's state, carried across pages.
    let (mut cur_found, mut cur_ok) = (0u8, 0u8);
    let (mut reps, mut defs, mut idx) = (Vec::new(), Vec::new(), Vec::new());
    for page in pages {
        let page = page.map_err(|e| e.to_string())?;
        // (page, levels, value encoding, repetition levels, definition levels, values)
        let (buf, levels, encoding, rep, def, vals) = match page {
            Page::DictionaryPage {
                buf, num_values, ..
            } => {
                lut = dictionary(buf, num_values as usize, &flags)?;
                continue;
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                ..
            } => {
                if def_level_encoding != Encoding::RLE || rep_level_encoding != Encoding::RLE {
                    return Ok(None);
                }
                let rep_len = len_at(&buf, 0)?;
                let rep = 4..4 + rep_len;
                let def_len = len_at(&buf, rep.end)?;
                let def = rep.end + 4..rep.end + 4 + def_len;
                let vals = def.end;
                (buf, num_values as usize, encoding, rep, def, vals)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                rep_levels_byte_len,
                def_levels_byte_len,
                ..
            } => {
                let rep = 0..rep_levels_byte_len as usize;
                let def = rep.end..rep.end + def_levels_byte_len as usize;
                let vals = def.end;
                (buf, num_values as usize, encoding, rep, def, vals)
            }
        };
        if !matches!(
            encoding,
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
        ) {
            return Ok(None);
        }
        if buf.len() < vals + 1 || def.end > buf.len() {
            return Err("data page shorter than its levels".into());
        }
        reps.clear();
        defs.clear();
        idx.clear();
        bits(&buf[rep], levels, &mut reps)?;
        bits(&buf[def], levels, &mut defs)?;
        let values = &buf[vals..];
        let present = defs.iter().filter(|d| **d == 1).count();
        hybrid(&values[1..], u32::from(values[0]), present, &mut idx)?;
        if reps.len() < levels || defs.len() < levels || idx.len() < present {
            return Err("page levels or values run short".into());
        }
        if levels == 0 {
            continue;
        }
        // Rows this page starts: every row it touches must be in the row group.
        let starts = reps[..levels].iter().filter(|r| **r == 0).count();
        if row.wrapping_add(starts) >= rows {
            return Err("attrs.kv has more rows than the row group".into());
        }
        if row == usize::MAX && reps.first().is_some_and(|r| *r != 0) {
            return Err("attrs.kv does not start with a row".into());
        }
        // Per level, without branches on the data: move to the next row at repetition
        // level 0 (clearing the row's state), take the entry's flags (0 for an empty
        // list's placeholder level), note the first key element of the row, and store the
        // row's state (stores only, so no level waits on the one before through memory).
        let flags_of = |k: u32| lut.get(k as usize).copied().unwrap_or(0);
        let mut step = |rep: u8, f: u8| {
            let same = u8::from(rep != 0);
            row = row.wrapping_add(usize::from(same ^ 1));
            cur_found &= same.wrapping_neg();
            cur_ok &= same.wrapping_neg();
            let key = u8::from(f & is_key != 0);
            cur_ok |= key & (cur_found ^ 1) & u8::from(f & str_match != 0);
            cur_found |= key;
            found[row] = cur_found;
            ok[row] = cur_ok;
        };
        if present == levels {
            for (rep, k) in reps[..levels].iter().zip(&idx[..levels]) {
                step(*rep, flags_of(*k));
            }
        } else {
            let mut v = 0usize;
            for (rep, def) in reps[..levels].iter().zip(&defs[..levels]) {
                let f = if *def == 1 {
                    v += 1;
                    flags_of(idx[v - 1])
                } else {
                    0
                };
                step(*rep, f);
            }
        }
    }
    if row.wrapping_add(1) != rows {
        return Err(format!(
            "attrs.kv has {} rows, the row group {rows}",
            row.wrapping_add(1)
        ));
    }
    Ok(Some(KvScan {
        has: BooleanBuffer::collect_bool(rows, |i| found[i] != 0),
        matched: BooleanBuffer::collect_bool(rows, |i| ok[i] != 0),
    }))
}
/// The little-endian u32 length prefix at `at`.
fn len_at(buf: &[u8], at: usize) -> Result<usize, String> {
    buf.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| "level length runs past the page".into())
}

/// Flags of every entry of a PLAIN byte-array dictionary page.
fn dictionary(
    buf: Bytes,
    n: usize,
    flags: &impl Fn(&[u8]) -> Result<u8, String>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(n);
    let mut b = &buf[..];
    for _ in 0..n {
        if b.len() < 4 {
            return Err("dictionary page runs short".into());
        }
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < 4 + len {
            return Err("dictionary entry runs past the page".into());
        }
        out.push(flags(&b[4..4 + len])?);
        b = &b[4 + len..];
    }
    Ok(out)
}

/// Each byte's 8 bits as 8 bytes of 0 / 1, least significant bit first.
const EXPAND: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            t[b][i] = ((b >> i) & 1) as u8;
            i += 1;
        }
        b += 1;
    }
    t
};

/// Decode `n` levels of bit width 1 (RLE / bit-packed hybrid) as bytes 0 / 1 into `out`.
pub fn bits(mut b: &[u8], n: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let target = out.len() + n;
    while out.len() < target {
        let (header, used) = varint(b)?;
        b = &b[used..];
        if header & 1 == 0 {
            let count = ((header >> 1) as usize).min(target - out.len());
            let v = *b.first().ok_or("rle run runs past the data")?;
            b = &b[1..];
            out.resize(out.len() + count, v & 1);
        } else {
            let groups = (header >> 1) as usize;
            if b.len() < groups {
                return Err("bit-packed run runs past the data".into());
            }
            for byte in &b[..groups] {
                out.extend_from_slice(&EXPAND[*byte as usize]);
            }
            b = &b[groups..];
            out.truncate(target.min(out.len()));
        }
    }
    Ok(())
}

/// Decode `n` values of the RLE / bit-packed hybrid encoding at `bit_width` into `out`.
pub fn hybrid(mut b: &[u8], bit_width: u32, n: usize, out: &mut Vec<u32>) -> Result<(), String> {
    if bit_width > 32 {
        return Err(format!("bit width {bit_width}"));
    }
    let target = out.len() + n;
    let value_bytes = bit_width.div_ceil(8) as usize;
    while out.len() < target {
        let (header, used) = varint(b)?;
        b = &b[used..];
        if header & 1 == 0 {
            let count = (header >> 1) as usize;
            if b.len() < value_bytes {
                return Err("rle run runs past the data".into());
            }
            let mut v = 0u32;
            for (i, byte) in b[..value_bytes].iter().enumerate() {
                v |= u32::from(*byte) << (8 * i);
            }
            b = &b[value_bytes..];
            let count = count.min(target - out.len());
            out.resize(out.len() + count, v);
        } else {
            let groups = (header >> 1) as usize;
            let bytes = groups * bit_width as usize;
            if b.len() < bytes {
                return Err("bit-packed run runs past the data".into());
            }
            let count = (groups * 8).min(target - out.len());
            unpack(&b[..bytes], bit_width, count, out);
            b = &b[bytes..];
        }
    }
    Ok(())
}

fn unpack(b: &[u8], bit_width: u32, count: usize, out: &mut Vec<u32>) {
    if bit_width == 0 {
        out.resize(out.len() + count, 0);
        return;
    }
    if bit_width == 1 {
        for i in 0..count {
            out.push(u32::from((b[i / 8] >> (i % 8)) & 1));
        }
        return;
    }
    let mask = if bit_width == 32 {
        u32::MAX
    } else {
        (1u32 << bit_width) - 1
    };
    // Whole 8-byte loads while they stay inside the run, then bit by bit.
    let bw = bit_width as usize;
    let fast = if b.len() >= 8 {
        ((b.len() - 8) * 8 / bw).min(count)
    } else {
        0
    };
    out.reserve(count);
    for i in 0..fast {
        let bit = i * bw;
        let at = bit / 8;
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        let word = u64::from_le_bytes(w);
        out.push((word >> (bit % 8)) as u32 & mask);
    }
    let (b, count) = (&b[fast * bw / 8..], count - fast);
    let skip = (fast * bw) % 8;
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    let mut pos = 0usize;
    if skip > 0 {
        acc = u64::from(b[0]) >> skip;
        bits = 8 - skip as u32;
        pos = 1;
    }
    for _ in 0..count {
        while bits < bit_width {
            acc |= u64::from(b[pos]) << bits;
            pos += 1;
            bits += 8;
        }
        out.push((acc as u32) & mask);
        acc >>= bit_width;
        bits -= bit_width;
    }
}

fn varint(b: &[u8]) -> Result<(u64, usize), String> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err("bad varint in hybrid encoding".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hybrid_decodes_rle_and_bit_packed_runs() {
        // RLE run of 3 × 5 (width 3), then one bit-packed group of 8 values 0..8.
        let mut data = vec![3 << 1, 5];
        data.push(1 << 1 | 1);
        // 0..8 at 3 bits, LSB first.
        let mut acc: u32 = 0;
        for v in 0..8u32 {
            acc |= v << (3 * v);
        }
        data.extend_from_slice(&acc.to_le_bytes()[..3]);
        let mut out = Vec::new();
        hybrid(&data, 3, 11, &mut out).unwrap();
        assert_eq!(out, vec![5, 5, 5, 0, 1, 2, 3, 4, 5, 6, 7]);
        let mut ones = Vec::new();
        hybrid(&[1 << 1 | 1, 0b1010_0101], 1, 8, &mut ones).unwrap();
        assert_eq!(ones, vec![1, 0, 1, 0, 0, 1, 0, 1]);
        let mut levels = Vec::new();
        // 3 × 1, then one group (only 6 of its 8 wanted).
        bits(&[3 << 1, 1, 1 << 1 | 1, 0b1010_0101], 9, &mut levels).unwrap();
        assert_eq!(levels, vec![1, 1, 1, 1, 0, 1, 0, 0, 1]);
        assert!(hybrid(&[1 << 1 | 1], 8, 8, &mut Vec::new()).is_err());
    }

    #[test]
    fn long_bit_packed_runs_decode_at_every_width() {
        for width in 1..=32u32 {
            let mask = if width == 32 {
                u32::MAX
            } else {
                (1 << width) - 1
            };
            let values: Vec<u32> = (0..203u32)
                .map(|i| i.wrapping_mul(2_654_435_761) & mask)
                .collect();
            // One bit-packed run of ceil(203 / 8) groups.
            let groups = values.len().div_ceil(8);
            let mut packed = vec![0u8; groups * width as usize];
            for (i, v) in values.iter().enumerate() {
                for bit in 0..width as usize {
                    if v >> bit & 1 == 1 {
                        let at = i * width as usize + bit;
                        packed[at / 8] |= 1 << (at % 8);
                    }
                }
            }
            let mut data = Vec::new();
            let mut header = (groups as u64) << 1 | 1;
            while header >= 0x80 {
                data.push((header as u8) | 0x80);
                header >>= 7;
            }
            data.push(header as u8);
            data.extend_from_slice(&packed);
            let mut out = Vec::new();
            hybrid(&data, width, values.len(), &mut out).unwrap();
            assert_eq!(out, values, "width {width}");
        }
    }
}
