//! `cargo bench --bench unpack`: layer apply vs `tar -x` (plain and zstd) on XFS and ext4, at the quick scale
//! of `strata bench all --quick` (see `strata::bench`). The full matrix is
//! `strata bench unpack`.

use strata::bench::{Bench, Scale};

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-unpack");
    std::process::exit(strata::bench::cargo_bench(
        vec![Bench::Unpack(strata::bench::unpack::Params::defaults(Scale::Quick))],
        &out,
    ));
}
