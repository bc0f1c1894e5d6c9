//! The cases, by what they exercise.

mod filesystem;
mod namespaces;
mod process;
