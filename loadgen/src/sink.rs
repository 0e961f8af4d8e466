//! `loadgen sink` (stub).
