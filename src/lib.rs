//! berth: real local Kubernetes clusters in Docker containers. This crate
//! is the command line, a file per verb; what the verbs do lives in the
//! crates below it (see the workspace's Cargo.toml).

pub mod cli;
