//! `cargo bench --bench start`: container start latency vs crun, runc and podman, and `ps -s` of 100 containers vs `du`, at the quick scale
//! of `strata bench all --quick` (see `strata::bench`). The full matrix is
//! `strata bench start`.

use strata::bench::Bench;

fn main() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-start");
    std::process::exit(strata::bench::cargo_bench(vec![Bench::Start], &out));
}
