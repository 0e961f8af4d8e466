//! Run statistics: HDR histograms and the per-second series.

pub mod hist;
pub mod recorder;
