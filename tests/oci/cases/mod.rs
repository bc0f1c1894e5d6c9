//! The cases, by what they exercise.

mod filesystem;
mod lifecycle;
mod namespaces;
mod process;
