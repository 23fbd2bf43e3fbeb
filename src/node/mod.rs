//! What runs inside a node: its image, and (later) units, configs and
//! per-version flags.

pub mod image;
pub mod render;
