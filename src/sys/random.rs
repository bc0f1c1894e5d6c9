//! The kernel's random number generator.

use std::io;

/// `getrandom(buf, len, 0)`: fills `buf` from the kernel's CSPRNG
/// (blocking until it is initialised).
///
/// See getrandom(2).
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
