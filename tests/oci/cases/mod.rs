//! The cases, by what they exercise.

mod bad;
mod filesystem;
mod hostside;
mod lifecycle;
mod namespaces;
mod process;
