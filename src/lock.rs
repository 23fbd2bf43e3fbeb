//! Locks between berth processes, as files under `$BERTH_HOME/locks/` held
//! with the operating system's advisory lock: released when the holder
//! exits, also after `kill -9`, so none is ever left stale.
//!
//! Each profile has one: commands that change a profile run one after
//! another, commands on different profiles in parallel. `allocate` covers
//! choosing a new profile's subnet and API port until its containers hold
//! them, so that starts at the same moment never pick the same.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ui::Ui;

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Held {
    _file: File,
}

fn path(home: &Path, name: &str) -> PathBuf {
    home.join("locks").join(format!("{name}.lock"))
}

/// Takes the lock of profile `name`, waiting (and saying so) up to
/// `timeout` while another berth command holds it.
pub fn profile(home: &Path, name: &str, timeout: Duration, ui: Ui) -> Result<Held> {
    let what = format!("profile {name}");
    acquire(&path(home, &format!("profile-{name}")), &what, timeout, ui)
}

/// Takes the lock for choosing a new profile's subnet and port.
pub fn allocate(home: &Path, timeout: Duration, ui: Ui) -> Result<Held> {
    acquire(
        &path(home, "allocate"),
        "new networks and ports",
        timeout,
        ui,
    )
}

fn acquire(path: &Path, what: &str, timeout: Duration, ui: Ui) -> Result<Held> {
    let io = |e: std::io::Error| {
        Error::failure(format!("cannot open the lock {}: {e}", path.display()))
            .with_hint("check the permissions of berth's state directory ($BERTH_HOME)")
    };
    if let Some(dir) = path.parent() {
        crate::pki::create_private_dir(dir)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Held { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                if !told {
                    ui.info(format!(
                        "Waiting for another berth command on {what} to finish (lock {})",
                        path.display()
                    ));
                    told = true;
                }
                if started.elapsed() >= timeout {
                    return Err(Error::failure(format!(
                        "another berth command held {what} for {} s (lock {})",
                        timeout.as_secs(),
                        path.display()
                    ))
                    .with_hint("wait for it to finish, or pass a longer --lock-timeout"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_fails_naming_the_lock_and_a_released_lock_is_free() {
        let home = tempfile::tempdir().unwrap();
        let ui = Ui::new(true);
        let first = profile(home.path(), "dev", Duration::ZERO, ui).unwrap();
        let error = profile(home.path(), "dev", Duration::from_millis(200), ui).unwrap_err();
        assert!(
            error.message.contains("profile-dev.lock"),
            "{}",
            error.message
        );
        // Other profiles are not held up.
        profile(home.path(), "other", Duration::ZERO, ui).unwrap();
        drop(first);
        profile(home.path(), "dev", Duration::ZERO, ui).unwrap();
    }
}
