//! Capabilities: the bounding set, the ambient set, and this thread's
//! effective, permitted and inheritable sets.
//!
//! Through the `caps` crate rather than rustix: its [`Capability`] enum
//! names and lists every capability (Docker's defaults are written with
//! it), where rustix offers the prctl calls and a raw bit set.

pub use caps::{CapSet, Capability, CapsHashSet};
use std::io;

fn io_error(e: caps::errors::CapsError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Every capability this build knows, whether or not the kernel does.
pub fn all() -> CapsHashSet {
    caps::all()
}

/// `prctl(PR_CAPBSET_READ, cap)`: whether `cap` is in the bounding set.
///
/// See PR_CAPBSET_READ(2const).
pub fn capability_is_in_bounding_set(cap: Capability) -> io::Result<bool> {
    caps::has_cap(None, CapSet::Bounding, cap).map_err(io_error)
}

/// `prctl(PR_CAPBSET_DROP, cap)`: removes `cap` from the bounding set, for
/// good.
///
/// See PR_CAPBSET_DROP(2const).
pub fn remove_capability_from_bounding_set(cap: Capability) -> io::Result<()> {
    caps::drop(None, CapSet::Bounding, cap).map_err(io_error)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`: empties the ambient
/// set.
///
/// See PR_CAP_AMBIENT(2const).
pub fn clear_ambient_capability_set() -> io::Result<()> {
    caps::clear(None, CapSet::Ambient).map_err(io_error)
}

/// `capget` then `capset`: replaces this thread's `set` (effective,
/// permitted or inheritable) with `caps`, leaving the other two as they
/// are.
///
/// See capset(2).
pub fn capset(set: CapSet, caps: &CapsHashSet) -> io::Result<()> {
    caps::set(None, set, caps).map_err(io_error)
}

/// The highest capability number the running kernel knows
/// (`/proc/sys/kernel/cap_last_cap`), which may exceed what this build's
/// [`Capability`] enum names.
pub fn last_cap() -> io::Result<u32> {
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?;
    text.trim().parse().map_err(|_| io::Error::other(format!("cap_last_cap: {text:?} is not a number")))
}

/// `prctl(PR_CAPBSET_DROP, index)` by number, for capabilities this build
/// may not name.
///
/// See PR_CAPBSET_DROP(2const).
pub fn drop_bounding_index(index: u32) -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: prctl with PR_CAPBSET_DROP takes integers only and touches no
    // memory of ours.
    let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(index), 0, 0, 0) };
    if r < 0 {
        let e = io::Error::last_os_error();
        // EINVAL: a number the kernel does not know; nothing to drop.
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`: adds `cap` to the
/// ambient set (it must be permitted and inheritable).
///
/// See PR_CAP_AMBIENT(2const).
pub fn raise_ambient(cap: Capability) -> io::Result<()> {
    caps::raise(None, CapSet::Ambient, cap).map_err(io_error)
}
