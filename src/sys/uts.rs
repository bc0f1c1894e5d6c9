//! The UTS namespace's names: the kernel's identification and the
//! hostname.

pub use rustix::system::Uname;
use std::io;

/// `uname(&buf)`: the running kernel's name, release, version and machine.
///
/// See uname(2).
pub fn uname() -> Uname {
    rustix::system::uname()
}

/// `sethostname(name, len)`: the hostname of this UTS namespace.
///
/// See sethostname(2).
pub fn sethostname(name: &[u8]) -> io::Result<()> {
    Ok(rustix::system::sethostname(name)?)
}

/// `setdomainname(name, len)`: the NIS domain name of this UTS namespace.
///
/// See setdomainname(2).
pub fn setdomainname(name: &[u8]) -> io::Result<()> {
    Ok(rustix::system::setdomainname(name)?)
}
