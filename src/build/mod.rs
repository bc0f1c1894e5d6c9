//! Building images from Dockerfiles.
//!
//! Today this holds only the [`parser`]: a pure function from Dockerfile
//! text to typed instructions. The builder that executes them (snapshots,
//! `RUN` in the runtime, `COPY` through the layer code) comes later and will
//! consume [`parser::Dockerfile`] without re-reading the text.

pub mod parser;
