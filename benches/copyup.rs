//! `cargo bench --bench copyup`: copy_up latency per driver and backing
//! filesystem (see `strata::bench::copyup`) at the quick scale of
//! `strata bench copy-up --quick`; writes results.json and report.html
//! under the target's tmp dir. Needs root (loop devices, mounts): skipped
//! with a note otherwise. The full matrix is `strata bench copy-up`.

use strata::bench::{copyup, Options, Scale};

fn main() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped bench copyup: needs root (loop devices, mounts)");
        return;
    }
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-copyup");
    let results = copyup::run(&Options::new(Scale::Quick), &copyup::Params::defaults(Scale::Quick));
    if let Err(e) = copyup::table::print(&mut std::io::stdout().lock(), &results) {
        eprintln!("error: print results: {e}");
        std::process::exit(1);
    }
    match results.write(&out) {
        Ok(path) => eprintln!("[bench] results written to {} (and report.html beside it)", path.display()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    std::process::exit(i32::from(!results.failures.is_empty()));
}
