//! Container operations over the engine: the lifecycle ([`lifecycle`]:
//! create, stop, kill, wait, rm, sizes), the supervisor that runs a
//! container ([`supervise`]) and the filesystem tools ([`fs`]: diff,
//! commit, export, cp). What a container *is* on disk — its config, state
//! and logs — is [`crate::container`], below the engine.

pub mod fs;
pub mod lifecycle;
pub mod supervise;
