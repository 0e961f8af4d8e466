//! A config written for release N given to other releases: accepted, accepted with a
//! deprecation warning, or rejected naming every key and its new spelling, as the
//! release table says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use reference_backend::cli::{Opts, run};
use reference_backend::release::ReleaseId::{self, R1, R2, R3};
use reference_backend::release::config_rules::parse;

const RELEASE_1: &str = "\
ingester:
  trace_idle_period: 2s
  max_memory_bytes: 64MiB
storage:
  trace:
    backend: memory
    block:
      page_size_bytes: 128KiB
";

const RELEASE_2: &str = "\
ingester:
  trace_idle_period: 2s
  max_live_bytes: 64MiB
compactor:
  compaction:
    block_retention: 48h
storage:
  trace:
    backend: memory
    block:
      version: rb2
      rb1_page_size_bytes: 128KiB
";

const RELEASE_3: &str = "\
live_store:
  trace_idle_period: 2s
  max_live_bytes: 64MiB
compactor:
  compaction:
    block_retention: 48h
storage:
  trace:
    backend: memory
    block:
      version: rb2
";

fn rejected(text: &str, r: ReleaseId) -> String {
    parse(text, r).unwrap_err().to_string()
}

#[test]
fn each_release_takes_its_own_config_without_warnings() {
    for (text, r) in [(RELEASE_1, R1), (RELEASE_2, R2), (RELEASE_3, R3)] {
        let p = parse(text, r).unwrap();
        assert!(p.warnings.is_empty(), "{r}: {:?}", p.warnings);
        assert_eq!(p.config.release, r);
        assert_eq!(p.config.ingester.trace_idle_period.get().as_secs(), 2);
        assert_eq!(p.config.ingester.max_memory_bytes.as_u64(), 64 << 20);
    }
    let p = parse(RELEASE_2, R2).unwrap();
    assert_eq!(
        p.config.storage.trace.block.page_size_bytes.as_u64(),
        128 << 10
    );
    assert_eq!(
        p.config
            .compactor
            .compaction
            .block_retention
            .get()
            .as_secs(),
        48 * 3600
    );
}

#[test]
fn release_2_takes_release_1_spellings_with_a_warning_each() {
    let p = parse(RELEASE_1, R2).unwrap();
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    let all = p.warnings.join("\n");
    for (old, new) in [
        (
            "storage.trace.block.page_size_bytes",
            "storage.trace.block.rb1_page_size_bytes",
        ),
        ("ingester.max_memory_bytes", "ingester.max_live_bytes"),
    ] {
        assert!(all.contains(old) && all.contains(new), "{all}");
    }
    assert!(all.contains("deprecated"), "{all}");
    assert_eq!(
        p.config.storage.trace.block.page_size_bytes.as_u64(),
        128 << 10
    );
}

#[test]
fn release_3_rejects_release_2_config_naming_each_key_and_its_new_spelling() {
    let e = rejected(RELEASE_2, R3);
    for needle in [
        "ingester.trace_idle_period",
        "live_store.trace_idle_period",
        "ingester.max_live_bytes",
        "live_store.max_live_bytes",
        "storage.trace.block.rb1_page_size_bytes: removed in release 3",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn release_3_rejects_release_1_config_too() {
    let e = rejected(RELEASE_1, R3);
    assert_eq!(
        e.matches("max_memory_bytes").count(),
        1,
        "each key is reported once:\n{e}"
    );
    for needle in [
        "ingester.max_memory_bytes",
        "live_store.max_live_bytes",
        "storage.trace.block.page_size_bytes: renamed to storage.trace.block.rb1_page_size_bytes in release 2 and removed in release 3",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn older_releases_reject_newer_keys_naming_the_release_that_added_them() {
    let e = rejected(RELEASE_2, R1);
    for needle in [
        "compactor: no such key in release 1; it was added in release 2",
        "storage.trace.block.version: no such key in release 1",
        "storage.trace.block.rb1_page_size_bytes: this is the spelling of release 2; release 1 calls it storage.trace.block.page_size_bytes",
        "ingester.max_live_bytes",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
    let e = rejected(RELEASE_3, R2);
    assert!(
        e.contains("live_store: no such section in release 2"),
        "{e}"
    );
}

#[test]
fn release_3_cannot_be_told_to_write_rb1_and_release_1_has_no_rb2() {
    let e = rejected(
        "storage:\n  trace:\n    backend: memory\n    block:\n      version: rb1\n",
        R3,
    );
    assert!(e.contains("release 3 cannot write rb1"), "{e}");
    let e = rejected(
        "storage:\n  trace:\n    backend: memory\n    block:\n      version: rb9\n",
        R2,
    );
    assert!(e.contains("rb9"), "{e}");
}

#[test]
fn a_typo_inside_a_renamed_section_is_named_with_its_path() {
    let e = rejected("live_store:\n  trace_idle_perid: 2s\n", R3);
    assert!(e.contains("trace_idle_perid"), "{e}");
    assert!(e.contains("live_store"), "{e}");
}

#[tokio::test]
async fn check_config_reports_per_release() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r1.yaml");
    std::fs::write(&file, RELEASE_1).unwrap();
    let f = file.to_str().unwrap();
    for n in ["1", "2"] {
        let opts =
            Opts::try_parse_from(["reference-backend", "check-config", "--release", n, f]).unwrap();
        run(opts).await.unwrap();
    }
    let opts =
        Opts::try_parse_from(["reference-backend", "check-config", "--release", "3", f]).unwrap();
    let e = run(opts).await.unwrap_err().to_string();
    assert!(e.contains("live_store.trace_idle_period"), "{e}");
    assert!(
        Opts::try_parse_from(["reference-backend", "--release", "4"]).is_err(),
        "release 4 does not exist"
    );
}

#[test]
fn status_config_is_rendered_in_the_release_spelling() {
    let r3 = parse(RELEASE_3, R3).unwrap().config.to_yaml();
    assert!(
        r3.contains("live_store:") && !r3.contains("ingester:"),
        "{r3}"
    );
    assert!(
        r3.contains("max_live_bytes") && !r3.contains("page_size_bytes"),
        "{r3}"
    );
    let r1 = parse(RELEASE_1, R1).unwrap().config.to_yaml();
    assert!(
        r1.contains("ingester:") && r1.contains("max_memory_bytes"),
        "{r1}"
    );
    assert!(!r1.contains("compactor") && !r1.contains("version"), "{r1}");
    // What a release renders, it parses back.
    for (text, r) in [(RELEASE_1, R1), (RELEASE_2, R2), (RELEASE_3, R3)] {
        let yaml = parse(text, r).unwrap().config.to_yaml();
        let back = parse(&yaml, r).unwrap();
        assert!(back.warnings.is_empty(), "{r}: {:?}", back.warnings);
    }
}

#[test]
fn the_release_table_names_formats_changes_and_the_upgrade_path() {
    let table = reference_backend::release::table::render();
    for needle in [
        "1        rb1     rb1",
        "2        rb2|rb1 rb1,rb2",
        "3        rb2     rb2",
        "renamed storage.trace.block.page_size_bytes -> storage.trace.block.rb1_page_size_bytes",
        "section ingester replaced by live_store",
        "rewrite_old_formats",
        "Skipping release 2 fails",
    ] {
        assert!(table.contains(needle), "missing {needle:?} in:\n{table}");
    }
}
