//! Choosing compaction jobs for one tenant: pure functions over live block metas.
//!
//! Blocks whose start time falls in the same `compaction_window` are merged in groups of at
//! least two, at most `max_compaction_objects` blocks, `max_block_bytes` of input and
//! [`JOB_READ_BUDGET`] of read buffers, once the window is closed: its end lies before
//! `closed_before_ns` (the caller's clock less the time the ingester may still cut blocks
//! into it). A window still being written is left alone: merging it cycle after cycle would
//! re-encode its growing output with every new block (a span rewritten once per cycle,
//! the job's memory growing with the window) while ingest needs the CPU. Only
//! blocks in the running write format are candidates, plus, when `rewrite_old_formats` is
//! on, readable blocks of other formats; an old-format block left out of every group gets
//! a single-block rewrite job. With `rewrite_old_formats` off, old-format blocks stay as
//! they are (so the release that wrote them can still read them) until retention.
//!
//! Every merge turns two or more live blocks into one, so repeated cycles converge: a
//! window ends with blocks no two of which fit in one job.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::block::BlockMeta;
use crate::block::meta::parse_rfc3339;

/// What kind of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Two or more blocks merged into one.
    Merge,
    /// One block of an older format rewritten in the write format.
    Rewrite,
}

/// One planned job: its inputs, in the order their spans take precedence.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Merge or rewrite.
    pub kind: JobKind,
    /// Input blocks (live, same tenant).
    pub inputs: Vec<BlockMeta>,
}

impl Job {
    /// Level of the output: one above the highest input.
    pub fn output_level(&self) -> u32 {
        self.inputs
            .iter()
            .map(|m| m.compaction_level)
            .max()
            .unwrap_or(0)
            .saturating_add(1)
    }
}

/// Limits and formats the planner works with.
#[derive(Debug, Clone)]
pub struct PlanLimits<'a> {
    /// Width of a time window.
    pub window: Duration,
    /// Most input blocks per job.
    pub max_inputs: usize,
    /// Most input bytes (sum of `size`) per job.
    pub max_bytes: u64,
    /// Format new blocks are written in.
    pub write_format: &'a str,
    /// Formats the running release can read.
    pub readable: &'a [&'a str],
    /// Rewrite readable blocks of other formats.
    pub rewrite_old_formats: bool,
    /// Windows ending at or before this (unix ns) are closed and merged; later ones wait.
    pub closed_before_ns: u64,
    /// Largest row group a block of the write format has (bytes), to estimate what a job
    /// holds per input.
    pub row_group_bytes: u64,
    /// Most bytes of read buffers per job (see [`read_cost`]).
    pub max_read_bytes: u64,
}

/// Default bound on a job's read buffers: a merge reads each input a row group at a time,
/// so a job holds about one (compressed) row group per input and its decoded rows (see
/// [`read_cost`]) besides the row group it writes.
pub const JOB_READ_BUDGET: u64 = 96 * 1024 * 1024;

/// What reading one input holds besides its compressed row group: the rows an rb2 cursor
/// decodes at once (4,096) and the encoded traces they complete, waiting in the merge's
/// queue.
pub const DECODE_BYTES_PER_INPUT: u64 = 8 * 1024 * 1024;

/// What reading `m` holds at once in a merge: one row group (at most the whole block) and
/// its decoded rows.
pub fn read_cost(m: &BlockMeta, row_group_bytes: u64) -> u64 {
    m.size
        .min(row_group_bytes.max(1))
        .saturating_add(DECODE_BYTES_PER_INPUT)
}

impl PlanLimits<'_> {
    fn candidate(&self, m: &BlockMeta) -> bool {
        m.format == self.write_format
            || (self.rewrite_old_formats && self.readable.contains(&m.format.as_str()))
    }
}

/// Start of a block as unix nanoseconds (0 when unparsable).
pub fn start_ns(m: &BlockMeta) -> u64 {
    parse_rfc3339(&m.start_time).unwrap_or(0)
}

/// End of a block as unix nanoseconds (`u64::MAX` when unparsable, so it never expires).
pub fn end_ns(m: &BlockMeta) -> u64 {
    parse_rfc3339(&m.end_time).unwrap_or(u64::MAX)
}

/// Turn a finished group into a merge job (two or more blocks) or leftovers.
fn close<'a>(group: &mut Vec<&'a BlockMeta>, jobs: &mut Vec<Job>, left: &mut Vec<&'a BlockMeta>) {
    if group.len() >= 2 {
        jobs.push(Job {
            kind: JobKind::Merge,
            inputs: group.iter().map(|m| (*m).clone()).collect(),
        });
    } else {
        left.append(group);
    }
    group.clear();
}

/// Jobs for one tenant's live blocks. Groups are disjoint; every input is a candidate.
pub fn plan(live: &[BlockMeta], limits: &PlanLimits<'_>) -> Vec<Job> {
    let window_ns = u64::try_from(limits.window.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut windows: BTreeMap<u64, Vec<&BlockMeta>> = BTreeMap::new();
    for m in live.iter().filter(|m| limits.candidate(m)) {
        windows.entry(start_ns(m) / window_ns).or_default().push(m);
    }
    let mut jobs = Vec::new();
    let mut leftovers: Vec<&BlockMeta> = Vec::new();
    for (window, mut blocks) in windows {
        let end = window.saturating_add(1).saturating_mul(window_ns);
        if end > limits.closed_before_ns {
            // Still being written: no merges (an old-format block may still be rewritten).
            leftovers.extend(blocks);
            continue;
        }
        blocks.sort_by(|a, b| {
            (start_ns(a), a.block_id.as_u128()).cmp(&(start_ns(b), b.block_id.as_u128()))
        });
        let mut group: Vec<&BlockMeta> = Vec::new();
        let (mut bytes, mut read) = (0u64, 0u64);
        for m in blocks {
            let cost = read_cost(m, limits.row_group_bytes);
            if m.size > limits.max_bytes || limits.max_inputs < 2 {
                leftovers.push(m);
                continue;
            }
            if group.len() >= limits.max_inputs
                || bytes.saturating_add(m.size) > limits.max_bytes
                || read.saturating_add(cost) > limits.max_read_bytes
            {
                close(&mut group, &mut jobs, &mut leftovers);
                (bytes, read) = (0, 0);
            }
            bytes += m.size;
            read += cost;
            group.push(m);
        }
        close(&mut group, &mut jobs, &mut leftovers);
    }
    if limits.rewrite_old_formats {
        for m in leftovers {
            if m.format != limits.write_format {
                jobs.push(Job {
                    kind: JobKind::Rewrite,
                    inputs: vec![m.clone()],
                });
            }
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::block::meta::rfc3339;
    use uuid::Uuid;

    const HOUR: u64 = 3_600_000_000_000;
    const T0: u64 = 1_700_000_000_000_000_000 / HOUR * HOUR;

    fn block(id: u128, start: u64, size: u64, format: &str) -> BlockMeta {
        BlockMeta {
            format: format.into(),
            block_id: Uuid::from_u128(id),
            tenant_id: "t".into(),
            start_time: rfc3339(start),
            end_time: rfc3339(start + 1_000),
            total_objects: 1,
            total_spans: 1,
            size,
            encoding: "zstd".into(),
            bloom_shards: 1,
            compaction_level: 0,
        }
    }

    fn limits() -> PlanLimits<'static> {
        PlanLimits {
            window: Duration::from_secs(3600),
            max_inputs: 3,
            max_bytes: 1000,
            write_format: "rb1",
            readable: &["rb1", "old"],
            rewrite_old_formats: false,
            closed_before_ns: u64::MAX,
            row_group_bytes: u64::MAX,
            max_read_bytes: u64::MAX,
        }
    }

    fn ids(j: &Job) -> Vec<u128> {
        j.inputs.iter().map(|m| m.block_id.as_u128()).collect()
    }

    #[test]
    fn groups_blocks_of_one_window_in_start_order() {
        let live = vec![
            block(3, T0 + 30, 10, "rb1"),
            block(1, T0 + 10, 10, "rb1"),
            block(2, T0 + 20, 10, "rb1"),
            block(9, T0 + HOUR, 10, "rb1"), // alone in the next window
        ];
        let jobs = plan(&live, &limits());
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, JobKind::Merge);
        assert_eq!(ids(&jobs[0]), [1, 2, 3]);
    }

    #[test]
    fn respects_max_inputs_and_max_bytes() {
        let live: Vec<_> = (1..=7)
            .map(|i| block(i, T0 + i as u64, 10, "rb1"))
            .collect();
        let jobs = plan(&live, &limits());
        assert_eq!(
            jobs.iter().map(ids).collect::<Vec<_>>(),
            [vec![1, 2, 3], vec![4, 5, 6]],
            "7 is left alone: a group needs two blocks"
        );
        let live = vec![
            block(1, T0 + 1, 600, "rb1"),
            block(2, T0 + 2, 600, "rb1"),
            block(3, T0 + 3, 300, "rb1"),
            block(4, T0 + 4, 5000, "rb1"), // larger than max_bytes on its own
        ];
        let jobs = plan(&live, &limits());
        assert_eq!(jobs.iter().map(ids).collect::<Vec<_>>(), [vec![2, 3]]);
        assert!(
            jobs.iter()
                .all(|j| j.inputs.iter().map(|m| m.size).sum::<u64>() <= 1000)
        );
    }

    #[test]
    fn old_formats_are_left_alone_unless_rewriting() {
        let live = vec![
            block(1, T0 + 1, 10, "old"),
            block(2, T0 + 2, 10, "old"),
            block(3, T0 + HOUR, 10, "old"),
            block(4, T0 + 2 * HOUR, 10, "unreadable"),
        ];
        assert!(plan(&live, &limits()).is_empty());
        let rewrite = PlanLimits {
            rewrite_old_formats: true,
            ..limits()
        };
        let jobs = plan(&live, &rewrite);
        assert_eq!(jobs.len(), 2);
        assert_eq!((jobs[0].kind, ids(&jobs[0])), (JobKind::Merge, vec![1, 2]));
        assert_eq!((jobs[1].kind, ids(&jobs[1])), (JobKind::Rewrite, vec![3]));
    }

    #[test]
    fn open_windows_wait_until_closed() {
        let live = vec![
            block(1, T0 + 1, 10, "rb1"),
            block(2, T0 + 2, 10, "rb1"),
            block(3, T0 + HOUR + 1, 10, "rb1"),
            block(4, T0 + HOUR + 2, 10, "rb1"),
            block(5, T0 + HOUR + 3, 10, "old"),
        ];
        let at = |closed_before_ns| PlanLimits {
            closed_before_ns,
            ..limits()
        };
        assert!(plan(&live, &at(T0 + HOUR - 1)).is_empty(), "both open");
        let jobs = plan(&live, &at(T0 + HOUR));
        assert_eq!(jobs.iter().map(ids).collect::<Vec<_>>(), [vec![1, 2]]);
        let jobs = plan(&live, &at(T0 + 2 * HOUR));
        assert_eq!(
            jobs.iter().map(ids).collect::<Vec<_>>(),
            [vec![1, 2], vec![3, 4]]
        );
        // An old-format block in an open window is still rewritten when asked.
        let rewrite = PlanLimits {
            rewrite_old_formats: true,
            ..at(T0 + HOUR)
        };
        let jobs = plan(&live, &rewrite);
        assert_eq!(
            jobs.iter().map(|j| (j.kind, ids(j))).collect::<Vec<_>>(),
            [(JobKind::Merge, vec![1, 2]), (JobKind::Rewrite, vec![5])]
        );
    }

    #[test]
    fn read_budget_bounds_the_inputs_of_a_job() {
        // Row groups of 100 bytes: a block holds min(size, 100) and its decoded rows while
        // it is read.
        let live = vec![
            block(1, T0 + 1, 40, "rb1"),
            block(2, T0 + 2, 300, "rb1"),
            block(3, T0 + 3, 50, "rb1"),
            block(4, T0 + 4, 60, "rb1"),
        ];
        let limits = PlanLimits {
            row_group_bytes: 100,
            max_read_bytes: 150 + 2 * DECODE_BYTES_PER_INPUT,
            ..limits()
        };
        let jobs = plan(&live, &limits);
        assert_eq!(
            jobs.iter().map(ids).collect::<Vec<_>>(),
            [vec![1, 2], vec![3, 4]]
        );
        for j in &jobs {
            let read: u64 = j.inputs.iter().map(|m| read_cost(m, 100)).sum();
            assert!(read <= 150 + 2 * DECODE_BYTES_PER_INPUT, "{read}");
        }
    }

    #[test]
    fn output_level_is_one_above_the_inputs() {
        let mut a = block(1, T0, 10, "rb1");
        a.compaction_level = 2;
        let b = block(2, T0, 10, "rb1");
        let j = Job {
            kind: JobKind::Merge,
            inputs: vec![a, b],
        };
        assert_eq!(j.output_level(), 3);
    }

    #[test]
    fn repeated_planning_converges() {
        // Simulate cycles: each job's inputs become one block of the summed size.
        let mut live: Vec<_> = (1..=20)
            .map(|i| block(i, T0 + i as u64, 100, "rb1"))
            .collect();
        let mut next = 100;
        for _ in 0..20 {
            let jobs = plan(&live, &limits());
            if jobs.is_empty() {
                break;
            }
            for j in jobs {
                live.retain(|m| !j.inputs.contains(m));
                next += 1;
                let size = j.inputs.iter().map(|m| m.size).sum();
                live.push(block(next, start_ns(&j.inputs[0]), size, "rb1"));
            }
        }
        assert!(plan(&live, &limits()).is_empty());
        assert!(live.len() < 20);
        assert_eq!(live.iter().map(|m| m.size).sum::<u64>(), 2000);
    }
}
