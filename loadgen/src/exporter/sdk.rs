//! SDK-mode driver (stub).
