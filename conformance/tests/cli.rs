//! The command line: `list`, `run` exit codes and the three reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_conformance");

#[test]
fn list_markdown_names_every_case() {
    let out = Command::new(BIN)
        .args(["list", "--markdown"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for c in conformance::cases::catalog() {
        assert!(text.contains(&format!("`{}`", c.id)), "{} missing", c.id);
    }
}

#[test]
fn run_writes_three_reports_and_the_exit_code_follows_the_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ok = Command::new(BIN)
        .args(["run", "--target"])
        .arg(common::target_path("reference-1"))
        .args([
            "--store",
            "local",
            "--cases",
            "ingest.otlp_grpc,fidelity.shared_span_id",
            "--out",
        ])
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    for f in ["junit.xml", "report.md", "report.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("opted out"), "{md}");

    // Declare a request cap the target does not have: the case fails, and says why.
    let text = std::fs::read_to_string(common::target_path("reference-1"))
        .unwrap()
        .replace("max_request_bytes: 4194304", "max_request_bytes: 100000");
    let target = dir.path().join("wrong-limits.yaml");
    std::fs::write(&target, text).unwrap();
    let failed = Command::new(BIN)
        .args(["run", "--target"])
        .arg(&target)
        .args([
            "--store",
            "local",
            "--cases",
            "ingest.oversized_request",
            "--out",
        ])
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path().join("work2"))
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("`ingest.oversized_request`: a request of about"),
        "{md}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure message="), "{junit}");
}

/// A declared deviation that occurs is reported apart from passes and failures, with its
/// reason, in all three reports, and the run exits 0; one that does not occur fails the run.
#[test]
fn declared_deviations_are_reported_and_must_occur() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::target_path("reference-1"))
        .unwrap()
        .replace("max_request_bytes: 4194304", "max_request_bytes: 100000")
        + "deviations:\n  ingest.oversized_request:\n    reason: the cap declared here is not the config's\n    matches: 'a request of about \\d+ bytes over a 100000-byte cap was accepted'\n";
    let target = dir.path().join("deviating.yaml");
    std::fs::write(&target, &text).unwrap();
    let run = |cases: &str, out: &std::path::Path| {
        Command::new(BIN)
            .args(["run", "--target"])
            .arg(&target)
            .args(["--store", "local", "--cases", cases, "--out"])
            .arg(out)
            .arg("--work-dir")
            .arg(out.join("work"))
            .output()
            .unwrap()
    };
    let out = dir.path().join("known");
    let ok = run("ingest.oversized_request", &out);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("0 failed, 1 known deviation")
            && stdout.contains("known deviation ingest.oversized_request: the cap declared"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("⚠️ known deviation"), "{md}");
    assert!(
        md.contains("known deviation: the cap declared here is not the config's — observed: a request of about"),
        "{md}"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<skipped message=\"known deviation: the cap declared here")
            && !junit.contains("<failure"),
        "{junit}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["runs"][0]["results"][0]["outcome"], "known_deviation");

    // The same declaration on a case that passes fails the run.
    let text = text.replace(
        "ingest.oversized_request:\n    reason",
        "ingest.otlp_grpc:\n    reason",
    );
    std::fs::write(&target, text).unwrap();
    let out = dir.path().join("passing");
    let failed = run("ingest.otlp_grpc", &out);
    assert_eq!(failed.status.code(), Some(1));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("passed, but a deviation is declared"), "{md}");
}

/// A copy of a bundled target file in `dir` that gives up on reads after 2 s (for pairs
/// whose reads are expected to fail).
fn impatient(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::target_path(name))
        .unwrap()
        .replace("visible_within: 10s", "visible_within: 2s");
    assert!(text.contains("visible_within: 2s"));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn upgrade_exit_codes_and_reports_follow_the_release_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let upgrade = |from: &std::path::Path, to: &std::path::Path, out: &std::path::Path| {
        Command::new(BIN)
            .arg("upgrade")
            .arg("--from")
            .arg(from)
            .arg("--to")
            .arg(to)
            .args(["--store", "embedded-s3", "--out"])
            .arg(out)
            .arg("--work-dir")
            .arg(out.join("work"))
            .output()
            .unwrap()
    };
    let ok_out = dir.path().join("1-2");
    let ok = upgrade(
        &common::target_path("reference-1"),
        &common::target_path("reference-2"),
        &ok_out,
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("PASSED reference-1 → reference-2 [embedded-s3]"),
        "{stdout}"
    );
    for f in ["junit.xml", "report.md", "report.json"] {
        assert!(ok_out.join(f).is_file(), "{f}");
    }

    let bad_out = dir.path().join("1-3");
    let bad = upgrade(
        &impatient(dir.path(), "reference-1"),
        &impatient(dir.path(), "reference-3"),
        &bad_out,
    );
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    let md = std::fs::read_to_string(bad_out.join("report.md")).unwrap();
    assert!(md.contains("**FAILED**"), "{md}");
    let read = md
        .lines()
        .find(|l| l.contains("`upgrade.read_by_id`:"))
        .unwrap_or_else(|| panic!("no read_by_id failure in\n{md}"));
    assert!(
        read.contains("flushed part")
            && read.contains("in format rb1, which release 3 cannot read"),
        "{read}"
    );
}
