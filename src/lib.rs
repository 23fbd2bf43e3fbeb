//! berth: real local Kubernetes clusters in Docker containers.

pub mod binaries;
pub mod cli;
pub mod docker;
pub mod error;
pub mod node;
pub mod paths;
pub mod ui;
