//! A crash between any two writes of the compactor: every trace stays readable exactly
//! once, and the next cycles finish the job or clean up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod compaction_util;

use compaction_util::*;
use reference_backend::block::index::TenantIndex;

/// A crash after each write of a compaction cycle and of the following deletion cycle: every
/// trace stays readable exactly once, and clean cycles converge to one output block.
#[tokio::test]
async fn a_crash_between_any_two_writes_loses_and_duplicates_nothing() {
    // Writes of a clean run, per phase.
    let (compact_writes, delete_writes) = {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        seed(&store(&c)).await;
        let k = compactor(&c).with_crash_after(u64::MAX);
        k.cycle(now()).await.unwrap();
        let first = k.writes_done();
        let k = compactor(&c).with_crash_after(u64::MAX);
        k.cycle(later()).await.unwrap();
        (first, k.writes_done())
    };
    assert!(compact_writes >= 10, "{compact_writes}");
    assert!(delete_writes >= 16, "{delete_writes}");

    let (mut recovered, mut partial_removed) = (0, 0);
    for (phase, writes) in [("compaction", compact_writes), ("deletion", delete_writes)] {
        for n in 0..writes {
            let dir = tempfile::tempdir().unwrap();
            let c = config(dir.path());
            let s = store(&c);
            let expected = seed(&s).await;
            let when = format!("{phase} crash after {n} writes");
            if phase == "deletion" {
                compactor(&c).cycle(now()).await.unwrap();
            }
            let at = if phase == "deletion" { later() } else { now() };
            let crashed = compactor(&c).with_crash_after(n);
            let r = crashed.cycle(at).await.unwrap();
            assert!(!r.errors.is_empty(), "{when}: the crash is reported");
            assert_eq!(crashed.writes_done(), n);
            assert_readable_both_ways(&c, &expected, &when).await;

            // A fresh process finishes the job; after the grace period only the output stays.
            let r = compactor(&c).cycle(at).await.unwrap();
            assert!(r.errors.is_empty(), "{when}: {:?}", r.errors);
            recovered += r.jobs_recovered;
            partial_removed += r.partial_outputs_removed;
            assert_readable_both_ways(&c, &expected, &format!("{when}, recovered")).await;
            let r = compactor(&c).cycle(later()).await.unwrap();
            assert!(r.errors.is_empty(), "{when}: {:?}", r.errors);
            let (live, compacted, dirs) = bucket(&s).await;
            assert_eq!(
                (live.len(), compacted.len(), dirs),
                (1, 0, 1),
                "{when}: converged"
            );
            let ix = TenantIndex::read(&s, TENANT).await.unwrap().unwrap();
            assert_eq!(ix.meta.iter().map(|m| m.block_id).collect::<Vec<_>>(), live);
            assert_eq!(ix.meta[0].compaction_level, 1, "{when}");
            assert_readable_both_ways(&c, &expected, &format!("{when}, converged")).await;
        }
    }
    // Crashes inside the job left both kinds of leftovers, and the next cycle handled them:
    // partial outputs (before the output's meta.json) and unfinished marks (after it).
    assert!(partial_removed >= 4, "{partial_removed}");
    assert!(recovered >= 4, "{recovered}");
    eprintln!(
        "crash points: {compact_writes} compaction writes, {delete_writes} deletion writes; \
         {partial_removed} partial outputs removed, {recovered} jobs finished"
    );
}
