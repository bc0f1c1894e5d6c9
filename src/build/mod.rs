//! Building images from Dockerfiles, the way Docker's classic builder
//! records them.
//!
//! * [`parser`] turns Dockerfile text into typed instructions (pure);
//!   [`change`] uses it for `import`/`commit --change` values.
//! * [`executor`] runs them stage by stage. Every instruction after `FROM`
//!   yields one image whose parent is the previous step's image: a
//!   filesystem step (`RUN`, `COPY`, `ADD`, a `WORKDIR` that creates its
//!   directory) adds one layer; every other step only changes the config
//!   and adds a history entry with `empty_layer: true`. `history` therefore
//!   shows each step's image ID, `CREATED BY` and size, as in the seed.
//! * [`layer`] makes the layers: `COPY`/`ADD` stream a tar of the sources
//!   into a fresh snapshot mounted in staging (layer apply does the
//!   confined writing) and commit its diff; `RUN` runs the command in an
//!   intermediate container through the normal run path (network `none`
//!   unless `--network host`) and commits that container's changes.
//! * [`cache`] maps (parent image, step text, build args, source content
//!   hash) to the image a step made before, so a rebuild reuses it
//!   (`---> Using cache`) and ends at the same image ID. Content, not
//!   mtimes: touching files keeps the cache, changing a byte busts it.
//! * [`context`] reads the build context in place (no tar round-trip),
//!   honouring `.dockerignore`; [`ignore`] is its pattern matcher.
//!
//! **Nothing is left behind on failure.** A failed step removes its
//! snapshot (an `extract-` key under a lease, so even a crash is swept by
//! [`crate::engine::Engine::recover`]) and its intermediate container;
//! images of the steps that succeeded stay, as Docker's do, and serve as
//! cache for the next attempt.

pub mod cache;
pub mod change;
pub mod context;
#[cfg(test)]
mod context_hash_tests;
mod executor;
pub mod ignore;
mod image;
mod layer;
pub mod parser;
mod steps;

pub use executor::build;

use crate::digest::ImageId;
use crate::image::reference::Reference;
use crate::root::IoError;
use std::path::PathBuf;

/// What `strata build` was asked for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile; default `<context>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    /// Stop after this stage.
    pub target: Option<String>,
    pub no_cache: bool,
    /// Print only the final image ID.
    pub quiet: bool,
    /// Network for `RUN`: `none` (default) or `host`.
    pub network: Option<String>,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub id: ImageId,
    pub tags: Vec<Reference>,
    /// Steps served from the cache / executed.
    pub cached: usize,
    pub executed: usize,
}

/// Errors of a build. Step errors name the file, line and instruction.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] parser::ParseError),
    #[error("{file}:{line}: {instruction}: {message}")]
    Step { file: String, line: usize, instruction: String, message: String },
    #[error("{0}")]
    Context(String),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("the command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i32 },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Image(#[from] crate::image::images::ImageError),
    #[error(transparent)]
    Layer(#[from] crate::image::layers::LayerError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Store(#[from] crate::root::RootError),
}
