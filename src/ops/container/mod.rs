//! Container operations over the engine: the lifecycle ([`lifecycle`]:
//! create, stop, kill, wait, rm, sizes), [`exec`], [`logs`], the supervisor that runs a
//! container ([`supervise`]) and the filesystem tools ([`fs`]: diff,
//! commit, export, cp) and what `ps` and `inspect` show ([`query`]). What a container *is* on disk — its config, state
//! and logs — is [`crate::container`], below the engine.

pub mod exec;
pub mod fs;
pub mod lifecycle;
pub mod logs;
pub mod query;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod supervise;
pub mod volatile;
