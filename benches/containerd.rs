//! `cargo bench --bench containerd`: containerd with `strata snapshotter
//! serve` as a proxy snapshotter vs its overlayfs and native snapshotters
//! (pull, `ctr run --rm`, snapshot usage), at the quick scale (see
//! `strata::bench::containerd`). The full 500 MiB image and 100 containers
//! are `strata bench containerd`.

use strata::bench::Bench;

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-containerd");
    std::process::exit(strata::bench::cargo_bench(vec![Bench::Containerd], &out));
}
