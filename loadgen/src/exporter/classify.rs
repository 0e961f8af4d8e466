//! Response classification (stub).
