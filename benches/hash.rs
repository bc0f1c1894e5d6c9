//! `cargo bench --bench hash`: sha256 throughput vs `openssl speed` and `sha256sum`, at the quick scale
//! of `strata bench all --quick` (see `strata::bench`). The full matrix is
//! `strata bench hash`.

use strata::bench::Bench;

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-hash");
    std::process::exit(strata::bench::cargo_bench(vec![Bench::Hash], &out));
}
