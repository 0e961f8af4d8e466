//! The shapes this build knows.

use super::{Flat, GoExample, HighCardinality, LargeTrace, Microservices, RandomTree, Shape};

static SHAPES: [&dyn Shape; 6] = [
    &GoExample,
    &Microservices,
    &Flat,
    &RandomTree,
    &LargeTrace,
    &HighCardinality,
];

/// Every shape.
pub fn shapes() -> &'static [&'static dyn Shape] {
    &SHAPES
}

/// A shape by name.
pub fn by_name(name: &str) -> Option<&'static dyn Shape> {
    shapes().iter().copied().find(|s| s.name() == name)
}

/// Names of every shape.
pub fn names() -> Vec<&'static str> {
    shapes().iter().map(|s| s.name()).collect()
}
