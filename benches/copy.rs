//! `cargo bench --bench copy`: tree copy (reflink, read/write) vs `cp -a --reflink=auto` on XFS, btrfs and ext4, at the quick scale
//! of `strata bench all --quick` (see `strata::bench`). The full matrix is
//! `strata bench copy`.

use strata::bench::{Bench, Scale};

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-copy");
    std::process::exit(strata::bench::cargo_bench(
        vec![Bench::Copy(strata::bench::copy::Params::defaults(Scale::Quick))],
        &out,
    ));
}
