//! `cargo bench --bench diff`: layer diff of an overlay upper dir vs `tar -c | sha256sum`, at the quick scale
//! of `strata bench all --quick` (see `strata::bench`). The full matrix is
//! `strata bench diff`.

use strata::bench::{Bench, Scale};

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-diff");
    std::process::exit(strata::bench::cargo_bench(
        vec![Bench::Diff(strata::bench::diff::Params::defaults(Scale::Quick))],
        &out,
    ));
}
