//! berth: real local Kubernetes clusters in Docker containers.

pub mod binaries;
pub mod cli;
pub mod cluster;
pub mod docker;
pub mod error;
pub mod forward;
pub mod images;
pub mod kubeconfig;
pub mod lock;
pub mod names;
pub mod net;
pub mod node;
pub mod paths;
pub mod pki;
pub mod profile;
pub mod settings;
pub mod ui;
