//! Where berth keeps things on the host.

use std::path::PathBuf;

/// Kubernetes binaries and other downloads, shared by every profile:
/// `$BERTH_CACHE_DIR`, else the platform cache directory + `/berth`.
pub fn cache_dir() -> PathBuf {
    from_env_or("BERTH_CACHE_DIR", dirs::cache_dir())
}

/// Profiles and their PKI: `$BERTH_HOME`, else the platform data directory +
/// `/berth`.
pub fn home_dir() -> PathBuf {
    from_env_or("BERTH_HOME", dirs::data_dir())
}

/// The home berth uses when `BERTH_HOME` is not set.
pub fn default_home_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("berth")
}

fn from_env_or(var: &str, platform: Option<PathBuf>) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        // A machine without a home directory still gets a working default.
        _ => platform.unwrap_or_else(std::env::temp_dir).join("berth"),
    }
}
