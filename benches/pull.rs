//! `cargo bench --bench pull`: `strata pull` of a 5-layer image from a
//! loopback `docker-registry` vs `skopeo copy` + `umoci unpack`, at the
//! quick scale (see `strata::bench::pull`). The full 500 MiB image is
//! `strata bench pull`.

use strata::bench::Bench;

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-pull");
    std::process::exit(strata::bench::cargo_bench(vec![Bench::Pull], &out));
}
