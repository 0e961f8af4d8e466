//! Reports: the JSON model and its renderings.

pub mod model;
