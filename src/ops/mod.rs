//! Operations: what a command does when it needs the whole engine — images
//! in and out (`import`, `load`, `save`), `rmi`, `image mount`, the
//! container lifecycle and filesystem tools, volumes in use, and the
//! queries behind `images`, `history`, `ps -s` and `system df`.
//!
//! **Architecture invariant:** this is the one layer above
//! [`crate::engine`] that combines the stores; the stores and the engine
//! below never import it, and the CLI above only parses, calls one
//! operation and prints its typed result.

pub mod container;
pub mod image;
pub mod system;
pub mod volume;
