//! Locks between berth processes, as files under `$BERTH_HOME/locks/` held
//! with the operating system's advisory lock: released when the holder
//! exits, also after `kill -9`, so none is ever left stale.
//!
//! Each profile has one: commands that change a profile run one after
//! another, commands on different profiles in parallel. `allocate` covers
//! choosing a new profile's subnet and API port until its containers hold
//! them, so that starts at the same moment never pick the same.
//!
//! A holder writes its process id into the file and empties it on release.
//! A file found holding one was held by a berth that was killed: the engine
//! may still be carrying out what it asked for (a network or container it
//! makes after the request's sender has gone), so the next holder first
//! gives the engine `SETTLE` to finish, and then sees all of it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ui::Ui;

/// How long the engine is given to finish the requests of a killed berth.
const SETTLE: Duration = Duration::from_secs(5);

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Held {
    file: File,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Released in order: nothing for the next holder to wait for.
        let _ = self.file.set_len(0);
    }
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

/// Takes the lock of the home's registry cache, which one command at a
/// time turns on, off or empties.
pub fn registry_cache(home: &Path, timeout: Duration, ui: Ui) -> Result<Held> {
    acquire(
        &path(home, "registry-cache"),
        "the registry cache",
        timeout,
        ui,
    )
}

/// Takes the lock of building `version` into the cache at `cache_dir`
/// (shared by homes): a second build of it waits for the first, then finds
/// it cached, instead of doing the same quarter of an hour's work again.
pub fn build(cache_dir: &Path, version: &str, timeout: Duration, ui: Ui) -> Result<Held> {
    let what = format!("the build of Kubernetes {version}");
    acquire(
        &path(cache_dir, &format!("build-{version}")),
        &what,
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
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                let mut killed = String::new();
                file.read_to_string(&mut killed).map_err(io)?;
                let killed = killed.trim();
                if !killed.is_empty() {
                    ui.info(format!(
                        "A berth command on {what} was killed (process {killed}); giving the engine {} s to finish what it asked for",
                        SETTLE.as_secs()
                    ));
                    std::thread::sleep(SETTLE);
                }
                file.set_len(0).map_err(io)?;
                file.rewind().map_err(io)?;
                write!(file, "{}", std::process::id()).map_err(io)?;
                return Ok(Held { file });
            }
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

    #[test]
    fn a_holder_leaves_its_pid_until_released_and_a_killed_holders_pid_makes_the_next_wait() {
        let home = tempfile::tempdir().unwrap();
        let ui = Ui::new(true);
        let file = path(home.path(), "profile-dev");
        let held = profile(home.path(), "dev", Duration::ZERO, ui).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            std::process::id().to_string()
        );
        drop(held);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
        let quick = Instant::now();
        drop(profile(home.path(), "dev", Duration::ZERO, ui).unwrap());
        assert!(quick.elapsed() < SETTLE);

        // What a berth killed while holding it leaves.
        std::fs::write(&file, "4242").unwrap();
        let settled = Instant::now();
        let held = profile(home.path(), "dev", Duration::ZERO, ui).unwrap();
        assert!(settled.elapsed() >= SETTLE);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            std::process::id().to_string()
        );
        drop(held);
    }
}
