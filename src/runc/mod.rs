//! `strata-runc`: runc's command line over strata's executor
//! ([`crate::runtime`]), so containerd, Docker and podman can start
//! containers through strata.

/// Entry point of the `strata-runc` binary; returns the exit status.
pub fn main() -> i32 {
    eprintln!("strata-runc: not yet implemented");
    1
}
