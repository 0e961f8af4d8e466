//! Deterministic ids (stub).
