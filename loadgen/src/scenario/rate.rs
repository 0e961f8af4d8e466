//! Rate plans (stub).
