//! The command groups of `edasctl`, one module each.

pub mod render;
