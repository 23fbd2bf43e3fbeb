//! What a cluster is made of on the host, below the operations that act on
//! it: profiles and their settings, names, the binaries cache, the PKI, the
//! user's kubeconfig, the node image, locks; and the error and output types
//! every layer above speaks.

pub mod binaries;
pub mod error;
pub mod kubeconfig;
pub mod lock;
pub mod names;
pub mod node_image;
pub mod paths;
pub mod pki;
pub mod profile;
pub mod registry_cache;
pub mod settings;
pub mod snapshot;
pub mod ui;
