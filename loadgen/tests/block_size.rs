//! rb2 blocks of the go-example and microservices shapes are at most 60 % of rb1's size
//! (a size assertion; the figures come from `cargo bench -p loadgen --bench block_size`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loadgen::block_size::{corpus, sizes};
use loadgen::scenario::SizeProfile;

#[test]
fn rb2_is_at_most_60_percent_of_rb1() {
    for shape in ["go-example", "microservices"] {
        let c = corpus(shape, SizeProfile::Typical, 3_000).unwrap();
        let s = sizes(&c).unwrap();
        assert_eq!(s.traces, 3_000, "{shape}");
        assert!(
            s.ratio() <= 0.6,
            "{shape}: rb2 {} bytes is {:.1} % of rb1 {} bytes",
            s.rb2,
            s.ratio() * 100.0,
            s.rb1
        );
    }
}
