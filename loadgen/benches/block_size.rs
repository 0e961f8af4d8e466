//! Block sizes: rb1 versus rb2 for the go-example and microservices shapes (typical
//! profile, default encoding settings). rb2 must be at most 60 % of rb1.
//!
//! `cargo bench -p loadgen --bench block_size`; `BLOCK_SIZE_TRACES` (default 20000).

use loadgen::block_size::{corpus, sizes};
use loadgen::scenario::SizeProfile;

fn main() {
    let traces: u64 = std::env::var("BLOCK_SIZE_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!();
    println!("| shape | traces | spans | protobuf | rb1 | rb2 | rb2 / rb1 |");
    println!("|---|---|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    for shape in ["go-example", "microservices"] {
        let Some(c) = corpus(shape, SizeProfile::Typical, traces) else {
            eprintln!("unknown shape {shape}");
            std::process::exit(2);
        };
        let s = match sizes(&c) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{shape}: {e}");
                std::process::exit(2);
            }
        };
        worst = worst.max(s.ratio());
        println!(
            "| {shape} | {} | {} | {:.2} MB | {:.2} MB ({:.1} B/span) | {:.2} MB ({:.1} B/span) | {:.1} % |",
            s.traces,
            s.spans,
            s.protobuf as f64 / 1e6,
            s.rb1 as f64 / 1e6,
            s.rb1 as f64 / s.spans as f64,
            s.rb2 as f64 / 1e6,
            s.rb2 as f64 / s.spans as f64,
            s.ratio() * 100.0
        );
    }
    println!();
    if worst > 0.6 {
        println!(
            "TARGET MISSED: rb2 is {:.1} % of rb1 (> 60 %)",
            worst * 100.0
        );
    } else {
        println!(
            "target met: rb2 is at most {:.1} % of rb1 (<= 60 %)",
            worst * 100.0
        );
    }
}
