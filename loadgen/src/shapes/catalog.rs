//! The shapes this build knows (stub until the shapes land).

use super::Shape;

/// Every shape.
pub fn shapes() -> &'static [&'static dyn Shape] {
    &[]
}

/// A shape by name.
pub fn by_name(name: &str) -> Option<&'static dyn Shape> {
    shapes().iter().copied().find(|s| s.name() == name)
}

/// Names of every shape.
pub fn names() -> Vec<&'static str> {
    shapes().iter().map(|s| s.name()).collect()
}
