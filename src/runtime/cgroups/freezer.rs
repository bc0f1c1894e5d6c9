//! `pause`/`resume`: the v1 freezer (`freezer.state`) or cgroup v2's
//! `cgroup.freeze`, waiting until the kernel reports the new state.
//!
//! Freezing is not instant: v1 passes through `FREEZING` while tasks
//! are caught (a task in an uninterruptible sleep can hold it there), and
//! v2 raises `frozen 1` in `cgroup.events` only once every task has
//! stopped. Both are polled, for at most [`WAIT`].

use super::{read, write, CgroupError, Manager};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a transition may take before it is an error.
const WAIT: Duration = Duration::from_secs(5);

pub(super) fn set(m: &Manager, frozen: bool) -> Result<(), CgroupError> {
    if let Some(dir) = m.paths.v1.get("freezer") {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        return wait(dir, want, |dir| {
            write(dir, "freezer.state", want)?;
            Ok(read(dir, "freezer.state")? == want)
        });
    }
    let Some(dir) = &m.paths.unified else {
        return Err(CgroupError::NoController { field: "pause".into(), controller: "freezer".into() });
    };
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    wait(dir, if frozen { "frozen" } else { "thawed" }, |dir| Ok(events_frozen(dir)? == frozen))
}

/// Calls `step` until it reports done, sleeping a little more each time.
fn wait(
    dir: &Path,
    want: &'static str,
    mut step: impl FnMut(&Path) -> Result<bool, CgroupError>,
) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if step(dir)? {
            return Ok(());
        }
        if start.elapsed() > WAIT {
            let waited_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            return Err(CgroupError::FreezeTimeout { path: dir.to_owned(), want, waited_ms });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// `frozen` in a v2 group's `cgroup.events`.
fn events_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let events = read(dir, "cgroup.events")?;
    Ok(events.lines().any(|l| l.trim() == "frozen 1"))
}

pub(super) fn is_frozen(m: &Manager) -> Result<bool, CgroupError> {
    if let Some(dir) = m.paths.v1.get("freezer") {
        // FREEZING counts as frozen: `pause` has been asked for.
        return Ok(read(dir, "freezer.state")? != "THAWED");
    }
    match &m.paths.unified {
        Some(dir) => Ok(read(dir, "cgroup.freeze")? == "1"),
        None => Ok(false),
    }
}
