//! `cargo bench --bench build`: `strata build` (cached rebuild and
//! `--no-cache`) of a 10-step Dockerfile vs `buildah bud --layers`, at the
//! quick scale (see `strata::bench::build`). The full run is `strata bench
//! build`.

use strata::bench::Bench;

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-build");
    std::process::exit(strata::bench::cargo_bench(vec![Bench::Build], &out));
}
